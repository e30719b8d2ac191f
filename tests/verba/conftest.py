"""The simulator under a real uvicorn server on a free 127.0.0.1 port, shared by the Verba tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from connector.simulator.app import create_app
from connector.simulator.process import free_port
from connector.verba import VerbaClient
from tests.verba.helpers import PASSWORD, SEED, Sim


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(SEED), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="verba-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the simulator did not start under uvicorn"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def sim(simulator_server: str) -> Iterator[Sim]:
    sim = Sim(simulator_server)
    sim.reset()
    yield sim
    sim.http.close()


@pytest.fixture
def client(sim: Sim) -> Iterator[VerbaClient]:
    with VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD, timeout=2.0) as client:
        yield client
