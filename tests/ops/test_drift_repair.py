"""What a drift repair queues (connector/ops/drift.py, `connector drift --repair`): never an older state over a
change accepted while it queued, and nothing for a user whose newest change is a dead letter or held, which a
repair would only kill again or overtake."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from connector.config import load_config
from connector.mapping import load_mapping
from connector.ops.drift import DEAD_LETTER, HELD, DriftCheck, Unchecked
from connector.store import EventState, Instance
from connector.store.log import REPAIR_CAUSE
from tests.ops.helpers import bob_dead_lettered, run, write_config
from tests.plugins.simulator import drain, user

ALICE = "+14155550100"
BOB = "+14155550111"


@pytest.fixture
def drift(deliverer, config_path) -> DriftCheck:
    return DriftCheck(deliverer.store, deliverer.client, load_mapping(load_config(config_path).mapping_file), 2)


def pushed(deliverer, *changes) -> None:
    deliverer.store.enqueue(list(changes))
    drain(deliverer)


@pytest.mark.parametrize("state", [EventState.PENDING, EventState.HELD])
def test_a_change_accepted_while_a_repair_queues_is_pushed_not_the_older_state_the_repair_read(
        deliverer, simulator, drift, monkeypatch, state):
    """The race made certain: alice's number moves to BOB after the check read her state and before the repair
    queued its copy. A copy of the state the check read got the higher id, so its claim pushed ALICE again and
    marked the move done: BOB never reached Verba, and the next check saw nothing wrong. A change a guard holds
    meanwhile, once approved, likewise."""
    pushed(deliverer, user())
    simulator.delete_extension(ALICE)
    report = drift.check()
    assert [(d.kind, d.extension) for d in report.drifts] == [("missing", ALICE)]

    store = deliverer.store
    queue_current = store.queue_current

    def racing(users, cause, **audited):
        newer.extend(store.enqueue([user(phones=(BOB,))], state=state))  # SCIM: alice's number is now BOB
        return queue_current(users, cause, **audited)

    newer: list[int] = []
    monkeypatch.setattr(store, "queue_current", racing)
    ids = drift.repair(report, actor="oncall", reason="restore")
    monkeypatch.setattr(store, "queue_current", queue_current)
    drain(deliverer)
    if state is EventState.HELD:
        assert simulator.extensions().get(BOB) is None and store.requeue(newer, 0.0, approve=True) == 1  # approved
        drain(deliverer)

    assert simulator.extensions().get(BOB, {}).get("user_id") == 3, "the newer change was not pushed"
    assert drift.check().drifts == []
    if state is EventState.PENDING:  # the repair queued the newest state, the newer change's, not the one it read
        [copy] = [store.get_event(event_id) for event_id in ids]
        assert copy.change.cause == REPAIR_CAUSE and copy.change.state == store.get_event(newer[0]).change.state
    else:  # a held newest change is the operator's to approve: nothing is queued over it
        assert ids == []
    audit = next(a for a in store.list_audit() if a.action == REPAIR_CAUSE)
    assert audit.detail["users"] == len(ids)


def test_a_repair_without_a_change_meanwhile_queues_a_forced_pending_copy_and_fixes_verba(
        deliverer, simulator, drift):
    pushed(deliverer, user())
    simulator.delete_extension(ALICE)
    ids = drift.repair(drift.check(), actor="oncall", reason="restore")
    [event] = deliverer.store.list_events(state=EventState.PENDING)
    assert ids == [event.id] and event.change.cause == REPAIR_CAUSE
    drain(deliverer)
    assert simulator.extensions()[ALICE]["user_id"] == 3 and drift.check().drifts == []


def test_a_user_whose_newest_change_is_a_dead_letter_is_not_checked_nor_repaired_again_and_again(
        deliverer, simulator, config_path):
    """Each `--repair` queued another copy that died as the first did: 3 runs, 4 dead letters."""
    dead = bob_dead_lettered(deliverer, simulator, BOB)

    for n in range(3):
        done = run(config_path, "drift", "--repair", "--reason", f"run {n}")
        assert done.exit_code == 0, done.output
        out = done.stdout.splitlines()
        assert out[0].endswith(" s: no drift in the 1 user compared, but 1 was not checked: see why below"), out
        assert f"  {DEAD_LETTER} (1):" in out
        assert f"    test/u-bob: event {dead.id}: createExtension answered ERROR_ILLEGAL_ARGUMENT: Unknown mode" in out
        assert not any(line.startswith("repair: ") for line in out) and "missing in Verba" not in done.stdout

    counts = deliverer.store.count_by_state()
    assert (counts[EventState.DEAD], counts[EventState.PENDING]) == (1, 0)
    run_ = deliverer.store.last_drift_run()
    assert (run_.unchecked, run_.repaired) == (1, None)


def test_a_user_whose_newest_change_is_held_is_not_checked_nor_repaired_over_it(deliverer, simulator, drift):
    """A repair copied the older, delivered state with a higher id than the held change: once approved, that change
    was pushed as the older state (the copy was the user's current event)."""
    pushed(deliverer, user())
    deliverer.store.enqueue([user(phones=(BOB,))], state=EventState.HELD)
    simulator.delete_extension(ALICE)
    report = drift.check()
    assert report.drifts == [] and report.unchecked == [Unchecked("test/u-alice", HELD)]
    assert str(report.unchecked[0]).startswith("test/u-alice: its newest change is held: approve or discard it")
    assert drift.repair(report, actor="oncall", reason="r") == []
    assert deliverer.store.count_by_state()[EventState.PENDING] == 0


def test_a_repair_restores_a_user_whose_newest_change_was_discarded_from_its_current_state(
        deliverer, simulator, drift):
    """alice's later change was held and discarded on purpose: her current state is the one pushed before it, and a
    repair must queue that, not nothing (her newest event is the discarded one)."""
    store = deliverer.store
    pushed(deliverer, user())
    [later] = store.enqueue([user(displayName="Alice B")], state=EventState.HELD)
    assert store.discard([later], "not intended") == 1
    simulator.delete_extension(ALICE)
    report = drift.check()
    assert [(d.kind, d.extension) for d in report.drifts] == [("missing", ALICE)]
    [copy] = drift.repair(report, actor="oncall", reason="restore")
    assert "displayName" not in store.get_event(copy).change.state  # the state pushed before, not the discarded one
    drain(deliverer)
    assert simulator.extensions()[ALICE]["user_id"] == 3 and drift.check().drifts == []


def test_drift_and_its_repair_warn_when_the_running_connector_maps_with_an_older_mapping_file(
        deliverer, simulator, tmp_path):
    """An operator turns video recording on in the mapping, and checks before restarting: the check finds every user
    to repair, and the repair's pushes (mapped by the running connector with the file as it was) ended done, Verba
    unchanged, and drift said the same again, with no word of why. Both now warn (stderr), as `events replay` does."""
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(Path("mappings/default.toml").read_text())
    config = write_config(tmp_path, simulator.url, extra=f'[mapping]\nfile = "{mapping}"\n', name="m.toml")
    pushed(deliverer, user())
    deliverer.store.register_instance(Instance("conn-a", "run-a", "vm1", 101), 15.0, lambda previous: True)
    simulator.edit_extension(ALICE, im=True)
    plain = run(config, "drift")
    assert plain.exit_code == 3 and plain.stderr == "", plain.stderr  # the instance started after the file was written

    later = time.time() + 60
    mapping.write_text(mapping.read_text().replace("video = false", "video = true"))
    os.utime(mapping, (later, later))
    plain = run(config, "drift")
    assert plain.exit_code == 3 and "video: Verba has False, wanted True" in plain.stdout, plain.output
    [warning] = plain.stderr.splitlines()
    assert warning.startswith("WARNING: instance conn-a started at "), warning
    assert warning.endswith(
        f"with another mapping than {mapping} holds now: it still maps users with the file as it was; "
        "restart every instance to use it. The running connector delivers a repair, so it would map it with the file "
        "as it was (this check maps with the file as it is now): restart it first (`systemctl restart "
        "connector@NAME`), then repair")
    assert run(config, "drift", "--json").stderr == plain.stderr

    repaired = run(config, "drift", "--repair", "--reason", "record video")
    assert repaired.exit_code == 3 and "repair: queued 1 user (event " in repaired.stdout, repaired.output
    [warning] = repaired.stderr.splitlines()
    assert warning.startswith("WARNING: instance conn-a started at ") and warning.endswith(
        "restart every instance to use it. The running connector delivers this repair, so it maps it with the file "
        "as it was (this check maps with the file as it is now) and may leave Verba as it is: restart it (`systemctl "
        "restart connector@NAME`), then run `connector drift --repair` again")
    drain(deliverer)  # the running connector, with the mapping as it was: im set back, video still off
    assert (simulator.extensions()[ALICE]["im"], simulator.extensions()[ALICE]["video"]) == (False, False)
    assert deliverer.store.list_events(state=EventState.PENDING) == []

    # In step by the file as it is now (video off again): no repair to promise, nothing to warn about.
    mapping.write_text(mapping.read_text().replace("video = true", "video = false"))
    os.utime(mapping, (later, later))
    quiet = run(config, "drift")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output
