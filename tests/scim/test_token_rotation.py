"""SCIM token rotation without downtime: a token_file of several tokens, re-read when it changes and on SIGHUP."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from connector.config import ConfigError, ScimClient, ScimConfig, load_config
from connector.sources.scim import ScimTokens, create_scim_app
from connector.sources.scim.auth import CHECK_SECONDS, SETTLE_SECONDS, ClientTokens
from connector.store import Store
from tests.scim.helpers import BASE
from tests.scim.live import serve

OLD = "old-scim-token-4f1d0c2b9a"
NEW = "new-scim-token-8e7a65b3c1"


def write_atomically(path: Path, text: str) -> None:
    """As the README says to: a new file renamed over the old one, so that no reader sees half of it."""
    part = path.with_name(path.name + ".new")
    part.write_text(text)
    os.replace(part, path)


def config_with(tmp_path: Path, client: str) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(f"[[scim.clients]]\n{client}\n")
    return path


def test_a_token_file_holds_one_token_a_line(tmp_path):
    tokens = tmp_path / "entra.tokens"
    tokens.write_bytes(f"\ufeff  {OLD}  \r\n\n\t\n{NEW}\n{OLD}\n".encode())
    config = load_config(config_with(tmp_path, f'name = "entra"\ntoken_file = "{tokens}"'))
    (client,) = config.scim.clients
    assert client.tokens == (OLD, NEW) and client.token_file == str(tokens)
    assert OLD not in repr(config) and set(config.secrets()) >= {OLD, NEW}


def test_a_token_env_gives_one_token_read_at_start(tmp_path, monkeypatch):
    monkeypatch.setenv("ENTRA_SCIM_TOKEN", f" {OLD}\n")
    (client,) = load_config(config_with(tmp_path, 'name = "entra"\ntoken_env = "ENTRA_SCIM_TOKEN"')).scim.clients
    assert client.tokens == (OLD,) and client.token_file is None


@pytest.mark.parametrize("content", ["", "\n  \n\t\n"])
def test_a_token_file_without_a_token_is_a_config_problem(tmp_path, content):
    tokens = tmp_path / "entra.tokens"
    tokens.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(config_with(tmp_path, f'name = "entra"\ntoken_file = "{tokens}"'))
    assert f"scim.clients[0].token_file {str(tokens)!r} holds no token; put the client's bearer token in it" \
        in str(info.value)


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """SQLite alone, not each backend as in tests/scim/conftest.py."""
    return sqlite_store


def status(url: str, token: str) -> int:
    return httpx.get(f"{url}{BASE}/Users", params={"count": "1"}, headers={"Authorization": f"Bearer {token}"},
                     timeout=10).status_code


def wait_until(predicate, what: str, timeout: float = SETTLE_SECONDS + 2 * CHECK_SECONDS + 3) -> float:
    """Seconds until `predicate()` held."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - start


