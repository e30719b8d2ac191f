"""The `connector` command as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import free_port

GOOD = {"source": "hr", "external_id": "u1", "kind": "upsert", "state": {"userName": "alice@example.com"}}


def connector(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                    f'[scim]\nlisten = "127.0.0.1:{free_port()}"\n{extra}')
    return path


def test_help_lists_the_commands():
    result = connector("--help")
    assert result.returncode == 0
    for command in ("run", "validate-config", "events", "mapping", "simulator"):
        assert command in result.stdout


def test_validate_config_accepts_the_shipped_default():
    result = connector("validate-config", "--config", "config/connector.toml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_validate_config_names_file_key_and_fix_and_exits_1(tmp_path):
    path = config_file(tmp_path, "[delivery]\nworkers = 0\n")
    result = connector("validate-config", "--config", str(path))
    assert result.returncode == 1
    assert str(path) in result.stderr and "delivery.workers" in result.stderr and "at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_mapping_stops_run_before_anything_starts(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text("[environment]\neid = 0\n")
    path = config_file(tmp_path, f'[mapping]\nfile = "{mapping}"\n[simulator]\nlisten = "127.0.0.1:{free_port()}"\n')
    result = connector("run", "--config", str(path))
    assert result.returncode == 1
    assert str(mapping) in result.stderr and "eid" in result.stderr
    assert not (tmp_path / "c.db").exists()


def test_ingest_accepts_a_whole_file_and_skips_repeated_ids(tmp_path):
    path = config_file(tmp_path)
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(json.dumps({**GOOD, "external_id": f"u{n}", "id": f"k{n}"}) for n in range(3)) + "\n")
    first = connector("events", "ingest", "--config", str(path), str(events))
    assert first.returncode == 0 and "accepted 3 events" in first.stdout
    again = connector("events", "ingest", "--config", str(path), str(events))
    assert again.returncode == 0 and "accepted 0 events" in again.stdout and "3 already accepted" in again.stdout
    listed = connector("events", "list", "--config", str(path))
    assert "pending=3" in listed.stdout


def test_ingest_reports_malformed_lines_by_number_and_accepts_nothing(tmp_path):
    path = config_file(tmp_path)
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join([
        json.dumps(GOOD),
        "{not json",
        json.dumps({**GOOD, "kind": "remove"}),
        json.dumps(GOOD),
    ]) + "\n")
    result = connector("events", "ingest", "--config", str(path), str(events))
    assert result.returncode == 1
    assert f"{events}:2: not valid JSON" in result.stderr
    assert f"{events}:3:" in result.stderr and "remove" in result.stderr
    assert "nothing from" in result.stderr
    listed = connector("events", "list", "--config", str(path))
    assert "pending=0" in listed.stdout


def test_mapping_test_prints_the_records_of_a_user(tmp_path):
    state = tmp_path / "u.json"
    state.write_text(json.dumps({"userName": "alice@example.com", "phoneNumbers": [{"type": "work", "value": "tel:+1 415 555 0100"}]}))
    result = connector("mapping", "test", "--mapping", "mappings/default.toml", "--user", str(state), "--user-id", "3")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(r["extension"], r["user_id"]) for r in out["upserts"]] == [("+14155550100", 3)]
    without_id = connector("mapping", "test", "--mapping", "mappings/default.toml", "--user", str(state))
    assert without_id.returncode == 1 and "--user-id" in without_id.stderr


def test_make_run_style_start_serves_the_simulator_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    path = config_file(tmp_path, f'[simulator]\nlisten = "127.0.0.1:{port}"\nseed = "config/simulator-seed.json"\n')
    process = subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                wsdl = httpx.get(f"http://127.0.0.1:{port}/provisioning?wsdl")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert wsdl.status_code == 200 and "createExtension" in wsdl.text
        events = tmp_path / "e.jsonl"
        events.write_text(json.dumps({**GOOD, "state": {"userName": "alice@example.com",
                                                       "phoneNumbers": [{"type": "work", "value": "+14155550100"}]}}))
        assert connector("events", "ingest", "--config", str(path), str(events)).returncode == 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = httpx.get(f"http://127.0.0.1:{port}/_sim/state").json()
            if state["extensions"]:
                break
            time.sleep(0.1)
        assert [e["user_id"] for e in state["extensions"]] == [3]
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert f"http://127.0.0.1:{port}/provisioning (built-in simulator)" in out
    assert "stopped" in out


def test_a_broken_simulator_seed_is_a_clear_error(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text("[1, 2]")
    result = connector("simulator", "--port", str(free_port()), "--seed", str(seed))
    assert result.returncode == 1
    assert str(seed) in result.stderr and "Traceback" not in result.stderr


def test_a_second_connector_on_one_sqlite_store_is_refused_and_the_first_keeps_running(tmp_path):
    port = free_port()
    path = config_file(tmp_path, f'[simulator]\nlisten = "127.0.0.1:{port}"\n')
    first = subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "c.db.instance").exists() or not (tmp_path / "c.db.instance").read_text():
            assert time.monotonic() < deadline and first.poll() is None, "the first connector did not start"
            time.sleep(0.1)
        second = connector("run", "--config", str(path))
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"another connector (pid {first.pid}) is running on the store" in second.stderr
        assert "PostgreSQL" in second.stderr
        assert first.poll() is None, "the first connector keeps running"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=20)
    assert first.returncode == 0
