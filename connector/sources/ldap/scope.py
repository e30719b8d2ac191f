"""What a run can see beyond `base`: the naming context (moves out of scope), tombstones (deletes).

An incremental run must see a user who left: moved to an OU outside `base` (a leavers' OU),
deleted, or taken out of a recording group, also by deleting the group. Where the bind account
may read the whole naming context, changed entries found there but not under `base` have left;
where it may list AD's tombstones, deleted users and groups are seen at once. Where it may not
(and on OpenLDAP, which keeps no tombstones), and for a user moved where the account may not
read, each poll checks a bounded batch of known users still in scope, by stable id, and re-reads
the groups the rules name (both run on every poll); `connector ldap status` says what the
account cannot see.

Sources: reference/ldap.md §1 (c), (f); [MS-ADTS] 6.1.1.4 (well-known objects: Deleted Objects).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException

from connector.config import LdapConfig
from connector.dn import dn_key, is_dn, is_within
from connector.sources.ldap.connection import SHOW_DELETED, DirectoryError, read_entry
from connector.sources.ldap.dialects import Dialect, all_values

DELETED_OBJECTS_WKGUID = "18E2EA80684F11D2B9AA00C04F79F805"


@dataclasses.dataclass(frozen=True)
class Scope:
    """Where a run looks, and what the bind account can see there (for the status notes)."""

    root: str  # changed entries are looked for here; one found here but not a user under `base` has left
    group_base: str  # where groups are looked up
    tombstones: bool  # deleted users and groups are seen at once (AD, with the right to list them)
    check_known: bool  # check a batch of known users still in scope each poll
    track_rule_groups: bool  # re-read the groups the rules name each poll, to see them deleted
    notes: tuple[str, ...] = ()  # what this account cannot see and what stands in, for `connector ldap status`


def probe(conn: ldap3.Connection, config: LdapConfig, dialect: Dialect, dse: dict[str, Any]) -> Scope:
    """Find the naming context of `base` and what the bind account may read; a few base searches."""
    contexts = [
        str(c) for key in ("defaultNamingContext", "namingContexts") for c in all_values(dse, key) if is_dn(str(c))
    ]
    holding = sorted((c for c in contexts if is_within(config.base, c)), key=lambda c: -len(dn_key(c)))
    context = holding[0] if holding else None
    notes: list[str] = []
    root = config.base
    if context is not None and dn_key(context) != dn_key(config.base):
        if read_entry(conn, context, ["1.1"]) is not None:
            root = context
        else:
            notes.append(f"cannot read {context}: a user moved out of {config.base} is found by checking known users")
    elif context is None:
        notes.append(f"the server names no naming context holding {config.base}: a user moved out of it is found "
                     "by checking known users")
    tombstones = False
    if dialect.name == "ad" and context is not None:
        container = read_entry(conn, f"<WKGUID={DELETED_OBJECTS_WKGUID},{context}>", ["1.1"],
                               [(SHOW_DELETED, True, None)])
        tombstones = container is not None
        grant = (f"to see them at once, grant list rights: dsacls \"CN=Deleted Objects,{context}\" /takeownership, "
                 f"then dsacls \"CN=Deleted Objects,{context}\" /g DOMAIN\\ACCOUNT:LCRP")
        if container is None:
            notes.append("cannot list CN=Deleted Objects: deleted users are found by checking known users, deleted "
                         f"groups by re-reading the groups the rules name; {grant}")
        elif not _lists_one(conn, container[0]):
            notes.append("CN=Deleted Objects shows this account no tombstone: nothing was deleted in the domain yet, "
                         "or the account may read the container but not list it (a plain domain user on Samba), so "
                         "deleted users are found by checking known users, deleted groups by re-reading the groups "
                         f"the rules name; {grant}")
    elif dialect.name != "ad":
        notes.append(f"{dialect.name} keeps no tombstones: deleted users are found by checking known users, deleted "
                     "groups by re-reading the groups the rules name")
    # Even with every right, a user moved into an OU the account may not read just disappears: the bounded
    # check of known users runs on every poll, and so does the re-read of the groups the rules name.
    check_known = config.scope_check_per_poll > 0
    if not check_known:
        notes.append("scope_check_per_poll = 0: users who vanished without a tombstone wait for the full sync")
    moves_seen = context is not None and dn_key(root) == dn_key(context)
    group_base = config.group_base or (root if moves_seen else config.base)
    return Scope(root, group_base, tombstones, check_known, True, tuple(notes))


def _lists_one(conn: ldap3.Connection, container: str) -> bool:
    """Whether a search of the Deleted Objects container returns this account at least one tombstone."""
    try:
        conn.search(container, "(isDeleted=TRUE)", ldap3.LEVEL, attributes=["1.1"], size_limit=1,
                    controls=[(SHOW_DELETED, True, None)])
    except LDAPException as exc:
        raise DirectoryError(f"listing {container!r} failed ({exc})") from None
    return any(item.get("type") == "searchResEntry" for item in conn.response or ())
