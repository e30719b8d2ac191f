"""The connector and the Verba simulator as child processes: start, SIGKILL, restart.

Both run with the interpreter running the campaign, so `PYTHONPATH` picks which code is tested.
Their output goes to log files in the campaign's work directory.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from connector.simulator.process import free_port

SIM_PASSWORD = "chaos-api-pa55"
SCIM_TOKEN = "chaos-scim-token-0123456789abcdef"
FUZZ_TOKEN = "chaos-fuzz-token-fedcba9876543210"  # the `fuzz` client of malformed.py


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    """Wait until 127.0.0.1:port accepts connections; raise with the log's hint if `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before listening on port {port}; "
                               "see its log in the campaign's work directory")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} does not listen on port {port} after {timeout} s") from None
            time.sleep(0.02)


class Simulator:
    """The Verba simulator (`python -m connector.cli simulator`) on a fixed port.

    `stop()` kills the process (connections are refused); `start()` brings it back on the same
    port with the state it had, carried over as a seed file (extension ids may change; users,
    links and recording settings do not).
    """

    def __init__(self, workdir: Path, users: list[dict[str, Any]], seed: int) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/provisioning"
        self.seed = seed
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        self.calls_before: list[dict[str, Any]] = []  # the call logs of earlier processes
        self._write_seed({"users": users, "extensions": []})

    def _write_seed(self, state: dict[str, Any]) -> None:
        extensions = [{key: ext[key] for key in ("eid", "extension", "recordingMode", "voice", "im", "video",
                                                 "screenCaptureEnabled", "user_id")}
                      for ext in state.get("extensions", [])]
        seed = {"environments": [{"eid": "0000", "shortName": "default"}],
                "api_users": [{"loginName": "connector", "password": SIM_PASSWORD}],
                "users": state["users"], "extensions": extensions}
        (self.workdir / "sim-seed.json").write_text(json.dumps(seed))

    def start(self) -> None:
        with (self.workdir / "simulator.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "simulator", "--port", str(self.port),
                 "--seed", str(self.workdir / "sim-seed.json")],
                stdout=log, stderr=subprocess.STDOUT)
        wait_listening(self.port, self.process, "the simulator")

    def stop(self) -> None:
        """Save the state and call log, then SIGKILL the simulator: Verba refuses connections."""
        state = self.state()
        self.calls_before += self.http.get("/_sim/calls").raise_for_status().json()
        self._write_seed({"users": state["users"], "extensions": state["extensions"]})
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def state(self) -> dict[str, Any]:
        return dict(self.http.get("/_sim/state").raise_for_status().json())

    def calls(self) -> list[dict[str, Any]]:
        """Every call this simulator answered, across restarts."""
        return self.calls_before + list(self.http.get("/_sim/calls").raise_for_status().json())

    def faults(self, *rules: dict[str, Any]) -> None:
        self.http.post("/_sim/faults", json=list(rules)).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_sim/faults").raise_for_status()

    def expire_tokens(self) -> int:
        return int(self.http.post("/_sim/expire-tokens").raise_for_status().json()["expired"])

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.http.close()


