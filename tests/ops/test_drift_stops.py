"""What a drift repair stops recording, said before and after it, and audited with the true reason: an extension
Verba holds for a user (linked by hand) that the user's source does not give (connector/ops/drift.py, `connector
drift`, connector/delivery/ownership.py)."""

from __future__ import annotations

import json
import logging

import pytest

from connector.config import DriftConfig, load_config
from connector.mapping import load_mapping
from connector.ops.drift import DriftCheck, DriftSchedule
from tests.ops.helpers import run
from tests.plugins.simulator import drain, user

BOB = "+14155550111"
BY_HAND = "+14155559999"  # added to bob in Verba by hand: no source gives it


@pytest.fixture
def drift(deliverer, config_path) -> DriftCheck:
    return DriftCheck(deliverer.store, deliverer.client, load_mapping(load_config(config_path).mapping_file), 2)


def bob_with_a_number_added_by_hand(deliverer, simulator) -> None:
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(deliverer)
    simulator.edit_extension(BY_HAND, user_id=4, voice=True, recordingMode="FULL", im=False, video=False,
                             screenCaptureEnabled=False)


def stopped(deliverer) -> list:
    return [a for a in deliverer.store.list_audit() if a.action == "recording_stopped"]


def test_the_stop_of_a_number_found_by_drift_is_audited_as_the_repair_it_was(deliverer, simulator, drift):
    """The audit said "a number removed or changed at the source": bob's source never gave it."""
    bob_with_a_number_added_by_hand(deliverer, simulator)
    drift.repair(drift.check(), actor="oncall", reason="numbers added by hand")
    drain(deliverer)
    assert simulator.extensions()[BY_HAND]["voice"] is False
    [entry] = stopped(deliverer)
    assert entry.detail["extension"] == BY_HAND and entry.actor == "connector"
    assert entry.reason == (f"Verba held {BY_HAND} for test/u-bob (bob@example.com), who stays active, but its source "
                            "does not give it: the connector never wrote it for the user (drift repair by oncall: "
                            "numbers added by hand)")


def test_a_number_removed_at_the_source_is_still_audited_as_removed_at_the_source(deliverer, simulator):
    bob_with_a_number_added_by_hand(deliverer, simulator)
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=())])
    drain(deliverer)
    assert simulator.extensions()[BOB]["voice"] is False
    [entry] = stopped(deliverer)
    assert entry.detail["extension"] == BOB and "(a number removed or changed at the source" in entry.reason


def test_drift_says_what_a_repair_stops_recording_and_the_repair_what_it_queued_to_stop(
        deliverer, simulator, config_path):
    """It said only "run again with --repair to queue the fixes", and the repair stopped bob's recording on it."""
    bob_with_a_number_added_by_hand(deliverer, simulator)
    stops = (f"1 extension Verba holds for these users that their source does not give: {BY_HAND} (test/u-bob)")

    check = run(config_path, "drift")
    assert check.exit_code == 3, check.output
    out = check.stdout.splitlines()
    assert out[-2:] == ["nothing was written; run again with --repair to queue the fixes",
                        f"a repair stops recording on {stops}; if one must stay recorded, give it to its user at the "
                        "source first"], out
    found = json.loads(run(config_path, "drift", "--json").stdout)
    assert [(d["extension"], d["user"]) for d in found["stops_recording"]] == [(BY_HAND, "test/u-bob")]
    assert simulator.extensions()[BY_HAND]["voice"] is True  # a check writes nothing

    repair = run(config_path, "drift", "--repair", "--reason", "numbers added by hand", "--operator", "oncall")
    assert repair.exit_code == 3, repair.output
    out = repair.stdout.splitlines()
    assert out[-1] == f"repair: it stops recording on {stops}", out
    assert out[-2].startswith("repair: queued 1 user (event "), out
    drain(deliverer)
    assert simulator.extensions()[BY_HAND]["voice"] is False and simulator.extensions()[BOB]["voice"] is True
    [entry] = stopped(deliverer)
    assert entry.reason.endswith("(drift repair by oncall: numbers added by hand)"), entry.reason


def test_a_repair_names_only_what_it_queued_to_stop_and_many_extras_by_their_first_few(
        deliverer, simulator, config_path, drift):
    bob_with_a_number_added_by_hand(deliverer, simulator)
    more = [f"+1415555990{i}" for i in range(6)]
    for extension in more:
        simulator.edit_extension(extension, user_id=4, voice=True, recordingMode="FULL", im=False, video=False,
                                 screenCaptureEnabled=False)
    report = drift.check()
    named = ", ".join(f"{x} (test/u-bob)" for x in sorted([BY_HAND, *more])[:5])
    assert report.stops_recording() == (f"7 extensions Verba holds for these users that their source does not "
                                        f"give: {named} and 2 more")
    simulator.edit_extension(BY_HAND, user_id=3)  # moved to alice in Verba meanwhile: not bob's to stop
    drift.repair(report, actor="oncall", reason="r")
    assert sorted(d.extension for d in report.stopping) == more
    drain(deliverer)
    assert simulator.extensions()[BY_HAND]["voice"] is True
    assert all(simulator.extensions()[x]["voice"] is False for x in more)


def test_a_scheduled_repair_logs_what_it_queued_to_stop(deliverer, simulator, drift, caplog):
    bob_with_a_number_added_by_hand(deliverer, simulator)
    with caplog.at_level(logging.INFO, logger="connector.drift"):
        DriftSchedule(drift, DriftConfig(repair=True)).run_once()
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drift check: ")]
    assert (f"; 1 user queued for repair, which stops recording on 1 extension Verba holds for these users that "
            f"their source does not give: {BY_HAND} (test/u-bob)") in line, line
    drain(deliverer)
    [entry] = stopped(deliverer)
    assert entry.reason.endswith("(drift repair by connector: scheduled drift repair ([drift] repair = true))")
