"""SCIM operations on the store: each write commits the resource and its user-change events in one
store transaction, before the HTTP layer answers (invariant 2, "nothing accepted is lost").

A User write emits one event for that user: `deactivate` while active is false, else `upsert`;
DELETE emits `delete`. A Group write emits an `upsert` (or `deactivate`) for every user whose
list of groups it changed, since group-based recording rules read it. A write that changes
nothing stores nothing and emits nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
import uuid
from typing import Any, Callable, Sequence

from connector.events import UserChange
from connector.sources.scim import errors
from connector.sources.scim.filter_sql import to_sql
from connector.sources.scim.filters import FilterError, format_datetime, parse_filter
from connector.sources.scim.index import index_values, user_state
from connector.sources.scim.patch import apply_patch
from connector.sources.scim.render import etag
from connector.sources.scim.schema import GROUPS, USERS, ResourceType
from connector.sources.scim.values import canonical_body, required_missing
from connector.store.base import ScimResource, ScimTransaction, Store

Groups = list[tuple[str, str]]  # (group id, displayName)
Change = Callable[[ScimResource | None], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Found:
    row: ScimResource
    groups: Groups


class ScimService:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # --- reads ----------------------------------------------------------
    def get(self, client: str, resource: ResourceType, resource_id: str) -> Found:
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
                where = to_sql(parse_filter(resource, filter_text))
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
        body = canonical_body(resource, data)
        return self._write(client, resource, str(uuid.uuid4()), None, lambda old: body, "POST")

    def replace(self, client: str, resource: ResourceType, resource_id: str, data: Any, if_match: str | None) -> Found:
        if isinstance(data, dict):
            sent_id = next((v for k, v in data.items() if isinstance(k, str) and k.casefold() == "id"), None)
            # Okta's PUT carries id, groups and meta; id may repeat, not change (RFC 7643 §3.1: readOnly).
            if sent_id is not None and sent_id != resource_id:
                raise errors.mutability(f"id is read-only: the body says {sent_id!r} but the URL names {resource_id!r}")
        body = canonical_body(resource, data)
        return self._write(client, resource, resource_id, if_match, lambda old: body, "PUT")

    def patch(self, client: str, resource: ResourceType, resource_id: str, data: Any, if_match: str | None) -> Found:
        def change(old: ScimResource | None) -> dict[str, Any]:
            assert old is not None
            return apply_patch(resource, old.body, resource_id, data)

        return self._write(client, resource, resource_id, if_match, change, "PATCH")

    def delete(self, client: str, resource: ResourceType, resource_id: str, if_match: str | None) -> None:
        with self.store.scim_transaction(client) as tx:
            old = _existing(tx, resource, resource_id, if_match)
            now = self._now()
            listed_in = tx.groups_of([resource_id])[resource_id]
            # RFC 7644 §3.6: a deleted resource leaves the groups that listed it.
            for group in tx.get_many(GROUPS.name, [gid for gid, _ in listed_in]):
                body = {k: v for k, v in group.body.items() if k != "members"}
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
            tx.enqueue([UserChange(client, resource_id, "delete", state, self.clock(), f"scim DELETE User/{resource_id}")])

    def _write(
        self, client: str, resource: ResourceType, resource_id: str, if_match: str | None, change: Change, verb: str
    ) -> Found:
        cause = f"scim {verb} {resource.name}/{resource_id}"
        with self.store.scim_transaction(client) as tx:
            old = None if verb == "POST" else _existing(tx, resource, resource_id, if_match)
            body = change(old)
            missing = required_missing(resource, body)
            if missing:
                raise errors.invalid_value(f"{missing} is required for a {resource.name}; send it")
            if old is not None and body == old.body:
                return Found(old, tx.groups_of([resource_id])[resource_id] if resource is USERS else [])
            if resource is USERS:
                return self._write_user(tx, client, resource_id, old, body, cause)
            return self._write_group(tx, client, resource_id, old, body, cause)

    def _write_user(
        self, tx: ScimTransaction, client: str, user_id: str, old: ScimResource | None, body: dict[str, Any], cause: str
    ) -> Found:
        key = body["userName"].lower()
        owner = tx.find_unique(USERS.name, key) if old is None or old.unique_key != key else None
        if owner is not None and owner != user_id:
            # RFC 7643 §4.1.1: userName is unique (uniqueness "server") and compared case-insensitively.
            raise errors.uniqueness(f"userName {body['userName']!r} is taken (by User {owner}); pick another or "
                                    "update that user")
        row = self._put(tx, client, USERS, old, body, self._now(), user_id)
        groups = tx.groups_of([user_id])[user_id]
        state = user_state(USERS, body, [name for _, name in groups])
        if old is None or user_state(USERS, old.body, [name for _, name in groups]) != state:
            tx.enqueue([_change(client, user_id, state, self.clock(), cause)])
        return Found(row, groups)

    def _write_group(
        self, tx: ScimTransaction, client: str, group_id: str, old: ScimResource | None, body: dict[str, Any], cause: str
    ) -> Found:
        new_members = _member_ids(body)
        known = {r.id for r in tx.get_many(USERS.name, new_members)} | {r.id for r in tx.get_many(GROUPS.name, new_members)}
        unknown = [m for m in new_members if m not in known]
        if unknown:
            raise errors.invalid_value(f"members: {unknown[0]!r} is not a User or Group here; create it first")
        affected = sorted(set(new_members) | set(_member_ids(old.body) if old else []))
        before = tx.groups_of(affected)
        row = self._put(tx, client, GROUPS, old, body, self._now(), group_id)
        tx.enqueue(self._group_events(tx, client, affected, before, cause))
        return Found(row, [])

    def _group_events(
        self, tx: ScimTransaction, client: str, member_ids: Sequence[str], before: dict[str, Groups], cause: str
    ) -> list[UserChange]:
        after = tx.groups_of(member_ids)
        changed = [m for m in member_ids if sorted(n for _, n in before[m]) != sorted(n for _, n in after[m])]
        now = self.clock()
        return [
            _change(client, user.id, user_state(USERS, user.body, [n for _, n in after[user.id]]), now, cause)
            for user in tx.get_many(USERS.name, changed)
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
            unique_key=body["userName"].lower() if resource is USERS else None,
            display=body.get("displayName", "") if resource is GROUPS else "",
        )
        tx.put(row, index_values(resource, body))
        return row

    def _now(self) -> str:
        return format_datetime(datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc))


def _existing(tx: ScimTransaction, resource: ResourceType, resource_id: str, if_match: str | None) -> ScimResource:
    old = tx.get(resource.name, resource_id)
    if old is None:
        raise errors.not_found(resource.name, resource_id)
    if if_match is not None and not _matches(if_match, old.version):
        raise errors.precondition_failed(etag(old.version))
    return old


def _matches(if_match: str, version: int) -> bool:
    tags = [tag.strip() for tag in if_match.split(",")]
    current = etag(version)
    return "*" in tags or any(tag in (current, current.removeprefix("W/")) for tag in tags)


def _member_ids(body: dict[str, Any]) -> list[str]:
    return [m["value"] for m in body.get("members") or [] if isinstance(m.get("value"), str)]


def _change(client: str, user_id: str, state: dict[str, Any], at: float, cause: str) -> UserChange:
    kind = "deactivate" if state.get("active") is False else "upsert"
    return UserChange(client, user_id, kind, state, at, cause)
