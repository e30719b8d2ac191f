"""On-call test helpers: a config file for a connector on a SQLite store, the CLI in this process or as a
subprocess, events in the states on-call acts on, waiting."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from connector.cli import main
from connector.events import UserChange
from connector.store import EventState, Store
from tests.plugins.simulator import PASSWORD, drain, free_port, user


def unreachable_target() -> str:
    """A Verba URL on a free port of this host: nothing answers there."""
    return f"http://127.0.0.1:{free_port()}/provisioning"


def write_config(tmp_path: Path, target_url: str, *, admin_port: int | None = None, extra: str = "",
                 name: str = "connector.toml") -> Path:
    """A config for the store tmp_path/c.db (whatever its name) and the target at `target_url`."""
    (tmp_path / "pw").write_text(PASSWORD)
    path = tmp_path / name
    path.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
        f'[target]\nurl = "{target_url}"\nlogin = "connector"\npassword_file = "{tmp_path / "pw"}"\n'
        'timeout_seconds = 3\n'
        f'[admin]\nlisten = "127.0.0.1:{admin_port or free_port()}"\n[scim]\nlisten = "127.0.0.1:{free_port()}"\n'
        '[delivery]\nworkers = 2\nmax_attempts = 2\nbackoff_base_seconds = 0.05\nbackoff_max_seconds = 0.1\n'
        'idle_poll_seconds = 0.02\n' + extra
    )
    return path


def run(config: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    """`connector ARGS --config CONFIG` in this process (click's CliRunner); `env` sets (None unsets) variables."""
    return CliRunner().invoke(main, [*args, "--config", str(config)], env=env)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`connector ARGS` as a subprocess, as on a server; its output is text."""
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def change(external_id: str, source: str = "hr") -> UserChange:
    """An upsert of user `external_id` of `source`, its userName external_id@example.com."""
    return UserChange(source, external_id, "upsert", {"userName": f"{external_id}@example.com"})


def dead_letters(store: Store, cause: str, *external_ids: str, source: str = "hr") -> list[int]:
    """Dead letters of `cause`, one per user (its message "<external_id>: <cause>"); their ids."""
    ids = store.enqueue([change(e, source) for e in external_ids])
    while (claim := store.claim("test", time.time() + 60, 60)) is not None:
        store.dead_letter(claim, cause, f"{claim.external_id}: {cause}")
    return ids


def delivered(store: Store) -> list[str]:
    """What the running connector does, without a Verba: claim each due user and mark it done. Their external ids,
    in the order claimed."""
    users = []
    while (claim := store.claim("test", time.time() + 60, 60)) is not None:
        users.append(claim.external_id)
        store.complete(claim, [], None)
    return users


def wait_for(predicate: Callable[[], Any], timeout: float = 20, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def bob_dead_lettered(deliverer: Any, simulator: Any, bob_number: str) -> Any:
    """alice pushed, then bob's first push refused by Verba (ERROR_ILLEGAL_ARGUMENT): bob's dead letter."""
    deliverer.store.enqueue([user()])
    drain(deliverer)
    simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT", message="Unknown mode")
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(bob_number,))])
    drain(deliverer)
    simulator.clear_faults()
    [dead] = deliverer.store.list_events(state=EventState.DEAD)
    return dead
