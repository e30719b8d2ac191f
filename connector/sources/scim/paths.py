"""Attribute paths (RFC 7644 §3.10): `userName`, `name.givenName`, `emails[type eq "work"].value`,
`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`, or an extension's URN alone."""

from __future__ import annotations

import dataclasses
import re

from connector.sources.scim.schema import COMMON, SCHEMAS, Attribute, ResourceType, Schema

_PATH = re.compile(r"(?P<attr>[A-Za-z$][\w$-]*)(?:\[(?P<filter>.*)\])?(?:\.(?P<sub>[A-Za-z$][\w$-]*))?", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Target:
    """An attribute of a resource type: `schema`'s `attribute`, or its `sub` attribute.

    `attribute` None means the whole extension, named by its URN alone.
    """

    resource: ResourceType
    schema: Schema
    attribute: Attribute | None
    sub: Attribute | None = None

    @property
    def in_extension(self) -> bool:
        return self.schema is not self.resource.schema

    @property
    def leaf(self) -> Attribute | None:
        return self.sub or self.attribute

    @property
    def key(self) -> str:
        """The name values are indexed under: `emails.value`, `urn:...:User:manager.value`."""
        if self.attribute is None:
            return self.schema.id
        name = f"{self.schema.id}:{self.attribute.name}" if self.in_extension else self.attribute.name
        return f"{name}.{self.sub.name}" if self.sub else name

    def with_sub(self, sub: Attribute) -> Target:
        return dataclasses.replace(self, sub=sub)


@dataclasses.dataclass(frozen=True)
class SplitPath:
    """A path taken apart: its target (without the sub-attribute if a filter came first) and the filter text."""

    target: Target
    filter: str | None
    sub: str | None


def resolve(resource: ResourceType, uri: str | None, name: str, sub: str | None = None) -> Target | None:
    """The target of `[uri:]name[.sub]`, or None if the resource type has no such attribute."""
    if uri is not None:
        schema = resource.schema_for(uri)
        if schema is None:
            return None
        attribute = schema.attribute(name)
        if attribute is None and schema is resource.schema:
            attribute = next((a for a in COMMON if a.name.casefold() == name.casefold()), None)
    else:
        schema, attribute = _unqualified(resource, name)
    if attribute is None:
        return None
    target = Target(resource, schema, attribute)
    if sub is None:
        return target
    sub_attribute = attribute.sub(sub)
    return None if sub_attribute is None else target.with_sub(sub_attribute)


def _unqualified(resource: ResourceType, name: str) -> tuple[Schema, Attribute | None]:
    """Core and common attributes first; an extension's attribute without its URN if only one has it."""
    core = resource.schema.attribute(name) or next((a for a in COMMON if a.name.casefold() == name.casefold()), None)
    if core is not None:
        return resource.schema, core
    found = [(ext, a) for ext in resource.extensions if (a := ext.attribute(name)) is not None]
    return found[0] if len(found) == 1 else (resource.schema, None)


def split(resource: ResourceType, text: str) -> SplitPath | None:
    """Take a PATCH path or an `attributes` entry apart; None if it names nothing of this resource type."""
    text = text.strip()
    extension = resource.extension(text)
    if extension is not None:
        return SplitPath(Target(resource, extension, None), None, None)
    uri, rest = _strip_urn(resource, text)
    match = _PATH.fullmatch(rest)
    if match is None:
        return None
    if match["filter"] is None:
        target = resolve(resource, uri, match["attr"], match["sub"])
        return None if target is None else SplitPath(target, None, None)
    target = resolve(resource, uri, match["attr"])
    if target is None:
        return None
    return SplitPath(target, match["filter"], match["sub"])


def _strip_urn(resource: ResourceType, text: str) -> tuple[str | None, str]:
    folded = text.casefold()
    for schema in resource.schemas:
        prefix = schema.id.casefold() + ":"
        if folded.startswith(prefix):
            return schema.id, text[len(prefix):]
    return None, text


def names_no_attribute(resource: ResourceType, text: str) -> bool:
    """Whether the key or path `text` starts with an attribute name that no schema of `resource` lists: `emails`,
    or `emails[type eq "work"].value`, on a Group. What follows a name it lists (a sub-attribute, a filter) is not
    looked at here."""
    uri, rest = _strip_urn(resource, text.strip())
    match = _PATH.match(rest)
    return match is not None and resolve(resource, uri, match["attr"]) is None


def undefined_schema(text: str) -> bool:
    """Whether the key or path `text` is qualified by a schema URI this server does not define at all
    (`urn:ietf:params:scim:schemas:extension:acme:2.0:User:costCode`, or that URN alone).

    An attribute name holds no colon (RFC 7643 §2.1), so a colon before any filter means a schema URI.
    """
    head = text.strip().split("[", 1)[0].casefold()
    if ":" not in head:
        return False
    return not any(head == s.id.casefold() or head.startswith(s.id.casefold() + ":") for s in SCHEMAS)
