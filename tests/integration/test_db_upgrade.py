"""`connector db upgrade` on a store in use: refused while a connector runs on it (an old connector writing to the
new schema fails, or loses changes), on both backends; a store already up to date is left as it is."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.store import Instance, open_store
from connector.store.queries import migrations
from connector.store.sqlite import SQLiteStore

LIVENESS = 30.0


def upgrade(tmp_path: Path, store_url: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "connector.toml"
    config.write_text(f'[store]\nurl = "{store_url}"\n[target]\nurl = "http://127.0.0.1:9/provisioning"\n'
                      'login = "connector"\npassword_env = "VERBA_PASSWORD"\n'  # db upgrade reads no secret
                      f'[instance]\nliveness_seconds = {LIVENESS}\n')
    return subprocess.run([sys.executable, "-m", "connector.cli", "db", "upgrade", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


def behind(store_url: str) -> None:
    """The store as the connector before the newest migration left it."""
    with open_store(store_url) as store, store._write() as conn:
        conn.execute(store._q["schema_version"])
        for version, statements in migrations(store.dialect)[:-1]:
            for statement in statements:
                conn.execute(statement)
            conn.execute(store._q["add_version"], (version,))


def version(store_url: str) -> int:
    with open_store(store_url, create=False) as store, store._read() as conn:
        return int(conn.execute(store._q["current_version"]).fetchone()["version"])


def test_an_upgrade_waits_until_no_connector_runs_on_the_store(tmp_path: Path, store_url: str) -> None:
    behind(store_url)
    with open_store(store_url, create=False) as store:
        with store._write() as conn:  # registered as the connector before the newest migration did
            conn.execute(store._q["put_instance"], ("trader-floor", "run-1", "host-7", 4242, time.time(), time.time()))
        refused = upgrade(tmp_path, store_url)
        assert refused.returncode == 1, refused.stderr
        assert "trader-floor on host-7 (pid 4242, heard from" in refused.stderr
        assert "stop every one, run this again" in refused.stderr and "Traceback" not in refused.stderr
        assert version(store_url) == len(migrations(store.dialect)) - 1  # nothing applied
        with store._write() as conn:  # a clean stop
            conn.execute(store._q["forget_instances"])
    done = upgrade(tmp_path, store_url)
    assert done.returncode == 0 and "1 migration(s) applied" in done.stdout, done.stderr


def test_a_store_up_to_date_is_left_as_it_is_while_connectors_run(tmp_path: Path, store_url: str) -> None:
    with open_store(store_url) as store:
        store.migrate()
        store.register_instance(Instance("trader-floor", "run-1", "host-7", 4242), LIVENESS, lambda previous: True)
        again = upgrade(tmp_path, store_url)
    assert again.returncode == 0 and "schema is up to date" in again.stdout, again.stderr


def test_a_connector_holding_a_sqlite_file_stops_an_upgrade_of_it(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'connector.db'}"
    behind(store_url)
    running = SQLiteStore(str(tmp_path / "connector.db"), create=False)
    try:
        running._lock_instance()  # what `connector run` holds for its life (start_instance), whatever its version
        refused = upgrade(tmp_path, store_url)
    finally:
        running.close()
    assert refused.returncode == 1
    assert f"a connector (pid {os.getpid()}) is running on the store" in refused.stderr
    assert upgrade(tmp_path, store_url).returncode == 0
    assert (tmp_path / "connector.db.instance").exists()  # connector run's, left as it was


def test_an_upgrade_leaves_no_lock_file_of_its_own(tmp_path: Path) -> None:
    """Run as root, one would keep the service user's `connector run` from opening it."""
    store_url = f"sqlite:///{tmp_path / 'connector.db'}"
    behind(store_url)
    assert upgrade(tmp_path, store_url).returncode == 0
    assert not (tmp_path / "connector.db.instance").exists()


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_server").create_schema())
    return f"sqlite:///{tmp_path / 'connector.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
