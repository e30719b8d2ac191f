"""PATCH (RFC 7644 §3.5.2) on a stored body, with what Entra ID and Okta really send:

- `op` in any case: "Add", "Replace", "Remove" (Entra's default; Microsoft says to match it loosely);
- booleans as strings, "False" (Entra), handled by values.coerce;
- no `path` and a value object whose keys may be dotted or URN-qualified paths (Entra with
  aadOptscim062020; Okta's `{"active": false}` and group rename repeating the read-only id);
- `Remove members` with a value array removes only those members (Entra; a strict reading
  removes all of them, see apache/directory-scimple#447);
- an add or a remove with a value names the elements of a multi-valued attribute by what it gives
  (`_same`): `{"type": "mobile", "value": X}` is the mobile element of X, not a work one of the same
  number; a member is its `value`;
- replace on a filter applies to every element it matches (RFC 7644 §3.5.2.3), and elements a PATCH
  leaves identical collapse into one (`_distinct`): a number is never stored or pushed twice;
- at most one element of an attribute is primary (RFC 7643 §2.4): one that an add or replace sends or picks as
  primary stays so, and the others' primary is cleared (`sole_primary`; POST and PUT keep a list's first);
- `add`/`replace` on `emails[type eq "work"].value` creates the element when none matches
  (the Entra SCIM validator expects it, Captain-P-Goldfish/SCIM-SDK#416);
- a value filter on a single-valued complex attribute, `urn:...:enterprise:2.0:User:manager[value eq "<id>"]`
  or `manager[value eq "<id>"]` (Entra): the operation applies when the value matches the filter;
- a path or key in a schema this server does not define (a company's extension), or naming no attribute
  of a Group (Entra's `emails[type eq "work"].value` for a group's mail), is ignored, as in POST and PUT
  (values.ignored); any other unknown name is 400 invalidPath.

All operations apply to a copy: one failing operation leaves nothing changed.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from typing import Any

from connector.sources.scim import errors
from connector.sources.scim.filters import Compare, Expr, FilterError, Logical, caseless, matches, parse_value_filter
from connector.sources.scim.paths import SplitPath, Target, split
from connector.sources.scim.schema import ID, Attribute, ResourceType
from connector.sources.scim.values import (
    coerce,
    ignore_undefined,
    ignored,
    misnamed,
    no_attribute,
    sole_primary,
    without,
)

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_OPERATIONS = 1000


def apply_patch(
    resource: ResourceType, body: dict[str, Any], resource_id: str, request: Any, strict: bool = False
) -> dict[str, Any]:
    """The body after the PatchOp `request`; raises ScimError and changes nothing on any problem.

    `strict` refuses paths in schemas this server does not define instead of ignoring them.
    """
    result = copy.deepcopy(body)
    for number, operation in enumerate(_operations(request)):
        _Operation(resource, result, resource_id, operation, number, strict).apply()
    return result


def _operations(request: Any) -> list[Any]:
    if not isinstance(request, dict):
        raise errors.invalid_syntax(
            f"a PATCH body is a JSON object: {{\"schemas\": [\"{PATCH_OP}\"], \"Operations\": [...]}}"
        )
    operations = next((v for k, v in request.items() if isinstance(k, str) and k.casefold() == "operations"), None)
    if not isinstance(operations, list) or not operations:
        raise errors.invalid_syntax("Operations must be a non-empty list of {\"op\", \"path\", \"value\"} objects")
    if len(operations) > MAX_OPERATIONS:
        raise errors.invalid_syntax(f"{len(operations)} operations in one PATCH; send at most {MAX_OPERATIONS}")
    return operations


class _Operation:
    def __init__(
        self, resource: ResourceType, body: dict[str, Any], resource_id: str, raw: Any, number: int, strict: bool
    ) -> None:
        if not isinstance(raw, dict):
            raise errors.invalid_syntax(f"Operations[{number}] must be an object with op, path and value")
        fields = {k.casefold(): v for k, v in raw.items() if isinstance(k, str)}
        op = fields.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "remove", "replace"):
            raise errors.invalid_syntax(f"Operations[{number}].op is {op!r}; use add, remove or replace")
        self.resource, self.body, self.resource_id = resource, body, resource_id
        self.op, self.path, self.value = op.lower(), fields.get("path"), fields.get("value")
        self.where = f"Operations[{number}]"
        self.strict = strict

    def apply(self) -> None:
        if self.path is None or self.path == "":
            self.apply_without_path()
            return
        if not isinstance(self.path, str):
            raise errors.invalid_path(f"{self.where}.path must be a string such as \"name.givenName\"")
        if ignored(self.resource, self.path):
            ignore_undefined(self.resource, self.path, self.strict)
            return
        self.apply_at(self.split(self.path), self.value)

    def split(self, path: str) -> SplitPath:
        found = split(self.resource, path)
        if found is None:
            unknown = misnamed(path, self.resource.attributes)
            raise errors.invalid_path(f"{self.where}: {no_attribute(self.resource, unknown)}")
        return found

    def apply_without_path(self) -> None:
        if self.op == "remove":
            raise errors.no_target(f"{self.where}: remove needs a path naming what to remove (RFC 7644 §3.5.2.2)")
        if not isinstance(self.value, dict):
            raise errors.invalid_value(f"{self.where}: without a path, value must be an object of attributes")
        for key, value in self.value.items():
            if not isinstance(key, str) or key.casefold() == "schemas":
                continue
            # Okta's group rename repeats the read-only id; an unchanged id is fine.
            if key.casefold() == "id" and value == self.resource_id:
                continue
            extension = self.resource.extension(key)
            if extension is not None:
                self.apply_extension(Target(self.resource, extension, None), value)
            elif ignored(self.resource, key):
                ignore_undefined(self.resource, key, self.strict)
            else:
                self.apply_at(self.split(key), value)

    def apply_at(self, path: SplitPath, value: Any) -> None:
        target = path.target
        if target.attribute is None:  # an extension's URN alone: its attributes
            self.apply_extension(target, value)
            return
        attribute = target.attribute
        if attribute is ID and self.op != "remove" and value == self.resource_id:
            return
        if attribute.read_only or (target.sub is not None and target.sub.read_only and path.filter is None):
            raise errors.mutability(f"{self.where}: {target.key} is read-only")
        if attribute.mutability == "writeOnly":
            return  # a password: accepted and dropped, never stored
        if path.filter is not None:
            self.apply_filtered(target, path, value)
        elif self.op == "remove":
            self.remove(target, value)
        elif value is None:
            raise errors.invalid_value(f"{self.where}: {self.op} {target.key} needs a value; use remove to clear it")
        elif target.sub is not None:
            self.set_sub(target, value)
        else:
            self.set(target, value)

    def holder(self, target: Target, create: bool) -> dict[str, Any]:
        if not target.in_extension:
            return self.body
        if create:
            extension: dict[str, Any] = self.body.setdefault(target.schema.id, {})
            return extension
        return self.body.get(target.schema.id) or {}

    def tidy(self, target: Target) -> None:
        if target.in_extension and not self.body.get(target.schema.id):
            self.body.pop(target.schema.id, None)

    def apply_extension(self, target: Target, value: Any) -> None:
        if self.op == "remove":
            self.body.pop(target.schema.id, None)
            return
        if not isinstance(value, dict):
            raise errors.invalid_value(f"{self.where}: {target.schema.id} takes an object of its attributes")
        for key, sub_value in value.items():
            if isinstance(key, str) and key.casefold() != "schemas":  # scim2-models sends the extension's schemas
                self.apply_at(self.split(f"{target.schema.id}:{key}"), sub_value)

    def set(self, target: Target, value: Any) -> None:
        attribute = target.attribute
        assert attribute is not None
        holder = self.holder(target, create=True)
        new = coerce(attribute, _one_or_list(attribute, value), target.key)
        old = holder.get(attribute.name)
        if attribute.multi_valued:
            new = self.elements(attribute, old, new or [])
        elif attribute.type == "complex" and old and new:
            new = {**old, **new}  # RFC 7644 §3.5.2.1/3: sub-attributes not given are left unchanged
        _assign(holder, attribute.name, new)
        self.tidy(target)

    def elements(self, attribute: Attribute, old: list[Any] | None, new: list[Any]) -> list[Any] | None:
        """A multi-valued attribute after an add (to `old`) or replace of the coerced values `new`: the first of
        them that is primary is the only primary element (RFC 7643 §2.4); repeats collapse (`_distinct`)."""
        if self.op == "add" and old:
            items, sent = _added(attribute, old, new)
        else:
            items, sent = new, list(range(len(new)))
        return _distinct(sole_primary(items, sent))

    def set_sub(self, target: Target, value: Any) -> None:
        attribute, sub = target.attribute, target.sub
        assert attribute is not None and sub is not None
        if attribute.multi_valued:
            raise errors.invalid_path(f"{self.where}: pick the elements of {attribute.name} with a filter, "
                                      f"e.g. {attribute.name}[type eq \"work\"].{sub.name}")
        holder = self.holder(target, create=True)
        complex_value = dict(holder.get(attribute.name) or {})
        _assign(complex_value, sub.name, coerce(sub, value, target.key))
        _assign(holder, attribute.name, complex_value or None)
        self.tidy(target)

    def remove(self, target: Target, value: Any) -> None:
        attribute = target.attribute
        assert attribute is not None
        if attribute.required and target.sub is None:
            raise errors.invalid_value(f"{self.where}: {attribute.name} is required; replace it instead of removing it")
        holder = self.holder(target, create=False)
        old = holder.get(attribute.name)
        if old is None:
            return
        if target.sub is not None:
            items = old if isinstance(old, list) else [old]
            kept = [rest for item in items if (rest := without(item, target.sub.name))]
            _assign(holder, attribute.name, _distinct(kept) if isinstance(old, list) else (kept[0] if kept else None))
        elif attribute.multi_valued and value is not None:
            # Entra: {"op": "Remove", "path": "members", "value": [{"value": "u1"}]} removes only u1, and
            # [{"type": "mobile", "value": "+1..."}] only the mobile element, not a work one of the same number.
            gone = coerce(attribute, _one_or_list(attribute, value), target.key) or []
            elements = _Elements(attribute, old)
            named = {i for given in gone for i in elements.named(given)}
            kept = [item for i, item in enumerate(old) if i not in named]
            _assign(holder, attribute.name, _distinct(kept))
        else:
            holder.pop(attribute.name, None)
        self.tidy(target)

    def apply_filtered(self, target: Target, path: SplitPath, value: Any) -> None:
        attribute = target.attribute
        assert attribute is not None
        try:
            selector = parse_value_filter(target, path.filter or "")
        except FilterError as exc:
            raise errors.invalid_path(f"{self.where}: {exc}") from None
        sub = attribute.sub(path.sub) if path.sub else None
        if path.sub and sub is None:
            raise errors.invalid_path(f"{self.where}: {attribute.name} has no sub-attribute {path.sub!r}")
        new = None if self.op == "remove" else self.filtered_value(target, sub, value)
        holder = self.holder(target, create=self.op != "remove")
        old = holder.get(attribute.name)
        if attribute.multi_valued:
            items = self.apply_to_elements(list(old or []), selector, sub, new, target, path)
            _assign(holder, attribute.name, _distinct(items))
        else:
            _assign(holder, attribute.name, self.apply_to_value(old, selector, sub, new, target, path))
        self.tidy(target)

    def filtered_value(self, target: Target, sub: Attribute | None, value: Any) -> Any:
        """The coerced value an add or replace under a filter writes: one element, or one sub-attribute's value."""
        attribute = target.attribute
        assert attribute is not None
        if value is None:
            raise errors.invalid_value(f"{self.where}: {self.op} needs a value")
        if sub is not None and sub.read_only:
            raise errors.mutability(f"{self.where}: {attribute.name}.{sub.name} is read-only")
        if sub is not None:
            return coerce(sub, value, f"{target.key}.{sub.name}")
        # `emails[type eq "work"]` takes one element: an object (or a list of one).
        new = coerce(attribute, [value] if attribute.multi_valued and not isinstance(value, list) else value,
                     target.key)
        if isinstance(new, list):
            new = new[0] if len(new) == 1 else _refuse(self.where, target.key)
        return new

    def apply_to_elements(
        self, items: list[dict[str, Any]], selector: Expr, sub: Attribute | None, new: Any, target: Target,
        path: SplitPath,
    ) -> list[dict[str, Any]]:
        """A multi-valued attribute: the operation applies to every element the filter matches."""
        chosen = {i for i, item in enumerate(items) if matches(item, selector)}  # a set: `in` is O(1)
        if self.op == "remove":
            # Removing what is already gone succeeds: IdPs retry, and Okta re-sends member removals.
            if sub is None:
                kept = [item for i, item in enumerate(items) if i not in chosen]
            else:
                kept = [without(item, sub.name) if i in chosen else item for i, item in enumerate(items)]
            return [item for item in kept if item]
        if not chosen:
            seed = _element_from(selector)
            if seed is None:
                raise errors.no_target(f"{self.where}: no {target.key} value matches {path.filter!r}")
            items.append(seed)
            chosen = {len(items) - 1}
        for i in chosen:
            items[i] = self.updated(items[i], selector, sub, new)
        return sole_primary(items, sorted(chosen))

    def apply_to_value(
        self, current: Any, selector: Expr, sub: Attribute | None, new: Any, target: Target, path: SplitPath
    ) -> Any:
        """A single-valued complex attribute (Entra's `manager[value eq "<id>"]`): the filter is a condition on
        its value. Remove takes it (or its sub-attribute) only if it matches; add and replace apply if it matches,
        or if it is unset and the filter describes a value to start from (as for multi-valued attributes)."""
        matched = isinstance(current, dict) and matches(current, selector)
        if self.op == "remove":
            if not matched:
                return current  # nothing matches: nothing to remove, as for multi-valued attributes
            return (without(current, sub.name) or None) if sub is not None else None
        if current is None:
            current = _element_from(selector)
            if current is None:
                raise errors.no_target(f"{self.where}: {target.key} is unset and {path.filter!r} does not say "
                                       "what to start from; send the path without the filter")
            matched = True
        # A filter that does not match a single-valued attribute still sets it: the IdP is the source of
        # truth, and Entra sends every changed attribute in one PATCH, so refusing it (noTarget, as RFC 7644
        # §3.5.2.3 says of multi-valued attributes) would drop the phone change that came with it.
        return self.updated(current, selector, sub, new) or None

    def updated(self, item: dict[str, Any], selector: Expr, sub: Attribute | None, new: Any) -> dict[str, Any]:
        if sub is not None:
            return {**item, sub.name: new} if new is not None else without(item, sub.name)
        if new is None:
            return item
        return {**item, **new} if self.op == "add" else {**(_element_from(selector) or {}), **new}


