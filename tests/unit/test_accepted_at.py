"""An `accepted_at` in the future is refused at intake: an event is due at its accepted_at, so one sent in
milliseconds (or from a clock far ahead) would hold its user back for ever while the age alerts stay green, and no
command could clear it (a pending event is neither replayed nor discarded). A clock a few minutes ahead is fine, and
`events list` / `events show` say when a pending event not due yet is due."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import Result

from connector.config import load_config
from connector.events import MAX_CLOCK_SKEW_SECONDS, UserChange, check_accepted_at, parse_user_change
from connector.runtime import open_configured_store
from connector.store import EventState
from tests.ops.helpers import run, write_config
from tests.plugins.simulator import free_port

VALID = {"source": "hr", "external_id": "u90", "kind": "upsert", "state": {"userName": "u90@example.com"}}


def ingest(config: Path, *events: dict[str, object]) -> Result:
    path = config.parent / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return run(config, "events", "ingest", str(path))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path, f"http://127.0.0.1:{free_port()}/provisioning")
    open_configured_store(load_config(path, secrets=()), create=True).close()
    return path


def test_milliseconds_are_refused_with_what_to_send_instead() -> None:
    now = 1_796_131_000.0
    with pytest.raises(ValueError) as info:
        check_accepted_at(1_796_131_500_000, now)
    said = str(info.value)
    assert said.startswith("'accepted_at' is 1796131500000: 56,") and " years in the future" in said, said
    assert "It looks like milliseconds (1796131500 in seconds)." in said, said
    assert "Send seconds since the epoch (now: 1796131000), not milliseconds" in said, said


@pytest.mark.parametrize("ahead", [MAX_CLOCK_SKEW_SECONDS + 1, 3600.0, 10 * 365 * 86400.0])
def test_a_time_ahead_of_the_clock_by_more_than_the_skew_is_refused(ahead: float) -> None:
    now = time.time()
    with pytest.raises(ValueError, match=r"in the future \(more than 5 minutes ahead of this host's clock\)"):
        check_accepted_at(now + ahead, now)
    with pytest.raises(ValueError, match="'accepted_at' is"):
        parse_user_change({**VALID, "accepted_at": now + ahead})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_value_that_is_not_a_time_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="not a time; send seconds since the epoch"):
        check_accepted_at(value)


def test_the_past_and_a_clock_a_little_ahead_are_taken() -> None:
    now = time.time()
    for value in (0.0, 1_000.0, now - 86400, now, now + MAX_CLOCK_SKEW_SECONDS - 1):
        assert check_accepted_at(value, now) == value
    assert parse_user_change({**VALID, "accepted_at": int(now) + 60}).accepted_at == int(now) + 60
    assert abs(parse_user_change(VALID).accepted_at - now) < 60  # left out: the time it is accepted


def test_a_programmatic_change_in_the_future_is_a_value_error_and_nothing_is_stored(config: Path) -> None:
    future = UserChange("hr", "u90", "upsert", {"userName": "u90@example.com"}, accepted_at=time.time() * 1000)
    fine = UserChange("hr", "u91", "upsert", {"userName": "u91@example.com"})
    with open_configured_store(load_config(config, secrets=())) as store:
        with pytest.raises(ValueError, match=r"^the change of hr/u90: 'accepted_at' is .* milliseconds"):
            store.enqueue([fine, future])
        assert store.count_by_state()[EventState.PENDING] == 0  # all or nothing


def test_events_ingest_names_the_line_and_accepts_nothing(config: Path) -> None:
    result = ingest(config, {**VALID, "external_id": "u1"}, {**VALID, "accepted_at": 1_796_131_500_000})
    assert result.exit_code == 1, result.output  # as any malformed line
    path = config.parent / "events.jsonl"
    assert f"{path}:2: 'accepted_at' is 1796131500000: " in result.output, result.output
    assert "Send seconds since the epoch" in result.output and f"nothing from {path} was accepted" in result.output
    assert "pending=0" in run(config, "events", "list").output


def test_list_and_show_say_when_a_pending_event_not_due_yet_is_due(config: Path) -> None:
    soon = time.time() + 200  # within the skew: taken, due in about 3 minutes
    result = ingest(config, {**VALID, "accepted_at": soon})
    assert result.exit_code == 0, result.output
    [line] = [line for line in run(config, "events", "list").output.splitlines() if "hr/u90" in line]
    assert re.search(r"  pending  .*  attempts=0  \S+ \S+  due in 3\.[23]m \(\S+ \S+\)$", line), line
    shown = run(config, "events", "show", "1").output.splitlines()[0]
    assert "  due in 3." in shown, shown
