"""The Verba simulator as a process: a real simulator under uvicorn (subprocess), a real SQLite store, real HTTP.

Fixtures: `simulator` (one process per test worker, reset for each test to the seed made of `seed_users` and
`seed_extensions`, which a test module or folder overrides), `make_config` (a Config that targets it), `store_url`
(a fresh store of each backend) and `deliverer`. Helpers for the
tests: Simulator, drain, settled, user, free_port, PASSWORD.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.config import Config, parse_config
from connector.delivery.worker import Deliverer
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening

USERS = [
    {"id": 3, "loginName": "alice@example.com", "displayName": "Alice", "eid": "0000"},
    {"id": 4, "loginName": "bob@example.com", "displayName": "Bob", "eid": "0000"},
]
PASSWORD = "sim-api-pa55"


class Simulator:
    """Drives the simulator's /_sim/ control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = f"{base_url}/provisioning"
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def calls(self, operation: str | None = None) -> list[dict[str, Any]]:
        calls = self.http.get("/_sim/calls").raise_for_status().json()
        return [c for c in calls if operation is None or c["operation"] == operation]

    def extensions(self) -> dict[str, dict[str, Any]]:
        state = self.http.get("/_sim/state").raise_for_status().json()
        return {e["extension"]: e for e in state["extensions"]}

    def fault(self, **rule: Any) -> None:
        self.http.post("/_sim/faults", json=[rule]).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_sim/faults").raise_for_status()

    def expire_tokens(self) -> None:
        self.http.post("/_sim/expire-tokens").raise_for_status()

    def edit_extension(self, extension: str, **fields: Any) -> None:
        """Change an extension behind the connector's back (as an admin in Verba's UI would)."""
        self.http.put(f"/_sim/extensions/0000/{extension}", json=fields).raise_for_status()

    def delete_extension(self, extension: str) -> None:
        self.http.delete(f"/_sim/extensions/0000/{extension}").raise_for_status()

    def clear_calls(self) -> None:
        self.http.delete("/_sim/calls").raise_for_status()

    def users(self, login: str | None = None) -> list[dict[str, Any]]:
        """Verba's users (those with loginName `login` exactly, when given)."""
        users = self.http.get("/_sim/state").raise_for_status().json()["users"]
        return [u for u in users if login is None or u["loginName"] == login]

    def add_user(self, login: str, **fields: Any) -> int:
        """Add a Verba user behind the connector's back (as an admin would): its id."""
        added = self.http.post("/_sim/users", json={"loginName": login, **fields}).raise_for_status()
        return int(added.json()["id"])

    def delete_user(self, user_id: int) -> None:
        """Delete a Verba user behind the connector's back (as an admin would); its extensions are linked to no one."""
        self.http.delete(f"/_sim/users/{user_id}").raise_for_status()

    def behave(self, **settings: str) -> None:
        """Answer what the vendor does not document in these shapes (POST /_sim/behaviour), until the next reset."""
        self.http.post("/_sim/behaviour", json=settings).raise_for_status()


def seed(users: list[dict[str, Any]], extensions: list[dict[str, Any]]) -> dict[str, Any]:
    """A simulator seed: one environment (0000), the API user `connector` (PASSWORD), these users and extensions."""
    return {
        "environments": [{"eid": "0000", "shortName": "default"}],
        "api_users": [{"loginName": "connector", "password": PASSWORD}],
        "users": users,
        "extensions": extensions,
    }


def write_seed(path: Path, users: list[dict[str, Any]], extensions: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(seed(users, extensions)))
    return path


@pytest.fixture
def seed_extensions() -> list[dict[str, Any]]:
    """Override in a test module to start the simulator with extensions."""
    return []


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    """Override in a test module to start the simulator with other Verba users."""
    return USERS


