"""SCIM operations on the store: each write commits the resource and its user-change events in one
store transaction, before the HTTP layer answers (invariant 2, "nothing accepted is lost").

A User write emits one event for that user: `deactivate` while active is false, else `upsert`;
DELETE emits `delete`. A Group write emits an `upsert` (or `deactivate`) for every user whose
list of groups it changed, since group-based recording rules read it, and makes that user a new
version (meta.version and meta.lastModified), as its groups are part of it. A write that changes
nothing stores nothing and emits nothing.

Group pushes with members this client does not have (issue 11): ids are ours (uuid4, assigned at
POST), so an IdP can only send one we do not know for a user it provisioned through another
client, one deleted here, or one lost with a store restored from an older backup. Okta does not
retry a refused push, so refusing it would lose the known members with the unknown one: the known
members are applied, and each unknown one is kept in the Group's body under PENDING_MEMBERS,
not shown, filtered on or turned into events, with a warning and connector_scim_pending_members_total.
A pending member becomes a member when a resource with its id is created in the client, or when a
later write of the group finds it known; it goes when the client removes it or replaces the members
(PATCH sees pending members as members, so `remove members[value eq "<id>"]` reaches them).

Groups as members (RFC 7643 §4.2 allows them) are stored and shown but not followed: a user's groups,
what its events' state["groups"] and so the recording rules read, are the Groups that list the user itself;
the users of a Group inside another are not members of the outer one. Entra provisions a group's direct
members only and Okta groups do not nest, so a Group member is unusual: each write that adds one logs a
warning. A Group cannot be its own member (400 invalidValue); a deeper cycle is only nesting, so accepted.

Group displayName is unique per client, compared case-insensitively (409 uniqueness), since
recording rules match groups by name. userName is unique per client as `caseless` compares it (NFC, any case).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from connector.dn import fold
from connector.events import Kind, UserChange, unstorable
from connector.ops.metrics import SCIM_PENDING_MEMBERS
from connector.sources.scim import errors
from connector.sources.scim.filters import (
    FilterError,
    caseless,
    format_datetime,
    parse_filter,
    searchable,
    to_store_filter,
)
from connector.sources.scim.index import index_values, user_state
from connector.sources.scim.patch import apply_patch
from connector.sources.scim.render import etag
from connector.sources.scim.schema import GROUPS, USER_NAME, USERS, ResourceType
from connector.sources.scim.values import PENDING_MEMBERS, canonical_body, required_missing, without
from connector.store import ScimResource, ScimResources, ScimTransaction
from connector.store.scim import Match

log = logging.getLogger("connector.scim")
Groups = list[tuple[str, str]]  # (group id, displayName)
Change = Callable[[ScimResource | None], dict[str, Any]]
# Pending member ids kept per Group; past this, the oldest go (counted as dropped).
MAX_PENDING_MEMBERS = 1000


@dataclasses.dataclass(frozen=True)
class Found:
    row: ScimResource
    groups: Groups


@dataclasses.dataclass(frozen=True)
class _Members:
    """What settling a Group's members found: ids newly pending, pending ids dropped over the limit, and Groups
    newly among the members (nested: not followed)."""

    pending: list[str]
    dropped: list[str]
    groups: list[str]


def _new_id() -> str:
    return str(uuid.uuid4())


class ScimService:
    """`strict_attributes` refuses attributes of schemas the server does not define ([scim] strict_attributes);
    `new_id` makes the id of a created resource (a uuid4)."""

    def __init__(
        self, store: ScimResources, clock: Callable[[], float] = time.time, *, strict_attributes: bool = False,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.store = store
        self.clock = clock
        self.strict_attributes = strict_attributes
        self.new_id = new_id

    # --- reads ----------------------------------------------------------
    def get(self, client: str, resource: ResourceType, resource_id: str) -> Found:
        _storable_id(resource, resource_id)
        row = self.store.scim_get(client, resource.name, resource_id)
        if row is None:
            raise errors.not_found(resource.name, resource_id)
        return Found(row, self._groups(client, resource, [row])[row.id])

    def search(
        self, client: str, resource: ResourceType, filter_text: str | None, offset: int, limit: int
    ) -> tuple[int, list[Found]]:
        where = None
        if filter_text is not None:
            try:
                where = to_store_filter(parse_filter(resource, filter_text))
            except FilterError as exc:
                raise errors.invalid_filter(str(exc)) from None
        total, rows = self.store.scim_search(client, resource.name, where, offset, limit)
        groups = self._groups(client, resource, rows)
        return total, [Found(row, groups[row.id]) for row in rows]

    def _groups(self, client: str, resource: ResourceType, rows: Sequence[ScimResource]) -> dict[str, Groups]:
        if resource is not USERS or not rows:
            return {row.id: [] for row in rows}
        return self.store.scim_groups_of(client, [row.id for row in rows])

    # --- writes ---------------------------------------------------------
    def create(self, client: str, resource: ResourceType, data: Any) -> Found:
        body = canonical_body(resource, data, self.strict_attributes)
        return self._write(client, resource, self.new_id(), None, lambda old: body, "POST")

    def replace(self, client: str, resource: ResourceType, resource_id: str, data: Any, if_match: str | None) -> Found:
        if isinstance(data, dict):
            sent_id = next((v for k, v in data.items() if isinstance(k, str) and k.casefold() == "id"), None)
            # Okta's PUT carries id, groups and meta; id may repeat, not change (RFC 7643 §3.1: readOnly).
            if sent_id is not None and sent_id != resource_id:
                raise errors.mutability(f"id is read-only: the body says {sent_id!r} but the URL names {resource_id!r}")
        body = canonical_body(resource, data, self.strict_attributes)
        return self._write(client, resource, resource_id, if_match, lambda old: body, "PUT")

    def patch(self, client: str, resource: ResourceType, resource_id: str, data: Any, if_match: str | None) -> Found:
        def change(old: ScimResource | None) -> dict[str, Any]:
            assert old is not None
            # To the client, pending members are members: its removals and replacements reach them.
            return apply_patch(resource, _with_pending(old.body), resource_id, data, self.strict_attributes)

        return self._write(client, resource, resource_id, if_match, change, "PATCH")

    def delete(self, client: str, resource: ResourceType, resource_id: str, if_match: str | None) -> None:
        _storable_id(resource, resource_id)
        with self.store.scim_transaction(client) as tx:
            old = _existing(tx, resource, resource_id, if_match)
            now = self._now()
            listed_in = tx.groups_of([resource_id])[resource_id]
            # RFC 7644 §3.6: a deleted resource leaves the groups that listed it.
            for group in tx.get_many(GROUPS.name, [gid for gid, _ in listed_in]):
                body = without(group.body, "members")
                members = [m for m in group.body.get("members", []) if m.get("value") != resource_id]
                self._put(tx, client, GROUPS, group, {**body, "members": members} if members else body, now)
            if resource is GROUPS:
                members = _member_ids(old.body)
                before = tx.groups_of(members)
                tx.delete(resource.name, resource_id)
                tx.enqueue(self._group_events(tx, client, members, before, f"scim DELETE Group/{resource_id}"))
                return
            tx.delete(resource.name, resource_id)
            state = user_state(USERS, old.body, [name for _, name in listed_in])
            tx.enqueue(
                [UserChange(client, resource_id, "delete", state, self.clock(), f"scim DELETE User/{resource_id}")]
            )

    def _write(
        self, client: str, resource: ResourceType, resource_id: str, if_match: str | None, change: Change, verb: str
    ) -> Found:
        if verb != "POST":
            _storable_id(resource, resource_id)
        cause = f"scim {verb} {resource.name}/{resource_id}"
        with self.store.scim_transaction(client) as tx:
            old = None if verb == "POST" else _existing(tx, resource, resource_id, if_match)
            body = change(old)
            missing = required_missing(resource, body)
            if missing:
                raise errors.invalid_value(f"{missing} is required for a {resource.name}; send it")
            settled = None
            if resource is GROUPS:
                body, settled = _settle_members(tx, resource_id, old, body)
            if old is not None and body == old.body:
                return Found(old, tx.groups_of([resource_id])[resource_id] if resource is USERS else [])
            if settled is None:
                return self._write_user(tx, client, resource_id, old, body, cause)
            return self._write_group(tx, client, resource_id, old, body, cause, settled)

    def _write_user(
        self, tx: ScimTransaction, client: str, user_id: str, old: ScimResource | None, body: dict[str, Any], cause: str
    ) -> Found:
        owner = _owner(tx, user_id, body["userName"]) if old is None or old.unique_key != _user_key(old, body) else None
        if owner is not None:
            # RFC 7643 §4.1.1: userName is unique (uniqueness "server") and compared case-insensitively.
            raise errors.uniqueness(f"userName {body['userName']!r} is taken (by User {owner}; names compare in any "
                                    "case and Unicode form); pick another or update that user")
        row = self._put(tx, client, USERS, old, body, self._now(), user_id)
        if old is None:
            self._apply_pending(tx, client, user_id)
        groups = tx.groups_of([user_id])[user_id]
        state = user_state(USERS, body, [name for _, name in groups])
        if old is None or user_state(USERS, old.body, [name for _, name in groups]) != state:
            tx.enqueue([_change(client, user_id, state, self.clock(), cause)])
        return Found(row, groups)

    def _write_group(
        self, tx: ScimTransaction, client: str, group_id: str, old: ScimResource | None, body: dict[str, Any],
        cause: str, settled: _Members,
    ) -> Found:
        self._check_group_name(tx, group_id, old, body["displayName"])
        affected = _affected(old, body)
        before = tx.groups_of(affected)
        row = self._put(tx, client, GROUPS, old, body, self._now(), group_id)
        if old is None:
            self._apply_pending(tx, client, group_id)  # a Group may be a member of another
        tx.enqueue(self._group_events(tx, client, affected, before, cause))
        _note_members(client, group_id, settled)
        return Found(row, [])

    def _check_group_name(self, tx: ScimTransaction, group_id: str, old: ScimResource | None, name: str) -> None:
        """Group names compare as the recording rules compare them (`fold`: case, Unicode forms, spaces),
        so that no two groups of one client are one group to the rules."""
        if old is not None and fold(str(old.body.get("displayName", ""))) == fold(name):
            return  # unchanged, or only its spelling: groups of one name from before this check keep working
        # Transactions of one client run one at a time, and the search runs in this one, seeing every write before
        # it (on SQLite, those not committed yet too): no other write can take the name in between.
        wanted = fold(name)
        names = tx.names(GROUPS.name)  # ids and names only: no group's members are read
        other = next((gid for gid, display in names if gid != group_id and fold(display) == wanted), None)
        if other is not None:
            raise errors.uniqueness(f"displayName {name!r} is taken (by Group {other}; names compare in any case "
                                    "and spacing, as the recording rules do); pick another or update that group")

    def _apply_pending(self, tx: ScimTransaction, client: str, member_id: str) -> None:
        """A resource with id `member_id` was created: the Groups that kept that id pending list it now."""
        # Searched in this transaction: a Group that named the id in a write not committed yet (on SQLite, another
        # block of the shared commit) is found too, or the member would stay pending for good.
        groups = tx.find(GROUPS.name, Match(PENDING_MEMBERS, "eq", member_id, case_exact=True))
        now = self._now()
        for group in groups:
            waiting = group.body.get(PENDING_MEMBERS) or []
            arrived = [m for m in waiting if m.get("value") == member_id]
            body = without(group.body, PENDING_MEMBERS)
            body["members"] = [*(body.get("members") or []), *arrived[:1]]
            if len(arrived) < len(waiting):
                body[PENDING_MEMBERS] = [m for m in waiting if m.get("value") != member_id]
            self._put(tx, client, GROUPS, group, body, now)
            SCIM_PENDING_MEMBERS.labels("applied", client).inc()
            log.info("SCIM %s Group %s: pending member %s was created; it is a member now", client, group.id, member_id,
                     extra={"outcome": "applied"})

    def _group_events(
        self, tx: ScimTransaction, client: str, member_ids: Sequence[str], before: dict[str, Groups], cause: str
    ) -> list[UserChange]:
        after = tx.groups_of(member_ids)
        changed = [m for m in member_ids if sorted(n for _, n in before[m]) != sorted(n for _, n in after[m])]
        users = tx.get_many(USERS.name, changed)
        tx.touch([user.id for user in users], self._now())  # its groups are part of a user (its ETag names them)
        now = self.clock()
        return [
            _change(client, user.id, user_state(USERS, user.body, [n for _, n in after[user.id]]), now, cause)
            for user in users
        ]

    def _put(
        self, tx: ScimTransaction, client: str, resource: ResourceType, old: ScimResource | None,
        body: dict[str, Any], now: str, resource_id: str | None = None,
    ) -> ScimResource:
        row = ScimResource(
            client=client,
            resource_type=resource.name,
            id=old.id if old else str(resource_id),
            body=body,
            version=old.version + 1 if old else 1,
            created=old.created if old else now,
            last_modified=now,
            unique_key=_user_key(old, body) if resource is USERS else None,
            display=body.get("displayName", "") if resource is GROUPS else "",
        )
        tx.put(row, index_values(resource, body))
        return row

    def _now(self) -> str:
        return format_datetime(datetime.datetime.fromtimestamp(self.clock(), datetime.UTC))


def _user_key(old: ScimResource | None, body: dict[str, Any]) -> str | None:
    """A User's unique_key: its userName `caseless`, so that josé@x.com composed and decomposed, in any case, are one
    user. While its login stays the same a User keeps the key it has: None for one kept sharing its login with
    another User, both stored when names compared otherwise (upgrade.py), so that both stay writable."""
    name = str(body["userName"])
    if old is not None and caseless(str(old.body.get("userName", ""))) == caseless(name):
        return old.unique_key
    return caseless(name)


def _owner(tx: ScimTransaction, user_id: str, user_name: str) -> str | None:
    """The id of a User other than `user_id` with the login `user_name` (`caseless`), found as `userName eq` finds
    it, so that a User kept without a key (upgrade.py) holds its login too."""
    users = tx.find(USERS.name, Match(USER_NAME.name, "eq", searchable(USER_NAME, user_name)))
    return next((user.id for user in users if user.id != user_id), None)


def _storable_id(resource: ResourceType, resource_id: str) -> None:
    """404 for an id that no resource can have, before the store is asked: one holding a NUL or an unpaired surrogate
    (PostgreSQL cannot even compare one, and would answer 503)."""
    if unstorable(resource_id):
        raise errors.not_found(resource.name, resource_id)


def _existing(tx: ScimTransaction, resource: ResourceType, resource_id: str, if_match: str | None) -> ScimResource:
    old = tx.get(resource.name, resource_id)
    if old is None:
        raise errors.not_found(resource.name, resource_id)
    if if_match is None:
        return old
    current = etag(old.version, tx.groups_of([resource_id])[resource_id] if resource is USERS else ())
    if not _matches(if_match, current):
        raise errors.precondition_failed(current)
    return old


def _matches(if_match: str, current: str) -> bool:
    """Whether an If-Match header names the entity tag `current` (weak or not), or is "*"."""
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or any(tag in (current, current.removeprefix("W/")) for tag in tags)


def _member_ids(body: dict[str, Any]) -> list[str]:
    return [m["value"] for m in body.get("members") or [] if isinstance(m.get("value"), str)]


def _affected(old: ScimResource | None, body: dict[str, Any]) -> list[str]:
    """The ids whose groups a write of a Group changes: those that joined or left it, and, when its name changes,
    every member (their events list groups by name). A member add on a group of 20,000 looks up one user, not all."""
    now, was = set(_member_ids(body)), set(_member_ids(old.body) if old else [])
    renamed = old is not None and old.body.get("displayName") != body.get("displayName")
    return sorted(now | was if renamed else now ^ was)


def _with_pending(body: dict[str, Any]) -> dict[str, Any]:
    """A Group's body with its pending members back among its members, as the client sent them."""
    pending = body.get(PENDING_MEMBERS)
    if not pending:
        return body
    rest = without(body, PENDING_MEMBERS)
    return {**rest, "members": [*(body.get("members") or []), *pending]}


