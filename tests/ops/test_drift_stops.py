"""What a drift repair stops recording, said before and after it, and audited with the true reason: an extension
Verba holds for a user (linked by hand) that the user's source does not give (connector/ops/drift.py, `connector
drift`, connector/delivery/ownership.py)."""

from __future__ import annotations

import pytest

from connector.config import load_config
from connector.mapping import load_mapping
from connector.ops.drift import DriftCheck
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
