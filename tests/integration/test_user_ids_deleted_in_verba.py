"""A Verba user deleted in Verba (by an admin) while delivery has its id cached ([delivery] user_cache_seconds): the
next push names a user Verba no longer holds. The vendor does not say how Verba answers that write, so each shape the
simulator offers (its `unknown_user` behaviour) is tried: the login name is looked up again, once per push, and the
push ends with the user's new id, a user created with [user_id] create_missing, or an unresolved_user dead letter that
says what to do; never with Verba's raw refusal, never retried without end (simulator over real HTTP)."""

from __future__ import annotations

import time

import pytest

from connector.delivery.worker import Deliverer
from connector.simulator.operations import UNKNOWN_USER_SHAPES
from connector.store import EventState
from tests.plugins.simulator import Simulator, drain, user

BOB, BOB_DESK = "+14155550111", "+14155550112"
CAROL, CAROL_DESK = "+14155550122", "+14155550123"
WRITES = ("createExtension", "updateExtension")



def writes(simulator: Simulator) -> list[tuple[str, int | None, str]]:
    """(operation, user id, status) of each extension write Verba was sent."""
    return [(c["operation"], c["user_id"], c["status"]) for c in simulator.calls() if c["operation"] in WRITES]


def outcomes(deliverer: Deliverer, event_id: int) -> list[str]:
    """The outcome of each attempt at the event, oldest first."""
    return [attempt.outcome for attempt in deliverer.store.attempts(event_id)]


def pushed_then_deleted_in_verba(deliverer: Deliverer, simulator: Simulator, shape: str,
                                 users: dict[str, tuple[str, int]]) -> None:
    """Each of `users` (external id -> (phone, Verba id)) pushed, so its id is cached; then deleted in Verba, whose
    writes naming a user it does not hold are answered in `shape`."""
    deliverer.store.enqueue([user(external_id, f"{external_id[2:]}@example.com", phones=(phone,))
                             for external_id, (phone, _) in users.items()])
    drain(deliverer)
    for phone, user_id in users.values():
        assert simulator.extensions()[phone]["user_id"] == user_id
        simulator.delete_user(user_id)
    simulator.behave(unknown_user=shape)
    simulator.clear_calls()


@pytest.mark.parametrize("shape", UNKNOWN_USER_SHAPES)
def test_a_user_deleted_and_made_again_in_verba_is_pushed_with_its_new_id(
        deliverer: Deliverer, simulator: Simulator, shape: str) -> None:
    pushed_then_deleted_in_verba(deliverer, simulator, shape, {"u-bob": (BOB, 4)})
    new_id = simulator.add_user("bob@example.com")

    [event_id] = deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB, BOB_DESK))])
    drain(deliverer)

    assert outcomes(deliverer, event_id) == ["done"]
    assert {n: simulator.extensions()[n]["user_id"] for n in (BOB, BOB_DESK)} == {BOB: new_id, BOB_DESK: new_id}
    assert deliverer.store.verba_user_id("test", "u-bob") == new_id
    refused = [w for w in writes(simulator) if w[1] == 4]
    assert len(refused) == 1 and refused[0][2] != "OK"  # one write with the deleted id, then none
    assert [c["loginName"] for c in simulator.calls("listUsers")] == ["bob@example.com"]
    assert not deliverer.breaker.state.open

    # The new id is what is cached now: the next push writes it at once.
    simulator.clear_calls()
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(deliverer)
    assert {w[1] for w in writes(simulator)} == {new_id} and simulator.calls("listUsers") == []


def test_users_deleted_in_a_verba_that_answers_with_server_faults_are_created_again_and_delivery_goes_on(
        creating: Deliverer, simulator: Simulator) -> None:
    """The most hostile shape: a SOAP Fault at HTTP 500 speaks of Verba failing as a whole, so two users refused that
    way opened the circuit breaker (its default breaker_min_users is 2), and delivery stopped for everyone until
    each had spent its attempts and died with the raw fault."""
    simulator.add_user("carol@example.com", id=5)
    pushed_then_deleted_in_verba(creating, simulator, "soap_fault", {"u-bob": (BOB, 4), "u-carol": (CAROL, 5)})

    event_ids = creating.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB, BOB_DESK)),
                            user("u-carol", "carol@example.com", phones=(CAROL, CAROL_DESK), displayName="Carol")])
    drain(creating)

    assert not creating.breaker.state.open and creating.store.open_breakers() == []
    assert [outcomes(creating, event_id) for event_id in event_ids] == [["done"], ["done"]]
    [bob] = simulator.users("bob@example.com")
    [carol] = simulator.users("carol@example.com")
    assert bob["id"] not in (4, 5) and carol["id"] not in (4, 5) and carol["displayName"] == "Carol"
    extensions = simulator.extensions()
    assert {n: extensions[n]["user_id"] for n in (BOB, BOB_DESK, CAROL, CAROL_DESK)} == {
        BOB: bob["id"], BOB_DESK: bob["id"], CAROL: carol["id"], CAROL_DESK: carol["id"]}
    assert sorted(c["status"] for c in simulator.calls("createUser")) == ["OK", "OK"]