class Connector:
    """`python -m connector.cli run --config F` with SCIM and admin on free ports.

    With a `name`, the config says `[instance] name = NAME` (and `instance` adds keys such as
    heartbeat_seconds and liveness_seconds), and the config and log are connector-NAME.toml and
    connector-NAME.log, so several instances on one shared store can run from one work directory.
    Without one, they are connector.toml and connector.log and there is no [instance] table.
    `target` adds [target] keys (e.g. timeout_seconds).
    """

    def __init__(self, workdir: Path, store_url: str, target_url: str, delivery: dict[str, Any],
                 ldap: dict[str, Any] | None = None, *, name: str | None = None,
                 instance: dict[str, Any] | None = None, target: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.name = name
        self.scim_port = free_port()
        self.admin_port = free_port()
        self.scim_url = f"http://127.0.0.1:{self.scim_port}/scim/v2"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        stem = "connector" if name is None else f"connector-{name}"
        self.config = workdir / f"{stem}.toml"
        self.log = workdir / f"{stem}.log"
        (workdir / "sim-password").write_text(SIM_PASSWORD)
        (workdir / "scim-token").write_text(SCIM_TOKEN)
        (workdir / "fuzz-token").write_text(FUZZ_TOKEN)
        instance_keys = {**({} if name is None else {"name": name}), **(instance or {})}
        lines = [
            *(["[instance]", *_keys(instance_keys)] if instance_keys else []),
            "[store]", f"url = {json.dumps(store_url)}",
            "[target]", f"url = {json.dumps(target_url)}", 'login = "connector"',
            f"password_file = {json.dumps(str(workdir / 'sim-password'))}", *_keys(target or {}),
            "[delivery]", *_keys(delivery),
            "[admin]", f'listen = "127.0.0.1:{self.admin_port}"',
            "[scim]", f'listen = "127.0.0.1:{self.scim_port}"',
            "[[scim.clients]]", 'name = "idp"', f"token_file = {json.dumps(str(workdir / 'scim-token'))}",
            "[[scim.clients]]", 'name = "fuzz"', f"token_file = {json.dumps(str(workdir / 'fuzz-token'))}",
            "[logging]", 'format = "json"',
            *(["[ldap.corp]", *_keys(ldap)] if ldap else []),
        ]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as log:
            command = [sys.executable, "-m", "connector.cli", "run", "--config", str(self.config)]
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        try:
            wait_listening(self.scim_port, self.process, self.what)
        except RuntimeError as exc:
            tail = self.log.read_text(errors="replace").splitlines()[-5:] if self.log.exists() else []
            raise RuntimeError("\n".join([f"{exc} ({self.log})", *tail])) from None

    @property
    def what(self) -> str:
        return "the connector" if self.name is None else f"connector instance {self.name}"

    @property
    def pid(self) -> int | None:
        """The running process's id (None: never started or exited)."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def threads(self) -> int:
        """How many threads the running process has (0: not running)."""
        pid = self.pid
        try:
            return len(os.listdir(f"/proc/{pid}/task")) if pid is not None else 0
        except OSError:
            return 0

    def connections_to(self, port: int) -> int:
        """How many established TCP connections the running process has to `port` (e.g. its PostgreSQL
        store's), from /proc (Linux); 0 when it is not running."""
        pid = self.pid
        if pid is None:
            return 0
        inodes: set[str] = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):  # closed meanwhile
                    inodes.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            rows = [line.split() for name in ("tcp", "tcp6")
                    for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]]
        except OSError:  # it exited meanwhile
            return 0
        return sum(1 for row in rows if int(row[2].rsplit(":", 1)[1], 16) == port and row[3] == "01"
                   and f"socket:[{row[9]}]" in inodes)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def stop(self) -> int:
        """SIGTERM and wait; return the exit status."""
        if self.process is None or self.process.poll() is not None:
            return 0 if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def cli(self, *args: str) -> Any:
        """Run `connector ARGS --config F --json` and return its JSON."""
        command = [sys.executable, "-m", "connector.cli", *args, "--config", str(self.config), "--json"]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"connector {' '.join(args)} ({self.config.name}) failed ({done.returncode}): "
                               f"{done.stderr.strip()}")
        return json.loads(done.stdout)

    def status(self) -> dict[str, Any]:
        return dict(self.cli("status"))

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log records so far, each with `at`: its time as Unix seconds."""
        records = []
        for line in (self.log.read_text(errors="replace").splitlines() if self.log.exists() else []):
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                stamp = datetime.datetime.fromisoformat(record["time"].replace("Z", "+00:00"))
                records.append({**record, "at": stamp.timestamp()})
        return records

    def log_errors(self) -> tuple[list[str], list[str]]:
        """Log records of the connector with an exception: (store-full ones, all others).

        A store that cannot be written because the disk is full is what the full-disk phase
        causes; every other exception is a finding.
        """
        store_full: list[str] = []
        others: list[str] = []
        for line in (self.log.read_text(errors="replace").splitlines() if self.log.exists() else []):
            if '"exception"' not in line and "Traceback" not in line:
                continue
            full = "StoreError" in line and "database or disk is full" in line
            (store_full if full else others).append(line)
        return store_full, others


def _keys(table: dict[str, Any]) -> list[str]:
    """TOML lines `key = value` (JSON spells strings, numbers and booleans as TOML does)."""
    return [f"{key} = {json.dumps(value)}" for key, value in table.items()]
