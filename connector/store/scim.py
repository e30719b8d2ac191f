"""SCIM resources as the SCIM source keeps them, and the filters the store runs over them.

Every stored value of a resource has one `scim_values` row: `attr` is its key (`emails.value`,
`urn:...:User:department`), `idx` the position of its element in a multi-valued attribute,
`value` the value as text (as the SCIM source makes it searchable) and `folded` its lower-case form.
A complex value also has a marker row under the attribute's own key (`emails`, idx), so `Element`
can tie conditions to one element and `Match(..., "pr")` works. Empty strings are not stored, so
"pr" is an existence test.

A filter is a small neutral expression (`Match`, `AllOf`, `AnyOf`, `Negated`, `Element`) that the
SCIM source compiles from SCIM's syntax; `render` turns it into SQL with every literal a parameter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from connector.events import UserChange
from connector.store.database import Database, event_row


@dataclasses.dataclass(frozen=True)
class ScimResource:
    """A SCIM User or Group as the SCIM source keeps it; `body` never holds id, meta or a password."""

    client: str
    resource_type: str  # "User" or "Group"
    id: str
    body: dict[str, Any]
    version: int
    created: str  # RFC 3339 in UTC, fixed width: orders like the instants it names
    last_modified: str
    # A User's userName as uniqueness compares it (connector/sources/scim/filters.py `caseless`): unique per client.
    # None for one kept sharing its login with an older User (connector/sources/scim/upgrade.py).
    unique_key: str | None = None
    display: str = ""  # a Group's displayName, as its members' events list it


@dataclasses.dataclass(frozen=True)
class ScimValue:
    """One searchable value of a resource: `attr` is its key (`emails.value`), `idx` its element's position."""

    attr: str
    idx: int
    value: str


@dataclasses.dataclass(frozen=True)
class Match:
    """A value under `key` that satisfies `op` ("eq", "gt", "ge", "lt", "le", "co", "sw", "ew", or "pr" with
    `value` None); compared as is if `case_exact`, else lower-cased. `key` "id", "meta.created" and
    "meta.lastModified" are the resource's own columns."""

    key: str
    op: str
    value: str | None
    case_exact: bool = False


@dataclasses.dataclass(frozen=True)
class AllOf:
    left: Filter
    right: Filter


@dataclasses.dataclass(frozen=True)
class AnyOf:
    left: Filter
    right: Filter


@dataclasses.dataclass(frozen=True)
class Negated:
    filter: Filter


@dataclasses.dataclass(frozen=True)
class Element:
    """One element of the complex attribute `key` (the only one if single-valued) satisfies all of `filter`."""

    key: str
    filter: Filter


Filter = Match | AllOf | AnyOf | Negated | Element

_COLUMNS = {"id": "r.id", "meta.created": "r.created", "meta.lastModified": "r.last_modified"}
_ORDERING = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_RESOURCE_COLUMNS = ("r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created,"
                     " r.last_modified")


def render(where: Filter) -> tuple[str, list[Any]]:
    """A condition on `r` (a scim_resources row) in psycopg placeholders, and its parameters."""
    renderer = _Renderer()
    return renderer.sql(where, None), renderer.params


def _matching(where: Filter | None) -> tuple[str, list[Any]]:
    """The FROM and WHERE of a search of one client's resources of one type, and the parameters that follow the
    client's and the type's."""
    condition, params = render(where) if where is not None else ("1 = 1", [])
    return f"FROM scim_resources r WHERE r.client = %s AND r.resource_type = %s AND ({condition})", params


