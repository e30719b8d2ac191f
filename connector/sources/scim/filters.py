"""SCIM filters (RFC 7644 §3.4.2.2), parsed with scim2-filter-parser into a small expression tree.

Every attribute path is resolved against our schemas, which makes the schemas the allowlist:
an unknown attribute is an error, never a dropped clause. (scim2-filter-parser's own SQL
transpiler silently drops unmapped attributes and `members[value eq "x"]`, returning every
row; we use only its lexer and parser; `to_store_filter` hands the store a neutral filter it renders itself.)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import unicodedata
from typing import Any, NoReturn

from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError

from connector.events import unstorable
from connector.sources.scim.paths import Target, resolve
from connector.sources.scim.schema import Attribute, ResourceType
from connector.store import scim as stored

MAX_LENGTH = 4096
MAX_DEPTH = 16
MAX_COMPARISONS = 32
EXAMPLE = 'userName eq "alice@example.com"'
OPERATORS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr")
ORDERING = ("gt", "ge", "lt", "le")
# Not indexed: password is never stored, groups are derived from Group members.
UNFILTERABLE = ("password", "groups", "meta.resourceType", "meta.location", "meta.version", "x509Certificates.value")


class FilterError(ValueError):
    """A filter that cannot be run; the message says why."""


class Quoted(str):
    """A string literal, told apart from the JSON literals true, false, null and numbers."""


@dataclasses.dataclass(frozen=True)
class Compare:
    target: Target
    op: str
    value: str | bool | None  # None with "pr", or "eq"/"ne" null


@dataclasses.dataclass(frozen=True)
class Logical:
    op: str  # "and" or "or"
    left: Expr
    right: Expr


@dataclasses.dataclass(frozen=True)
class Not:
    expr: Expr


@dataclasses.dataclass(frozen=True)
class Within:
    """`attribute[expr]`: one value of a complex attribute (the only one if single-valued) must satisfy all of expr."""

    target: Target
    expr: Expr


Expr = Compare | Logical | Not | Within


class _Lexer(SCIMLexer):  # type: ignore[misc]
    """scim2-filter-parser's lexer with JSON strings (escaped quotes) and JSON numbers."""

    tokens = SCIMLexer.tokens
    ignore = " \t"

    @_(r"\.[a-zA-Z$][a-zA-Z0-9_$-]*")  # type: ignore[name-defined, untyped-decorator]  # noqa: F821
    def SUBATTR(self, t: Any) -> Any:
        t.value = t.value.lstrip(".")
        return t

    LPAREN = r"\("
    RPAREN = r"\)"
    LBRACKET = r"\["
    RBRACKET = r"\]"
    NUMBER = r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"

    @_(r"[a-zA-Z]+:[a-zA-Z0-9:\._-]+:")  # type: ignore[name-defined, untyped-decorator]  # noqa: F821
    def SCHEMA_URI(self, t: Any) -> Any:
        t.value = t.value.rstrip(":")
        return t

    ATTRNAME = r"[a-zA-Z$][a-zA-Z0-9_$-]*"

    @_(r'"(?:[^"\\]|\\.)*"')  # type: ignore[name-defined, untyped-decorator]  # noqa: F821
    def COMP_VALUE(self, t: Any) -> Any:
        try:
            t.value = Quoted(json.loads(t.value))
        except ValueError:  # a bad escape, or a raw control character
            raise FilterError(f"the string at {_near(self.text, t.index)} is not a JSON string; write a backslash "
                              "as \\\\, a quote as \\\" and a tab or newline as \\t or \\n") from None
        return t

    def error(self, t: Any) -> None:
        if t.value[0] == '"':  # a string that is not closed
            raise FilterError(f"the string at {_near(self.text, t.index)} has no closing double quote; end it with \", "
                              f"e.g. {EXAMPLE}")
        raise FilterError(f"the filter cannot hold {t.value[0]!r} (at {_near(self.text, t.index)}); quote values "
                          f"with double quotes, e.g. {EXAMPLE}")


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# The Entra provisioning docs show `externalId eq jyoung`, an unquoted value; we read it as a string.
_BARE_WORD = re.compile(r"(?i)\b(eq|ne|co|sw|ew|gt|ge|lt|le)(\s+)(?!(?:true|false|null)\b)([A-Za-z_][\w.@+-]*)")


