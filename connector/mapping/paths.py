"""Attribute paths: where in a user state (see connector/events.py) a mapping reads values.

    userName, displayName, active         the value itself
    name.givenName, name.familyName       a part of the name
    groups                                every group (display name or DN)
    phoneNumbers.value, emails.value      that sub-attribute of every entry
    phoneNumbers[type eq "work"].value    ... of the entries whose type is "work"
    emails[primary eq true].value         (a filter compares with a "string", true or false)
    attributes.<name>                     a raw source attribute; <name> is the whole rest of
                                          the path, so URNs with colons and dots work

A list value yields every element. Path names and filter keys compare case-insensitively,
as SCIM and LDAP do; a filter compares values as a rule's `equals` does (`same_value`). For
`attributes.urn:...:User:department` both shapes are found: the flattened key, and the SCIM JSON
shape `{"urn:...:User": {"department": ...}}` (also when the flattened key is there but blank).

Values compare as the text a source may send them as: a string, an int ("1") or a boolean
("true"/"false"; LDAP sends booleans as "TRUE"/"FALSE"), folded as groups are (`fold`: Unicode
NFKC, case, spaces around and runs of spaces inside do not count).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Any

from connector.dn import fold
from connector.errors import closest

_TOPS = ("userName", "displayName", "active", "groups", "name", "emails", "phoneNumbers", "attributes")
_CANONICAL = {top.casefold(): top for top in _TOPS}
_PARTS = {"name": "givenName", "emails": "value", "phoneNumbers": "value"}  # the tops with parts, one to suggest
_HAS_PARTS = tuple(_PARTS)
_FILTERABLE = ("emails", "phoneNumbers")

_PATH = re.compile(
    r'(?P<top>[A-Za-z]+)'
    r'(?:\[\s*(?P<key>[A-Za-z]+)\s+eq\s+(?P<want>"[^"]*"|true|false)\s*\])?'
    r'(?:\.(?P<sub>[A-Za-z]+))?',
    re.IGNORECASE,
)
_ATTRIBUTE = re.compile(r"attributes\.(?P<name>\S+)", re.IGNORECASE)
EXAMPLES = 'userName, attributes.telephoneNumber or phoneNumbers[type eq "work"].value'


@dataclasses.dataclass(frozen=True)
class AttributePath:
    text: str
    top: str
    attribute: str | None = None
    where: tuple[str, str | bool] | None = None
    sub: str | None = None

    @classmethod
    def parse(cls, text: str) -> AttributePath:
        """Parse a path; raise ValueError saying what is wrong with it."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a path must be a non-empty string such as {EXAMPLES}")
        attribute = _ATTRIBUTE.fullmatch(text.strip())
        if attribute:
            return cls(text, "attributes", attribute=attribute["name"])
        match = _PATH.fullmatch(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a path; write one such as {EXAMPLES}")
        top = _CANONICAL.get(match["top"].casefold())
        if top == "attributes":
            raise ValueError(f"{text!r}: name the attribute, e.g. attributes.telephoneNumber")
        if top is None:
            raise ValueError(_unknown_top(text.strip(), match["top"], match["sub"]))
        if match["key"] and top not in _FILTERABLE:
            raise ValueError(f"{text!r}: only {' and '.join(_FILTERABLE)} take a [filter]")
        if match["sub"] and top not in _HAS_PARTS:
            raise ValueError(f"{text!r}: {top} has no sub-attributes; write just {top}")
        if top in _HAS_PARTS and not match["sub"]:
            raise ValueError(f"{text!r} names whole entries; add the part to read, e.g. {text}.value")
        where = None
        if match["key"]:
            want = match["want"]
            where = (match["key"], want[1:-1] if want.startswith('"') else want.lower() == "true")
        return cls(text, top, where=where, sub=match["sub"])

    def values(self, state: dict[str, Any]) -> list[Any]:
        """Every value this path reaches in the state, in order; [] when there is none."""
        if self.attribute is not None:
            return _flatten(_attribute(lookup(state, "attributes"), self.attribute))
        found = _flatten(lookup(state, self.top))
        if self.where is not None:
            key, want = self.where
            found = [entry for entry in found if same_value(lookup(entry, key), want)]
        if self.sub is not None:
            found = [value for entry in found for value in _flatten(lookup(entry, self.sub))]
        return found

    def __str__(self) -> str:
        return self.text


def _unknown_top(text: str, top: str, sub: str | None) -> str:
    """Why `text`, whose first name `top` is no part of the user state, is no path: the close part first (with a
    part to read, if it needs one), then the raw source attribute, where attributes.<text> is a path."""
    part = closest(top, _TOPS)
    meant = None
    if part:
        meant = part + text[len(top):] + (f".{_PARTS[part]}" if sub is None and part in _PARTS else "")
    raw = f"attributes.{text}" if _ATTRIBUTE.fullmatch(f"attributes.{text}") else None
    why = f"{text!r} does not start with a part of the user state ({', '.join(_TOPS)})"
    if meant and raw:
        return f"{why}; did you mean {meant!r}? (for a raw source attribute write {raw})"
    if meant:
        return f"{why}; did you mean {meant!r}?"
    return f"{why}; for a raw source attribute write {raw}" if raw else f"{why}; write one such as {EXAMPLES}"


def lookup(data: Any, key: str) -> Any:
    """`data[key]` with the key matched case-insensitively; None when absent or `data` is no dict."""
    if not isinstance(data, dict):
        return None
    if key in data:
        return data[key]
    folded = key.casefold()
    return next((v for k, v in data.items() if isinstance(k, str) and k.casefold() == folded), None)


def _attribute(attributes: Any, name: str) -> Any:
    """The raw attribute `name`: its flattened key, else (absent or blank there) the SCIM JSON shape of a URN."""
    value = lookup(attributes, name)
    if blank(value) and ":" in name:
        schema, _, leaf = name.rpartition(":")
        nested = lookup(lookup(attributes, schema), leaf)
        if not blank(nested):
            value = nested
    return value


def blank(value: Any) -> bool:
    """Whether `value` is no value: None, a string of spaces, or a list of nothing else."""
    if isinstance(value, list):
        return all(blank(v) for v in value)
    return value is None or (isinstance(value, str) and not value.strip())


def _flatten(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def text_of(value: Any) -> str | None:
    """A value as the text a rule reads: a string as it is, an int as its digits, a boolean as "true" or "false";
    None for anything else (a dict, a float)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    return None


def same_value(have: Any, want: str | bool) -> bool:
    """Whether a value of the state is `want` (a rule's `equals`, a filter's value): both as text (`text_of`), folded
    as groups are (`fold`), so "Trading " is "trading" and an int 1 is "1"; `want` true or false is also the string
    "TRUE" or "false" (LDAP sends booleans so), and the string "true" is also a boolean true."""
    text = text_of(have)
    wanted = want if isinstance(want, str) else "true" if want else "false"
    return text is not None and fold(text) == fold(wanted)


def matches(have: Any, pattern: re.Pattern[str]) -> bool:
    """Whether a value of the state matches a rule's `matches` as a whole: its text (`text_of`) in Unicode NFKC with
    the spaces around it dropped and runs of spaces as one, as `same_value` reads it; the case is left to the
    pattern (compiled case-insensitive, in NFKC: see loader._pattern)."""
    text = text_of(have)
    return text is not None and pattern.fullmatch(" ".join(unicodedata.normalize("NFKC", text).split())) is not None
