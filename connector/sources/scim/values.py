"""Incoming SCIM values made canonical: schema names, coerced types, read-only parts and passwords dropped.

A stored body keys core attributes by their schema name and extension attributes under
the extension's URN (`{"urn:...:enterprise:2.0:User": {"department": "Retail"}}`); it never
holds id, meta, groups or password. An unassigned attribute (null, "" in a complex value
aside, or an empty list; RFC 7643 §2.5) is left out. A Group's body may also hold the members
whose id names nothing of its client yet under PENDING_MEMBERS (service.py), a key no path,
filter or response can name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from connector.errors import closest
from connector.events import unstorable
from connector.ops.metrics import SCIM_IGNORED_ATTRIBUTES
from connector.sources.scim import errors
from connector.sources.scim.filters import FilterError, canonical_datetime
from connector.sources.scim.paths import Target, names_no_attribute, split, undefined_schema
from connector.sources.scim.schema import GROUPS, Attribute, ResourceType

log = logging.getLogger("connector.scim")
_IGNORED = ("schemas", "id", "meta")
PENDING_MEMBERS = "_pendingMembers"  # no attribute name starts with "_" (RFC 7643 §2.1)
# Ignored attributes logged so far, as (resource type, folded name before any filter); past this many, ignored
# names are only counted.
_LOGGED_LIMIT = 1000
_logged: set[tuple[str, str]] = set()
_logged_lock = threading.Lock()


def canonical_body(resource: ResourceType, data: Any, strict: bool = False) -> dict[str, Any]:
    """The stored body for a POST or PUT.

    The same policy as PATCH (patch.py): what `ignored` says is ignored (`ignore_undefined`); any other
    name no defined schema lists (a typo such as `phoneNumber`, or `valeu` in a phone number) is 400
    invalidPath, so that no value is dropped silently. Names come before values: the 400 names every
    unknown attribute of the body at once (`misnamed`).
    """
    if not isinstance(data, dict):
        raise errors.invalid_syntax(f"the body must be a JSON object holding a {resource.name}")
    found: list[tuple[Target, Any]] = []
    unknown: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str) or key.casefold() in _IGNORED:
            continue
        extension = resource.extension(key)
        if extension is not None:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise errors.invalid_value(f"{extension.id} must be an object of its attributes")
            for sub_key, sub_value in value.items():
                if sub_key.casefold() == "schemas":  # scim2-models repeats the extension's schemas
                    continue
                attribute = extension.attribute(sub_key)
                if attribute is None:
                    unknown.append(misnamed(f"{extension.id}:{sub_key}", extension.attributes))
                else:
                    found.append((Target(resource, extension, attribute), sub_value))
            continue
        if ignored(resource, key):
            ignore_undefined(resource, key, strict)
            continue
        # Entra and Okta spell attributes in any case (UserName, Active); dotted and URN keys are paths.
        path = split(resource, key)
        if path is None or path.target.attribute is None:
            unknown.append(misnamed(key, resource.attributes))
            continue
        if path.filter is not None:
            raise errors.invalid_path(f"{_named(key)}: a body names attributes, not [filters]; "
                                      f"send {path.target.key} with its whole value, or PATCH that path")
        found.append((path.target, value))
    unknown += [name for target, value in found for name in _unknown_subs(target, value)]
    if unknown:
        raise errors.invalid_path(no_attribute(resource, *unknown))
    body: dict[str, Any] = {}
    for target, value in found:
        assign(body, target, value)
    return body


def _unknown_subs(target: Target, value: Any) -> list[str]:
    """The keys of the complex `value` of `target` that name none of its sub-attributes, each `misnamed`; none for
    an attribute `assign` skips."""
    attribute = target.attribute
    assert attribute is not None
    if attribute.type != "complex" or target.sub is not None or _skipped(target):
        return []
    items = value if isinstance(value, list) else [value]
    keys = dict.fromkeys(key for item in items if isinstance(item, dict) for key in item if attribute.sub(key) is None)
    return [misnamed(f"{target.key}.{key}", attribute.sub_attributes, key) for key in keys]


def no_attribute(resource: ResourceType, *names: str) -> str:
    """Why `names`, each `misnamed`, are no attributes of `resource`."""
    s = "s" if len(names) > 1 else ""
    return f"{resource.name} has no attribute{s} {', '.join(names)}; see /Schemas for its attributes"


def misnamed(name: str, attributes: Iterable[Attribute], typed: str | None = None) -> str:
    """`name`, quoted, with the one of `attributes` that `typed` (by default what follows the schema URN of `name`,
    if any) is close to, as the mapping's unknown keys get it: "'phoneNumber' (did you mean 'phoneNumbers'?)".
    Entra and Okta spell names in any case."""
    typed = name.rpartition(":")[2] if typed is None else typed
    meant = closest(typed, (attribute.name for attribute in attributes))
    return f"{_named(name)} (did you mean {meant!r}?)" if meant else _named(name)


def ignored(resource: ResourceType, key: str) -> bool:
    """Whether the body key or PATCH path `key` is skipped (`ignore_undefined`) rather than refused: it is in a
    schema this server does not define (a company's own extension that Entra or Okta maps), or it names no
    attribute of a Group.

    Entra's older default group mapping sends a group's mail and proxyAddresses as `emails[type eq "work"].value`
    and `emails[type eq "other"].value`, which a Group does not have (RFC 7643 §4.2); refusing them fails every
    push of the group, so that its members are never recorded as its rule says. A User's unknown name stays a 400,
    so that no number change is dropped; a Group holds no number, and what it holds (its name and members) is
    still checked.
    """
    return undefined_schema(key) or (resource is GROUPS and names_no_attribute(resource, key))


def ignore_undefined(resource: ResourceType, name: str, strict: bool) -> None:
    """Skip `name`, which `ignored` says is not refused: count it, and log it once per process and resource type
    (by its attribute: `emails[type eq "work"].value` and `emails[type eq "other"].value` are one). `strict` refuses
    it instead."""
    if strict:
        raise errors.invalid_path(f"{_named(name)} is no {resource.name} attribute /Schemas lists, and [scim] "
                                  "strict_attributes refuses those; map it to an attribute /Schemas lists or drop "
                                  "it from the mapping")
    SCIM_IGNORED_ATTRIBUTES.labels(resource.name).inc()
    key = (resource.name, name.strip().split("[", 1)[0].casefold())
    with _logged_lock:
        first = key not in _logged and len(_logged) < _LOGGED_LIMIT
        if first:
            _logged.add(key)
    if first:
        log.warning("SCIM %s attribute %s ignored: /Schemas lists no such %s attribute; the rest of the request is "
                    "applied. Logged once; counted in connector_scim_ignored_attributes_total", resource.name,
                    _named(name), resource.name, extra={"attribute": name[:200], "outcome": "ignored"})


def assign(body: dict[str, Any], target: Target, value: Any) -> None:
    """Set `target` in `body` to the coerced `value`; read-only and write-only attributes are skipped."""
    attribute = target.attribute
    assert attribute is not None
    if _skipped(target):
        return
    holder = body.setdefault(target.schema.id, {}) if target.in_extension else body
    if target.sub is None:
        coerced = coerce(attribute, value, target.key)
        _put(holder, attribute.name, sole_primary(coerced, range(len(coerced))) if attribute.multi_valued and coerced
             else coerced)
        return
    if attribute.multi_valued:
        raise errors.invalid_path(f"{target.key}: pick elements with a filter, e.g. {attribute.name}[type eq \"work\"]")
    complex_value = dict(holder.get(attribute.name) or {})
    _put(complex_value, target.sub.name, coerce(target.sub, value, target.key))
    _put(holder, attribute.name, complex_value or None)
    if target.in_extension and not body[target.schema.id]:
        del body[target.schema.id]


def _skipped(target: Target) -> bool:
    """Whether a value sent for `target` is dropped: a read-only or write-only attribute (a password)."""
    assert target.attribute is not None
    return target.attribute.mutability in ("readOnly", "writeOnly") or bool(target.sub and target.sub.read_only)


def _put(holder: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        holder.pop(name, None)
    else:
        holder[name] = value


def coerce(attribute: Attribute, value: Any, where: str) -> Any:
    """The canonical form of `value` for `attribute`, None if unassigned; invalidValue if it does not fit.

    A multi-valued attribute takes a list: a phone number sent as a bare string is refused, not guessed at.
    """
    if value is None:
        return None
    if attribute.multi_valued:
        if not isinstance(value, list):
            raise errors.invalid_value(f"{where} is multi-valued: send a list of its values, e.g. "
                                       f"{_example(attribute)}, not {_shown(value)}")
        coerced = [c for item in value if (c := _single(attribute, item, where)) is not None]
        return coerced or None
    return _single(attribute, value, where)


def _single(attribute: Attribute, value: Any, where: str) -> Any:
    if value is None:
        return None
    kind = attribute.type
    if kind == "complex":
        if isinstance(value, str) and attribute.sub("value") is not None:
            value = {"value": value}  # Entra sends manager as a bare id string
        if not isinstance(value, dict):
            raise errors.invalid_value(f"{where} must be an object with {_names(attribute)}")
        result: dict[str, Any] = {}
        for key, sub_value in value.items():
            sub = attribute.sub(key)
            if sub is None:
                raise errors.invalid_path(f"{where} has no sub-attribute {_named(key)}; its sub-attributes are "
                                          f"{_names(attribute)}")
            if sub_value is None and sub.name == "value" and attribute.multi_valued:
                raise errors.invalid_value(f"{where}.value is null; send each of its values as a string, or leave "
                                           "that element out")
            if not sub.read_only:
                _put(result, sub.name, _single(sub, sub_value, f"{where}.{sub.name}"))
        return result or None
    if kind == "boolean":
        # Entra sends booleans as strings: "False", "true".
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise errors.invalid_value(f"{where} must be true or false, not {_shown(value)}")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _number_as_text(attribute):
        value = str(value)  # an employee number sent as a JSON number
    if not isinstance(value, str):
        raise errors.invalid_value(f"{where} must be a string, not {_shown(value)}")
    if unstorable(value):
        raise errors.invalid_value(f"{where} holds a NUL or an unpaired surrogate; send valid UTF-8 text")
    if kind == "dateTime":
        try:
            return canonical_datetime(value, where)
        except FilterError as exc:
            raise errors.invalid_value(str(exc)) from None
    return value


def _number_as_text(attribute: Attribute) -> bool:
    """Whether a JSON number is read as its text: for an employee number, yes; not for what identifies a resource
    or a person (userName, a Group's displayName) nor for a `value` (an email, a phone number, a member id)."""
    return attribute.uniqueness == "none" and attribute.name != "value"


def _example(attribute: Attribute) -> str:
    return '[{"value": "..."}]' if attribute.sub("value") is not None else "[{...}]"


def _names(attribute: Attribute) -> str:
    return ", ".join(sub.name for sub in attribute.sub_attributes)


def _named(name: str) -> str:
    """An attribute name as sent, quoted; long enough for a URN-qualified one."""
    text = repr(name)
    return text if len(text) < 200 else text[:197] + "..."


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def required_missing(resource: ResourceType, body: dict[str, Any]) -> str | None:
    """The first required attribute missing from `body`, if any."""
    for attribute in resource.schema.attributes:
        if attribute.required and body.get(attribute.name) in (None, ""):
            return attribute.name
    return None


def sole_primary(items: list[Any], chosen: Iterable[int]) -> list[Any]:
    """`items` with at most one primary element (RFC 7643 §2.4): the first of those at the positions `chosen` (what
    a request just sent or picked, in its order) that is primary stays so; every other element's primary is cleared.
    Unchanged if none of them is primary."""
    keep = next((i for i in chosen if isinstance(items[i], dict) and items[i].get("primary") is True), None)
    if keep is None:
        return items
    return [without(item, "primary") if i != keep and isinstance(item, dict) and item.get("primary") is True else item
            for i, item in enumerate(items)]


def without(item: dict[str, Any], name: str) -> dict[str, Any]:
    """A copy of `item` without the key `name`."""
    return {k: v for k, v in item.items() if k != name}
