"""Hand-overs need the connector's own record of the holder letting go, and moves or stops of recording whose reply
was lost are still audited (simulator over real HTTP).

An extension linked by hand in Verba to one of the connector's users, who never claimed it in the directory, is not
handed over to another user who now claims it: [ownership] on_conflict decides, as for a holder the connector does
not manage. A write whose reply is lost after it was sent (an answer trickling in past the call's deadline, applied by
the simulator before it answers) leaves its audit entry, unconfirmed, as the retry finds it done and writes none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.ops.preview import DryRun
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from connector.store.ownership import Claimant
from connector.verba.errors import VerbaHTTPError, VerbaMalformedResponse
from tests.integration.test_ownership import X, Y, alice, bob, recording
from tests.plugins.simulator import drain, user
from tests.store.test_conformance import LEASE, NOW, change, claim_now

Z = "+14155550122"
CAROL_ID = 5
LOST_AFTER = 2  # seconds: the deadline of the calls whose reply is lost (long enough for the others under load)


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 3, "loginName": "alice@example.com", "eid": "0000"},
            {"id": 4, "loginName": "bob@example.com", "eid": "0000"},
            {"id": CAROL_ID, "loginName": "carol@example.com", "eid": "0000"},
            {"id": 6, "loginName": "dave@example.com", "eid": "0000"}]


@pytest.fixture
def seed_extensions(request) -> list[dict[str, Any]]:
    """X linked by hand in Verba: to carol (a user of the connector) or to dave (whom it does not manage)."""
    holder = CAROL_ID if "by_hand" in request.node.name else 6 if "unmanaged" in request.node.name else None
    if holder is None:
        return []
    return [{"eid": "0000", "extension": X, "recordingMode": "FULL", "voice": True, "user_id": holder}]


@pytest.fixture(autouse=True)
def hostile(simulator):
    simulator.http.post("/_sim/behaviour", json={"missing_extension": "error_general"}).raise_for_status()


def carol(*phones: str, **state: Any):
    return user("u-carol", "carol@example.com", phones=phones, **state)


def make_deliverer(make_config, mapping: str = "mappings/default.toml", deadline: float = 5) -> Deliverer:
    """A deliverer whose calls end after `deadline` seconds (a lost reply costs no more)."""
    config = make_config(mapping, target={"timeout_seconds": deadline})
    return Deliverer(open_configured_store(config, create=True), open_client(config), load_mapping(config.mapping_file),
                     config.delivery)


def take_over_mapping(tmp_path: Path) -> str:
    mapping = tmp_path / "take_over.toml"
    mapping.write_text(Path("mappings/default.toml").read_text() + '\n[ownership]\non_conflict = "take_over"\n')
    return str(mapping)


def audits(deliverer, action: str) -> list[Any]:
    return [a for a in deliverer.store.list_audit() if a.action == action]


def lose_the_next_reply(simulator, operation: str = "updateExtension") -> None:
    """The next `operation` is applied, but its answer trickles in long past the call's deadline (LOST_AFTER)."""
    simulator.fault(operation=operation, trickle_ms=1000, times=1)  # 16 bytes a second: 20 s and more


def test_a_number_linked_by_hand_to_a_managed_user_is_not_handed_over_by_default(make_config, simulator):
    deliverer = make_deliverer(make_config)
    deliverer.store.enqueue([carol(Z)])  # carol is a user of the connector, with another number
    drain(deliverer)
    # The dry run (`ldap sync --dry-run`) says what the push then does: it used to say "handed over".
    [previewed] = DryRun(deliverer.store, deliverer.client, deliverer.mapping).preview([bob(X)]).items
    assert previewed.outcome == "conflict" and "never claimed it through the connector" in previewed.detail, previewed
    deliverer.store.enqueue([bob(X)])  # bob's directory entry gets X, which Verba links to carol by hand
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == CAROL_ID and recording(ext), "carol keeps it"
    assert [c for c in simulator.calls("updateExtension") if c["extension"] == X] == []
    assert audits(deliverer, "hand_over") == [] and audits(deliverer, "take_over") == []
    [conflict] = deliverer.store.open_conflicts()
    assert (conflict.extension, conflict.claimant.external_id, conflict.owner_user_id) == (X, "u-bob", CAROL_ID)
    assert "a user of the connector (test/u-carol), never claimed it through the connector" in conflict.message
    assert "linked by hand in Verba" in conflict.message
    assert "no longer claims" not in conflict.message and "manages no user" not in conflict.message
    assert "free or relink it in Verba, then `connector events replay --cause extension_conflict`" in conflict.message
    assert 'on_conflict = "take_over"' in conflict.message
    assert deliverer.store.list_events(user="u-bob")[0].state is EventState.DONE


