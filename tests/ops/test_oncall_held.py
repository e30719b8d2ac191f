"""What on-call sees of held events before and after deciding them: nothing of a user is pushed while an event of
theirs is held, so an approval of some held events of a user with another held one says that user still waits and
behind which event, and `events list` / `events show` say of a held event (a leaver's stop) which newer changes of
its user (back at work) wait behind it. On a store made here, with no Verba."""

from __future__ import annotations

import json
from pathlib import Path

from connector.events import UserChange
from connector.store import EventState, Store
from tests.ops.helpers import delivered, run


def change(user: str, *, active: bool = True) -> UserChange:
    return UserChange("entra", user, "upsert" if active else "deactivate",
                      {"userName": f"{user}@example.com", "active": active})


def test_approving_some_held_events_of_a_user_with_another_held_one_names_the_one_it_waits_behind(
        config: Path, store: Store) -> None:
    [first, second] = store.enqueue([change("u7", active=False), change("u7")], state=EventState.HELD)
    [other] = store.enqueue([change("u8", active=False)], state=EventState.HELD)
    waits = (f"entra/u7 (u7@example.com) waits behind held event {first}, with approved event(s) {second} (approve "
             f"or discard it: `connector events show {first}`)")

    alone = run(config, "events", "approve", str(second), "--reason", "CHG-9")
    assert alone.exit_code == 0, alone.output
    assert alone.output.splitlines() == [
        "approved 1 held event(s); none is delivered yet: they are of 1 user with a held event; nothing of a user is "
        "pushed while an event of theirs is held, so approve or discard that one:", f"  {waits}"]
    assert delivered(store) == []

    [third] = store.enqueue([change("u7", active=False)], state=EventState.HELD)
    both = run(config, "events", "approve", str(third), str(other), "--reason", "CHG-9")
    assert both.exit_code == 0, both.output
    assert both.output.splitlines() == [
        "approved 2 held event(s); the connector delivers them now, except those of 1 user with a held event; "
        "nothing of a user is pushed while an event of theirs is held, so approve or discard that one:",
        f"  entra/u7 (u7@example.com) waits behind held event {first}, with approved event(s) {third} (approve or "
        f"discard it: `connector events show {first}`)"]
    assert delivered(store) == ["u8"]

    rest = run(config, "events", "approve", str(first), "--reason", "CHG-9")
    assert rest.output == "approved 1 held event(s); the connector delivers them now\n", rest.output
    assert delivered(store) == ["u7"]


def test_a_held_stop_says_which_newer_changes_of_its_user_wait_behind_it(config: Path, store: Store) -> None:
    [stop] = store.enqueue([change("u7", active=False)], state=EventState.HELD)  # the guard held the leaver's stop
    [alone] = store.enqueue([change("u8", active=False)], state=EventState.HELD)
    back = store.enqueue([change("u7"), change("u7")])  # back at work since, and changed again

    listed = run(config, "events", "list", "--state", "held")
    assert listed.exit_code == 0, listed.output
    [line] = [line for line in listed.output.splitlines() if "entra/u7 " in line]
    assert line.endswith(f"; 2 newer change(s) of this user wait behind it, the newest event {back[1]} (upsert)"), line
    [line] = [line for line in listed.output.splitlines() if "entra/u8 " in line]
    assert "newer change" not in line, line
    shown = run(config, "events", "show", str(stop)).output.splitlines()[0]
    assert shown.endswith(f"; 2 newer change(s) of this user wait behind it, the newest event {back[1]} (upsert)")

    as_json = json.loads(run(config, "events", "list", "--json").output)["events"]
    assert {e["id"]: e["changes_behind"] for e in as_json} == {
        stop: {"count": 2, "newest": back[1], "newest_kind": "upsert"}, alone: None, back[0]: None, back[1]: None}
    assert json.loads(run(config, "events", "show", str(stop), "--json").output)["changes_behind"] == {
        "count": 2, "newest": back[1], "newest_kind": "upsert"}

    [later] = store.enqueue([change("u7", active=False)], state=EventState.HELD)  # held again, newer still
    [line] = [line for line in run(config, "events", "list", "--state", "held").output.splitlines()
              if line.lstrip().startswith(f"{stop} ")]
    assert line.endswith(f"; 3 newer change(s) of this user wait behind it, the newest event {later} (deactivate)")
