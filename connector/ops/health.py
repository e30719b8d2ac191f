"""The admin listener: /livez (the process answers), /readyz (can it do its job?), /metrics.

Readiness follows Kubernetes probe semantics: unready (503) only when the store cannot be
written, since then nothing can be accepted; a Verba outage makes it "degraded" (200), because
intake still works and delivery catches up when Verba is back (reference/delivery.md, 5.2).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.errors import ConnectorError
from connector.ops.report import breaker_state
from connector.store import OpenBreaker, Store

TARGET_PROBE_SECONDS = 2.0


def target_state(url: str, breakers: Sequence[OpenBreaker] = ()) -> str:
    """"DOWN: ..." while a circuit breaker on Verba is open (`breakers`, from the store: what delivery saw);
    else "reachable" when the Verba endpoint answers HTTP at all, else why not."""
    if breakers:
        return breaker_state(breakers[0], time.time())
    try:
        httpx.get(url, params={"wsdl": ""}, timeout=TARGET_PROBE_SECONDS)
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__} from {url}"
    return "reachable"


def readiness(store: Store, target_url: str, sources: dict[str, Callable[[], str]]) -> tuple[int, dict[str, object]]:
    try:
        store.ping()
        store_state = "writable"
    except ConnectorError as exc:
        store_state = f"unwritable: {exc}"
    breakers = store.open_breakers() if store_state == "writable" else []
    leaders = store.leaders() if store_state == "writable" else {}
    target = target_state(target_url, breakers)
    source_states = {name: state() for name, state in sources.items()}
    if store_state != "writable":
        status, code = "unready", 503
    elif target != "reachable" or any(s != "ok" for s in source_states.values()):
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    return code, {"status": status, "store": store_state, "target": target, "sources": source_states,
                  "leaders": leaders}


def create_admin_app(store: Store, target_url: str,
                     sources: dict[str, Callable[[], str]] | None = None) -> Starlette:
    """`sources` maps each source's name to a function that says "ok" or what is wrong with it."""
    sources = sources if sources is not None else {}

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        code, body = await run_in_threadpool(readiness, store, target_url, sources)
        return JSONResponse(body, status_code=code)

    async def metrics(request: Request) -> Response:
        return Response(await run_in_threadpool(generate_latest, REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/livez", livez), Route("/readyz", readyz), Route("/metrics", metrics)])