def test_a_number_linked_by_hand_to_a_managed_user_is_taken_over_when_the_policy_says_so(make_config, simulator,
                                                                                         tmp_path):
    deliverer = make_deliverer(make_config, take_over_mapping(tmp_path))
    deliverer.store.enqueue([carol(Z)])
    drain(deliverer)
    deliverer.store.enqueue([bob(X)])
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == 4 and recording(ext)
    assert audits(deliverer, "hand_over") == []
    [taken] = audits(deliverer, "take_over")
    assert (taken.detail["extension"], taken.detail["from_user_id"], taken.detail["user_id"]) == (X, CAROL_ID, 4)
    assert "never claimed it through the connector" in taken.reason and 'on_conflict = "take_over"' in taken.reason
    assert "confirmed" not in taken.detail
    assert deliverer.store.open_conflicts() == []


def test_a_number_its_holder_let_go_is_still_handed_over(make_config, simulator):
    """The number change is the holder's own push: that is the record a hand-over needs (no policy involved)."""
    deliverer = make_deliverer(make_config)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([bob(X)])  # waits: alice still claims it
    drain(deliverer)
    deliverer.store.forget_owners([X])  # a drift check saw bob's claim on X linked to alice meanwhile
    [previewed] = DryRun(deliverer.store, deliverer.client, deliverer.mapping).preview([alice(Y), bob(X)]).items[-1:]
    assert (previewed.outcome, previewed.extension) == ("update", X) and "handed over" in previewed.detail, previewed
    deliverer.store.enqueue([alice(Y)])  # alice lets X go; her push stops it and bob is woken
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == 4 and recording(ext)
    [handed] = audits(deliverer, "hand_over")
    assert (handed.detail["from_user_id"], handed.detail["user_id"]) == (3, 4) and "confirmed" not in handed.detail
    assert deliverer.store.open_conflicts() == []


def test_the_store_counts_a_number_let_go_only_after_a_push_of_its_holder_s_own(store_opener):
    """On every backend: the owner row of a push of another user (who found it linked by hand) is not enough."""
    store = store_opener()
    for name, verba_id in (("carol", CAROL_ID), ("bob", 4)):
        store.enqueue([change(name)])
        store.complete(claim_now(store), [], verba_id)  # the connector now knows the user's Verba id
    carol, bob = (Claimant("scim", name, verba_id, None, NOW) for name, verba_id in (("carol", CAROL_ID), ("bob", 4)))
    store.begin_push("w1", NOW + LEASE, NOW, bob, [X], [X])
    store.finish_push("w1", bob, {X: CAROL_ID}, [], [])  # bob's push saw X linked to carol
    assert not store.let_go_by_holder(X, CAROL_ID)
    store.begin_push("w1", NOW + LEASE, NOW, carol, [], [X])
    store.finish_push("w1", carol, {X: CAROL_ID}, [], [X])  # carol's own push stopped it
    assert store.let_go_by_holder(X, CAROL_ID) and not store.let_go_by_holder(X, 4)
    assert not store.let_go_by_holder(Y, CAROL_ID)


