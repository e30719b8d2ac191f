"""The SCIM 2.0 HTTP endpoint (RFC 7644) as a starlette app: `create_scim_app(store, config)`."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from connector.config import ScimConfig
from connector.ops.metrics import SCIM_REQUESTS, CountRequests
from connector.sources.scim import discovery, errors
from connector.sources.scim.auth import MEDIA_TYPE, BearerAuth
from connector.sources.scim.render import etag, location, project, to_scim
from connector.sources.scim.schema import GROUPS, USERS, ResourceType
from connector.sources.scim.service import Found, ScimService
from connector.store.base import Store, StoreError

log = logging.getLogger("connector.scim")
ScimError = errors.ScimError
HEALTH_PATH = "/healthz"
Endpoint = Callable[[Request], Awaitable[Response]]


def create_scim_app(store: Store, config: ScimConfig) -> Starlette:
    base = config.base_path.rstrip("/")
    api = _Api(ScimService(store), config)
    routes = [
        Route(HEALTH_PATH, _health),
        Route(f"{base}/ServiceProviderConfig", api.service_provider_config),
        Route(f"{base}/ResourceTypes", api.discover(lambda url, _: discovery.resource_types(url))),
        Route(f"{base}/ResourceTypes/{{name}}", api.discover(lambda url, r: discovery.resource_type(url, r.path_params["name"]))),
        Route(f"{base}/Schemas", api.discover(lambda url, _: discovery.schemas(url))),
        Route(f"{base}/Schemas/{{schema_id}}", api.discover(lambda url, r: discovery.schema(url, r.path_params["schema_id"]))),
        Route(f"{base}/.search", _no_search, methods=["POST"]),
    ]
    for resource in (USERS, GROUPS):
        routes.append(Route(f"{base}{resource.endpoint}", api.collection(resource), methods=["GET", "POST"]))
        routes.append(Route(f"{base}{resource.endpoint}/{{id}}", api.member(resource),
                            methods=["GET", "PUT", "PATCH", "DELETE"]))
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(CountRequests, counter=SCIM_REQUESTS),
            Middleware(_CollapseSlashes),
            Middleware(BearerAuth, clients=[(c.name, c.token) for c in config.clients], open_paths=[HEALTH_PATH]),
        ],
        exception_handlers={ScimError: _scim_error, HTTPException: _http_error, StoreError: _store_error,
                            Exception: _internal_error},
    )


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
            client, params = request.state.scim_client, _params(request)
            if request.method == "POST":
                data = await self.body(request)
                found = await run_in_threadpool(self.service.create, client, resource, data)
                where = location(self.url(request), resource, found.row.id)
                return self.resource(request, resource, found, 201, {"Location": where})
            start = max(_integer(params, "startindex", 1), 1)  # RFC 7644 §3.4.2.4: below 1 means 1
            count = min(max(_integer(params, "count", discovery.MAX_RESULTS), 0), discovery.MAX_RESULTS)
            total, rows = await run_in_threadpool(
                self.service.search, client, resource, params.get("filter"), start - 1, count
            )
            items = [self.render(request, resource, found, params) for found in rows]
            return _scim(discovery.list_response(items, total, start))

        return endpoint

    def member(self, resource: ResourceType) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            client, resource_id = request.state.scim_client, request.path_params["id"]
            if_match = request.headers.get("if-match")
            if request.method == "GET":
                found = await run_in_threadpool(self.service.get, client, resource, resource_id)
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
        return _scim(data, status, {"ETag": etag(found.row.version), **(headers or {})})

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
            return json.loads(b"".join(chunks), parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise errors.invalid_syntax("the body is not valid JSON; send a SCIM object as application/scim+json") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _params(request: Request) -> dict[str, str]:
    # Query parameter names in any case; values as sent.
    return {key.lower(): value for key, value in request.query_params.items()}


def _integer(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"-?\d{1,9}", value.strip()):
        raise errors.invalid_value(f"{name} is {value!r}; it must be an integer")
    return int(value)


def _scim(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content, status, headers=headers, media_type=MEDIA_TYPE)


async def _health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def _no_search(request: Request) -> Response:
    raise ScimError(501, "searching several resource types at once is not supported; GET /Users or /Groups with a filter")


async def _scim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScimError)
    return _scim(exc.to_json(), exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: "no such SCIM endpoint; the resources are /Users and /Groups",
              405: "this endpoint does not take that method"}.get(exc.status_code, str(exc.detail))
    return _scim(ScimError(exc.status_code, detail).to_json(), exc.status_code)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("SCIM request failed in the store: %s", exc)
    detail = "the connector's store is unavailable; nothing was changed, retry later"
    return _scim(ScimError(503, detail).to_json(), 503, {"Retry-After": "5"})


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("SCIM %s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return _scim(ScimError(500, "the connector failed on this request; it is logged, retry later").to_json(), 500)


class _CollapseSlashes:
    """`/scim/v2//Users` -> `/scim/v2/Users`: a Tenant URL ending in "/" must still work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = {**scope, "path": re.sub("/{2,}", "/", scope["path"])}
        await self.app(scope, receive, send)
