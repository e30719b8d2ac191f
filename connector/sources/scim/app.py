"""The SCIM 2.0 HTTP endpoint (RFC 7644) as a starlette app: `create_scim_app(store, config)`."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.config import ScimConfig
from connector.sources.scim import discovery, errors
from connector.sources.scim.access import AccessLog
from connector.sources.scim.auth import MEDIA_TYPE, BearerAuth, ScimTokens
from connector.sources.scim.render import etag, location, project, to_scim
from connector.sources.scim.schema import GROUPS, RESOURCE_TYPES, USERS, ResourceType
from connector.sources.scim.service import Found, ScimService
from connector.sources.scim.upgrade import upgrade_stored
from connector.store import ScimResources, StoreError

log = logging.getLogger("connector.scim")
ScimError = errors.ScimError
HEALTH_PATH = "/healthz"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
# Past max_body_bytes, at most this much of a body is read (and discarded) so that the client gets the 413.
DRAIN_BYTES = 64 * 1024 * 1024
# startIndex and count of more digits are read as 10**PAGING_DIGITS (or its negative): past any list, so count is
# maxResults and startIndex an empty page (RFC 7644 §3.4.2.4), and startIndex - 1 still fits SQL's 64-bit OFFSET.
PAGING_DIGITS = 18
PAGING_LIMIT: int = 10**PAGING_DIGITS
# The status a request whose client hung up is logged and counted under (nginx's "client closed request"): no
# answer reaches the client, and it is no server error (5xx) for alerts to count.
CLIENT_GONE = 499
Endpoint = Callable[[Request], Awaitable[Response]]


def create_scim_app(store: ScimResources, config: ScimConfig, tokens: ScimTokens | None = None) -> Starlette:
    """The endpoint; `tokens` (by default from `config.clients`) is what `reload` re-reads on SIGHUP. Resources
    stored by an earlier version are first brought up to today's comparisons (upgrade.py)."""
    upgrade_stored(store)
    base = config.base_path.rstrip("/")
    api = _Api(ScimService(store, strict_attributes=config.strict_attributes), config)
    routes = [
        Route(HEALTH_PATH, _health),
        Route(f"{base}/ServiceProviderConfig", api.service_provider_config),
        Route(f"{base}/ResourceTypes", api.discover(lambda url, _: discovery.resource_types(url))),
        Route(
            f"{base}/ResourceTypes/{{name}}",
            api.discover(lambda url, r: discovery.resource_type(url, r.path_params["name"])),
        ),
        Route(f"{base}/Schemas", api.discover(lambda url, _: discovery.schemas(url))),
        Route(
            f"{base}/Schemas/{{schema_id}}",
            api.discover(lambda url, r: discovery.schema(url, r.path_params["schema_id"])),
        ),
        Route(f"{base}/.search", api.search(RESOURCE_TYPES), methods=["POST"]),
        Route(f"{base}/Bulk", _bulk, methods=["POST"]),
    ]
    for resource in (USERS, GROUPS):
        routes.append(Route(f"{base}{resource.endpoint}", api.collection(resource), methods=["GET", "POST"]))
        # Before /{id}, so that POST /Users/.search is a search, not a method /Users/{id} does not take.
        routes.append(Route(f"{base}{resource.endpoint}/.search", api.search((resource,)), methods=["POST"]))
        routes.append(Route(f"{base}{resource.endpoint}/{{id}}", api.member(resource),
                            methods=["GET", "PUT", "PATCH", "DELETE"]))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(AccessLog),
            Middleware(_InternalErrors),
            Middleware(_NormalizePath, base=base),
            Middleware(_ReadBodyFirst, limit=config.max_body_bytes + DRAIN_BYTES),
            Middleware(BearerAuth, tokens=tokens or ScimTokens(config.clients), open_paths=[HEALTH_PATH]),
        ],
        exception_handlers={ScimError: _scim_error, HTTPException: _http_error, StoreError: _store_error,
                            ClientDisconnect: _client_gone},
    )
    # _NormalizePath serves "/Users/" itself: a 307 to "/Users" is not followed by some clients on POST or PATCH.
    app.router.redirect_slashes = False
    return app


