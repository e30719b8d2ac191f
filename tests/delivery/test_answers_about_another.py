"""Verba's answers about another extension or another user are never believed, end to end (simulator over real
HTTP): a getExtension answering another number took Carol's number for Alice, and stopped recording on a number
another user holds; a listUsers answering bob to a lookup of dave linked Dave's number to bob and cached bob's id as
Dave's. Now each is retried a few times, then a dead letter naming what Verba answered and what was asked, and
nothing is written on it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connector.delivery.worker import Deliverer
from connector.store import EventState
from tests.plugins.simulator import USERS, Simulator, drain, user

CAROLS, OTHER, DAVES = "+14155550101", "+14155550999", "+14155550133"
CAROL, DAVE = 5, 6
SOAP = ('<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:{0}Response '
        'xmlns:ns2="http://v2.provisioning.ws.web.verba.com/"><return>{1}<status><statusCode>OK</statusCode></status>'
        "</return></ns2:{0}Response></S:Body></S:Envelope>")


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [*USERS, {"id": CAROL, "loginName": "carol@example.com", "eid": "0000"},
            {"id": DAVE, "loginName": "dave@example.com", "eid": "0000"}]


@pytest.fixture
def seed_extensions() -> list[dict[str, Any]]:
    return [{"eid": "0000", "extension": CAROLS, "recordingMode": "FULL", "voice": True, "user_id": CAROL}]


def another_extension(user: str = "") -> dict[str, Any]:
    """A fault rule: every getExtension answers OK about OTHER (linked to `user`'s XML, or to no one)."""
    return {"operation": "getExtension", "body": SOAP.format(
        "getExtension", f"<extension><eid>0000</eid><extension>{OTHER}</extension><id>77</id><recordingMode>FULL"
                        f"</recordingMode>{user}<voice>true</voice></extension>")}


def bob_for_everyone(**rule: Any) -> dict[str, Any]:
    """A fault rule: listUsers answers bob (Verba user 4), whoever is asked for."""
    return {"operation": "listUsers", "body": SOAP.format(
        "listUsers", "<users><eid>0000</eid><id>4</id><loginName>bob@example.com</loginName></users>"), **rule}


def writes(simulator: Simulator) -> list[tuple[str, str, int | None]]:
    return [(c["operation"], c["extension"], c["user_id"]) for c in simulator.calls()
            if c["operation"] in ("createExtension", "updateExtension") and c["status"] == "OK"]


def only_event(deliverer: Deliverer, external_id: str) -> Any:
    [event] = deliverer.store.list_events(user=external_id, limit=1)
    return event


def test_a_get_extension_about_another_number_never_takes_carols_number(deliverer: Deliverer,
                                                                        simulator: Simulator) -> None:
    carols = simulator.extensions()[CAROLS]
    simulator.fault(**another_extension())
    deliverer.store.enqueue([user("u-alice", "alice@example.com", phones=("(415) 555-0101",))])
    drain(deliverer)

    assert simulator.extensions()[CAROLS] == carols, "Carol's number is as it was"
    assert writes(simulator) == []
    event = only_event(deliverer, "u-alice")
    assert (event.state, event.last_cause, event.attempts) == (EventState.DEAD, "verba_ambiguous", 3)
    assert (event.last_error or "").startswith(
        f"getExtension for extension {CAROLS} answered extension '{OTHER}' (asked '{CAROLS}'), not what was asked: "
        "the answer is not believed, and nothing is written on it")
    assert deliverer.store.owners([CAROLS]) != {CAROLS: 3}
    assert deliverer.store.list_audit() == []


def test_once_verba_answers_about_the_number_asked_carol_keeps_it_in_a_conflict(deliverer: Deliverer,
                                                                                 simulator: Simulator) -> None:
    carols = simulator.extensions()[CAROLS]
    simulator.fault(**another_extension(), times=1)
    deliverer.store.enqueue([user("u-alice", "alice@example.com", phones=(CAROLS,))])
    drain(deliverer)

    assert simulator.extensions()[CAROLS] == carols
    assert writes(simulator) == []
    event = only_event(deliverer, "u-alice")
    assert (event.state, event.attempts) == (EventState.DONE, 2)
    [conflict] = deliverer.store.open_conflicts()
    assert (conflict.extension, conflict.owner_user_id) == (CAROLS, CAROL)


def test_a_get_extension_about_another_number_of_the_leaver_never_stops_the_holders_recording(
        deliverer: Deliverer, simulator: Simulator) -> None:
    """Alice had X; an admin has since linked X to bob. Alice leaves, and every getExtension of X answers OTHER,
    linked to Alice: X is neither taken from bob nor stopped."""
    x = "+14155550100"
    deliverer.store.enqueue([user("u-alice", "alice@example.com", phones=(x,))])
    drain(deliverer)
    simulator.edit_extension(x, user_id=4)
    bobs = simulator.extensions()[x]
    simulator.clear_calls()
    simulator.fault(**another_extension("<user><eid>0000</eid><id>3</id><loginName>alice@example.com</loginName>"
                                        "</user>"))
    deliverer.store.enqueue([user("u-alice", "alice@example.com", phones=(x,), kind="deactivate")])
    drain(deliverer)

    assert simulator.extensions()[x] == bobs, "bob's number still records, linked to bob"
    assert writes(simulator) == []
    event = deliverer.store.list_events(user="u-alice", limit=1)[0]
    assert (event.state, event.last_cause, event.attempts) == (EventState.DEAD, "verba_ambiguous", 3)
    assert f"answered extension '{OTHER}' (asked '{x}')" in (event.last_error or "")
    assert [a.action for a in deliverer.store.list_audit()] == []


@pytest.mark.parametrize("create_missing", [False, True], ids=["look-up", "create-missing"])
def test_a_list_users_answer_about_bob_is_never_daves_id(request: pytest.FixtureRequest, simulator: Simulator,
                                                         create_missing: bool) -> None:
    deliverer: Deliverer = request.getfixturevalue("creating" if create_missing else "deliverer")
    simulator.fault(**bob_for_everyone())
    [event_id] = deliverer.store.enqueue([user("u-dave", "dave@example.com", phones=(DAVES,))])
    drain(deliverer)

    assert DAVES not in simulator.extensions()
    assert writes(simulator) == [] and simulator.calls("createUser") == []
    event = only_event(deliverer, "u-dave")
    assert (event.state, event.last_cause, event.attempts) == (EventState.DEAD, "verba_ambiguous", 3)
    assert (event.last_error or "").startswith(
        "listUsers for loginName 'dave@example.com' answered Verba user 4 with loginName 'bob@example.com' (asked "
        "'dave@example.com'), not what was asked")

    # Nothing of bob was kept for Dave: replayed once Verba answers right, Dave's number is Dave's.
    simulator.clear_faults()
    assert deliverer.store.requeue([event_id], time.time()) == 1
    drain(deliverer)
    assert only_event(deliverer, "u-dave").state is EventState.DONE
    assert simulator.extensions()[DAVES]["user_id"] == DAVE


def test_one_list_users_answer_about_bob_is_retried_and_dave_gets_his_own_id(deliverer: Deliverer,
                                                                             simulator: Simulator) -> None:
    simulator.fault(**bob_for_everyone(times=1))
    deliverer.store.enqueue([user("u-dave", "dave@example.com", phones=(DAVES,))])
    drain(deliverer)

    event = only_event(deliverer, "u-dave")
    assert (event.state, event.attempts) == (EventState.DONE, 2)
    assert writes(simulator) == [("createExtension", DAVES, DAVE)]
