"""Effective group membership: direct (`memberOf`), primary (AD `primaryGroupID`) and nested groups.

The mapping does no I/O, so the watcher resolves membership and hands the rules a user's
effective groups (state `groups`) next to the direct ones (state `direct_groups`).

    ad        nested groups by the in-chain matching rule (LDAP_MATCHING_RULE_IN_CHAIN,
              1.2.840.113556.1.4.1941), which the DC evaluates at any depth; the primary group
              from the domain SID of the user's objectSid and primaryGroupID
    others    nested groupOfNames / groupOfUniqueNames followed level by level, at most
              `group_nesting_depth` levels, through `member` / `uniqueMember` (up) and
              `memberOf` (down, which the memberof overlay keeps on groups too)

Each group is resolved once per run (a `Membership` lives for one run).
Sources: Microsoft, "Search Filter Syntax" (LDAP_MATCHING_RULE_IN_CHAIN); [MS-ADTS] 3.1.1.4.4
(primaryGroupID); slapo-memberof(5).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from typing import Any

import ldap3
from ldap3.utils.conv import escape_bytes, escape_filter_chars

from connector.dn import dn_key, is_dn
from connector.sources.ldap.connection import first_raw, in_batches, read_entry, search
from connector.sources.ldap.dialects import Dialect, all_values, first_value

log = logging.getLogger("connector.ldap")

IN_CHAIN = "1.2.840.113556.1.4.1941"
class Membership:
    """Resolves effective membership for one run against one connection; caches every group it looked up."""

    def __init__(self, conn: ldap3.Connection, dialect: Dialect, group_base: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.group_base = group_base
        self.ad = dialect.name == "ad"
        self.depth = dialect.config.group_nesting_depth
        self._ancestors: dict[str, list[str]] = {}  # group key -> DNs of the groups it is nested in
        self._parents: dict[str, list[str]] = {}  # group key -> DNs of the groups it is a direct member of
        self._primary: dict[bytes, str | None] = {}  # group SID -> DN
        self._too_deep: set[str] = set()

    # --- a user's groups --------------------------------------------------
    def of(self, values: dict[str, Any], raw: dict[str, list[bytes]]) -> tuple[list[str], list[str]]:
        """(direct, effective) group DNs of one user, each sorted; effective holds direct, primary and nested."""
        direct = _unique(str(g) for g in all_values(values, "memberOf") if g)
        start = list(direct)
        if self.ad:
            primary = self._primary_group(values, raw)
            if primary:
                start.append(primary)
        self.resolve(start)
        effective = _unique([*start, *(a for g in start for a in self._ancestors[dn_key(g)])])
        return direct, effective

    def resolve(self, groups: Iterable[str]) -> None:
        """Look up the ancestors of every group not resolved yet (AD: one in-chain search each)."""
        todo = [g for g in _unique(groups) if dn_key(g) not in self._ancestors]
        if not todo:
            return
        if self.ad:
            for group in todo:
                found = self._groups(f"(&{self.dialect.group_filter}(member:{IN_CHAIN}:={escape_filter_chars(group)}))")
                self._ancestors[dn_key(group)] = found
            return
        for group in todo:
            self._ancestors[dn_key(group)] = self._walk_up(group)

    def _walk_up(self, group: str) -> list[str]:
        """The groups above `group`, breadth first, at most `depth` levels."""
        found: dict[str, str] = {}
        level = [group]
        if self.depth == 0:
            return []
        for _ in range(self.depth):
            self._load_parents(level)
            level = [p for g in level for p in self._parents[dn_key(g)] if dn_key(p) not in found]
            level = [p for p in _unique(level) if dn_key(p) != dn_key(group)]
            found.update((dn_key(p), p) for p in level)
            if not level:
                return list(found.values())
        self._load_parents(level)
        if any(dn_key(p) not in found for g in level for p in self._parents[dn_key(g)]) and group not in self._too_deep:
            self._too_deep.add(group)
            log.warning("ldap %s: %s is nested more than %d levels deep; groups above that are not followed "
                        "(raise group_nesting_depth, or flatten the nesting)", self.dialect.config.name, group,
                        self.depth)
        return list(found.values())

    def _load_parents(self, groups: list[str]) -> None:
        for group in _unique(groups):
            if dn_key(group) not in self._parents:
                value = escape_filter_chars(group)
                self._parents[dn_key(group)] = self._groups(
                    f"(&{self.dialect.group_filter}(|(member={value})(uniqueMember={value})))")

    def _primary_group(self, values: dict[str, Any], raw: dict[str, list[bytes]]) -> str | None:
        """The DN of the AD primary group: the user's domain SID with primaryGroupID as the last sub-authority."""
        rid = first_value(values, "primaryGroupID")
        sid = first_raw(raw, "objectSid")
        if rid is None or sid is None or len(sid) < 12:
            return None
        group_sid = sid[:-4] + struct.pack("<I", int(rid))
        if group_sid not in self._primary:
            found = self._groups(f"(objectSid={escape_bytes(group_sid)})")
            self._primary[group_sid] = found[0] if found else None
        return self._primary[group_sid]

    # --- the users a group change affects ------------------------------------
    def members_filters(self, groups: list[str]) -> list[str]:
        """Filters, to AND with the user filter, that select every user who is a member of any of `groups`,
        directly, by primary group or through nested groups."""
        filters = []
        for batch in in_batches(groups):
            if self.ad:
                terms = "".join(f"(memberOf:{IN_CHAIN}:={escape_filter_chars(g)})" for g in batch)
                terms += "".join(f"(primaryGroupID={rid})" for rid in self._rids_below(batch))
            else:
                terms = "".join(f"(memberOf={escape_filter_chars(g)})" for g in self.below(batch, include=True))
            filters.append(f"(|{terms})")
        return filters

    def below(self, groups: list[str], include: bool = False) -> list[str]:
        """The groups nested in `groups` at any depth (AD) or up to `depth` levels (others); with `include`, them
        too."""
        if self.ad:
            terms = "".join(f"(memberOf:{IN_CHAIN}:={escape_filter_chars(g)})" for g in groups)
            found = self._groups(f"(&{self.dialect.group_filter}(|{terms}))") if groups else []
            return _unique([*(groups if include else []), *found])
        seen = {dn_key(g): g for g in groups}
        level, found = list(groups), []
        for _ in range(self.depth):
            terms = "".join(f"(memberOf={escape_filter_chars(g)})" for g in level)
            children = self._groups(f"(&{self.dialect.group_filter}(|{terms}))") if level else []
            level = [c for c in children if dn_key(c) not in seen]
            seen.update((dn_key(c), c) for c in level)
            found.extend(level)
        return _unique([*(groups if include else []), *found])

    def _rids_below(self, groups: list[str]) -> list[int]:
        """The RIDs of `groups` and the groups nested in them: users whose primary group is one of them are members."""
        terms = "".join(f"(distinguishedName={escape_filter_chars(g)})(memberOf:{IN_CHAIN}:={escape_filter_chars(g)})"
                        for g in groups)
        rids = []
        for _, _, raw in search(self.conn, self.group_base, f"(&{self.dialect.group_filter}(|{terms}))", ["objectSid"],
                                self.dialect.config.page_size):
            sid = first_raw(raw, "objectSid") or b""
            if len(sid) >= 12:
                rids.append(struct.unpack("<I", sid[-4:])[0])
        return sorted(set(rids))

    # --- groups the rules name ---------------------------------------------
    def named(self, names: Iterable[str]) -> list[str]:
        """The DNs of the groups the rules name (by DN, or by CN anywhere under the group base)."""
        found = []
        for name in names:
            if is_dn(name):
                entry = read_entry(self.conn, name, ["1.1"])
                if entry is not None:
                    found.append(entry[0])
                continue
            found.extend(self._groups(f"(&{self.dialect.group_filter}(cn={escape_filter_chars(name)}))"))
        return _unique(found)

    def _groups(self, search_filter: str) -> list[str]:
        return [dn for dn, _, _ in search(self.conn, self.group_base, search_filter, ["1.1"],
                                          self.dialect.config.page_size)]


def _unique(dns: Iterable[str]) -> list[str]:
    """Each DN once (compared in normal form), sorted by that form so that the state's digest is stable."""
    kept: dict[str, str] = {}
    for dn in dns:
        kept.setdefault(dn_key(dn), dn)
    return [kept[k] for k in sorted(kept)]
