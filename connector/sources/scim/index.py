"""The searchable values of a stored body, one ScimValue per value (see connector/store/scim.py for how they are read),
and the normalized user state that events carry (connector/events.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connector.sources.scim.filters import searchable
from connector.sources.scim.schema import EXTERNAL_ID, Attribute, ResourceType
from connector.sources.scim.values import PENDING_MEMBERS
from connector.store import ScimValue

# The parts of a User the event state names itself; every other attribute goes to state["attributes"].
_STATE_KEYS = ("userName", "displayName", "name", "emails", "phoneNumbers")


def index_values(resource: ResourceType, body: dict[str, Any]) -> list[ScimValue]:
    """Every searchable value of `body`, a value of an attribute that is not caseExact in composed form (NFC), as
    filters compare it (`searchable`)."""
    values: list[ScimValue] = []
    for attribute in (EXTERNAL_ID, *resource.schema.attributes):
        values.extend(_values(attribute.name, attribute, body.get(attribute.name)))
    for extension in resource.extensions:
        part = body.get(extension.id) or {}
        for attribute in extension.attributes:
            values.extend(_values(f"{extension.id}:{attribute.name}", attribute, part.get(attribute.name)))
    # A Group's pending member ids, so that the resource that appears with one finds its groups
    # (a `Match` on it); filters cannot reach them, as no attribute path names this key.
    for idx, member in enumerate(body.get(PENDING_MEMBERS) or []):
        if (text := _text(member.get("value"))) is not None:
            values.append(ScimValue(PENDING_MEMBERS, idx, text))
    return values


def _values(key: str, attribute: Attribute, value: Any) -> Iterator[ScimValue]:
    if value is None:
        return
    items = value if attribute.multi_valued and isinstance(value, list) else [value]
    for idx, item in enumerate(items):
        if attribute.type != "complex":
            if (text := _text(item)) is not None:
                yield ScimValue(key, idx, searchable(attribute, text))
            continue
        if not isinstance(item, dict):
            continue
        yield ScimValue(key, idx, "")  # the element's marker row
        for sub in attribute.sub_attributes:
            if (text := _text(item.get(sub.name))) is not None:
                yield ScimValue(f"{key}.{sub.name}", idx, searchable(sub, text))


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value != "":
        return value
    return None


def user_state(resource: ResourceType, body: dict[str, Any], group_names: list[str]) -> dict[str, Any]:
    """The full normalized user: core parts by name, groups by display name, and everything else
    under `attributes` (core attributes by name, extension attributes by their URN-qualified name)."""
    state: dict[str, Any] = {key: body[key] for key in _STATE_KEYS if key in body}
    state["active"] = body.get("active", True)  # RFC 7643 §4.1.1: active unless told otherwise
    for key in ("emails", "phoneNumbers"):
        if key in state:
            state[key] = [item for item in state[key] if isinstance(item.get("value"), str)]
    state["groups"] = sorted(group_names)
    attributes: dict[str, Any] = {}
    if EXTERNAL_ID.name in body:
        attributes[EXTERNAL_ID.name] = body[EXTERNAL_ID.name]
    for attribute in resource.schema.attributes:
        if attribute.name not in _STATE_KEYS and attribute.name != "active" and attribute.name in body:
            attributes[attribute.name] = body[attribute.name]
    for extension in resource.extensions:
        for name, value in (body.get(extension.id) or {}).items():
            attributes[f"{extension.id}:{name}"] = value
    state["attributes"] = attributes
    return state
