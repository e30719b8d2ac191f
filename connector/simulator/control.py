"""The test control API under /_sim/ (JSON).

GET    /_sim/calls          the call log: [{seq, started, at, operation, status, extension, user_id, eid,
                            recordingMode, voice, im, video, screenCaptureEnabled, loginName, token_valid,
                            agent}] (loginName: a listUsers filter's);
                            `started` is the Unix time the request arrived (before any injected
                            latency), `at` when it was answered, `agent` its User-Agent header or null
DELETE /_sim/calls          clear the call log
GET    /_sim/state          environments, users, extensions (with user_id), active_tokens and recorders
POST   /_sim/users          add a Verba user: {loginName, id?, eid?, displayName?, email?, externalId?}; a login
                            name another user has but for case is taken (Verba's rule is not documented)
DELETE /_sim/users/{id}     remove a Verba user behind the connector's back (as an admin would), the extensions
                            linked to it linked to no one (204), or 404 {"error": ...} when there is none; not in
                            the call log
PUT    /_sim/extensions/{eid}/{extension}
                            edit an extension behind the connector's back (drift), creating it if absent:
                            a JSON object with any of recordingMode (FULL, ON_DEMAND, CONTROLLED or null),
                            voice, im, video, screenCaptureEnabled (true, false or null) and user_id (a
                            user of that environment, or null to unlink); the fields left out keep their
                            value. Answers the extension as /_sim/state shows it, 201 when created, else
                            200; 400 {"error": ...} for an unknown field, a wrong type, an unknown user or
                            environment. Not a SOAP call: it never shows in the call log
DELETE /_sim/extensions/{eid}/{extension}
                            remove the extension behind the connector's back (204), or 404 {"error": ...}
                            when there is none; not in the call log either
PUT    /_sim/recorders/{location}
                            make a recording server fail applyExtensionConfiguration ({"status":
                            "ERROR_GENERAL", "message": "disk full"}) or take it again ({"status": "OK"});
                            creates it if absent; answers it as /_sim/state lists it ({location, eid,
                            status, message, in_step}: in_step when it holds the latest extension table)
GET    /_sim/faults         the fault rules still live
POST   /_sim/faults         add fault rules (one object or a list), see faults.py
DELETE /_sim/faults         remove every fault rule
POST   /_sim/expire-tokens  expire every token now
GET    /_sim/behaviour      the behaviour settings: {"missing_extension": "ok_empty",
                            "unfiltered_list_users": "all", "unknown_user": "error_illegal_argument",
                            "case_duplicate_login": "created"}
POST   /_sim/behaviour      change them, e.g. {"missing_extension": "error_general"}: missing_extension
                            is one of ok_empty, error_general, error_illegal_argument, or the answer
                            itself, {"status": "ERROR_NOT_FOUND", "message": "Extension {eid}:{extension}
                            not found"} (any status code but OK; the message optional, {eid} and
                            {extension} filled in), which getExtension and updateExtension of a missing
                            extension then answer (GET shows it as given); unfiltered_list_users one of
                            all, capped, refused; unknown_user (an extension write naming a user id no
                            user has) one of error_illegal_argument, error_general, not_found,
                            soap_fault; case_duplicate_login (createUser of a login name another user has
                            but for case) created or already_exists (see operations.py); answers the
                            settings now, or 400 for an unknown key or value
POST   /_sim/reset          back to the seed: no extra users or extensions, no tokens, calls or faults,
                            and the behaviour the simulator started with. A body (a seed, as a --seed file
                            holds it) is the seed from then on; 400 with its problems if it is not one
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.simulator.faults import FaultRule
from connector.simulator.seed import entry_problems, seed_problems

if TYPE_CHECKING:
    from connector.simulator.app import Simulator

Endpoint = Callable[[Request], Awaitable[Response]]


def routes(sim: Simulator) -> list[Route]:
    async def get_calls(request: Request) -> Response:
        return JSONResponse(sim.calls.to_json())

    async def delete_calls(request: Request) -> Response:
        sim.calls.clear()
        return Response(status_code=204)

    async def get_state(request: Request) -> Response:
        return JSONResponse(sim.state.to_json())

    async def add_user(request: Request) -> Response:
        data = await _json(request)
        problems = entry_problems(data, "the user", "users")  # checked as a seed's users are
        if problems:
            raise ValueError("; ".join(problems))
        return JSONResponse(sim.state.add_user(data).to_json(), status_code=201)

    async def delete_user(request: Request) -> Response:
        raw = request.path_params["user_id"]
        if not raw.isdigit() or sim.state.delete_user(int(raw)) is None:
            return JSONResponse({"error": f"no Verba user with id {raw!r}"}, status_code=404)
        return Response(status_code=204)

    async def get_faults(request: Request) -> Response:
        return JSONResponse(sim.faults.to_json())

    async def add_faults(request: Request) -> Response:
        data = await _json(request)
        sim.faults.add([FaultRule.from_json(rule) for rule in (data if isinstance(data, list) else [data])])
        return JSONResponse(sim.faults.to_json(), status_code=201)

    async def delete_faults(request: Request) -> Response:
        sim.faults.clear()
        return Response(status_code=204)

    async def expire_tokens(request: Request) -> Response:
        return JSONResponse({"expired": sim.state.expire_tokens()})

    async def get_behaviour(request: Request) -> Response:
        return JSONResponse(sim.state.behaviour())

    async def set_behaviour(request: Request) -> Response:
        data = await _json(request)
        example = '{"missing_extension": "error_general"}'
        if not isinstance(data, dict):
            raise ValueError(f"POST a JSON object such as {example}")
        sim.state.set_behaviour(data)
        return JSONResponse(sim.state.behaviour())

    async def put_extension(request: Request) -> Response:
        eid, number = request.path_params["eid"], request.path_params["extension"]
        extension, created = sim.state.edit_extension(eid, number, await _json(request))
        return JSONResponse(extension.to_json(), status_code=201 if created else 200)

    async def put_recorder(request: Request) -> Response:
        recorder = sim.state.set_recorder(request.path_params["location"], await _json(request))
        return JSONResponse(recorder.to_json(sim.state.changes))

    async def delete_extension(request: Request) -> Response:
        eid, number = request.path_params["eid"], request.path_params["extension"]
        if sim.state.delete_extension(eid, number) is None:
            return JSONResponse({"error": f"no extension {number!r} in environment {eid!r}"}, status_code=404)
        return Response(status_code=204)

    async def reset(request: Request) -> Response:
        seed = await _json(request) if await request.body() else None
        problems = [] if seed is None else seed_problems(seed)
        if problems:
            raise ValueError("; ".join(problems))
        sim.state.reset(seed)
        sim.calls.clear()
        sim.faults.clear()
        return Response(status_code=204)

    return [
        Route("/_sim/calls", get_calls, methods=["GET"]),
        Route("/_sim/calls", delete_calls, methods=["DELETE"]),
        Route("/_sim/state", get_state, methods=["GET"]),
        Route("/_sim/users", _bad_request_on_value_error(add_user), methods=["POST"]),
        Route("/_sim/users/{user_id}", delete_user, methods=["DELETE"]),
        Route("/_sim/faults", get_faults, methods=["GET"]),
        Route("/_sim/faults", _bad_request_on_value_error(add_faults), methods=["POST"]),
        Route("/_sim/faults", delete_faults, methods=["DELETE"]),
        Route("/_sim/expire-tokens", expire_tokens, methods=["POST"]),
        Route("/_sim/behaviour", get_behaviour, methods=["GET"]),
        Route("/_sim/behaviour", _bad_request_on_value_error(set_behaviour), methods=["POST"]),
        Route("/_sim/reset", _bad_request_on_value_error(reset), methods=["POST"]),
        Route("/_sim/extensions/{eid}/{extension}", _bad_request_on_value_error(put_extension), methods=["PUT"]),
        Route("/_sim/extensions/{eid}/{extension}", delete_extension, methods=["DELETE"]),
        Route("/_sim/recorders/{location}", _bad_request_on_value_error(put_recorder), methods=["PUT"]),
    ]


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from exc


def _bad_request_on_value_error(endpoint: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    return wrapped
