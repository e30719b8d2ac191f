"""On-call fixtures: a connector process on a real store, the simulator (tests/plugins/simulator.py), and the
CLI as a subprocess (tests/ops/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.helpers import write_config
from tests.plugins.simulator import Simulator


@pytest.fixture
def config_path(tmp_path: Path, simulator: Simulator) -> Path:
    return write_config(tmp_path, simulator.url)


@pytest.fixture
def deliverer(config_path: Path):
    """Delivery in this process, on the store and target of `config_path` (the CLI acts on the same store)."""
    from connector.config import load_config
    from connector.delivery.worker import Deliverer
    from connector.mapping import load_mapping
    from connector.runtime import open_client, open_configured_store

    config = load_config(config_path)
    store, client = open_configured_store(config, create=True), open_client(config)
    yield Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    client.close()
    store.close()
