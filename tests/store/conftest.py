"""The `store` fixture runs every conformance test once per backend (tests/plugins/stores.py)."""

from __future__ import annotations

import pytest

from connector.store import Store
from tests.plugins.stores import Opener


@pytest.fixture
def store(store_opener: Opener) -> Store:
    return store_opener()
