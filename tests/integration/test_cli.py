"""The `connector` command as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import codecs
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from connector.store.queries import migrations
from tests.plugins.simulator import free_port

GOOD = {"source": "hr", "external_id": "u1", "kind": "upsert", "state": {"userName": "alice@example.com"}}


def connector(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                    f'[scim]\nlisten = "127.0.0.1:{free_port()}"\n{extra}')
    return path


def store_config(tmp_path: Path) -> Path:
    """A config whose store exists (as `connector run` or `db upgrade` leaves it): store commands refuse a missing
    one."""
    path = config_file(tmp_path)
    assert connector("db", "upgrade", "--config", str(path)).returncode == 0
    return path


def test_help_lists_the_commands():
    result = connector("--help")
    assert result.returncode == 0
    for command in ("run", "validate-config", "events", "mapping", "simulator", "db"):
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


def test_db_upgrade_creates_the_schema_and_is_safe_to_run_again(tmp_path):
    path = config_file(tmp_path)
    latest = len(migrations("sqlite"))
    for said in (f"{latest} migration(s) applied", "schema is up to date"):
        result = connector("db", "upgrade", "--config", str(path))
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"store sqlite:///{tmp_path / 'c.db'}: {said}\n"
    listed = connector("events", "list", "--config", str(path))
    assert listed.returncode == 0 and "pending=0" in listed.stdout


def test_an_older_schema_is_refused_until_db_upgrade_runs(tmp_path):
    path = config_file(tmp_path)
    with sqlite3.connect(tmp_path / "c.db") as raw:  # a store left by the connector before the last migration
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, statements in migrations("sqlite")[:-1]:
            for statement in statements:
                raw.execute(statement)
            raw.execute("INSERT INTO schema_version VALUES (?)", (version,))

    refused = connector("events", "list", "--config", str(path))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert (
        f"schema version {len(migrations('sqlite')) - 1}" in refused.stderr and "connector db upgrade" in refused.stderr
    )

    upgraded = connector("db", "upgrade", "--config", str(path))
    assert upgraded.returncode == 0 and "1 migration(s) applied" in upgraded.stdout
    assert connector("events", "list", "--config", str(path)).returncode == 0


def test_db_upgrade_says_what_it_does():
    result = connector("db", "upgrade", "--help")
    assert result.returncode == 0
    assert "Create the configured store's schema, or upgrade it" in result.stdout and "--config" in result.stdout


def test_a_broken_mapping_stops_run_before_anything_starts(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text("[environment]\neid = 0\n")
    path = config_file(tmp_path, f'[mapping]\nfile = "{mapping}"\n[simulator]\nlisten = "127.0.0.1:{free_port()}"\n')
    result = connector("run", "--config", str(path))
    assert result.returncode == 1
    assert str(mapping) in result.stderr and "eid" in result.stderr
    assert not (tmp_path / "c.db").exists()


def test_ingest_accepts_a_whole_file_and_skips_repeated_ids(tmp_path):
    path = store_config(tmp_path)
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(json.dumps({**GOOD, "external_id": f"u{n}", "id": f"k{n}"}) for n in range(3)) + "\n")
    first = connector("events", "ingest", "--config", str(path), str(events))
    assert first.returncode == 0 and "accepted 3 events" in first.stdout
    again = connector("events", "ingest", "--config", str(path), str(events))
    assert again.returncode == 0 and "accepted 0 events" in again.stdout and "3 already accepted" in again.stdout
    listed = connector("events", "list", "--config", str(path))
    assert "pending=3" in listed.stdout


def test_ingest_reports_malformed_lines_by_number_and_accepts_nothing(tmp_path):
    path = store_config(tmp_path)
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
    state.write_text(
        json.dumps(
            {"userName": "alice@example.com", "phoneNumbers": [{"type": "work", "value": "tel:+1 415 555 0100"}]}
        )
    )
    result = connector("mapping", "test", "--mapping", "mappings/default.toml", "--user", str(state), "--user-id", "3",
                       "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(r["extension"], r["user_id"]) for r in out["upserts"]] == [("+14155550100", 3)]
    without_id = connector("mapping", "test", "--mapping", "mappings/default.toml", "--user", str(state), "--json")
    assert without_id.returncode == 0, without_id.stderr
    out = json.loads(without_id.stdout)  # looked up by login name when pushed: a file's user is no one to ask yet
    assert [(r["extension"], r["user_id"]) for r in out["upserts"]] == [("+14155550100", None)]
    assert out["user_id"] is None and out["user_id_from"].startswith("listUsers loginName 'alice@example.com' when")


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
    assert f"http://127.0.0.1:{port}/provisioning (built-in simulator: in memory, back to its seed at every start)" \
        in out and "WARNING" not in out
    assert "stopped" in out


def test_run_names_its_store_without_the_password(tmp_path, postgres_server):
    url = postgres_server.create_schema()
    password = url.split("//")[1].split("@")[0].split(":")[1]
    path = config_file(tmp_path, f'[simulator]\nlisten = "127.0.0.1:{free_port()}"\n')
    path.write_text(path.read_text().replace(f"sqlite:///{tmp_path / 'c.db'}", url))
    process = subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in process.stdout:  # up to the banner's last line, or the end if it fails
            lines.append(line)
            if "running;" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=20)
    out = "".join(lines) + rest
    assert process.returncode == 0, out
    assert "store postgresql://postgres@127.0.0.1" in out and password not in out
    warning = next(json.loads(line) for line in out.splitlines() if "its own built-in simulator" in line)
    assert warning["level"] == "warning"  # not a terminal: a JSON log line
    assert warning["message"].startswith("every instance on this PostgreSQL store runs its own built-in simulator")


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


# --- events ingest: what Windows tools write, and standard input (issue 11 item 9) ---

def ingest_bytes(path: Path, source: str, data: bytes) -> subprocess.CompletedProcess[str]:
    """`connector events ingest SOURCE` with `data` on standard input (bytes exactly as given)."""
    result = subprocess.run([sys.executable, "-m", "connector.cli", "events", "ingest", "--config", str(path), source],
                            input=data, capture_output=True, timeout=60, check=False)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def ingested(tmp_path: Path) -> list[tuple[str, dict, str]]:
    from connector.store.sqlite import SQLiteStore

    with SQLiteStore(str(tmp_path / "c.db")) as store:
        store.migrate()  # a refused file leaves no store behind
        return sorted((e.change.external_id, e.change.state, e.change.cause) for e in store.list_events())


def windows_lines(*names: str) -> str:
    """JSON lines with CRLF ends, a last line without one, and non-ASCII text (the encodings must be right)."""
    return "\r\n".join(json.dumps({**GOOD, "external_id": n, "state": {"userName": f"{n}@example.com",
                                                                       "displayName": f"Zoë Ünal {n}"}},
                                  ensure_ascii=False) for n in names)


def expected(*names: str, cause: str) -> list[tuple[str, dict, str]]:
    return [(n, {"userName": f"{n}@example.com", "displayName": f"Zoë Ünal {n}"}, cause) for n in names]


def test_ingest_accepts_a_utf8_bom_and_crlf_line_ends(tmp_path):
    # What Windows PowerShell writes with Out-File -Encoding utf8 (and Notepad with "UTF-8 with BOM").
    path = store_config(tmp_path)
    events = tmp_path / "e.jsonl"
    events.write_bytes(codecs.BOM_UTF8 + (windows_lines("u1", "u2", "u3") + "\r\n\r\n").encode())
    result = connector("events", "ingest", "--config", str(path), str(events))
    assert result.returncode == 0, result.stderr
    assert f"{events}: accepted 3 events" in result.stdout
    assert ingested(tmp_path) == expected("u1", "u2", "u3", cause="ingest:e.jsonl")


def test_ingest_accepts_utf16_with_a_bom(tmp_path):
    # Windows PowerShell 5.1's `>` writes UTF-16 LE with a BOM.
    path = store_config(tmp_path)
    for n, encoding in enumerate(("utf-16-le", "utf-16-be")):
        events = tmp_path / f"e{n}.jsonl"
        events.write_bytes(("\ufeff" + windows_lines(f"u{n}") + "\r\n").encode(encoding))
        result = connector("events", "ingest", "--config", str(path), str(events))
        assert result.returncode == 0, result.stderr
        assert re.search(r"accepted 1 event \(evt-\d+\)$", result.stdout, re.M), result.stdout
    assert ingested(tmp_path) == [*expected("u0", cause="ingest:e0.jsonl"), *expected("u1", cause="ingest:e1.jsonl")]


def test_ingest_reads_standard_input_for_a_dash(tmp_path):
    path = store_config(tmp_path)
    # Two files joined (`type a.jsonl b.jsonl | connector events ingest -`), each with its BOM and CRLF.
    joined = b"\r\n".join(codecs.BOM_UTF8 + windows_lines(n).encode() for n in ("u1", "u2"))
    result = ingest_bytes(path, "-", joined)
    assert result.returncode == 0, result.stderr
    assert "<stdin>: accepted 2 events" in result.stdout
    assert ingested(tmp_path) == expected("u1", "u2", cause="ingest:stdin")
    again = ingest_bytes(path, "-", json.dumps({**GOOD, "external_id": "u3"}).encode())
    assert again.returncode == 0 and "accepted 1 event " in again.stdout
    empty = ingest_bytes(path, "-", b"")
    assert empty.returncode == 0 and "accepted 0 events" in empty.stdout


def test_ingest_errors_still_name_the_line_and_accept_nothing(tmp_path):
    path = store_config(tmp_path)
    lines = [json.dumps(GOOD), "{not json", json.dumps({**GOOD, "kind": "remove"}), "", json.dumps(GOOD)]
    events = tmp_path / "e.jsonl"
    events.write_bytes(codecs.BOM_UTF8 + "\r\n".join(lines).encode())
    from_file = connector("events", "ingest", "--config", str(path), str(events))
    assert from_file.returncode == 1 and "Traceback" not in from_file.stderr
    assert f"{events}:2: not valid JSON" in from_file.stderr and f"{events}:3:" in from_file.stderr
    assert f"{events}:1:" not in from_file.stderr and f"{events}:5:" not in from_file.stderr
    from_stdin = ingest_bytes(path, "-", "\r\n".join(lines).encode())
    assert from_stdin.returncode == 1 and "<stdin>:2: not valid JSON" in from_stdin.stderr
    assert "<stdin>:3:" in from_stdin.stderr and "nothing from <stdin> was accepted" in from_stdin.stderr
    assert ingested(tmp_path) == []


def test_ingest_names_the_line_of_bytes_that_are_not_utf8(tmp_path):
    path = store_config(tmp_path)
    events = tmp_path / "e.jsonl"
    latin1 = json.dumps({**GOOD, "state": {"userName": "zoë@example.com"}}, ensure_ascii=False).encode("latin-1")
    events.write_bytes(b"\r\n".join([json.dumps(GOOD).encode(), json.dumps(GOOD).encode(), latin1]))
    result = connector("events", "ingest", "--config", str(path), str(events))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{events}:3: not UTF-8 text" in result.stderr and "save the file as UTF-8" in result.stderr
    assert ingested(tmp_path) == []
    missing = connector("events", "ingest", "--config", str(path), str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.stderr


def test_a_run_that_cannot_listen_leaves_no_instance_behind(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        path = tmp_path / "busy.toml"
        path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                        f'[scim]\nlisten = "127.0.0.1:{taken}"\n[simulator]\nlisten = "127.0.0.1:{free_port()}"\n')
        result = connector("run", "--config", str(path))
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{taken} (scim.listen: Address already in use)" \
        in result.stderr
    assert "Errno" not in result.stderr  # uvicorn's own ERROR line no longer comes first
    status = json.loads(connector("status", "--config", str(path), "--json").stdout)
    assert status["instances"] == [] and status["nothing_runs"] is True


def test_init_run_again_over_identical_files_is_harmless_and_one_that_differs_is_refused(tmp_path):
    home = tmp_path / "c"
    assert connector("init", str(home)).returncode == 0
    again = connector("init", str(home))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"connector: {home / 'connector.toml'}, {home / 'simulator-seed.json'} and "
                                   f"{home / 'mappings'} are in place already, identical to what init writes: "
                                   "nothing written\n")
    assert "Next steps:" in again.stdout

    (home / "mappings" / "ad.toml").write_text("# mine\n")
    changed = connector("init", str(home))
    assert changed.returncode == 1
    assert (f"1 of the files to write exist already and differ from what init writes ({home / 'mappings' / 'ad.toml'}"
            "); nothing was written: pass --force") in changed.stderr
    assert (home / "mappings" / "ad.toml").read_text() == "# mine\n"
