"""A parsed filter as one SQL condition over the store's SCIM tables, the same text for SQLite and PostgreSQL.

The condition reads `r` (a row of scim_resources) and looks values up in scim_values, where
every stored value of a resource has one row: `attr` is its key (`emails.value`,
`urn:...:User:department`), `idx` the position of its element in a multi-valued attribute,
`value` the value as text and `folded` its lower-case form. A complex value also has a marker
row under the attribute's own key (`emails`, idx), so `emails[...]` can tie sub-attribute
conditions to one element and `emails pr` works. Empty strings are not stored, so `pr` is
an existence test. Every literal is a `?` parameter: the SQL text holds no user input.
"""

from __future__ import annotations

from typing import Any

from connector.sources.scim.filters import Compare, Expr, Logical, Not, Within
from connector.store.base import ScimQuery

# Attributes kept as columns of scim_resources rather than in scim_values.
_COLUMNS = {"id": "r.id", "meta.created": "r.created", "meta.lastModified": "r.last_modified"}


def holding(attr: str, value: str) -> ScimQuery:
    """The resources with exactly `value` under the key `attr`: one lookup in the (attr, folded) index."""
    sql = "r.pk IN (SELECT h.resource_pk FROM scim_values h WHERE h.attr = ? AND h.folded = ? AND h.value = ?)"
    return ScimQuery(sql, (attr, value.lower(), value))


def to_sql(expr: Expr) -> ScimQuery:
    params: list[Any] = []
    sql = _Emitter(params).emit(expr, None)
    return ScimQuery(sql, tuple(params))


class _Emitter:
    def __init__(self, params: list[Any]) -> None:
        self.params = params
        self.aliases = 0

    def alias(self, prefix: str) -> str:
        self.aliases += 1
        return f"{prefix}{self.aliases}"

    def emit(self, expr: Expr, element: str | None) -> str:
        if isinstance(expr, Logical):
            return f"({self.emit(expr.left, element)} {expr.op.upper()} {self.emit(expr.right, element)})"
        if isinstance(expr, Not):
            return f"(NOT {self.emit(expr.expr, element)})"
        if isinstance(expr, Within):
            e = self.alias("e")
            self.params.append(expr.target.key)
            inner = self.emit(expr.expr, e)
            return f"EXISTS (SELECT 1 FROM scim_values {e} WHERE {e}.resource_pk = r.pk AND {e}.attr = ? AND {inner})"
        return self.compare(expr, element)

    def compare(self, compare: Compare, element: str | None) -> str:
        key = compare.target.key
        if compare.op == "ne" or (compare.op == "eq" and compare.value is None):
            # "ne" matches when no value equals (an absent attribute included); "eq null" when none is present.
            positive = Compare(compare.target, "eq" if compare.value is not None else "pr", compare.value)
            return f"(NOT {self.compare(positive, element)})"
        if key in _COLUMNS and element is None:
            return self.condition(_COLUMNS[key], _COLUMNS[key], compare)
        v = self.alias("v")
        self.params.append(key)
        scope = f"{v}.resource_pk = r.pk" + (f" AND {v}.idx = {element}.idx" if element else "")
        if compare.op == "pr":
            return f"EXISTS (SELECT 1 FROM scim_values {v} WHERE {scope} AND {v}.attr = ?)"
        condition = self.condition(f"{v}.value", f"{v}.folded", compare)
        return f"EXISTS (SELECT 1 FROM scim_values {v} WHERE {scope} AND {v}.attr = ? AND {condition})"

    def condition(self, exact: str, folded: str, compare: Compare) -> str:
        op, value = compare.op, compare.value
        if op == "pr":
            return f"({exact} IS NOT NULL AND {exact} <> '')"
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        case_exact = compare.target.leaf is not None and compare.target.leaf.case_exact
        if exact != folded and not case_exact:
            exact, text = folded, text.lower()
        if op == "eq":
            if exact != folded:  # the folded column is indexed; the exact one then settles case
                return self.bind(f"{folded} = ? AND {exact} = ?", text.lower(), text)
            return self.bind(f"{exact} = ?", text)
        if op in ("gt", "ge", "lt", "le"):
            return self.bind(f"{exact} {dict(gt='>', ge='>=', lt='<', le='<=')[op]} ?", text)
        if text == "":  # every string contains, starts and ends with ""
            return f"{exact} IS NOT NULL"
        # co / sw / ew: substr and replace compare case-sensitively on both databases (LIKE does not on SQLite).
        if op == "sw":
            return self.bind(f"substr({exact}, 1, CAST(? AS INTEGER)) = ?", len(text), text)
        if op == "ew":
            return self.bind(
                f"length({exact}) >= CAST(? AS INTEGER) AND substr({exact}, length({exact}) - CAST(? AS INTEGER) + 1) = ?",
                len(text), len(text), text,
            )
        return self.bind(f"replace({exact}, ?, '') <> {exact}", text)

    def bind(self, sql: str, *values: Any) -> str:
        self.params.extend(values)
        return sql