def _one_or_list(attribute: Attribute, value: Any) -> Any:
    """A value for a multi-valued attribute as a list: RFC 7644 §3.5.2.1 lets a PATCH send one value object."""
    return [value] if attribute.multi_valued and isinstance(value, dict) else value


def _refuse(where: str, key: str) -> Any:
    raise errors.invalid_value(f"{where}: {key}[...] takes one value object, not a list")


def _element_from(expr: Expr) -> dict[str, Any] | None:
    """The element an `eq`-only filter describes (`type eq "work"` -> {"type": "work"}), or None;
    a read-only sub-attribute (manager.displayName) is the server's to set, so it describes none."""
    if isinstance(expr, Compare):
        sub = expr.target.sub
        if expr.op == "eq" and expr.value is not None and sub is not None and not sub.read_only:
            return {sub.name: expr.value}
        return None
    if isinstance(expr, Logical) and expr.op == "and":
        left, right = _element_from(expr.left), _element_from(expr.right)
        if left is not None and right is not None:
            return {**left, **right}
    return None


# Sub-attributes that describe an element rather than say which it is: a request's value matches an element
# whatever it gives for these (an add then sets them on the element; see _added).
_DESCRIPTIVE = ("display", "$ref", "primary")
# Attributes whose element is its `value` alone: a Group member is its id (Entra sends {value, $ref: null},
# Okta {value, display}), whatever else is sent with it.
_BY_VALUE = ("members",)