class SimulatorProcess:
    """The test worker's simulator process, started again if a test left it dead."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def running(self) -> str:
        """The base URL of the running simulator."""
        if self.process is None or self.process.poll() is not None:
            port = free_port()
            self.process = start_simulator_process(port)
            wait_until_listening(port, process=self.process)
            self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="session")
def simulator_process() -> Iterator[SimulatorProcess]:
    """One simulator per test worker: starting one per test cost about a second of CPU each, for 165 tests."""
    process = SimulatorProcess()
    yield process
    process.stop()


@pytest.fixture
def simulator(simulator_process: SimulatorProcess, seed_users: list[dict[str, Any]],
              seed_extensions: list[dict[str, Any]]) -> Iterator[Simulator]:
    """The simulator, as new: its seed made of `seed_users` and `seed_extensions`, no calls, faults or tokens."""
    sim = Simulator(simulator_process.running())
    sim.http.post("/_sim/reset", json=seed(seed_users, seed_extensions)).raise_for_status()
    yield sim
    sim.http.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The url of a fresh store of each backend, for a test to run on both: `make_config(store={"url": store_url})`."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_server").create_schema()
    return f"sqlite:///{tmp_path / 'connector.db'}"


@pytest.fixture
def make_config(tmp_path: Path, simulator: Simulator) -> Callable[..., Config]:
    """A config that targets the test simulator; keyword sections override its tables."""
    (tmp_path / "verba-password").write_text(PASSWORD)

    def make(mapping: str = "mappings/default.toml", **sections: dict[str, Any]) -> Config:
        data: dict[str, Any] = {
            "store": {"url": f"sqlite:///{tmp_path / 'connector.db'}"},
            "target": {"url": simulator.url, "login": "connector", "password_file": str(tmp_path / "verba-password"),
                       "timeout_seconds": 5},
            "mapping": {"file": mapping},
            "delivery": {"workers": 2, "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2,
                         "idle_poll_seconds": 0.02},
        }
        for name, values in sections.items():
            data[name] = {**data.get(name, {}), **values}
        return parse_config(data, str(tmp_path / "connector.toml"))

    return make


@pytest.fixture
def deliverer(make_config: Callable[..., Config]) -> Iterator[Deliverer]:
    yield from delivering(make_config())


@pytest.fixture
def creating(make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Deliverer]:
    """A deliverer on the store of `deliverer` whose mapping creates missing Verba users ([user_id] create_missing =
    true)."""
    mapping = tmp_path / "create.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace("create_missing = false",
                                                                         "create_missing = true"))
    yield from delivering(make_config(mapping=str(mapping)))


def delivering(config: Config) -> Iterator[Deliverer]:
    """A Deliverer of `config` (its store created), for a fixture to yield from; its client and store closed after."""
    store = open_configured_store(config, create=True)
    client = open_client(config)
    yield Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    client.close()
    store.close()


def drain(deliverer: Deliverer, timeout: float = 20.0) -> None:
    """Deliver until nothing is due, waiting out short backoffs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not deliverer.deliver_one("test"):
            counts = deliverer.store.count_by_state()
            if counts[next(s for s in counts if s.value == "pending")] == 0:
                return
            time.sleep(0.02)
    raise AssertionError("events were still pending after the timeout")


def settled(deliverer: Deliverer, timeout: float = 60.0) -> None:
    """Wait until running delivery workers have nothing pending or in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {state.value: n for state, n in deliverer.store.count_by_state().items()}
        if counts["pending"] == counts["in_flight"] == 0:
            return
        time.sleep(0.02)
    raise AssertionError("events were still pending after the timeout")


def user(external_id: str = "u-alice", login: str = "alice@example.com", phones: tuple[str, ...] = ("+14155550100",),
         kind: str = "upsert", **state: Any) -> UserChange:
    return UserChange(
        source="test", external_id=external_id, kind=kind,  # type: ignore[arg-type]
        state={"userName": login, "phoneNumbers": [{"type": "work", "value": p} for p in phones], **state},
    )
