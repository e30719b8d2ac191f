"""`connector events ingest` of a bad file: whatever is wrong with a line (not JSON, not an event, an accepted_at
in the future, a number JSON has not, bytes that are not UTF-8, a value the store cannot hold), it exits 1 with the
same shape of message, the line named, nothing accepted, never a traceback; --help states the exit statuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import main
from connector.config import load_config
from connector.runtime import open_configured_store
from connector.store import EventState
from tests.ops.helpers import run, unreachable_target, write_config

GOOD = json.dumps({"source": "hr", "external_id": "u1", "kind": "upsert", "state": {"userName": "u1@example.com"}})


def ingest(config: Path, data: bytes) -> Result:
    path = config.parent / "events.jsonl"
    path.write_bytes(data)
    return run(config, "events", "ingest", str(path))


def config_on(tmp_path: Path, store_url: str | None = None) -> Path:
    path = write_config(tmp_path, unreachable_target())
    if store_url is not None:
        path.write_text(path.read_text().replace(f"sqlite:///{tmp_path / 'c.db'}", store_url))
    open_configured_store(load_config(path, secrets=()), create=True).close()
    return path


def refused(result: Result, config: Path, line: str) -> str:
    """The one problem of a refused ingest, after "events.jsonl:N: " (or "events.jsonl: "), checked for the shape
    every bad line gets: exit 1, no traceback, nothing accepted, what to do."""
    path = config.parent / "events.jsonl"
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    [problem, summary] = result.output.removeprefix("Error: ").splitlines()
    assert problem.startswith(f"{path}{line}: "), problem
    assert summary == f"1 malformed line(s); nothing from {path} was accepted. Fix them and run again.", summary
    with open_configured_store(load_config(config, secrets=())) as store:
        assert store.count_by_state()[EventState.PENDING] == 0
    return problem.removeprefix(f"{path}{line}: ")


@pytest.mark.parametrize("bad, says", [
    pytest.param('{"source": "hr", "external_id": "u2", "state": {"userName": "a", "attributes": {"x": NaN}}}',
                 "not valid JSON (NaN is not a JSON number; send a number, or null)", id="NaN"),
    pytest.param('{"source": "hr", "external_id": "u2", "state": {"userName": "a", "attributes": {"x": -Infinity}}}',
                 "not valid JSON (-Infinity is not a JSON number; send a number, or null)", id="-Infinity"),
    pytest.param('{"source": "hr", "external_id": "u2", "state": {"userName": "a", "attributes": {"x": 1e999}}}',
                 "not valid JSON (1e999 is out of the range of a number)", id="1e999"),
    pytest.param('{"source": "hr", "external_id": "u2", "state": {"userName": "a"}, "accepted_at": 1' + "0" * 400
                 + "}", "not valid JSON (10000000000000000000... (401 characters) is out of the range of a number)",
                 id="an accepted_at of 401 digits"),
])
def test_a_number_json_has_not_is_a_bad_line_as_any_other(tmp_path: Path, bad: str, says: str) -> None:
    config = config_on(tmp_path)
    assert refused(ingest(config, f"{GOOD}\n{bad}\n".encode()), config, ":2") == says


def test_every_kind_of_bad_line_gets_the_same_exit_status_and_shape(tmp_path: Path) -> None:
    config = config_on(tmp_path)
    future = json.dumps({**json.loads(GOOD), "accepted_at": time.time() + 3600})
    assert refused(ingest(config, f"{GOOD}\n{future}\n".encode()), config, ":2").startswith("'accepted_at' is ")
    assert refused(ingest(config, f"{GOOD}\n{{not json\n".encode()), config, ":2").startswith("not valid JSON (")
    assert refused(ingest(config, b"[1]\n"), config, ":1") == "an event must be a JSON object"
    latin1 = GOOD.replace("u1@", "zo\u00eb@").encode("latin-1")
    assert refused(ingest(config, GOOD.encode() + b"\n" + latin1), config, ":2") == (
        "not UTF-8 text (invalid continuation byte); save the file as UTF-8")


NUL = "holds a NUL character (\\u0000), which the store cannot hold; the source must drop it"
SURROGATE = ("holds an unpaired surrogate ('\\ud800', half of a character), which the store cannot hold; the source "
             "must send the character whole")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("bad, says", [
    pytest.param({"external_id": "u\u00002"}, f"'external_id' {NUL}", id="NUL in external_id"),
    pytest.param({"state": {"userName": "a", "attributes": {"title": "Trader\u0000"}}},
                 f"'state.attributes.title' {NUL}", id="NUL in an attribute"),
    pytest.param({"state": {"userName": "a", "attributes": {"x\u0000": 1}}},
                 f"the key 'x\\x00' of 'state.attributes' {NUL}", id="NUL in an attribute's name"),
    pytest.param({"state": {"userName": "a", "phoneNumbers": [{"value": "+1\ud800"}]}},
                 f"'state.phoneNumbers[0].value' {SURROGATE}", id="unpaired surrogate in a number"),
    pytest.param({"external_id": "u\ud800"}, f"'external_id' {SURROGATE}", id="unpaired surrogate in external_id"),
])
def test_a_value_a_store_cannot_hold_is_named_by_its_line_on_either_store(
        tmp_path: Path, request: pytest.FixtureRequest, dialect: str, bad: dict[str, object], says: str) -> None:
    url = request.getfixturevalue("postgres_server").create_schema() if dialect == "postgresql" else None
    config = config_on(tmp_path, url)
    line = json.dumps({**json.loads(GOOD), **bad})
    assert refused(ingest(config, f"{GOOD}\n\n{line}\n{GOOD}\n".encode()), config, ":3") == says


def test_help_states_the_exit_statuses() -> None:
    shown = " ".join(CliRunner().invoke(main, ["events", "ingest", "--help"]).output.split())
    assert "Exit status: 0 when every event was accepted" in shown
    assert "1 when any line is bad (not JSON, not an event as above, an accepted_at more than 5 minutes ahead" in shown
    assert "2 on a usage error, such as a FILE that cannot be opened" in shown