def test_a_hand_over_whose_reply_is_lost_is_still_audited(make_config, simulator):
    deliverer = make_deliverer(make_config, deadline=LOST_AFTER)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([alice(Y)])  # alice lets X go
    drain(deliverer)
    lose_the_next_reply(simulator)
    deliverer.store.enqueue([bob(X)])
    drain(deliverer, timeout=60)

    assert simulator.extensions()[X]["user_id"] == 4
    [event] = deliverer.store.list_events(user="u-bob")
    assert (event.state, event.attempts) == (EventState.DONE, 2), "the first attempt's reply was lost"
    [handed] = audits(deliverer, "hand_over")
    assert (handed.detail["extension"], handed.detail["from_user_id"], handed.detail["user_id"]) == (X, 3, 4)
    assert handed.detail["confirmed"] is False and "reply to the write was lost" in handed.reason
    assert "its holder no longer claims it" in handed.reason and handed.event_ids == (event.id,)


def test_a_take_over_of_an_unmanaged_number_whose_reply_is_lost_is_still_audited(make_config, simulator, tmp_path):
    deliverer = make_deliverer(make_config, take_over_mapping(tmp_path), deadline=LOST_AFTER)
    lose_the_next_reply(simulator)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer, timeout=60)

    assert simulator.extensions()[X]["user_id"] == 3
    [taken] = audits(deliverer, "take_over")
    assert (taken.detail["from_user_id"], taken.detail["user_id"], taken.detail["confirmed"]) == (6, 3, False)
    assert "not managed by the connector" in taken.reason and "Verba may have applied it" in taken.reason


def test_a_stop_of_recording_whose_reply_is_lost_is_still_audited(make_config, simulator):
    deliverer = make_deliverer(make_config, deadline=LOST_AFTER)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    lose_the_next_reply(simulator)
    deliverer.store.enqueue([alice()])  # alice stays active, without her number: the stop's write is the only one
    drain(deliverer, timeout=60)

    assert not recording(simulator.extensions()[X])
    [event] = deliverer.store.list_events(limit=1)
    assert (event.state, event.attempts) == (EventState.DONE, 2)
    [stopped] = audits(deliverer, "recording_stopped")
    assert stopped.detail["extension"] == X and stopped.detail["confirmed"] is False
    assert "stays active" in stopped.reason and "reply to the write was lost" in stopped.reason


def test_a_write_that_failed_without_being_applied_is_audited_once_when_it_succeeds(make_config, simulator):
    """An HTTP 503 is no lost reply: nothing is audited until the write goes through, then once, confirmed."""
    deliverer = make_deliverer(make_config)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    simulator.fault(operation="updateExtension", http_status=503, times=1)
    deliverer.store.enqueue([alice()])
    drain(deliverer, timeout=60)

    assert not recording(simulator.extensions()[X])
    [stopped] = audits(deliverer, "recording_stopped")
    assert "confirmed" not in stopped.detail and "lost" not in stopped.reason


@pytest.mark.parametrize(("answer", "unconfirmed"), [
    (VerbaHTTPError(504, "Gateway Time-out"), True),  # a proxy whose upstream timed out: it may have applied it
    (VerbaHTTPError(502), True),
    (VerbaMalformedResponse("the answer was cut off"), True),
    (VerbaHTTPError(503), False),  # turned away before Verba
    (VerbaHTTPError(500, "java.lang.IllegalStateException", soap_fault=True), False),  # Verba's service refused it
])
def test_a_stop_whose_answer_is_a_proxy_error_after_verba_applied_it_is_audited(make_config, simulator, monkeypatch,
                                                                                answer, unconfirmed):
    """Verba applies the stop, then the answer that reaches the connector is a proxy's 502/504 or garbled: the retry
    finds the stop done and writes nothing, so only the unconfirmed entry tells that it happened."""
    deliverer = make_deliverer(make_config)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    update, answers = deliverer.client.update_extension, [answer]

    def applied_then_failed(record):
        update(record)
        if answers:
            raise answers.pop()

    monkeypatch.setattr(deliverer.client, "update_extension", applied_then_failed)
    deliverer.store.enqueue([alice()])  # alice stays active, without her number
    drain(deliverer, timeout=60)

    assert not recording(simulator.extensions()[X])
    stopped = audits(deliverer, "recording_stopped")
    assert [entry.detail.get("confirmed") for entry in stopped] == ([False] if unconfirmed else [])
