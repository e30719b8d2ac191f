"""What one run reads from the directory: users as snapshots, by filter or by stable id, what left, and the census.

A `Reader` lives for one run on one connection; it resolves each user's effective groups
through one `Membership`, which caches every group it looked up.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars

from connector.config import LdapConfig
from connector.dn import dn_key, escape_value, is_within, normalize_dn, same_dn
from connector.sources.ldap.connection import (
    LIMITS,
    NO_SUCH_OBJECT,
    SHOW_DELETED,
    DirectoryError,
    first_raw,
    in_batches,
    search,
)
from connector.sources.ldap.dialects import Begin, Dialect, first_value
from connector.sources.ldap.groups import Membership
from connector.sources.ldap.scope import Scope
from connector.sources.ldap.snapshot import Snapshot, snapshot

Progress = Callable[[int], None]
# Entries that hold users: moving or renaming one writes no stamp to the users under it (OpenLDAP, AD), so a poll
# sees only the container change. Not AD's `container` class: every group policy object is one, and changes often.
CONTAINER_CLASSES = ("organizationalUnit", "organization", "locality")


class Reader:
    """The searches of one run, on one connection: users, leavers, changed groups, tombstones, membership."""

    def __init__(self, conn: ldap3.Connection, config: LdapConfig, dialect: Dialect, scope: Scope, now: float,
                 progress: Progress | None = None, without_login: bool = False) -> None:
        self.conn, self.config, self.dialect, self.scope = conn, config, dialect, scope
        self.now = now
        self.progress = progress
        self.without_login = without_login  # a user with no login name is read (a dry run) instead of NoLoginName
        self.notes: list[str] = []  # limits met in this run, for `connector ldap status`
        self.membership = Membership(conn, dialect, scope.group_base)

    def users(self, search_filter: str) -> dict[str, Snapshot]:
        """Every user under `base` that matches the user filter AND `search_filter`, with its effective groups."""
        # Every page first: the membership look-ups below are searches too, and a server may keep only one
        # paged search per connection (slapd answers "paged results cookie is invalid" to the next page).
        entries = list(search(self.conn, self.config.base, f"(&{self.dialect.filter}{search_filter})",
                              self.dialect.attributes, self.config.page_size))
        return {snap.external_id: snap for snap in (self._snapshot(*entry) for entry in entries)}

    def pages(self, conn: ldap3.Connection, search_filter: str) -> Iterator[dict[str, Snapshot]]:
        """The users of `users(search_filter)`, page_size at a time, without holding them all: paged on `conn`,
        while the groups are looked up on the reader's in between (the same one only where the server keeps
        several paged searches per connection: `Dialect.interleaved_paging`)."""
        page: dict[str, Snapshot] = {}
        for entry in search(conn, self.config.base, f"(&{self.dialect.filter}{search_filter})",
                            self.dialect.attributes, self.config.page_size):
            snap = self._snapshot(*entry)
            page[snap.external_id] = snap
            if len(page) == self.config.page_size:
                yield page
                page = {}
        if page:
            yield page

    def _snapshot(self, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]]) -> Snapshot:
        self.dialect.warn_unreadable_expiry(dn, values)  # such a value counts as never expiring
        snap = snapshot(self.dialect, dn, values, raw, self.membership.of(values, raw), self.now, self.without_login)
        self.dialect.warn_unstorable(dn, snap.replaced)  # such a value is in the user's state `storable`
        if self.progress is not None:
            self.progress(1)
        return snap

    def by_ids(self, ids: Iterable[str]) -> dict[str, Snapshot]:
        """The users with these stable ids that are still in scope (the others are left out)."""
        found: dict[str, Snapshot] = {}
        for batch in in_batches(list(ids)):
            found.update(self.users("(|" + "".join(self.dialect.id_filter(i) for i in batch) + ")"))
        return found

    def by_dn(self, dn: str) -> dict[str, Snapshot]:
        """The user at this DN if it is one in scope (under `base`, matching the filter), else nothing."""
        if not is_within(dn, self.config.base):
            return {}
        try:
            entries = list(search(self.conn, dn, self.dialect.filter, self.dialect.attributes, None,
                                  scope=ldap3.BASE))
        except DirectoryError as exc:
            if exc.code == NO_SUCH_OBJECT:
                return {}
            raise
        return {snap.external_id: snap for snap in (self._snapshot(*entry) for entry in entries)}

    def by_login(self, login: str) -> dict[str, Snapshot]:
        """The users in scope whose login name (username_attribute, or one the dialect reads it from) is `login`."""
        names = dict.fromkeys(n for n in (self.config.username_attribute, *self.dialect.username_attributes) if n)
        return self.users("(|" + "".join(f"({name}={escape_filter_chars(login)})" for name in names) + ")")

    def present(self, ids: list[str]) -> set[str]:
        """Which of these ids are users in scope (under `base`, matching the filter); only ids are read."""
        attributes = self.dialect.id_attributes or ("1.1",)
        found: set[str] = set()
        for batch in in_batches(ids):
            terms = "".join(self.dialect.id_filter(i) for i in batch)
            for dn, values, raw in search(self.conn, self.config.base, f"(&{self.dialect.filter}(|{terms}))",
                                          attributes, self.config.page_size):
                found.add(self.dialect.external_id(dn, values, raw))
        return found

    def left(self, begin: Begin, seen: Container[str]) -> tuple[set[str], list[Any], list[str]]:
        """Ids of users changed since the cursor in the scope root (the naming context) that are not among
        `seen` (moved out of `base`, or out of the filter), the distinct stamps of every entry it found there, and
        the containers changed since the cursor (`CONTAINER_CLASSES`), each as "DN stamp". Candidates only: the
        watcher confirms each user by id, since a user may also have changed between the two searches. The
        stamps let the cursor pass changes outside `base`, which would else be read again at every poll. A
        container moved into or out of `base`, or renamed, is all a poll sees of the users under it."""
        filters = dict.fromkeys([self.dialect.filter, self.dialect.default_filter])
        users = "".join(filters)
        containers = "".join(f"(objectClass={name})" for name in CONTAINER_CLASSES)
        try:
            return self._leavers(self.scope.root, f"(&(|{users}{containers}){begin.since})", seen)
        except DirectoryError as exc:
            if exc.code not in LIMITS or same_dn(self.scope.root, self.config.base):
                raise
            self.notes.append(f"the changes under {self.scope.root} exceed the bind account's size or time limit: "
                              f"a user moved out of {self.config.base} is found by checking known users, and users "
                              "moved into it with their container wait for the full sync; raise the limit for the "
                              "account (OpenLDAP: limits dn.exact=... size=unlimited)")
            user_like = users if len(filters) == 1 else f"(|{users})"
            return self._leavers(self.config.base, f"(&{user_like}{begin.since})", seen)

    def _leavers(self, base: str, search_filter: str, seen: Container[str]) -> tuple[set[str], list[Any], list[str]]:
        """`left` under `base`, one result at a time: a bulk change is not held in memory."""
        ids: set[str] = set()
        stamps: set[str | None] = set()
        containers: list[str] = []
        wanted = {name.lower() for name in CONTAINER_CLASSES}
        for dn, values, raw in search(self.conn, base, search_filter,
                                      (*self.dialect.id_attributes, self.dialect.stamp_attribute, "objectClass"),
                                      self.config.page_size):
            stamp = self._stamp(raw)
            stamps.add(stamp)
            if wanted & {str(c).lower() for c in values.get("objectClass") or ()}:
                containers.append(f"{dn_key(dn)} {stamp}")
                continue
            external_id = self.dialect.find_id(dn, values, raw)
            if external_id is not None and external_id not in seen:
                ids.add(external_id)
        return ids, list(stamps), containers

    def census(self) -> set[str]:
        """The stable ids of every user in scope (under `base`, matching the filter): one paged search that reads
        the id attribute only (no attribute where users are keyed by DN). A user whose id the account may not
        read raises DirectoryError, as reading it would: such a user must not look gone."""
        attributes = self.dialect.id_attributes or ("1.1",)
        return {self.dialect.external_id(dn, values, raw)
                for dn, values, raw in search(self.conn, self.config.base, self.dialect.filter, attributes,
                                              self.config.page_size)}

    def _stamp(self, raw: dict[str, list[bytes]]) -> str | None:
        """The change stamp of a search result, as the server sent it."""
        stamp = first_raw(raw, self.dialect.stamp_attribute)
        return None if stamp is None else stamp.decode("utf-8", "replace")

    def changed_groups(self, begin: Begin) -> tuple[list[str], list[Any]]:
        """The groups changed since the cursor, and their stamps: the cursor passes them (a group change
        does not touch its members' stamps, so they would else be read again at every poll)."""
        found = list(search(self.conn, self.scope.group_base, f"(&{self.dialect.group_filter}{begin.since})",
                            [self.dialect.stamp_attribute], self.config.page_size))
        return [dn for dn, _, _ in found], [self._stamp(raw) for _, _, raw in found]

    def tombstones(self, begin: Begin) -> tuple[set[str], list[str]]:
        """AD: the ids of entries deleted since the cursor, and the DNs the deleted groups had."""
        ids, groups = set(), []
        attributes = ["objectGUID", "objectClass", "name", "lastKnownParent", "msDS-LastKnownRDN"]
        for dn, values, raw in search(self.conn, str(begin.tombstone_base), f"(&(isDeleted=TRUE){begin.since})",
                                      attributes, self.config.page_size, controls=[(SHOW_DELETED, True, None)]):
            external_id = self.dialect.find_id(dn, values, raw)
            if external_id is not None:
                ids.add(external_id)
            classes = {str(c).lower() for c in values.get("objectClass") or ()}
            if "group" in classes:
                former = _former_dn(values)
                if former is not None:
                    groups.append(former)
        return ids, groups

    def members(self, groups: list[str]) -> dict[str, Snapshot]:
        """The users who are members of any of `groups` now: directly, by primary group, or nested."""
        found: dict[str, Snapshot] = {}
        for members_filter in list(self.membership.members_filters(groups)):
            found.update(self.users(members_filter))
        return found

    def rule_groups(self, names: Iterable[str]) -> set[str]:
        """The groups the rules name and the groups nested in them, in normal form."""
        named = self.membership.named(names)
        return {normalize_dn(g) for g in self.membership.below(named, include=True)} if named else set()


def _former_dn(values: dict[str, object]) -> str | None:
    """The DN a deleted AD object had: its last RDN (`name` up to the \\nDEL: mark) under lastKnownParent."""
    parent = first_value(values, "lastKnownParent")
    rdn = first_value(values, "msDS-LastKnownRDN") or str(first_value(values, "name") or "").split("\n")[0]
    if not parent or not rdn:
        return None
    return f"CN={escape_value(str(rdn))},{parent}"