def parse_filter(resource: ResourceType, text: str) -> Expr:
    """Parse a `filter` query parameter; raise FilterError saying what is wrong."""
    return _convert(_parse(text), resource, None, [0])


def parse_value_filter(parent: Target, text: str) -> Expr:
    """Parse the filter inside `attribute[...]`, whose names are sub-attributes of `parent`."""
    return _convert(_parse(text), parent.resource, _value_path(parent), [0])


def _parse(text: str) -> Any:
    if len(text) > MAX_LENGTH:
        raise FilterError(f"the filter is {len(text)} characters long; keep it under {MAX_LENGTH}")
    text = "".join(
        part if part.startswith('"') else _BARE_WORD.sub(r'\1\2"\3"', part)
        for part in re.split(r'("(?:[^"\\]|\\.)*")', text)
    )
    depth = 0
    for char in _STRING.sub("", text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth > MAX_DEPTH:
            raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels; simplify it")
    if not text.strip():
        raise FilterError(f"the filter is empty; write one such as {EXAMPLE}")
    parser = SCIMParser()
    parser.error = lambda token: _syntax_error(text, token)  # its own error() shows the parser's token objects
    try:
        return parser.parse(_Lexer().tokenize(text))
    except SCIMParserError:  # a check in a grammar rule: emails.value[type eq "work"].display eq "x"
        raise _unreadable(text, 0) from None


def _syntax_error(text: str, token: Any) -> NoReturn:
    """What the parser found wrong at `token`, None at the end of the filter, in words."""
    if token is None:
        tail = ("..." if len(text) > 30 else "") + text[-30:]
        raise FilterError(f"the filter ends too soon, after {tail!r}: finish each comparison and close each ( and "
                          f"[, e.g. {EXAMPLE}")
    raise _unreadable(text, token.index)


def _unreadable(text: str, index: int) -> FilterError:
    return FilterError(f"the filter cannot be read at {_near(text, index)}; write each comparison as attribute "
                       f"operator value, e.g. {EXAMPLE}, with an operator of {', '.join(OPERATORS)}")


def _near(text: str, index: int) -> str:
    """Up to 30 characters of the filter from `index`, quoted: where it goes wrong."""
    return repr(text[index:index + 30] + ("..." if len(text) > index + 30 else ""))


def _convert(node: Any, resource: ResourceType, parent: Target | None, count: list[int]) -> Expr:
    if isinstance(node, ast.Filter):
        if node.namespace is not None:
            if parent is not None:
                raise FilterError("a [filter] cannot be nested inside another one")
            outer = _target(resource, node.namespace, None)
            if outer.sub is not None:
                raise FilterError(f"write {outer.key}[...] without a sub-attribute before the brackets")
            inner: Expr = Within(outer, _convert(node.expr, resource, _value_path(outer), count))
        else:
            inner = _convert(node.expr, resource, parent, count)
        return Not(inner) if node.negated else inner
    if isinstance(node, ast.LogExpr):
        left = _convert(node.expr1, resource, parent, count)
        return Logical(node.op.lower(), left, _convert(node.expr2, resource, parent, count))
    if isinstance(node, ast.AttrExpr):
        count[0] += 1
        if count[0] > MAX_COMPARISONS:
            raise FilterError(f"the filter has more than {MAX_COMPARISONS} comparisons; split it")
        path = node.attr_path
        if isinstance(path.attr_name, ast.Filter):  # emails[type eq "work"].value eq "x"
            if parent is not None:
                raise FilterError("a [filter] cannot be nested inside another one")
            namespace = path.attr_name.namespace
            outer = _target(resource, ast.AttrPath(namespace.attr_name, None, namespace.uri), None)
            element = _value_path(outer)
            if namespace.sub_attr is None:  # the parser also takes `emails[type eq "work"] eq "x"`
                op = node.value if node.value.lower() == "pr" else f"{node.value} ..."
                raise FilterError(f"{outer.key}[...] {op}: a comparison after [...] needs a sub-attribute, e.g. "
                                  f"{outer.key}[...].value {op}; or write {outer.key}[...] alone to ask whether "
                                  "a value matches")
            selector = _convert(path.attr_name.expr, resource, element, count)
            leaf = _compare(_target(resource, ast.AttrPath(namespace.sub_attr.value, None, None), element), node)
            return Within(outer, Logical("and", selector, leaf))
        return _compare(_target(resource, path, parent), node)
    raise FilterError("the filter is not valid SCIM filter syntax")


def _value_path(outer: Target) -> Target:
    # RFC 7644 §3.10 lets any complex attribute take a value filter: Entra sends manager[value eq "<id>"].
    attribute = outer.attribute
    if attribute is None or attribute.type != "complex" or outer.sub is not None:
        raise FilterError(f"{outer.key} is not a complex attribute; only those take [filters]")
    if attribute.name == "meta":  # its values are not where filters look: compare meta.<sub> directly
        raise FilterError("meta takes no [filters]; compare a sub-attribute directly, e.g. meta.created gt \"...\"")
    return outer


def _target(resource: ResourceType, path: Any, parent: Target | None) -> Target:
    name = path.attr_name
    if not isinstance(name, str):  # emails[...][...]
        raise FilterError("a [filter] cannot follow another one; combine them with and inside one [...]")
    sub = path.sub_attr.value if path.sub_attr is not None else None
    if parent is not None:
        assert parent.attribute is not None
        found = parent.attribute.sub(name) if path.uri is None and sub is None else None
        if found is None:
            raise FilterError(f"{parent.key} has no sub-attribute {name!r}; see /Schemas")
        return parent.with_sub(found)
    target = resolve(resource, path.uri, name, sub)
    shown = f"{path.uri + ':' if path.uri else ''}{name}{'.' + sub if sub else ''}"
    if target is None:
        raise FilterError(f"{resource.name} has no attribute {shown!r}; see /Schemas for the attributes to filter on")
    if target.key in UNFILTERABLE or (target.attribute and target.attribute.name in UNFILTERABLE):
        raise FilterError(f"{shown!r} cannot be filtered on; filter Groups by members[value eq \"<user id>\"] instead"
                          if target.attribute and target.attribute.name == "groups"
                          else f"{shown!r} cannot be filtered on")
    return target


def _compare(target: Target, node: Any) -> Compare:
    op = node.value.lower()
    if op not in OPERATORS:
        raise FilterError(f"unknown operator {node.value!r}; use one of {', '.join(OPERATORS)}")
    attribute = target.leaf
    assert attribute is not None
    if attribute.type == "complex" and op != "pr":
        value_sub = attribute.sub("value") if target.sub is None else None
        if value_sub is None:
            raise FilterError(f"{target.key} is complex; compare one of its sub-attributes, e.g. {target.key}.<name>")
        target, attribute = target.with_sub(value_sub), value_sub
    if op == "pr":
        return Compare(target, op, None)
    return Compare(target, op, _value(attribute.type, attribute.name, op, node.comp_value.value))


def _value(kind: str, name: str, op: str, raw: str) -> str | bool | None:
    quoted = isinstance(raw, Quoted)
    if unstorable(raw):
        # No stored value holds one (values.coerce refuses them), and PostgreSQL cannot even compare one.
        raise FilterError(f"{name} {op}: the value holds a NUL or an unpaired surrogate; no value can match it")
    if not quoted and raw == "null":
        if op not in ("eq", "ne"):
            raise FilterError(f"{name} {op} null: null only works with eq and ne")
        return None
    if kind == "boolean":
        if op not in ("eq", "ne"):
            raise FilterError(f"{name} is a boolean; it takes only eq, ne and pr (RFC 7644 §3.4.2.2)")
        if raw.lower() not in ("true", "false"):
            raise FilterError(f"{name} is a boolean; compare it with true or false")
        return raw.lower() == "true"
    if kind == "binary":
        raise FilterError(f"{name} is binary and cannot be compared (RFC 7644 §3.4.2.2)")
    if not quoted and raw in ("true", "false"):
        raise FilterError(f"{name} is a {kind}; compare it with a \"string\", not {raw}")
    if kind == "dateTime":
        return canonical_datetime(raw, name)
    return str(raw)


def canonical_datetime(text: str, name: str = "the value") -> str:
    """A dateTime as we store it: UTC, fixed width, so that strings order like instants."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(f"{name}: {text!r} is not a dateTime; write one like \"2024-05-13T04:42:34Z\"") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    try:
        return format_datetime(moment)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is in year 0 in UTC
        raise FilterError(f"{name}: {text!r} is outside the years 1 to 9999 in UTC") from None


def format_datetime(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def matches(element: dict[str, Any], expr: Expr) -> bool:
    """Whether one value of a complex attribute satisfies a [filter] made by parse_value_filter."""
    if isinstance(expr, Logical):
        left = matches(element, expr.left)
        return (left and matches(element, expr.right)) if expr.op == "and" else (left or matches(element, expr.right))
    if isinstance(expr, Not):
        return not matches(element, expr.expr)
    assert isinstance(expr, Compare) and expr.target.sub is not None
    return _holds(element.get(expr.target.sub.name), expr)


def _holds(actual: Any, compare: Compare) -> bool:
    op, wanted = compare.op, compare.value
    present = actual is not None and actual != ""
    if op == "pr":
        return present
    if wanted is None:
        return present if op == "ne" else not present
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return (actual is wanted) == (op == "eq")
    if not isinstance(actual, str):
        return op == "ne"
    sub = compare.target.sub
    if sub is not None and not sub.case_exact:
        actual, wanted = caseless(actual), caseless(wanted)
    outcomes: dict[str, bool] = {
        "eq": actual == wanted,
        "ne": actual != wanted,
        "co": wanted in actual,
        "sw": actual.startswith(wanted),
        "ew": actual.endswith(wanted),
        "gt": actual > wanted,
        "ge": actual >= wanted,
        "lt": actual < wanted,
        "le": actual <= wanted,
    }
    return outcomes[op]


def to_store_filter(expr: Expr) -> stored.Filter:
    """The store's neutral filter for `expr`: "ne" is "not eq" (an absent attribute matches), "eq null"
    is "not pr" and "ne null" is "pr" (it has a value), and each comparison knows its key and whether it is
    case-exact."""
    if isinstance(expr, Logical):
        both = stored.AllOf if expr.op == "and" else stored.AnyOf
        return both(to_store_filter(expr.left), to_store_filter(expr.right))
    if isinstance(expr, Not):
        return stored.Negated(to_store_filter(expr.expr))
    if isinstance(expr, Within):
        return stored.Element(expr.target.key, to_store_filter(expr.expr))
    if expr.op in ("eq", "ne") and expr.value is None:
        present = to_store_filter(Compare(expr.target, "pr", None))
        return present if expr.op == "ne" else stored.Negated(present)
    if expr.op == "ne":
        return stored.Negated(to_store_filter(Compare(expr.target, "eq", expr.value)))
    value = ("true" if expr.value else "false") if isinstance(expr.value, bool) else expr.value
    leaf = expr.target.leaf
    assert leaf is not None
    return stored.Match(expr.target.key, expr.op, None if value is None else searchable(leaf, str(value)),
                        leaf.case_exact)


# How `caseless` and `searchable` compare, under this Python's Unicode version: kept with the stored resources, so that
# a start re-keys them only when it changes (upgrade.py). Change it whenever either function changes.
COMPARISONS = f"caseless: NFC, lower(); searchable: NFC; Unicode {unicodedata.unidata_version}"


def caseless(text: str) -> str:
    """A string as SCIM compares one that is not caseExact (RFC 7643 §2.2: userName, displayName, emails...): in
    Unicode's composed form (NFC), lower-cased, so that josé composed and decomposed, in any case, are one. Not folded
    further, as Verba's logins are not: straße and strasse, or "\ufb01ona" and "fiona", differ. userName uniqueness,
    filters and PATCH value paths all compare so."""
    return unicodedata.normalize("NFC", text).lower()


def searchable(attribute: Attribute, text: str) -> str:
    """`text`, a value of `attribute`, as the store keeps it for filters and as a filter hands it over: composed (NFC)
    if the attribute is not caseExact, since the store compares those lower-cased, which makes them `caseless`."""
    return text if attribute.case_exact else unicodedata.normalize("NFC", text)