class _Elements:
    """The elements of a multi-valued attribute, indexed once by what `_same` compares first (an element's `value`, as
    `_equal` compares it; a simple element whole), so that finding those a request's value names does not scan them
    all: adding or removing one member of a group of 20,000 takes time linear in the members, not quadratic, and
    the store's write lock is held that much shorter. `items` is the list the index covers; `append` grows both."""

    def __init__(self, attribute: Attribute, items: list[Any]) -> None:
        self.attribute = attribute
        self.items = items
        self.value_sub = attribute.sub("value")
        self.positions: dict[Hashable, list[int]] = {}
        for i, item in enumerate(items):
            self.positions.setdefault(self.key(item), []).append(i)

    def key(self, item: Any) -> Hashable:
        """What two elements `_same` may name alike share: the `value` of a complex element, compared as `_equal`
        compares it (a case-insensitive one `caseless`); a simple element as a whole (`==`)."""
        if not isinstance(item, dict):
            return ("whole", _hashable(item))
        value = item.get("value")
        if isinstance(value, str) and self.value_sub is not None and not self.value_sub.case_exact:
            return ("value", str, caseless(value))
        return ("value", type(value), _hashable(value))

    def named(self, given: Any) -> list[int]:
        """The positions, ascending, of the elements that the request's coerced value `given` names (`_same`); when
        none is, those that match on the sub-attributes they have: `{"value": X}`, stored without a type, is the one
        `{"type": "work", "value": X}` names, unless an element of that very type and number is there."""
        candidates = self.candidates(given)
        exact = [i for i in candidates if _same(self.attribute, self.items[i], given)]
        if exact or not isinstance(given, dict) or "value" not in given or self.attribute.name in _BY_VALUE:
            return exact  # a value without "value" names no element but by all it gives (and is refused if it must)
        return [i for i in candidates if _same(self.attribute, self.items[i], given, partial=True)]

    def candidates(self, given: Any) -> list[int]:
        """The positions of the only elements that can be named by `given`: those of its key, or, for a complex
        value without `value` (`{"type": "work"}`), every one."""
        if isinstance(given, dict) and "value" not in given:
            return list(range(len(self.items)))
        return self.positions.get(self.key(given), [])

    def append(self, item: Any) -> None:
        self.positions.setdefault(self.key(item), []).append(len(self.items))
        self.items.append(item)


