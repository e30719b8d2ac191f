"""On-call fixtures: a connector process on a real store, the simulator (tests/plugins/simulator.py), and the
CLI (tests/ops/helpers.py).

Two configs, each on the store tmp_path/c.db: `config_path`, whose Verba is the simulator, and `config`, whose
Verba does not answer, for the commands that act on the store alone (with `store`, that store, open)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.config import load_config
from connector.delivery.worker import Deliverer
from connector.runtime import open_configured_store
from connector.store import Store
from tests.ops.helpers import unreachable_target, write_config
from tests.plugins.simulator import Simulator, delivering


@pytest.fixture
def config_path(tmp_path: Path, simulator: Simulator) -> Path:
    return write_config(tmp_path, simulator.url)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, unreachable_target())


@pytest.fixture
def store(config: Path) -> Iterator[Store]:
    """The store of `config`, created and migrated, closed after the test."""
    with open_configured_store(load_config(config, secrets=()), create=True) as opened:
        yield opened


@pytest.fixture
def deliverer(config_path: Path) -> Iterator[Deliverer]:
    """Delivery in this process, on the store and target of `config_path` (the CLI acts on the same store)."""
    yield from delivering(load_config(config_path))
