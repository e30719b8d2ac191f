"""SCIM test helpers: the endpoint's configuration (two clients and their tokens) and an HTTP client for it."""

from __future__ import annotations

from typing import Any

import httpx

from connector.config import ScimClient, ScimConfig
from connector.store import Store

TOKENS = {"entra": "entra-secret-token", "okta": "okta-secret-token"}
CONFIG = ScimConfig(max_body_bytes=64 * 1024, clients=tuple(ScimClient(n, (t,)) for n, t in TOKENS.items()))
BASE = "/scim/v2"
SCIM_JSON = "application/scim+json"


def client_for(url: str, name: str = "entra") -> httpx.Client:
    headers = {"Authorization": f"Bearer {TOKENS[name]}", "Content-Type": SCIM_JSON}
    return httpx.Client(base_url=url + BASE, headers=headers, timeout=10)


def events(store: Store, external_id: str | None = None) -> list[Any]:
    """The user-change events, oldest first (of one user if given)."""
    return [e.change for e in reversed(store.list_events(limit=1000))
            if external_id is None or e.change.external_id == external_id]


def patch(api: httpx.Client, path: str, *operations: dict[str, Any]) -> httpx.Response:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}
    return api.patch(path, json=body)


def group_names(store: Store, user_id: str) -> list[str]:
    return events(store, user_id)[-1].state["groups"]


def members(api: httpx.Client, group_id: str) -> list[str]:
    return [m["value"] for m in api.get(f"/Groups/{group_id}").json().get("members", [])]