def _hashable(value: Any) -> Hashable:
    """`value` (JSON) as a hashable that equals another's exactly when the values are `==`: an object as the set of
    its (name, value) pairs, an array as a tuple."""
    if isinstance(value, dict):
        try:
            return frozenset(value.items())  # the usual element: strings and booleans only
        except TypeError:  # a value that is an object or an array
            return frozenset((name, _hashable(item)) for name, item in value.items())
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    scalar: Hashable = value  # a string, a boolean, a number or None
    return scalar


def _same(attribute: Attribute, element: Any, given: Any, *, partial: bool = False) -> bool:
    """Whether `element` of the multi-valued `attribute` is the one the request's coerced value `given` names: every
    sub-attribute `given` has, but the descriptive ones (all of them if it has nothing else), equals the element's,
    each compared as its schema says (caseExact; `type` and a phone number or email `value` ignore case). A work
    and a mobile element of one number are two elements. `partial`: a sub-attribute the element lacks (but its
    `value`) does not count."""
    if not isinstance(given, dict) or not isinstance(element, dict):
        return bool(element == given)
    if attribute.name in _BY_VALUE and "value" in given:
        names = ["value"]
    else:
        names = [name for name in given if name not in _DESCRIPTIVE] or list(given)
    if partial:
        names = [name for name in names if name == "value" or name in element]
    return all(_equal(attribute.sub(name), element.get(name), given[name]) for name in names)


