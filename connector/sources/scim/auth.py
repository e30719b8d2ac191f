"""Bearer-token authentication for the SCIM endpoint, one token per named client (RFC 6750).

Tokens are compared with hmac.compare_digest against every client, so timing tells nothing.
They are never logged, stored or echoed. The name of the matching client lands in
`scope["state"]["scim_client"]`: it becomes the `source` of the events that client causes.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from connector.sources.scim.errors import ScimError

MEDIA_TYPE = "application/scim+json"
NO_CLIENTS = "no SCIM clients are configured; add a [[scim.clients]] entry with a token_env or token_file"
BAD_TOKEN = "send the bearer token configured for your SCIM client: Authorization: Bearer <token>"


class BearerAuth:
    def __init__(self, app: ASGIApp, clients: Sequence[tuple[str, str]], open_paths: Sequence[str]) -> None:
        assert all(token for _, token in clients), "every SCIM client needs a non-empty token"
        self.app = app
        self.clients = [(name, token.encode()) for name, token in clients]
        self.open_paths = tuple(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        client = self.client_for(_bearer(scope))
        if client is None:
            await _unauthorized(send, NO_CLIENTS if not self.clients else BAD_TOKEN)
            return
        scope.setdefault("state", {})["scim_client"] = client
        await self.app(scope, receive, send)

    def client_for(self, token: bytes | None) -> str | None:
        found = None
        for name, expected in self.clients:
            # Compare with every client, whatever matched, so timing does not tell which one did.
            if hmac.compare_digest(token or b"\0", expected) and found is None:
                found = name
        return found


def _bearer(scope: Scope) -> bytes | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
    return None


async def _unauthorized(send: Send, detail: str) -> None:
    body = json.dumps(ScimError(401, detail).to_json()).encode()
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="SCIM"'),
        ],
    })
    await send({"type": "http.response.body", "body": body})
