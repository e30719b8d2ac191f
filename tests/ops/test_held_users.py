"""A held event holds back its user's later events, and on-call sees it: `events list` / `events show` mark each
waiting event with the held one it waits behind, `status` counts them under the held events (and `--check` names
them, not as delivery falling behind), whichever guard held the event (the stop-recording guard, or the LDAP
mass-change guard, which leaves no cause)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from connector.events import UserChange
from connector.store import EventState, Instance, Store
from tests.ops.helpers import run

LONG_AGO = time.time() - 3600  # accepted an hour ago: far older than --max-pending-age


def change(user: str, n: int, *, active: bool = True) -> UserChange:
    return UserChange("entra", user, "upsert" if active else "deactivate",
                      {"userName": f"{user}@example.com", "displayName": f"{user} {n}", "active": active},
                      accepted_at=LONG_AGO + n, cause="test")


@pytest.fixture
def store(store: Store) -> Store:
    """The shared store (tests/ops/conftest.py), with an instance running on it."""
    store.register_instance(Instance("vm", "run-vm", "vm1", 101), 15, lambda previous: True)
    return store


def held_by_the_guard(store: Store, user: str) -> int:
    """The user's stop, held by the stop-recording guard as the worker holds a claim; its id."""
    [stop] = store.enqueue([change(user, 1, active=False)])
    claim = store.claim("run-vm/1", time.time(), 60)
    assert claim is not None and claim.event_ids == (stop,)
    store.hold(claim, "stop_recording_guard", "source 'entra' would stop recording 11 of about 30 recorded users")
    return stop


def test_status_list_and_show_say_which_events_wait_behind_a_held_one(config: Path, store: Store) -> None:
    stop = held_by_the_guard(store, "u39")
    later = store.enqueue([change("u39", 2, active=False), change("u39", 3, active=False)])

    status = json.loads(run(config, "status", "--json").output)
    assert status["waiting_behind_held"] == {"events": 2, "users": 1}
    assert status["oldest_pending_age_seconds"] is None  # they wait for on-call, not for delivery
    check = run(config, "status", "--check", "--max-pending-age", "60")
    assert check.exit_code == 3, check.output
    [held] = [line for line in check.output.splitlines() if "held by a guard" in line]
    assert held.endswith("then approve or discard them; 2 other event(s) of 1 held user(s) wait behind their held "
                         "event, not pushed until it is approved (then each user's newest state is pushed once) or "
                         "discarded (then they are pushed as usual); `connector events list --state pending` marks "
                         "them"), held
    assert "oldest undelivered" not in check.output

    listed = json.loads(run(config, "events", "list", "--json").output)["events"]
    assert {e["id"]: e["waits_behind"] for e in listed} == {stop: None, later[0]: stop, later[1]: stop}
    lines = run(config, "events", "list", "--state", "pending").output.splitlines()
    assert sum(line.endswith(f"  waits behind held event {stop} of this user: approve or discard that one first "
                             f"(`connector events show {stop}`)") for line in lines) == 2, lines

    assert run(config, "events", "discard", str(stop), "--reason", "HR's mistake").exit_code == 0
    assert json.loads(run(config, "status", "--json").output)["waiting_behind_held"] == {"events": 0, "users": 0}
    assert "waits behind" not in run(config, "events", "show", str(later[0])).output
    claim = store.claim("run-vm/1", time.time(), 60)
    assert claim is not None and claim.event_ids == tuple(later)


def test_a_change_ingested_for_a_user_the_ldap_guard_holds_waits_behind_it_too(config: Path, store: Store) -> None:
    """The LDAP mass-change guard stores its events held, with no cause: a change of that user from elsewhere (an
    `events ingest` backfill under the directory's source name) waits behind it as behind the stop-recording
    guard's, and an approval pushes the user's newest state once, both events in one claim."""
    [delete] = store.enqueue([change("u7", 1, active=False)], state=EventState.HELD)
    events = config.parent / "later.jsonl"
    events.write_text(json.dumps({"source": "entra", "external_id": "u7", "kind": "upsert",
                                  "state": {"userName": "u7@example.com", "active": False}}) + "\n")
    assert run(config, "events", "ingest", str(events)).exit_code == 0
    [later] = [e.id for e in store.list_events(state=EventState.PENDING)]

    assert store.claim("run-vm/1", time.time(), 60) is None
    [line] = [line for line in run(config, "events", "list").output.splitlines() if "  pending  " in line]
    assert line.lstrip().startswith(f"{later} "), line
    assert f"waits behind held event {delete} of this user" in line, line

    approved = run(config, "events", "approve", str(delete), "--reason", "CHG-9: the OU moved on purpose")
    assert approved.exit_code == 0, approved.output
    claim = store.claim("run-vm/1", time.time(), 60)
    assert claim is not None and claim.event_ids == (delete, later)
    assert claim.current is not None and claim.current.id == later


def test_the_replay_preview_of_an_older_dead_letter_says_it_waits_behind_the_held_one(
        config: Path, store: Store) -> None:
    """u7's number change died; then the guard held u7's leave. Replayed, the dead change waits behind the held leave
    (nothing of u7 is pushed until an operator decides it): the dry run must say so, not show the change's push."""
    [dead] = store.enqueue([change("u7", 1)])
    claim = store.claim("run-vm/1", time.time(), 60)
    assert claim is not None
    store.dead_letter(claim, "error_illegal_argument", "Unknown recordingMode")
    stop = held_by_the_guard(store, "u7")

    shown = run(config, "events", "replay", str(dead), "--dry-run")
    assert shown.exit_code == 0, shown.output
    assert f"nothing is sent yet: the user waits behind held event {stop}; approve it" in shown.output, shown.output
    assert "upsert" not in shown.output
