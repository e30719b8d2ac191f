"""Stored resources as SCIM JSON: schemas, id, attributes in schema order, meta; `attributes` and
`excludedAttributes` applied (RFC 7644 §3.4.2.5, §3.9)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from connector.sources.scim import errors
from connector.sources.scim.paths import split
from connector.sources.scim.schema import ResourceType
from connector.store import ScimResource


def etag(version: int, groups: Sequence[tuple[str, str]] = ()) -> str:
    """The weak entity tag of a resource at `version` (RFC 7644 §3.14: meta.version and the ETag header carry it),
    `W/"3"`; a User's also names its `groups` (id, displayName), which change without a write of the User, so that
    a copy read before a group change is not current: `W/"3-5d41402a"`."""
    if not groups:
        return f'W/"{version}"'
    digest = hashlib.sha256(json.dumps(list(groups), ensure_ascii=False).encode()).hexdigest()[:8]
    return f'W/"{version}-{digest}"'


def location(base: str, resource: ResourceType, resource_id: str) -> str:
    return f"{base}{resource.endpoint}/{resource_id}"


def to_scim(
    resource: ResourceType, row: ScimResource, base: str, groups: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """The full resource; `groups` are the (id, displayName) of the Groups a User is a direct member of."""
    body = row.body
    present = [ext.id for ext in resource.extensions if body.get(ext.id)]
    data: dict[str, Any] = {"schemas": [resource.schema.id, *present], "id": row.id}
    if "externalId" in body:
        data["externalId"] = body["externalId"]
    for attribute in resource.schema.attributes:
        if attribute.name in body:
            data[attribute.name] = body[attribute.name]
    if resource.name == "User" and groups:
        groups_base = base + "/Groups/"
        data["groups"] = [
            {"value": gid, "$ref": groups_base + gid, "display": name, "type": "direct"} for gid, name in groups
        ]
    for ext in present:
        data[ext] = body[ext]
    data["meta"] = {
        "resourceType": resource.name,
        "created": row.created,
        "lastModified": row.last_modified,
        "location": location(base, resource, row.id),
        "version": etag(row.version, groups if resource.name == "User" else ()),
    }
    return data


def project(
    resource: ResourceType, data: dict[str, Any], attributes: str | None, excluded: str | None
) -> dict[str, Any]:
    """Keep only `attributes`, or drop `excludedAttributes` (comma-separated paths, any case)."""
    if attributes:
        result: dict[str, Any] = {key: data[key] for key in ("schemas", "id") if key in data}  # returned "always"
        for top, subs in _paths(resource, attributes, "attributes").items():
            if top in data:
                result[top] = data[top] if subs is None else _only(data[top], subs, keep=True)
        return result
    if excluded:
        result = dict(data)
        for top, subs in _paths(resource, excluded, "excludedAttributes").items():
            if top in result and top not in ("schemas", "id"):
                if subs is None:
                    del result[top]
                else:
                    result[top] = _only(result[top], subs, keep=False)
        return result
    return data


def _paths(resource: ResourceType, text: str, parameter: str) -> dict[str, set[str] | None]:
    """Top-level key -> the sub-attributes listed, or None for the whole attribute; unknown paths are ignored."""
    paths: dict[str, set[str] | None] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "[" in item:
            raise errors.invalid_value(f"{parameter}: {item!r} has a filter; list plain attribute paths")
        found = split(resource, item)
        if found is None:
            continue
        target = found.target
        if target.attribute is None:
            top, sub = target.schema.id, None
        elif target.in_extension:
            top, sub = target.schema.id, target.attribute.name
        else:
            top, sub = target.attribute.name, target.sub.name if target.sub else None
        if top in paths and paths[top] is None:
            continue
        paths[top] = None if sub is None else (paths.get(top) or set()) | {sub}
    return paths


def _only(value: Any, subs: set[str], *, keep: bool) -> Any:
    def filtered(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        return {k: v for k, v in item.items() if (k in subs) == keep}

    return [filtered(item) for item in value] if isinstance(value, list) else filtered(value)
