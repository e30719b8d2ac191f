"""The simulator: its ASGI app (POST /provisioning, GET /provisioning?wsdl, /_sim/), seed loading, serving."""

from __future__ import annotations

import asyncio
import dataclasses
import http
import importlib.resources
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from connector.simulator import control, soap
from connector.simulator.calls import CallLog
from connector.simulator.faults import FaultRule, Faults
from connector.simulator.operations import (
    OPERATIONS,
    TOKEN_MESSAGE,
    UNAUTHORIZED,
    handle,
    status_inner,
)
from connector.simulator.soap import Call, text
from connector.simulator.state import State

USAGE = "Verba Provisioning API v2 simulator: POST SOAP 1.1 envelopes here; GET ?wsdl for the WSDL.\n"


@dataclasses.dataclass
class Simulator:
    state: State
    faults: Faults
    calls: CallLog


def create_app(
    seed: dict[str, Any] | None = None, *, token_ttl: float = 3600.0,
    missing_extension: str | dict[str, Any] = "ok_empty",
) -> Starlette:
    """The simulator app; `missing_extension` is one of operations.MISSING_EXTENSION_SHAPES, or an answer's JSON
    (state.MissingAnswer)."""
    simulator = Simulator(State(seed, token_ttl=token_ttl, missing_extension=missing_extension), Faults(), CallLog())
    wsdl_head, wsdl_tail = _wsdl_parts()

    async def provisioning(request: Request) -> Response:
        started = time.time()  # when the request arrived, before any injected latency
        if request.method == "GET":
            if any(key.lower() == "wsdl" for key in request.query_params):
                address = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
                return Response(wsdl_head + address + wsdl_tail, media_type="text/xml")
            return PlainTextResponse(USAGE)
        return await answer(simulator, await request.body(), started=started,
                            agent=request.headers.get("user-agent"))

    app = Starlette(routes=[Route("/provisioning", provisioning, methods=["GET", "POST"]), *control.routes(simulator)],
                    exception_handlers={ClientDisconnect: _client_gone})
    app.state.simulator = simulator
    return app


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The caller hung up before its body arrived (a connector killed mid-call): nothing to answer, nothing to
    # note, and no traceback (Starlette's default 500 handler would raise it on to uvicorn).
    return Response(status_code=499)


def serve(listener: socket.socket, seed: dict[str, Any] | None, token_ttl: float,
          missing_extension: str = "ok_empty") -> None:
    """Serve the simulator on the listening socket until stopped; `seed` as load_seed gives it, None for the
    default."""
    app = create_app(seed, token_ttl=token_ttl, missing_extension=missing_extension)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[listener])


async def answer(simulator: Simulator, body: bytes, *, started: float | None = None,
                 agent: str | None = None) -> Response:
    """Answer one SOAP request; the call log notes `started` (when it arrived) and `agent` (its User-Agent)."""
    try:
        call = soap.parse_call(body)
    except soap.NotSoap as exc:
        return _soap(soap.fault("Client", str(exc)), 500)
    if call.namespace != soap.TNS or call.operation not in OPERATIONS:
        return _soap(soap.fault("Client", f"Cannot find dispatch method for {{{call.namespace}}}{call.operation}"), 500)
    token_valid = None if call.operation == "requestToken" else simulator.state.token_valid(text(call.fields, "token"))
    rule = simulator.faults.take(call.operation)
    if rule is not None:
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.fails:
            status, response = _injected(rule, call)
            simulator.calls.record(call, status, token_valid, started=started, agent=agent)
            response.headers.update(rule.headers or {})
            return response
    status, body, http_status = handle(simulator.state, call)
    simulator.calls.record(call, status, token_valid, started=started, agent=agent)
    if rule is not None and rule.trickle_ms:
        return StreamingResponse(_trickled(body, rule.trickle_ms / 1000), status_code=http_status,
                                 media_type=soap.CONTENT_TYPE)
    return _soap(body, http_status)


async def _trickled(body: bytes, pause: float) -> AsyncIterator[bytes]:
    """The answer in pieces of 16 bytes, `pause` seconds apart, as a slow or throttled link sends it."""
    for start in range(0, len(body), 16):
        yield body[start:start + 16]
        await asyncio.sleep(pause)


def _injected(rule: FaultRule, call: Call) -> tuple[str, Response]:
    if rule.body is not None:
        status_code = rule.http_status or 200
        return (f"HTTP_{status_code}" if rule.http_status else "RAW"), _soap(rule.body.encode(), status_code)
    if rule.http_status is not None:
        try:
            phrase = http.HTTPStatus(rule.http_status).phrase
        except ValueError:
            phrase = "Injected fault"
        return f"HTTP_{rule.http_status}", PlainTextResponse(phrase, status_code=rule.http_status)
    if rule.malformed:
        return "MALFORMED", _soap(soap.truncated(call.operation))
    assert rule.status is not None
    message = rule.message or (TOKEN_MESSAGE if rule.status == UNAUTHORIZED else "Injected fault")
    return rule.status, _soap(soap.response(call.operation, status_inner(call.operation, rule.status, message)))


def _soap(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type=soap.CONTENT_TYPE)


def _wsdl_parts() -> tuple[str, str]:
    """The shipped WSDL split around its soap:address location, to serve with the request's own URL."""
    wsdl = importlib.resources.files("connector.verba").joinpath("provisioning-v2.wsdl").read_text()
    match = re.search(r'<soap:address location="([^"]*)"', wsdl)
    assert match, "the shipped WSDL has no soap:address"
    return wsdl[: match.start(1)], wsdl[match.end(1) :]