class _Renderer:
    def __init__(self) -> None:
        self.params: list[Any] = []
        self.aliases = 0

    def alias(self, prefix: str) -> str:
        self.aliases += 1
        return f"{prefix}{self.aliases}"

    def bind(self, sql: str, *values: Any) -> str:
        self.params.extend(values)
        return sql

    def sql(self, where: Filter, element: str | None) -> str:
        if isinstance(where, (AllOf, AnyOf)):
            op = "AND" if isinstance(where, AllOf) else "OR"
            return f"({self.sql(where.left, element)} {op} {self.sql(where.right, element)})"
        if isinstance(where, Negated):
            return f"(NOT {self.sql(where.filter, element)})"
        if isinstance(where, Element):
            e = self.alias("e")
            scope = self.bind(f"{e}.resource_pk = r.pk AND {e}.attr = %s", where.key)
            return f"EXISTS (SELECT 1 FROM scim_values {e} WHERE {scope} AND {self.sql(where.filter, e)})"
        return self.match(where, element)

    def match(self, match: Match, element: str | None) -> str:
        if match.key in _COLUMNS and element is None:
            return self.condition(_COLUMNS[match.key], _COLUMNS[match.key], match)
        v = self.alias("v")
        if element is None and match.op == "eq":  # one lookup in the (attr, folded) index
            return f"r.pk IN (SELECT {v}.resource_pk FROM scim_values {v} WHERE {self.scoped(v, match)})"
        scope = f"{v}.resource_pk = r.pk" + (f" AND {v}.idx = {element}.idx" if element else "")
        return f"EXISTS (SELECT 1 FROM scim_values {v} WHERE {scope} AND {self.scoped(v, match)})"

    def scoped(self, v: str, match: Match) -> str:
        attr = self.bind(f"{v}.attr = %s", match.key)
        return attr if match.op == "pr" else f"{attr} AND {self.condition(f'{v}.value', f'{v}.folded', match)}"

    def condition(self, exact: str, folded: str, match: Match) -> str:
        op, text = match.op, match.value
        if op == "pr" or text is None:
            return f"({exact} IS NOT NULL AND {exact} <> '')"
        if exact != folded and not match.case_exact:
            exact, text = folded, text.lower()
        if op == "eq":
            if exact != folded:  # the folded column is indexed; the exact one then settles case
                return self.bind(f"{folded} = %s AND {exact} = %s", text.lower(), text)
            return self.bind(f"{exact} = %s", text)
        if op in _ORDERING:
            return self.bind(f"{exact} {_ORDERING[op]} %s", text)
        if text == "":  # every string contains, starts and ends with ""
            return f"{exact} IS NOT NULL"
        # co / sw / ew: substr and replace compare case-sensitively on both databases (LIKE does not on SQLite).
        if op == "sw":
            return self.bind(f"substr({exact}, 1, CAST(%s AS INTEGER)) = %s", len(text), text)
        if op == "ew":
            return self.bind(f"length({exact}) >= CAST(%s AS INTEGER) AND "
                             f"substr({exact}, length({exact}) - CAST(%s AS INTEGER) + 1) = %s",
                             len(text), len(text), text)
        return self.bind(f"replace({exact}, %s, '') <> {exact}", text)


class ScimTransaction:
    """What a SCIM write may do inside `scim_transaction`; all of it commits or none. Reads see its writes."""

    def __init__(self, store: Database, conn: Any, client: str) -> None:
        self.store, self.conn, self.client = store, conn, client
        self.q = store._q

    def get(self, resource_type: str, resource_id: str) -> ScimResource | None:
        row = self.conn.execute(self.q["scim_get"], (self.client, resource_id)).fetchone()
        return None if row is None or row["resource_type"] != resource_type else _resource(row)

    def get_many(self, resource_type: str, resource_ids: Sequence[str]) -> list[ScimResource]:
        return [_resource(row) for row in self.conn.execute(self.q["scim_get_many"], (
            self.client, self.store._array(resource_ids))) if row["resource_type"] == resource_type]

    def find(self, resource_type: str, where: Filter | None) -> list[ScimResource]:
        """The resources of the type that match `where` (all if None), oldest first, this transaction's writes
        included (and, on SQLite, those of the other blocks sharing its commit, which `scim_search` cannot see)."""
        matching, params = _matching(where)
        sql = self.store._sql(f"SELECT {_RESOURCE_COLUMNS} {matching} ORDER BY r.pk")
        return [_resource(row) for row in self.conn.execute(sql, (self.client, resource_type, *params))]

    def names(self, resource_type: str) -> list[tuple[str, str]]:
        """The (id, display) of every resource of the type, oldest first, without reading their bodies (a Group's
        members)."""
        return [(row["id"], row["display"])
                for row in self.conn.execute(self.q["scim_names"], (self.client, resource_type))]

    def find_unique(self, resource_type: str, unique_key: str) -> str | None:
        """The id of the resource holding `unique_key`, if any."""
        row = self.conn.execute(self.q["scim_find_unique"], (self.client, resource_type, unique_key)).fetchone()
        return None if row is None else str(row["id"])

    def keyless(self, resource_type: str) -> list[ScimResource]:
        """The resources of the type kept without a unique key, oldest first."""
        return [_resource(row) for row in self.conn.execute(self.q["scim_keyless"], (self.client, resource_type))]

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """For each user id, the (id, display name) of the Groups listing it as a member, oldest group first."""
        wanted = set(user_ids)
        folded = self.store._array(sorted({user_id.lower() for user_id in wanted}))
        groups: dict[str, list[tuple[str, str]]] = {user_id: [] for user_id in wanted}
        for row in self.conn.execute(self.q["scim_groups_of"], (self.client, folded)):
            if row["member"] in wanted and (row["id"], row["display"]) not in groups[row["member"]]:
                groups[row["member"]].append((row["id"], row["display"]))
        return groups

    def put(self, resource: ScimResource, values: Sequence[ScimValue]) -> None:
        """Insert or replace the resource (by client and id) and its searchable values."""
        pk = self.conn.execute(self.q["scim_put"], (
            self.client, resource.resource_type, resource.id, resource.unique_key, resource.display,
            json.dumps(resource.body, separators=(",", ":")), resource.version, resource.created,
            resource.last_modified)).fetchone()["pk"]
        # Rewrite only the values that changed: fewer rows to write, sync and vacuum than all of them.
        stored = {(row["attr"], row["idx"], row["value"]) for row in self.conn.execute(self.q["scim_values_of"], (pk,))}
        wanted = {(v.attr, v.idx, v.value): v for v in values}
        if gone := [(pk, *key) for key in stored if key not in wanted]:
            self.conn.cursor().executemany(self.q["scim_remove_value"], gone)
        if added := [(pk, v.attr, v.idx, v.value, v.value.lower()) for key, v in wanted.items() if key not in stored]:
            self.conn.cursor().executemany(self.q["scim_add_value"], added)

    def touch(self, resource_ids: Sequence[str], last_modified: str) -> None:
        """Make each resource a new version, modified at `last_modified`, its body and values as they are (a User
        whose groups changed): without reading them, as a rename of a group of 20,000 touches 20,000 users."""
        self.conn.cursor().executemany(self.q["scim_touch"], [(last_modified, self.client, resource_id)
                                                              for resource_id in resource_ids])

    def delete(self, resource_type: str, resource_id: str) -> None:
        self.conn.execute(self.q["scim_delete"], (self.client, resource_type, resource_id))

    def enqueue(self, changes: Sequence[UserChange]) -> None:
        """Store the events pending, as `enqueue` would, in this transaction."""
        now = time.time()
        self.store._insert_events(self.conn, [event_row(change, "pending", now) for change in changes])