class _Api:
    def __init__(self, service: ScimService, config: ScimConfig) -> None:
        self.service = service
        self.config = config
        self.base_path = config.base_path.rstrip("/")

    def url(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + self.base_path

    async def service_provider_config(self, request: Request) -> Response:
        return _scim(discovery.service_provider_config(self.url(request), self.config.max_body_bytes))

    def discover(self, make: Callable[[str, Request], dict[str, Any]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return _scim(make(self.url(request), request))

        return endpoint

    def collection(self, resource: ResourceType) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if request.method == "POST":
                data = await self.body(request)
                found = await run_in_threadpool(self.service.create, request.state.scim_client, resource, data)
                where = location(self.url(request), resource, found.row.id)
                return self.resource(request, resource, found, 201, {"Location": where})
            return await self.query(request, (resource,), _params(request))

        return endpoint

    def search(self, resources: tuple[ResourceType, ...]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            # RFC 7644 §3.4.3: POST .../.search carries GET's query parameters in a SearchRequest body.
            return await self.query(request, resources, _search_params(await self.body(request)))

        return endpoint

    async def query(self, request: Request, resources: tuple[ResourceType, ...], params: dict[str, str]) -> Response:
        # RFC 7644 §3.4.2.4: a startIndex below 1 means 1; a count below 0 means 0, one over maxResults maxResults.
        start = max(_integer(params, "startIndex", 1), 1)
        count = min(max(_integer(params, "count", discovery.MAX_RESULTS), 0), discovery.MAX_RESULTS)
        total, hits = await run_in_threadpool(
            self.find, request.state.scim_client, resources, params.get("filter"), start - 1, count
        )
        items = [self.render(request, resource, found, params) for resource, found in hits]
        return _scim(discovery.list_response(items, total, start))

    def find(self, client: str, resources: tuple[ResourceType, ...], filter_text: str | None, offset: int,
             limit: int) -> tuple[int, list[tuple[ResourceType, Found]]]:
        """One page of the resources of every type in `resources`, in that order (Users before Groups).

        At the root (RFC 7644 §3.4.2: "all resources ... subject to filtering") a filter that one resource type
        cannot evaluate (`userName` on Groups) matches none of that type; one no type can evaluate is 400.
        """
        total, refused = 0, []
        hits: list[tuple[ResourceType, Found]] = []
        for resource in resources:
            try:
                found, rows = self.service.search(client, resource, filter_text, max(offset - total, 0),
                                                  limit - len(hits))
            except ScimError as exc:
                if len(resources) == 1 or exc.scim_type != "invalidFilter":
                    raise
                refused.append(exc)
                continue
            total += found
            hits += [(resource, row) for row in rows]
        if refused and len(refused) == len(resources):
            raise refused[0]
        return total, hits

    def member(self, resource: ResourceType) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            client, resource_id = request.state.scim_client, request.path_params["id"]
            if_match = request.headers.get("if-match")
            if request.method in ("GET", "HEAD"):  # HEAD: as GET, its body left out by the server
                found = await run_in_threadpool(self.service.get, client, resource, resource_id)
                current = etag(found.row.version, found.groups)
                if _names(request.headers.get("if-none-match"), current):  # RFC 7644 §3.14: its copy is current
                    return Response(status_code=304, headers={"ETag": current})
                return self.resource(request, resource, found)
            if request.method == "DELETE":
                await run_in_threadpool(self.service.delete, client, resource, resource_id, if_match)
                return Response(status_code=204)
            data = await self.body(request)
            if request.method == "PUT":
                found = await run_in_threadpool(self.service.replace, client, resource, resource_id, data, if_match)
                return self.resource(request, resource, found)
            found = await run_in_threadpool(self.service.patch, client, resource, resource_id, data, if_match)
            if resource is GROUPS:
                # Entra: "Update to the group PATCH request should yield an HTTP 204 No Content".
                return Response(status_code=204, headers={"ETag": etag(found.row.version)})
            return self.resource(request, resource, found)

        return endpoint

    def render(self, request: Request, resource: ResourceType, found: Found, params: dict[str, str]) -> dict[str, Any]:
        data = to_scim(resource, found.row, self.url(request), found.groups)
        return project(resource, data, params.get("attributes"), params.get("excludedattributes"))

    def resource(
        self, request: Request, resource: ResourceType, found: Found, status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        data = self.render(request, resource, found, _params(request))
        return _scim(data, status, {"ETag": etag(found.row.version, found.groups), **(headers or {})})

    async def body(self, request: Request) -> Any:
        limit = self.config.max_body_bytes
        too_large = ScimError(413, f"the request body is over {limit} bytes; send less (for Groups, "
                                   "add members in several PATCH requests)")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks), parse_constant=_no_constant, parse_int=_json_integer)
        except ValueError:
            raise errors.invalid_syntax(
                "the body is not valid JSON; send a SCIM object as application/scim+json"
            ) from None
        except RecursionError:
            raise errors.invalid_syntax("the body nests JSON arrays or objects too deeply to read; a SCIM "
                                        "resource needs only a few levels") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # over sys.get_int_max_str_digits() (4300 by default): valid JSON, but Python reads no such int
        raise errors.invalid_value(f"the body has an integer of {len(text.lstrip('-'))} digits; no SCIM value is "
                                   "that long, send a shorter number") from None


def _params(request: Request) -> dict[str, str]:
    # Query parameter names in any case; values as sent.
    return {key.lower(): value for key, value in request.query_params.items()}


def _search_params(data: Any) -> dict[str, str]:
    """A SearchRequest's members as the query parameters of the same GET, names lower-cased (RFC 7644 §3.4.3)."""
    if not isinstance(data, dict):
        raise errors.invalid_syntax(f"the body is a JSON {type(data).__name__}; a search takes a SearchRequest object")
    params: dict[str, str] = {}
    for key, value in data.items():
        name = key.lower()
        if value is None:
            continue
        if name == "schemas":
            if not isinstance(value, list) or SEARCH_REQUEST.casefold() not in {str(v).casefold() for v in value}:
                raise errors.invalid_value(f"schemas is {value!r}; a search body lists {SEARCH_REQUEST}")
        elif name in ("attributes", "excludedattributes"):
            # A JSON array of paths, or GET's comma-separated string.
            paths = value if isinstance(value, list) else [value]
            if not all(isinstance(path, str) for path in paths):
                raise errors.invalid_value(f"{key} is {value!r}; send attribute paths as an array of strings")
            params[name] = ",".join(paths)
        elif name in ("startindex", "count"):
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise errors.invalid_value(f"{key} is {value!r}; it must be an integer")
            params[name] = str(value)
        elif name == "filter":
            if not isinstance(value, str):
                raise errors.invalid_filter(f"filter is {value!r}; send the filter expression as a string")
            params[name] = value
        # sortBy and sortOrder are ignored, as on GET: sorting is not offered (ServiceProviderConfig says so).
    return params


def _integer(params: dict[str, str], name: str, default: int) -> int:
    """The query parameter `name`, as RFC 7644 spells it (`params` are keyed in lower case): any integer in ASCII
    digits, e.g. "2147483647", "-1", "+7"; one of over PAGING_DIGITS digits is read as -/+10**PAGING_DIGITS."""
    value = params.get(name.lower())
    if value is None or value == "":
        return default
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise errors.invalid_value(f"{name} is {value!r}; it must be an integer")
    if len(text.lstrip("+-").lstrip("0")) > PAGING_DIGITS:  # not read: past any list, and int() of it is slow
        return -PAGING_LIMIT if text.startswith("-") else PAGING_LIMIT
    return int(text)


def _scim(data: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status, headers=headers, media_type=MEDIA_TYPE)


async def _bulk(request: Request) -> Response:
    # RFC 7644 §3.12: 501 for an operation the service provider does not support; /ServiceProviderConfig says so.
    raise ScimError(501, "bulk operations are not supported (see /ServiceProviderConfig); send each one as its "
                         "own request to /Users or /Groups")


async def _health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def _scim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScimError)
    return _scim(exc.to_json(), exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: "no such SCIM endpoint; the resources are /Users and /Groups",
              405: "this endpoint does not take that method"}.get(exc.status_code, str(exc.detail))
    # A 405 keeps the Allow header Starlette puts on it (RFC 9110 §15.5.6).
    return _scim(ScimError(exc.status_code, detail).to_json(), exc.status_code, exc.headers)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("SCIM request failed in the store: %s", exc)
    detail = "the connector's store is unavailable; nothing was changed, retry later"
    return _scim(ScimError(503, detail).to_json(), 503, {"Retry-After": "5"})


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Raised by request.stream() on the client's http.disconnect: the answer goes nowhere (uvicorn drops it), but
    # AccessLog sees its status.
    log.info("SCIM %s %s: the client hung up before its body arrived; nothing was stored", request.method,
             request.url.path)
    return Response(status_code=CLIENT_GONE)


class _InternalErrors:
    """Answer an exception that no handler takes with a SCIM 500, and log it once: one ERROR line whose traceback
    is in the structured log (secrets masked), not printed again by uvicorn.

    A plain middleware, not an `exception_handlers` entry for Exception: Starlette raises the exception on after
    such a handler answered, and uvicorn then prints its own plain-text traceback. Inside AccessLog, which
    counts the 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            log.exception("SCIM %s %s failed", scope["method"], scope["path"])
            if not started:  # else the client gets a cut answer: nothing better can be sent now
                detail = "the connector failed on this request; it is logged, retry later"
                await _scim(ScimError(500, detail).to_json(), 500)(scope, receive, send)


# The first segment after the base path, in any case, as the routes spell it.
_ENDPOINTS = {name.casefold(): name for name in (
    *(rt.endpoint.strip("/") for rt in RESOURCE_TYPES), "ServiceProviderConfig", "ResourceTypes", "Schemas", ".search",
    "Bulk",
)}


class _NormalizePath:
    """Serve a path as its clients mean it, directly (no redirect): `/scim/v2//Users` (a Tenant URL ending in "/"),
    `/Users/` and `/Users/<id>/`, and `/users` (Microsoft's own test collection sends it; ids keep their case)."""

    def __init__(self, app: ASGIApp, base: str) -> None:
        self.app = app
        self.base = base + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "path": self.normalize(scope["path"])}
        await self.app(scope, receive, send)

    def normalize(self, path: str) -> str:
        path = re.sub("/{2,}", "/", path)
        if len(path) > 1:
            path = path.rstrip("/")
        if not path.startswith(self.base):
            return path
        first, slash, rest = path[len(self.base):].partition("/")
        return self.base + _ENDPOINTS.get(first.casefold(), first) + slash + rest


class _ReadBodyFirst:
    """Read what is left of a request body, and discard it, before an answer starts (RFC 9112 §9.6).

    An answer given with the body unread - a 413 for a body over max_body_bytes, a 401, a 404 - ends with the
    server closing a connection that still has data in it (on `Connection: close`, HTTP/1.0, or a proxy's
    rule), and the client then sees a connection reset instead of the answer. A body declared longer than
    `limit`, or one the client holds back until `100 Continue`, is not read: that answer closes the connection.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").strip()
        declared = int(length) if length.isdigit() else 0
        held_back = headers.get(b"expect", b"").lower() == b"100-continue"  # until the app asks for the body
        done = b"transfer-encoding" not in headers and declared == 0
        received = 0

        async def counting_receive() -> Message:
            nonlocal done, held_back, received
            message = await receive()
            held_back = False
            received += len(message.get("body", b""))
            done = done or message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_after_body(message: Message) -> None:
            if message["type"] == "http.response.start" and not done:
                if declared <= self.limit and not held_back:
                    while not done and received <= self.limit:
                        await counting_receive()
                if not done:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counting_receive, send_after_body)


def _names(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names the entity tag `tag`, or is "*" (weak comparison, RFC 7232 §3.2)."""
    names = {name.strip().removeprefix("W/") for name in (if_none_match or "").split(",")}
    return "*" in names or tag.removeprefix("W/") in names
