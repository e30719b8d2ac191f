"""kill -9 of a running connector during pushes: after a restart every accepted event ends done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.store import EventState, open_store
from tests.plugins.simulator import PASSWORD, free_port

USERS = 40
CHANGES_PER_USER = 4


@pytest.fixture
def seed_users():
    return [{"id": 100 + n, "loginName": f"user{n}@example.com", "eid": "0000"} for n in range(USERS)]


def number(user: int, change: int) -> str:
    return f"+1415555{user:02d}{change:02d}"


def write_config(tmp_path: Path, simulator_url: str) -> Path:
    (tmp_path / "pw").write_text(PASSWORD)
    config = tmp_path / "connector.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
        f'[target]\nurl = "{simulator_url}"\nlogin = "connector"\npassword_file = "{tmp_path / "pw"}"\n'
        '[delivery]\nworkers = 4\nbackoff_base_seconds = 0.05\nbackoff_max_seconds = 0.5\nlease_seconds = 30\n'
        'idle_poll_seconds = 0.02\n'
        'guard_max_count = 1000\n'  # every user's number changes at once: intended here, not a mistake
        f'[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[scim]\nlisten = "127.0.0.1:{free_port()}"\n'
    )
    subprocess.run([sys.executable, "-m", "connector.cli", "db", "upgrade", "--config", str(config)], check=True,
                   capture_output=True)  # the store `connector run` makes: events are ingested before it starts
    return config


def ingest(config: Path, file: Path, changes: range) -> None:
    with file.open("w") as f:
        for change in changes:
            for n in range(USERS):
                state = {
                    "userName": f"user{n}@example.com",
                    "phoneNumbers": [{"type": "work", "value": number(n, change)}],
                }
                f.write(json.dumps({"source": "hr", "external_id": f"u{n}", "kind": "upsert", "state": state}) + "\n")
    subprocess.run([sys.executable, "-m", "connector.cli", "events", "ingest", "--config", str(config), str(file)],
                   check=True, capture_output=True)


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
                                stdout=output, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_kill_9_during_pushes_loses_nothing(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)
    # Slow pushes, so that the kill lands while some are in flight.
    simulator.fault(operation="*", latency_ms=15)
    ingest(config, tmp_path / "first.jsonl", range(0, 2))
    log = tmp_path / "connector.log"
    first = start(config, log)
    wait_for(lambda: len(simulator.calls()) >= 30, 30, "the first pushes")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    simulator.clear_faults()
    ingest(config, tmp_path / "second.jsonl", range(2, CHANGES_PER_USER))

    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    assert store.count_by_state()[EventState.DONE] < USERS * CHANGES_PER_USER, "the kill came too late to test anything"
    second = start(config, log)
    try:
        wait_for(lambda: store.count_by_state()[EventState.DONE] == USERS * CHANGES_PER_USER, 60, "every event done")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, log.read_text()
    store.close()

    extensions = simulator.extensions()
    for n in range(USERS):
        final = extensions[number(n, CHANGES_PER_USER - 1)]
        assert final["user_id"] == 100 + n and final["voice"] is True
        for change in range(CHANGES_PER_USER - 1):
            old = extensions.get(number(n, change))
            if old is not None:  # pushed before the later changes arrived: now stopped, still linked
                assert old["user_id"] == 100 + n and not old["voice"]
    assert all(c["user_id"] is not None for c in simulator.calls("updateExtension"))


def test_sigterm_lets_an_in_flight_push_finish_and_loses_nothing(tmp_path, simulator):
    config = write_config(tmp_path, simulator.url)
    simulator.fault(operation="createExtension", latency_ms=1500)
    ingest(config, tmp_path / "one.jsonl", range(0, 1))
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    process = start(config, tmp_path / "connector.log")
    try:
        wait_for(lambda: store.count_by_state()[EventState.IN_FLIGHT] > 0, 20, "a push in flight")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
    counts = store.count_by_state()
    store.close()
    # The pushes that were in flight finished and were recorded; the rest wait, none is lost.
    assert counts[EventState.IN_FLIGHT] == 0 and counts[EventState.DEAD] == 0
    assert counts[EventState.DONE] >= 1 and counts[EventState.DONE] + counts[EventState.PENDING] == USERS
    done = {c["extension"] for c in simulator.calls("createExtension") if c["status"] == "OK"}
    assert len(done) == counts[EventState.DONE]
