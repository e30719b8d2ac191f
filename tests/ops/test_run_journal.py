"""What `connector run` writes under systemd (stdout and stderr not terminals): JSON lines only, and a line for each
`systemctl reload` (SIGHUP) saying what it did."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from connector.config import Config
from connector.runtime import Connector
from connector.verba import VerbaAuthError
from tests.ops.helpers import wait_for
from tests.plugins.simulator import free_port


def test_the_journal_of_connector_run_holds_json_lines_only(tmp_path: Path) -> None:
    """The banner (`connector: store ...`, `connector: running; ...`, `connector: stopped`) was plain text on stdout
    between the JSON log lines on stderr: both go to the journal."""
    admin = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
                      f'[simulator]\nlisten = "127.0.0.1:{free_port()}"\n[admin]\nlisten = "127.0.0.1:{admin}"\n'
                      f'[scim]\nlisten = "127.0.0.1:{free_port()}"\n')
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
                                   stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: "running; stop with Ctrl-C" in err.read_text(), what="connector run to start")
        assert httpx.get(f"http://127.0.0.1:{admin}/livez").status_code == 200
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload (SIGHUP)" in err.read_text(), what="the reload's log line")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, err.read_text()
    assert out.read_text() == ""
    lines = [json.loads(line) for line in err.read_text().splitlines()]  # each line is JSON, or this fails
    said = {line["message"]: line for line in lines if line["logger"] == "connector"}
    assert f"store sqlite:///{tmp_path / 'c.db'}, instance {lines[0]['instance']}" in said
    assert "running; stop with Ctrl-C or SIGTERM (in-flight pushes finish first)" in said
    assert said["stopped"]["level"] == "info"
    reload = said["reload (SIGHUP): nothing to reload: no SCIM client has a token_file and no password was refused; "
                  "other config changes take a restart (systemctl restart)"]
    assert reload["level"] == "info"


def test_a_reload_says_what_it_read_again_and_which_refused_passwords_it_sends_again(
        tmp_path: Path, make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "entra-token").write_text("entra-token-0123456789abcdef\n")
    (tmp_path / "verba-password").write_text("Wr0ng-and-Secret-77")
    config = make_config(scim={"clients": [{"name": "entra", "token_file": str(tmp_path / "entra-token")}]})
    connector = Connector(config)
    try:
        with pytest.raises(VerbaAuthError):
            connector.client.probe()
        with caplog.at_level(logging.INFO, logger="connector"):
            connector.reload()
    finally:
        connector.client.close()
        connector.store.close()
    assert ("reload (SIGHUP): re-read the token_file of SCIM clients entra; the Verba password refused last is sent "
            "again at the next login; other config changes take a restart (systemctl restart)") in caplog.messages
