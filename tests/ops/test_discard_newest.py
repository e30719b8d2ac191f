"""Discarding a user's newest change (a number change the stop-recording guard held, or a dead letter) leaves Verba
with the state of the user's previous event while the source says otherwise, and `connector drift` calls that in
step: `events discard` and `events show` say so, and `events replay --dry-run` of such an event previews what the
replay really pushes (the discarded event's own state, not the previous one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import load_config
from connector.delivery.worker import Deliverer
from connector.events import UserChange
from connector.runtime import open_configured_store
from connector.store import EventState, LdapPoll
from tests.ops.helpers import run, write_config
from tests.plugins.simulator import Simulator, drain, free_port, user

OLD, NEW, NEWER = "+14155550100", "+14155550111", "+14155550122"
LOOKED_UP = "Verba user looked up at push time (listUsers loginName='alice@example.com')"
SETTINGS = "recording_mode=FULL, voice=True, im=False, video=False, screen_capture_enabled=False"


@pytest.fixture
def strict_guard() -> bool:
    return False


@pytest.fixture
def config_path(strict_guard: bool, tmp_path: Path, simulator: Simulator) -> Path:
    """The on-call config; with `strict_guard` (a test parametrizes it True), a stop-recording guard that holds any
    push stopping a recording (the lines follow [delivery]'s, so they are its)."""
    extra = "guard_max_count = 0\nguard_max_share = 0\n" if strict_guard else ""
    return write_config(tmp_path, simulator.url, extra=extra)


def recorded(simulator: Simulator) -> dict[str, bool]:
    """Verba's extensions: whether each is recorded (voice)."""
    return {extension: bool(e.get("voice")) for extension, e in simulator.extensions().items()}


def alice(phone: str):
    return user("u-alice", "alice@example.com", phones=(phone,))


@pytest.mark.parametrize("strict_guard", [True])
def test_discarding_a_held_number_change_warns_and_the_dry_run_shows_what_the_replay_pushes(
        deliverer: Deliverer, simulator: Simulator, config_path: Path) -> None:
    [first] = deliverer.store.enqueue([alice(OLD)])
    drain(deliverer)
    [change] = deliverer.store.enqueue([alice(NEW)])  # it stops recording OLD: the guard holds it
    drain(deliverer)
    held = deliverer.store.get_event(change)
    assert (held.state, held.last_cause) == (EventState.HELD, "stop_recording_guard")
    assert "approve --source test" in (held.last_error or "") and "or discard them" in (held.last_error or "")

    discarded = run(config_path, "events", "discard", str(change), "--reason", "looks like a mistake")
    assert discarded.exit_code == 0, discarded.output
    warning = (f"WARNING: event {change} was the newest change of test/u-alice (alice@example.com) and is discarded: "
               f"Verba keeps the state of the user's current event {first} (recording {OLD}) until the "
               "source changes again, and `connector drift` and `connector status --check` take that as in step; "
               f"`connector events replay {change}` delivers it after all (should the stop-recording guard hold it "
               f"again: `connector events approve {change} --reason R`)")
    assert discarded.stdout.splitlines() == ["discarded 1 event(s)", warning], discarded.stdout

    shown = run(config_path, "events", "show", str(change))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[1] == f'{warning}; what the replay would send is under "maps to now" below', lines[:3]
    [maps_to] = [n for n, line in enumerate(lines) if line.startswith("maps to now ")]
    assert lines[maps_to].startswith(f"maps to now (user test/u-alice, newest event {change}, "), lines[maps_to:]
    assert lines[maps_to + 1] == f"  upsert {NEW}: {SETTINGS} (new)", lines[maps_to:]

    dry = run(config_path, "events", "replay", str(change), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines()[:3] == [
        f"dry run: 1 event(s) of 1 user(s) would be replayed (the discard of {change} undone); nothing changed",
        f"test/u-alice (newest event {change}, {LOOKED_UP}):",
        f"  upsert {NEW}: {SETTINGS} (new)",
    ], dry.stdout
    assert f"stop recording {OLD}" in dry.stdout and "(same as the last attempt)" not in dry.stdout

    replayed = run(config_path, "events", "replay", str(change), "--reason", "it was right after all")
    assert replayed.exit_code == 0, replayed.output
    drain(deliverer)
    # A replay is no approval: this guard holds every stop again, as the warning said it might.
    assert deliverer.store.get_event(change).state is EventState.HELD
    approved = run(config_path, "events", "approve", str(change), "--reason", "it was right after all")
    assert approved.exit_code == 0, approved.output
    drain(deliverer)
    assert deliverer.store.get_event(change).state is EventState.DONE
    assert recorded(simulator) == {OLD: False, NEW: True}  # what the dry run said


def test_discarding_a_dead_letter_that_is_the_users_newest_change_warns_once_per_user(
        deliverer: Deliverer, simulator: Simulator, config_path: Path) -> None:
    [first] = deliverer.store.enqueue([alice(OLD)])
    drain(deliverer)
    simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT", message="Unknown recordingMode",
                    times=2)
    [older] = deliverer.store.enqueue([alice(NEW)])
    drain(deliverer)
    [newest] = deliverer.store.enqueue([alice(NEWER)])
    drain(deliverer)
    simulator.clear_faults()
    assert [deliverer.store.get_event(i).state for i in (older, newest)] == [EventState.DEAD, EventState.DEAD]
    assert recorded(simulator) == {OLD: True}  # the state of her first event, as the warnings below say

    only_older = run(config_path, "events", "discard", str(older), "--reason", "superseded by hand")
    assert only_older.exit_code == 0 and only_older.stdout == "discarded 1 event(s)\n", only_older.output
    assert "WARNING" not in run(config_path, "events", "show", str(older)).stdout  # a later change of hers exists

    both = run(config_path, "events", "discard", "--cause", "error_illegal_argument", "--reason", "not now")
    assert both.exit_code == 0, both.output
    assert both.stdout.splitlines() == [
        "discarded 1 event(s)",
        f"WARNING: event {newest} was the newest change of test/u-alice (alice@example.com) and is discarded: Verba "
        f"keeps the state of the user's current event {first} (recording {OLD}) until the source "
        "changes again, and `connector drift` and `connector status --check` take that as in step; "
        f"`connector events replay {newest}` delivers it after all",
    ], both.stdout
    again = run(config_path, "events", "discard", str(newest), "--reason", "not now")
    assert again.exit_code == 0 and again.stdout.splitlines()[0] == f"already discarded: {newest}", again.output
    assert again.stdout.splitlines()[-1].startswith(f"WARNING: event {newest} was the newest change"), again.output

    dry = run(config_path, "events", "replay", str(older), str(newest), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines()[1:3] == [f"test/u-alice (newest event {newest}, {LOOKED_UP}):",
                                           f"  upsert {NEWER}: {SETTINGS} (same as the last attempt)"], dry.stdout
    assert run(config_path, "events", "replay", str(older), str(newest), "--reason", "fixed").exit_code == 0
    drain(deliverer)
    assert recorded(simulator) == {OLD: False, NEWER: True}  # the newest replayed one, as the dry run said


def test_an_old_discarded_event_previews_the_current_state_and_only_a_current_one_is_named(
        deliverer: Deliverer, simulator: Simulator, config_path: Path) -> None:
    simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT", message="Unknown recordingMode",
                    times=1)
    [refused] = deliverer.store.enqueue([alice(OLD)])
    drain(deliverer)
    simulator.clear_faults()
    only = run(config_path, "events", "discard", str(refused), "--reason", "x")  # no event of hers is left current:
    assert only.stdout == "discarded 1 event(s)\n", only.output  # drift lists her as not checked, not as in step
    [current] = deliverer.store.enqueue([alice(NEW)])
    drain(deliverer)

    shown = run(config_path, "events", "show", str(refused)).stdout
    assert "WARNING" not in shown and f"newest event {current}," in shown, shown
    dry = run(config_path, "events", "replay", str(refused), "--dry-run").stdout
    assert dry.splitlines()[1:3] == [f"test/u-alice (newest event {current}, {LOOKED_UP}):",
                                     f"  upsert {NEW}: {SETTINGS} (same as the last attempt)"], dry

    simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT", message="Unknown recordingMode",
                    times=1)
    [refused_again] = deliverer.store.enqueue([alice(NEWER)])
    drain(deliverer)
    simulator.clear_faults()
    now_current = run(config_path, "events", "discard", str(refused_again), "--reason", "x")  # one of hers is current
    assert now_current.stdout.splitlines()[1].startswith(
        f"WARNING: event {refused_again} was the newest change of test/u-alice (alice@example.com) and is discarded: "
        f"Verba keeps the state of the user's current event {current} (recording {NEW}) until "), now_current.output


def test_discarding_an_ldap_directory_s_held_deletes_says_what_its_next_poll_and_full_run_do(
        tmp_path: Path, simulator: Simulator) -> None:
    config = write_config(tmp_path, simulator.url,
                          extra=f'[ldap.corp]\nurl = "ldap://127.0.0.1:{free_port()}"\nbase = "dc=corp"\n')
    with open_configured_store(load_config(config), create=True) as store:
        [held] = store.commit_poll(LdapPoll("corp", 0, {}, 1.0, held=[
            UserChange("corp", "u1", "delete", {"userName": "u1"}, accepted_at=1.0, cause="ldap:vanished")]))
    discarded = run(config, "events", "discard", str(held), "--reason", "the OU was moved back")
    assert discarded.exit_code == 0, discarded.output
    assert ("note: directory corp takes a census at its next poll: a user of these deletes who is in its scope again "
            "is known again; one still out of its scope is stopped again by the next full reconciliation (to keep "
            "recording such a user, bring it back into scope)\n") in discarded.output
