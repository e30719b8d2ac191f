"""The read-only commands (`status`, `events list`/`show`, `audit`, `ldap status`) work in an on-call shell that
lacks the secrets of the config: a SCIM client's token env var, the Verba password file, an LDAP bind password;
a command that calls Verba needs Verba's secret alone. A store command never creates a store: a mistyped
[store] url is an error, not a healthy empty store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from connector.config import load_config
from connector.runtime import open_configured_store
from tests.ops.helpers import cli, unreachable_target, write_config
from tests.plugins.simulator import free_port

EVENT = {"source": "hr", "external_id": "u-alice",
         "state": {"userName": "alice@example.com", "phoneNumbers": [{"type": "work", "value": "+14155550100"}]}}


def test_read_only_commands_need_no_secret_and_the_others_still_do(tmp_path: Path) -> None:
    target = unreachable_target()  # nothing listens: nothing may call it anyway
    full = write_config(tmp_path, target)
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(EVENT) + "\n")
    assert cli("db", "upgrade", "--config", str(full)).returncode == 0  # the store; `connector run` would make it
    ingested = cli("events", "ingest", "--config", str(full), str(events))
    assert ingested.returncode == 0, ingested.stderr

    oncall = tmp_path / "oncall.toml"  # the same store; secrets the on-call shell does not have
    oncall.write_text(
        full.read_text().replace(f'password_file = "{tmp_path / "pw"}"', f'password_file = "{tmp_path / "gone"}"')
        + '[[scim.clients]]\nname = "entra"\ntoken_env = "CONNECTOR_TEST_UNSET_SCIM_TOKEN"\n'
        + f'[[scim.clients]]\nname = "okta"\ntoken_file = "{tmp_path / "no-such-token-file"}"\n'
        + f'[ldap.corp]\nurl = "ldap://127.0.0.1:{free_port()}"\nbase = "dc=corp"\nbind_dn = "cn=reader"\n'
        'password_env = "CONNECTOR_TEST_UNSET_LDAP_PASSWORD"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_TEST_UNSET_")}

    status = cli("status", "--config", str(oncall), env=env)
    assert status.returncode == 0, status.stderr
    assert "queue: pending=1" in status.stdout and "clients: entra, okta" in status.stdout
    assert "source ldap.corp: never run" in status.stdout
    assert f"target: {target} unknown: no running connector has recorded a probe" in status.stdout
    as_json = json.loads(cli("status", "--config", str(oncall), "--json", env=env).stdout)
    assert as_json["counts"]["pending"] == 1 and as_json["target"]["probes"] == []

    listed = cli("events", "list", "--config", str(oncall), env=env)
    assert listed.returncode == 0 and "hr/u-alice (alice@example.com)" in listed.stdout, listed.stderr
    [event] = json.loads(cli("events", "list", "--config", str(oncall), "--json", env=env).stdout)["events"]
    shown = cli("events", "show", "--config", str(oncall), str(event["id"]), env=env)
    assert shown.returncode == 0 and "+14155550100" in shown.stdout, shown.stderr
    audit = cli("audit", "--config", str(oncall), env=env)
    assert audit.returncode == 0 and "no audit entries" in audit.stdout, audit.stderr
    directories = cli("ldap", "status", "--config", str(oncall), env=env)
    assert directories.returncode == 0 and "corp (" in directories.stdout and "never run" in directories.stdout, \
        directories.stderr

    # Every other check of the config stands for them.
    broken = tmp_path / "broken.toml"
    broken.write_text(oncall.read_text().replace("[delivery]\n", "[delivery]\nsurprise = 1\n"))
    refused = cli("status", "--config", str(broken), env=env)
    assert refused.returncode == 1 and "unknown key delivery.surprise" in refused.stderr

    # A command that calls Verba needs Verba's password, and says which; checking the config for a run needs
    # every secret. (A replay reads it only once it has an event to replay: one with nothing to replay calls nothing.)
    with open_configured_store(load_config(full)) as store:
        store.dead_letter(store.claim("test", time.time(), 60), "mapping", "no phone number")
    replay = cli("events", "replay", "--state", "dead", "--reason", "fixed", "--config", str(oncall), env=env)
    assert replay.returncode == 1 and "gone" in replay.stderr and "SCIM" not in replay.stderr, replay.stderr
    validate = cli("validate-config", "--config", str(oncall), env=env)
    assert validate.returncode == 1
    assert "CONNECTOR_TEST_UNSET_SCIM_TOKEN" in validate.stderr and "gone" in validate.stderr
    assert "CONNECTOR_TEST_UNSET_LDAP_PASSWORD" in validate.stderr
    assert "Traceback" not in replay.stderr + validate.stderr


def test_a_store_command_refuses_a_store_that_does_not_exist_and_creates_nothing(tmp_path: Path, config: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text(config.read_text().replace('c.db"', 'missing/cc.db"'))
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(EVENT) + "\n")
    for command in (["status", "--check"], ["events", "list"], ["events", "ingest", str(events)], ["audit"]):
        result = cli(*command, "--config", str(typo))
        assert result.returncode == 1, (command, result.stdout)
        assert f"there is no store at {tmp_path / 'missing' / 'cc.db'}: check [store] url" in result.stderr, command
        assert "Traceback" not in result.stderr
    monitored = cli("status", "--check", "--json", "--config", str(typo))
    assert monitored.returncode == 1 and json.loads(monitored.stdout) == {
        "ok": False, "error": f"there is no store at {tmp_path / 'missing' / 'cc.db'}: check [store] url, which may "
                              "name the wrong store; `connector run` or `connector db upgrade --config <your config>` "
                              "creates a new one"}
    assert not (tmp_path / "missing").exists()  # nothing was created in its place
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "cc.db").touch()  # an empty file, e.g. left by a restore that failed
    empty = cli("events", "list", "--config", str(typo))
    assert empty.returncode == 1 and f"the store {tmp_path / 'missing' / 'cc.db'} is empty: check" in empty.stderr
    assert [p.name for p in (tmp_path / "missing").iterdir()] == ["cc.db"] and not (tmp_path / "missing" / "cc.db"
                                                                                    ).stat().st_size


def test_a_relative_store_path_missing_says_which_directory_it_was_read_from(tmp_path: Path, config: Path) -> None:
    """On-call runs `connector status --config /etc/...` from another directory: the relative default store path
    then names a file there, and the error must say so before anyone creates a new, empty store."""
    relative = tmp_path / "relative.toml"
    relative.write_text(config.read_text().replace(f'url = "sqlite:///{tmp_path / "c.db"}"',
                                                   'url = "sqlite:///var/connector.db"'))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "var").mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "connector.cli", "status", "--config", str(relative)],
                            capture_output=True, text=True, timeout=60, cwd=elsewhere)
    assert result.returncode == 1, result.stdout
    assert (f"there is no store at var/connector.db ({elsewhere / 'var' / 'connector.db'}: a relative path is read "
            f"from the working directory, {elsewhere}): check [store] url") in result.stderr, result.stderr