def _settle_members(
    tx: ScimTransaction, group_id: str, old: ScimResource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], _Members]:
    """Split the members the client sent into those naming a User or Group of the client and pending ones."""
    sent: list[dict[str, Any]] = body.get("members") or []
    stored = old.body.get("members") or [] if old else []
    nameless = next((m for m in sent if not (isinstance(m.get("value"), str) and m["value"].strip())
                     and m not in stored), None)
    if nameless is not None:  # a member of nobody: the user it means would silently stay out of the group
        raise errors.invalid_value(f"the member {json.dumps(nameless)} has no value: name each member by the id of "
                                   'its User or Group, {"value": "<id>"}; nothing was changed')
    was_member = set(_member_ids(old.body)) if old else set()
    itself = next((m for m in sent if m.get("value") == group_id and group_id not in was_member), None)
    if itself is not None:  # stored so by a write before this check: accepted, or no write of the group would be
        raise errors.invalid_value(f"the member {json.dumps(itself)} is this Group itself: a group cannot be its own "
                                   "member; leave it out; nothing was changed")
    ids = [m["value"] for m in sent if isinstance(m.get("value"), str)]
    # Members already stored name resources of the client (a DELETE takes its resource out of every group), so only
    # new ones are looked up: a member add on a group of 20,000 reads one resource, not all.
    joined = [value for value in dict.fromkeys(ids) if value not in was_member]
    groups = {r.id for r in tx.get_many(GROUPS.name, joined)}
    known = {r.id for r in tx.get_many(USERS.name, joined)} | groups | was_member
    members: list[dict[str, Any]] = []
    pending: dict[str, dict[str, Any]] = {}
    for member in sent:
        value = member.get("value")
        if not isinstance(value, str) or value in known:
            members.append(member)
        else:
            pending.setdefault(value, member)
    kept = list(pending.values())[-MAX_PENDING_MEMBERS:]
    was_pending = {m.get("value") for m in (old.body.get(PENDING_MEMBERS) or [])} if old else set()
    settled = _Members(
        pending=[value for value in pending if value not in was_pending],
        dropped=list(pending)[:-MAX_PENDING_MEMBERS] if len(pending) > MAX_PENDING_MEMBERS else [],
        groups=[value for value in joined if value in groups],
    )
    result = {k: v for k, v in body.items() if k not in ("members", PENDING_MEMBERS)}
    if members:
        result["members"] = members
    if kept:
        result[PENDING_MEMBERS] = kept
    return result, settled


