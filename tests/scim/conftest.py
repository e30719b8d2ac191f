"""SCIM fixtures: the app under real uvicorn, on a fresh store of each backend, spoken to over real HTTP."""

from __future__ import annotations

import pathlib
from typing import Iterator

import httpx
import pytest

from connector.config import ScimClient, ScimConfig
from connector.sources.scim import create_scim_app
from connector.store import Store
from tests.scim.live import serve
from tests.store.conftest import BACKENDS

TOKENS = {"entra": "entra-secret-token", "okta": "okta-secret-token"}
CONFIG = ScimConfig(max_body_bytes=64 * 1024, clients=tuple(ScimClient(n, t) for n, t in TOKENS.items()))
BASE = "/scim/v2"
SCIM_JSON = "application/scim+json"


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Store]:
    opened = BACKENDS[request.param](request, tmp_path)()
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def server(store: Store) -> Iterator[str]:
    with serve(create_scim_app(store, CONFIG)) as url:
        yield url


def client_for(url: str, name: str = "entra") -> httpx.Client:
    headers = {"Authorization": f"Bearer {TOKENS[name]}", "Content-Type": SCIM_JSON}
    return httpx.Client(base_url=url + BASE, headers=headers, timeout=10)


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    with client_for(server) as http:
        yield http


@pytest.fixture
def okta(server: str) -> Iterator[httpx.Client]:
    with client_for(server, "okta") as http:
        yield http