class ScimResources(Database):
    @contextlib.contextmanager
    def scim_transaction(self, client: str) -> Iterator[ScimTransaction]:
        """One write transaction over the SCIM client's resources: what it puts, deletes and enqueues
        commits together when the block exits cleanly and is rolled back entirely when it raises.
        Transactions of one client run one at a time, so a read-modify-write cannot lose an update."""
        with self._write() as conn:
            self._lock(conn, f"scim\x1f{client}")
            yield ScimTransaction(self, conn, client)

    def scim_clients(self) -> list[str]:
        """The SCIM clients that have resources stored, in name order."""
        with self._read() as conn:
            rows = conn.execute(self._q["scim_clients"]).fetchall()
        return [str(row["client"]) for row in rows]

    def scim_comparisons(self) -> str | None:
        """How the stored resources compare (connector/sources/scim/filters.py COMPARISONS); None before the first
        start of a SCIM endpoint on this store."""
        with self._read() as conn:
            row = conn.execute(self._q["scim_comparisons"]).fetchone()
        return None if row is None else str(row["comparisons"])

    def set_scim_comparisons(self, comparisons: str) -> None:
        with self._write() as conn:
            conn.execute(self._q["scim_set_comparisons"], (comparisons,))

    def scim_get(self, client: str, resource_type: str, resource_id: str) -> ScimResource | None:
        with self._read() as conn:
            return ScimTransaction(self, conn, client).get(resource_type, resource_id)

    def scim_search(self, client: str, resource_type: str, where: Filter | None, offset: int,
                    limit: int) -> tuple[int, list[ScimResource]]:
        """How many resources match `where` (all if None), and `limit` of them from `offset`, oldest first."""
        sql, found = _matching(where)
        params = [client, resource_type, *found]
        with self._read() as conn:
            total = conn.execute(self._sql(f"SELECT count(*) AS n {sql}"), params).fetchone()["n"]
            page = self._sql(f"SELECT {_RESOURCE_COLUMNS} {sql} ORDER BY r.pk LIMIT %s OFFSET %s")
            rows = [] if limit <= 0 else conn.execute(page, (*params, limit, offset)).fetchall()
        return int(total), [_resource(row) for row in rows]

    def scim_groups_of(self, client: str, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """For each user id, the (id, display name) of the Groups listing it as a member, oldest group first."""
        with self._read() as conn:
            return ScimTransaction(self, conn, client).groups_of(user_ids)


def _resource(row: Any) -> ScimResource:
    return ScimResource(**{**row, "body": json.loads(row["body"])})
