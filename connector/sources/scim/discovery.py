"""Discovery (RFC 7644 §4): what this service provider supports, exactly."""

from __future__ import annotations

from typing import Any

from connector.sources.scim import errors
from connector.sources.scim.schema import RESOURCE_TYPES, SCHEMAS

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MAX_RESULTS = 500


def list_response(resources: list[dict[str, Any]], total: int, start_index: int = 1) -> dict[str, Any]:
    # RFC 7644 §3.4.2: integer counts (Okta needs integers), a 1-based startIndex.
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def service_provider_config(base: str, max_body_bytes: int) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": max_body_bytes},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A bearer token per SCIM client, from [[scim.clients]] in the connector's config",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }


def resource_types(base: str) -> dict[str, Any]:
    items = [rt.to_json(base) for rt in RESOURCE_TYPES]
    return list_response(items, len(items))


def resource_type(base: str, name: str) -> dict[str, Any]:
    for rt in RESOURCE_TYPES:
        if rt.name.casefold() == name.casefold():
            return rt.to_json(base)
    raise errors.ScimError(404, f"no resource type {name!r}; the types are User and Group")


def schemas(base: str) -> dict[str, Any]:
    items = [schema.to_json(base) for schema in SCHEMAS]
    return list_response(items, len(items))


def schema(base: str, schema_id: str) -> dict[str, Any]:
    for candidate in SCHEMAS:
        if candidate.id.casefold() == schema_id.casefold():
            return candidate.to_json(base)
    raise errors.ScimError(404, f"no schema {schema_id!r}; GET /Schemas lists them")
