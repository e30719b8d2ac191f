"""On-call runs `events approve` and `events replay` again at 3 a.m., or follows a replay with --wait: a rerun of a
command that worked is harmless and says so, and a wait that ends early says why each event is not delivered yet.
On a store made here, with no Verba (a replay's probe of it is skipped)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from connector.cli import events as events_cli
from connector.events import UserChange
from connector.store import EventState, Store
from tests.ops.helpers import change, dead_letters, delivered, run


@pytest.fixture(autouse=True)
def unprobed_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_cli, "_check_target", lambda config: None)  # nothing answers at the target's port


def test_approving_again_after_the_delivery_says_who_approved_it_and_exits_0(config: Path, store: Store) -> None:
    [held] = store.enqueue([change("u1")], state=EventState.HELD)
    first = run(config, "events", "approve", str(held), "--reason", "CHG-7", "--operator", "oncall-jane")
    assert first.exit_code == 0, first.output
    delivered(store)
    assert store.get_event(held).state is EventState.DONE
    [approval] = store.audit_of_event(held)

    again = run(config, "events", "approve", str(held), "--reason", "CHG-7")
    assert again.exit_code == 0, again.output
    assert again.output == (f"event {held}: already approved by oncall-jane at "
                            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(approval.at))} and delivered\n")
    assert store.audit_of_event(held) == [approval]  # nothing done, nothing audited

    [other] = store.enqueue([change("u2")], state=EventState.HELD)  # a rerun with a new id: that one is approved
    both = run(config, "events", "approve", str(held), str(other), "--reason", "CHG-7")
    assert both.exit_code == 0, both.output
    assert both.output.splitlines() == [f"event {held}: already approved by oncall-jane at "
                                        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(approval.at))} and "
                                        "delivered", "approved 1 held event(s); the connector delivers them now"]


def test_approving_a_done_event_never_approved_is_still_an_error(config: Path, store: Store) -> None:
    [event] = store.enqueue([change("u1")])
    delivered(store)
    result = run(config, "events", "approve", str(event), "--reason", "CHG-7")
    assert result.exit_code == 1, result.output
    assert f"only held events can be approved; event {event} is done and was never approved; nothing was changed" in (
        result.output)
    assert store.list_audit() == []


def test_replaying_again_after_the_delivery_says_who_replayed_it_and_exits_0(config: Path, store: Store) -> None:
    [event] = dead_letters(store, "mapping", "u1")
    assert run(config, "events", "replay", str(event), "--reason", "fixed", "--operator", "oncall-jane").exit_code == 0
    delivered(store)
    [replay] = store.audit_of_event(event)
    said = (f"event {event}: already replayed by oncall-jane at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(replay.at))} and delivered")

    again = run(config, "events", "replay", str(event), "--reason", "fixed")
    assert again.exit_code == 0 and again.output == f"{said}\n", again.output
    waited = run(config, "events", "replay", str(event), "--reason", "fixed", "--wait", "5")
    assert waited.exit_code == 0 and waited.output == f"{said}\noutcome: done=1\n", waited.output
    assert store.audit_of_event(event) == [replay]

    [never] = store.enqueue([change("u2")])  # delivered without a replay: nothing to replay
    delivered(store)
    refused = run(config, "events", "replay", str(never), "--reason", "fixed")
    assert refused.exit_code == 1, refused.output
    assert f"event {never} is done and has no open extension conflict, and no replay queued it before: nothing to " \
           "replay; nothing was changed" in refused.output


def test_a_rerun_says_which_queued_events_wait_behind_another_held_event_of_their_user(
        config: Path, store: Store) -> None:
    [first, second] = store.enqueue([change("u1"), change("u1")], state=EventState.HELD)  # two holds of one user
    [free] = dead_letters(store, "mapping", "u2")
    assert run(config, "events", "approve", str(first), "--reason", "CHG-7").exit_code == 0
    assert run(config, "events", "replay", str(free), "--reason", "fixed").exit_code == 0
    waits = (f"hr/u1 (u1@example.com) waits behind held event {second}, with queued event(s) {first} (approve or "
             f"discard it: `connector events show {second}`)")
    said = [f"already queued: {free} (pending or in flight: the connector delivers them; `connector events show ID` "
            "says when it next tries)",
            f"already queued but waiting behind a held event of their user: {first}; nothing of a user is pushed "
            "while an event of theirs is held, so approve or discard that one:", f"  {waits}"]

    approved = run(config, "events", "approve", str(first), str(free), "--reason", "CHG-7")
    assert approved.exit_code == 0 and approved.output.splitlines() == said, approved.output
    replayed = run(config, "events", "replay", str(first), str(free), "--reason", "CHG-7")
    assert replayed.exit_code == 0 and replayed.output.splitlines() == said, replayed.output
    assert run(config, "events", "approve", str(first), "--reason", "CHG-7").output.splitlines() == said[1:]
    delivered(store)  # as the connector would: u2's is pushed, u1's waits
    assert [store.get_event(i).state for i in (first, second, free)] == [
        EventState.PENDING, EventState.HELD, EventState.DONE]


def test_a_replay_says_which_replayed_events_wait_behind_a_held_event_of_their_user(
        config: Path, store: Store) -> None:
    behind, free = dead_letters(store, "mapping", "u1", "u2")
    [held] = store.enqueue([change("u1")], state=EventState.HELD)  # the guard holds u1's later change
    result = run(config, "events", "replay", str(behind), str(free), "--reason", "fixed")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "replaying 2 event(s); the connector delivers them now, except those of 1 user with a held event; nothing of "
        "a user is pushed while an event of theirs is held, so approve or discard that one:",
        f"  hr/u1 (u1@example.com) waits behind held event {held}, with replayed event(s) {behind} (approve or "
        f"discard it: `connector events show {held}`)"], result.output
    delivered(store)
    assert [store.get_event(i).state for i in (behind, free)] == [
        EventState.PENDING, EventState.DONE]


def test_a_wait_ended_by_a_rate_says_when_the_last_is_due_apart_from_those_nobody_claims(
        config: Path, store: Store) -> None:
    ids = dead_letters(store, "mapping", "u1", "u2", "u3")
    result = run(config, "events", "replay", *map(str, ids), "--reason", "fixed", "--rate", "0.1", "--wait", "0.5")
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["replaying 3 event(s)", "outcome: pending=3"], lines
    last = max(e.next_attempt_at for e in map(store.get_event, ids) if e is not None)
    due = re.escape(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)))
    assert re.fullmatch(
        rf"2 not due yet \(paced by --rate\): the last is due at {due}, in \d+s; give --wait more than (19|20) s to "
        r"follow them to the end \(`connector events list --state pending` says when each is due\)", lines[2]), lines
    assert last - min(e.next_attempt_at for e in map(store.get_event, ids) if e is not None) == pytest.approx(20)
    assert lines[3] == ("1 still waiting after 0.5 s, due and claimed by no connector: is the connector running? "
                        "(`connector status`)"), lines


def test_a_wait_says_which_events_wait_behind_a_held_one_and_which_are_being_pushed(
        config: Path, store: Store) -> None:
    [behind] = dead_letters(store, "mapping", "u1")
    [held] = store.enqueue([change("u1")], state=EventState.HELD)  # the guard holds u1's later change
    [pushed] = store.enqueue([change("u2")])
    assert store.claim("test", time.time() + 60, 60) is not None  # u2's, in flight while the replay waits

    result = run(config, "events", "replay", str(behind), str(pushed), "--reason", "fixed", "--wait", "0.5")
    assert result.exit_code == 3, result.output
    assert result.output.splitlines()[-3:] == [
        "outcome: in_flight=1  pending=1",
        "1 in flight after 0.5 s: a connector is pushing them (`connector events show ID` says how it goes)",
        f"1 waiting behind a held event of their user (held event(s) {held}): nothing of a user is pushed until an "
        "operator approves or discards it (`connector events list --state held`)"], result.output
    assert "is the connector running" not in result.output


def test_a_wait_tells_an_event_accepted_ahead_and_one_waiting_for_its_user_from_one_nobody_claims(
        config: Path, store: Store) -> None:
    [older] = store.enqueue([change("u1")])
    backing_off = store.claim("test", time.time() + 60, 60)
    [newer] = store.enqueue([change("u1")])  # due, but u1's older event backs off: the two are claimed together
    assert backing_off is not None
    store.retry(backing_off, time.time() + 3600, "http_5xx", "HTTP 503")
    [pushed] = store.enqueue([change("u3")])
    assert store.claim("test", time.time() + 60, 60) is not None  # u3's push runs
    [following] = store.enqueue([change("u3")])  # due, and waits for that push to end
    [ahead] = store.enqueue([UserChange("hr", "u2", "upsert", {"userName": "u2@example.com"},
                                        accepted_at=time.time() + 120)])  # a source's clock 2 minutes ahead

    result = run(config, "events", "replay", str(newer), str(ahead), str(following), "--reason", "r", "--wait", "0.5")
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()[1:]
    assert lines[0] == "outcome: pending=3", lines
    assert re.fullmatch(r"1 not due yet \(accepted with a time ahead of this host's clock\): the last is due at .*, "
                        r"in \S+; give --wait more than 1[12]\d s to follow them to the end \(.*\)", lines[1]), lines
    assert re.fullmatch(
        rf"1 due, but an older event of their user is not due yet \(event\(s\) {older}: backing off after a failed "
        r"try\), and a user's events are pushed together once the oldest is due: the last is due at .*, in \S+; "
        r"give --wait more than 3\d\d\d s to follow them to the end \(.*\)", lines[2]), lines
    assert lines[3] == (f"1 due, waiting for a push of their user in flight (event(s) {pushed}): a connector takes "
                        "them once it ends (`connector events show ID` says how it goes)"), lines
    assert len(lines) == 4, lines  # none said to be claimed by no connector


def test_a_wait_says_an_open_circuit_breaker_holds_due_events_rather_than_no_connector(
        config: Path, store: Store) -> None:
    [event] = dead_letters(store, "mapping", "u1")
    opened = time.time() - 60
    store.note_breaker("a", opened, None, "Verba down")
    result = run(config, "events", "replay", str(event), "--reason", "fixed", "--wait", "0.5")
    assert result.exit_code == 3, result.output
    assert result.output.splitlines()[-1] == (
        "1 due, not claimed while delivery waits for Verba: the circuit breaker on Verba has been open since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(opened))} (Verba fails as a whole; `connector status`)")