class IdentityProvider(threading.Thread):
    """Sends requests without a pause with the token it is set to, as an IdP does during a rotation."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.statuses: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.done.is_set():
                answer = http.get(f"{self.url}{BASE}/Users", params={"count": "1"},
                                  headers={"Authorization": f"Bearer {self.token}"})
                self.statuses.append(answer.status_code)

    def stop(self) -> list[int]:
        self.done.set()
        self.join(10)
        return self.statuses


def test_rotation_accepts_both_tokens_then_only_the_new_one_without_a_restart_or_a_failed_request(
    tmp_path, store, caplog
):
    caplog.set_level(logging.INFO, logger="connector.scim")
    tokens = tmp_path / "entra.tokens"
    tokens.write_text(OLD + "\n")
    config = load_config(config_with(tmp_path, f'name = "entra"\ntoken_file = "{tokens}"'))
    with serve(create_scim_app(store, config.scim)) as url:
        idp = IdentityProvider(url, OLD)
        idp.start()
        try:
            assert status(url, OLD) == 200 and status(url, NEW) == 401
            # 1. The new token as a second line: both are valid.
            write_atomically(tokens, f"{OLD}\n{NEW}\n")
            wait_until(lambda: status(url, NEW) == 200, "the new token to be accepted")
            assert status(url, OLD) == 200
            # 2. The identity provider switches to the new token.
            idp.token = NEW
            time.sleep(2 * CHECK_SECONDS)
            # 3. The old line goes, here written in place as an editor may: only the new token is valid.
            tokens.write_text(NEW + "\n")
            took = wait_until(lambda: status(url, OLD) == 401, "the old token to be refused")
            assert status(url, NEW) == 200
            time.sleep(CHECK_SECONDS)
        finally:
            statuses = idp.stop()
    assert took < SETTLE_SECONDS + 2 * CHECK_SECONDS + 1
    assert len(statuses) > 20 and set(statuses) == {200}, f"failed requests during the rotation: {set(statuses)}"
    messages = [record.getMessage() for record in caplog.records]
    assert any("SCIM client entra: 2 valid token(s)" in m for m in messages), messages
    assert any("SCIM client entra: 1 valid token(s)" in m for m in messages), messages
    assert not any(OLD in m or NEW in m for m in messages)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += CHECK_SECONDS


def age(path: Path) -> None:
    """Make the file look settled: changed a minute ago."""
    past = time.time() - 60
    os.utime(path, (past, past))


def test_an_unreadable_or_empty_token_file_keeps_the_last_good_tokens_and_logs_one_error(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="connector.scim")
    tokens = tmp_path / "entra.tokens"
    tokens.write_text(f"{OLD}\n{NEW}\n")
    clock = Clock()
    client = ClientTokens(ScimClient("entra", (OLD, NEW), token_file=str(tokens)), clock=clock)

    tokens.write_text(OLD[:5])  # just now: perhaps an editor still writing it, not read yet
    clock.tick()
    assert client.current() == (OLD.encode(), NEW.encode())
    tokens.write_text("\n")
    clock.tick()
    assert client.current() == (OLD.encode(), NEW.encode())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    age(tokens)  # still empty a minute later: that is a problem
    for _ in range(3):
        clock.tick()
        assert client.current() == (OLD.encode(), NEW.encode())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"SCIM client entra: token_file {str(tokens)!r} holds no token; put the client's bearer token "
                      "in it, one a line; its last good tokens (2) stay valid until it is fixed"]

    tokens.unlink()  # another problem: one more line
    for _ in range(3):
        clock.tick()
        assert client.current() == (OLD.encode(), NEW.encode())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and "cannot be read (No such file or directory); check the path" in errors[1]

    write_atomically(tokens, NEW)
    clock.tick()
    assert client.current() == (OLD.encode(), NEW.encode())  # written just now: read once it has been still
    age(tokens)
    assert client.current() == (OLD.encode(), NEW.encode())  # not looked at again within CHECK_SECONDS
    clock.tick()
    assert client.current() == (NEW.encode(),)
    messages = [r.getMessage() for r in caplog.records]
    assert "SCIM client entra: 1 valid token(s)" in messages[-1]
    assert not any(OLD in m or NEW in m for m in messages)


def test_reload_reads_the_file_at_once_and_a_token_env_needs_a_restart(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="connector.scim")
    tokens = tmp_path / "entra.tokens"
    tokens.write_text(OLD)
    clients = ScimTokens([ScimClient("entra", (OLD,), token_file=str(tokens)), ScimClient("okta", ("okta-token",))])
    assert clients.client_for(OLD.encode()) == "entra" and clients.client_for(NEW.encode()) is None
    write_atomically(tokens, NEW)
    clients.reload()  # SIGHUP: no need to wait for the next check
    assert clients.client_for(NEW.encode()) == "entra" and clients.client_for(OLD.encode()) is None
    assert clients.client_for(b"okta-token") == "okta" and clients.client_for(None) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("okta: its token comes from token_env and is read at start only; restart" in m for m in messages)


def test_create_scim_app_makes_its_tokens_from_the_config(tmp_path, store):
    """create_scim_app without a ScimTokens makes its own from the config, as the tests' fixtures use it."""
    config = ScimConfig(clients=(ScimClient("entra", (OLD, NEW)),))
    with serve(create_scim_app(store, config)) as url:
        assert status(url, OLD) == status(url, NEW) == 200 and status(url, "other") == 401


@pytest.mark.slow
def test_connector_run_rereads_the_token_file_on_sighup(tmp_path):
    from tests.plugins.simulator import free_port

    tokens = tmp_path / "entra.tokens"
    tokens.write_text(OLD + "\n")
    scim = free_port()
    config = tmp_path / "connector.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[logging]\nformat = "json"\n'
        f'[simulator]\nlisten = "127.0.0.1:{free_port()}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[scim]\nlisten = "127.0.0.1:{scim}"\n[[scim.clients]]\nname = "entra"\ntoken_file = "{tokens}"\n')
    process = subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{scim}"
    try:
        wait_until(lambda: _answers(url), "connector run to serve SCIM", timeout=30)
        assert status(url, OLD) == 200
        write_atomically(tokens, f"{NEW}\n")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: status(url, NEW) == 200, "the new token after SIGHUP")
        assert status(url, OLD) == 401 and process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "SCIM client entra: 1 valid token(s) from token_file" in output
    assert OLD not in output and NEW not in output


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