def _note_members(client: str, group_id: str, settled: _Members) -> None:
    if settled.pending:
        SCIM_PENDING_MEMBERS.labels("pending", client).inc(len(settled.pending))
        log.warning("SCIM %s Group %s: %d member id(s) name no User or Group of this client (%s); the other members "
                    "are applied, these wait unseen until a resource with that id is created (a user provisioned "
                    "through another client or deleted here never will: check the IdP's assignments)",
                    client, group_id, len(settled.pending), ", ".join(settled.pending[:5]),
                    extra={"outcome": "pending"})
    if settled.dropped:
        SCIM_PENDING_MEMBERS.labels("dropped", client).inc(len(settled.dropped))
        log.warning("SCIM %s Group %s: over %d pending member ids; the %d oldest are forgotten", client, group_id,
                    MAX_PENDING_MEMBERS, len(settled.dropped), extra={"outcome": "dropped"})
    for member in settled.groups:
        log.warning("SCIM %s Group %s: member %s is a Group; nested groups are not followed, so its users are not "
                    "members of this group to the recording rules (name that group in the rules too, or make its "
                    "users members of this one)", client, group_id, member, extra={"outcome": "nested"})


def _change(client: str, user_id: str, state: dict[str, Any], at: float, cause: str) -> UserChange:
    kind: Kind = "deactivate" if state.get("active") is False else "upsert"
    return UserChange(client, user_id, kind, state, at, cause)