@pytest.mark.parametrize("shape", UNKNOWN_USER_SHAPES)
def test_without_create_missing_a_user_deleted_in_verba_is_a_dead_letter_saying_what_to_do(
        deliverer: Deliverer, simulator: Simulator, shape: str) -> None:
    """It was a dead letter with Verba's raw refusal ("No user with id 4"), or for an ERROR_GENERAL or a server fault
    the same refused write retried until the budget was spent."""
    pushed_then_deleted_in_verba(deliverer, simulator, shape, {"u-bob": (BOB, 4)})

    [event_id] = deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB, BOB_DESK))])
    drain(deliverer)

    [dead] = deliverer.store.list_events(state=EventState.DEAD)
    assert (dead.id, dead.last_cause, dead.attempts) == (event_id, "unresolved_user", 1)
    error = dead.last_error or ""
    assert error.startswith("no Verba user has loginName 'bob@example.com' any more: Verba refused a write for "
                            "Verba user 4, its user until then ("), error
    assert error.endswith("); create the user in Verba (or set [user_id] create_missing = true in the mapping), then "
                          "replay the event"), error
    assert len(writes(simulator)) == 1 and not deliverer.breaker.state.open

    # The fix it names: the user made again in Verba, the event replayed.
    new_id = simulator.add_user("bob@example.com")
    assert deliverer.store.requeue([event_id], time.time()) == 1
    drain(deliverer)
    assert deliverer.store.list_events(state=EventState.DEAD) == []
    assert {n: simulator.extensions()[n]["user_id"] for n in (BOB, BOB_DESK)} == {BOB: new_id, BOB_DESK: new_id}


def test_a_refusal_while_the_user_still_has_its_id_is_looked_up_once_then_classified_as_any(
        deliverer: Deliverer, simulator: Simulator) -> None:
    """Verba contradicts itself (bob is still Verba user 4, yet every write naming 4 is refused as unknown): one
    look-up per push shows nothing changed, and the refusal is what it is, a dead letter at once for
    ERROR_ILLEGAL_ARGUMENT; for ERROR_GENERAL, bounded retries, each looking bob up once more, never an endless loop."""
    pushed_then_deleted_in_verba(deliverer, simulator, "error_illegal_argument", {"u-bob": (BOB, 4)})
    simulator.add_user("bob@example.com", id=4)  # back with the same id
    simulator.fault(operation="updateExtension", status="ERROR_ILLEGAL_ARGUMENT", message="No user with id 4")

    [event_id] = deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB, BOB_DESK))])
    drain(deliverer)
    [dead] = deliverer.store.list_events(state=EventState.DEAD)
    assert (dead.id, dead.last_cause, dead.attempts) == (event_id, "error_illegal_argument", 1)
    assert dead.last_error == "updateExtension answered ERROR_ILLEGAL_ARGUMENT: No user with id 4"
    assert [c["loginName"] for c in simulator.calls("listUsers")] == ["bob@example.com"]
    assert writes(simulator) == [("updateExtension", 4, "ERROR_ILLEGAL_ARGUMENT")]

    simulator.clear_faults()
    simulator.clear_calls()
    simulator.fault(operation="updateExtension", status="ERROR_GENERAL", message="user 4 is unknown")
    assert deliverer.store.requeue([event_id], time.time()) == 1
    drain(deliverer)
    [dead] = deliverer.store.list_events(state=EventState.DEAD)
    budget = deliverer.config.max_attempts
    assert (dead.last_cause, dead.attempts) == ("error_general", budget)
    assert len(simulator.calls("updateExtension")) == budget
    assert [c["loginName"] for c in simulator.calls("listUsers")] == ["bob@example.com"] * budget


def test_a_cached_id_does_not_outlive_a_refusal_whose_look_up_failed(deliverer: Deliverer,
                                                                     simulator: Simulator) -> None:
    """The look-up after the refusal fails (Verba answers HTTP 503): the push is retried, and its retry looks bob up
    again rather than writing the id Verba refused."""
    pushed_then_deleted_in_verba(deliverer, simulator, "error_illegal_argument", {"u-bob": (BOB, 4)})
    new_id = simulator.add_user("bob@example.com")
    simulator.fault(operation="listUsers", http_status=503, times=1)

    [event_id] = deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB, BOB_DESK))])
    drain(deliverer)

    assert [w[1] for w in writes(simulator)] == [4, new_id, new_id, new_id]  # refused; then the retry writes both
    assert {n: simulator.extensions()[n]["user_id"] for n in (BOB, BOB_DESK)} == {BOB: new_id, BOB_DESK: new_id}
    assert outcomes(deliverer, event_id) == ["retry", "done"]