def _equal(sub: Attribute | None, actual: Any, wanted: Any) -> bool:
    if isinstance(actual, str) and isinstance(wanted, str) and sub is not None and not sub.case_exact:
        return caseless(actual) == caseless(wanted)  # as filters.py and the store compare
    return bool(type(actual) is type(wanted) and actual == wanted)


def _added(attribute: Attribute, items: list[Any], values: list[Any]) -> tuple[list[Any], list[int]]:
    """`items` after an add of `values` (RFC 7644 §3.5.2.1), and the positions of the elements the values are, in
    their order: a value no element is (`_Elements.named`) is appended; one that is already there changes nothing but
    the descriptive sub-attributes it gives (`primary` true on a number already stored) and those the element lacks
    (a type), so that no number is stored twice and no flag sent is lost. A member already there is left."""
    elements = _Elements(attribute, list(items))
    result, sent = elements.items, []
    for value in values:
        found = elements.named(value)
        if not found:
            found = [len(result)]
            elements.append(value)
        elif isinstance(value, dict) and attribute.name not in _BY_VALUE:
            for i in found:  # the flags it sends, and what an element stored without a type lacks (the type)
                added = {name: sub_value for name, sub_value in value.items()
                         if name in _DESCRIPTIVE or name not in result[i]}
                # Its key stays: the element has the `value` it was found by, so `added` holds none.
                result[i] = {**result[i], **added}
        sent += found
    return result, sent


def _distinct(items: list[Any] | None) -> list[Any] | None:
    """`items` without exact repeats, first ones kept, None if empty: two identical elements (a filtered replace
    that matched two work numbers) say nothing one does not, and a number must not be pushed twice. Elements that
    differ in anything (a `primary`, the case of a `type`) are all kept."""
    seen: set[Hashable] = set()
    result: list[Any] = []
    for item in items or []:
        key = _hashable(item)
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result or None


def _assign(holder: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        holder.pop(name, None)
    else:
        holder[name] = value
