"""SCIM fixtures: the app under real uvicorn, on a fresh store of each backend, spoken to over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from connector.sources.scim import create_scim_app
from connector.store import Store
from tests.plugins.stores import Opener
from tests.scim.helpers import CONFIG, client_for
from tests.scim.live import serve


@pytest.fixture
def store(store_opener: Opener) -> Store:
    return store_opener()


@pytest.fixture
def server(store: Store) -> Iterator[str]:
    with serve(create_scim_app(store, CONFIG)) as url:
        yield url


@pytest.fixture
def api(server: str) -> Iterator[httpx.Client]:
    with client_for(server) as http:
        yield http


@pytest.fixture
def okta(server: str) -> Iterator[httpx.Client]:
    with client_for(server, "okta") as http:
        yield http
