"""The SCIM endpoint's access log and request metrics: one line and one count per request.

Each request is logged at INFO on the logger `connector.scim` once its answer is sent: method, path (without
the query string, which may carry a filter on a user's name), status, the SCIM client that the bearer token
named ("-" when none did: a 401, or /healthz) and the duration in milliseconds; a 401 ends with why (no
Authorization header, not the Bearer scheme, a token no client has), for an admin whose identity provider's
"Test Connection" fails. Never a header, a token or a body. The same request is counted in
connector_scim_requests_total{method,status,client} and timed in connector_scim_request_duration_seconds{client};
the method label is one of METHODS, any other (a made-up one, sent before any token is checked) is OTHER, so that
no client can add series without limit.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.ops.metrics import SCIM_REQUEST_SECONDS, SCIM_REQUESTS

log = logging.getLogger("connector.scim")
NO_CLIENT = "-"  # the client label of a request no client's token authenticated
MAX_PATH = 300  # characters of a path logged
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})  # method labels; others are OTHER


class AccessLog:
    """ASGI middleware, outermost: logs, counts and times every HTTP request, whatever answers it.

    The client is read from `scope["state"]["scim_client"]`, where BearerAuth (further in) puts the
    name of the client whose token matched, or `scope["state"]["scim_refused"]` why none did; the state dict is
    created here so that every layer shares it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500  # unless a response starts

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            client = str(state.get("scim_client") or NO_CLIENT)
            refused = state.get("scim_refused")
            method, path = scope["method"], _path(scope)
            SCIM_REQUESTS.labels(method if method in METHODS else "OTHER", str(status), client).inc()
            SCIM_REQUEST_SECONDS.labels(client).observe(seconds)
            log.info("SCIM %s %s %d client %s %.0f ms%s", method, path, status, client, seconds * 1000,
                     f": {refused}" if refused else "",
                     extra={"method": method, "path": path, "status": status, "client": client,
                            "duration_ms": round(seconds * 1000, 1), "refused": refused})


def _path(scope: Scope) -> str:
    """The path as the client sent it (before any normalization), without the query string, cut to MAX_PATH."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))
    path = path.partition("?")[0]
    return path if len(path) <= MAX_PATH else path[:MAX_PATH] + "..."
