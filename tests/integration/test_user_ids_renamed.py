"""[user_id] create_missing and a person Verba holds under another login name than the one a push looks up: renamed
in Verba (the Verba user last pushed for them has another loginName now) or at the source (their new loginName is no
Verba user's, and the one last pushed still has the old). A user was created for the login name, a second Verba user
of the person, and their extensions moved to it; now no user is created, and the push is an unresolved_user dead
letter naming both names and the fix, whether the list of every user is read for it or was read shortly before. A
user deleted in Verba is still created (simulator over real HTTP)."""

from __future__ import annotations

import pytest

from connector.delivery.worker import Deliverer
from connector.store import EventState
from tests.ops.test_drift_no_user import verba_keeps_only
from tests.plugins.simulator import Simulator, drain, user

BOB = "+14155550111"
CAROL = "+14155550122"
ALICE_IN_VERBA = {"id": 3, "loginName": "alice@example.com", "eid": "0000"}
ROBERT_IN_VERBA = {"id": 4, "loginName": "robert@example.com", "eid": "0000"}  # bob, renamed in Verba



def make_the_names_match(login: str, verba_has: str) -> str:
    return (f"no Verba user has loginName {login!r}, but Verba user 4, last pushed for it, now has loginName "
            f"{verba_has!r}: make the two names match, in Verba or at the source (do not create another user), then "
            "replay the event")


def every_user_lists(simulator: Simulator) -> int:
    """How many listUsers asked for every user (no loginName criterion)."""
    return sum(1 for c in simulator.calls("listUsers") if not c["loginName"])


@pytest.mark.parametrize("renamed", ["in Verba", "at the source"])
def test_a_person_renamed_is_not_created_again(deliverer: Deliverer, creating: Deliverer, simulator: Simulator,
                                               renamed: str) -> None:
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(deliverer)
    if renamed == "in Verba":
        verba_keeps_only(simulator, [ALICE_IN_VERBA, ROBERT_IN_VERBA])
        login, verba_has = "bob@example.com", "robert@example.com"
    else:
        simulator.clear_calls()
        login, verba_has = "robert@example.com", "bob@example.com"

    [event_id] = creating.store.enqueue([user("u-bob", login, phones=(BOB,))])
    drain(creating)

    [dead] = creating.store.list_events(state=EventState.DEAD)
    assert (dead.id, dead.last_cause, dead.last_error) == (event_id, "unresolved_user",
                                                           make_the_names_match(login, verba_has))
    assert simulator.calls("createUser") == [] and every_user_lists(simulator) == 1
    assert sorted(u["loginName"] for u in simulator.users()) == ["alice@example.com", verba_has]
    assert simulator.extensions()[BOB]["user_id"] == 4


def test_a_list_read_for_another_creation_finds_the_renamed_person_and_a_deleted_one_is_created(
        deliverer: Deliverer, creating: Deliverer, simulator: Simulator) -> None:
    """carol, deleted in Verba, is created again; the list of every user read before her creation (reused for
    user_cache_seconds) holds bob under his new name, so his push creates no one and reads no other list."""
    simulator.add_user("carol@example.com", id=5)
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,)),
                             user("u-carol", "carol@example.com", phones=(CAROL,))])
    drain(deliverer)
    verba_keeps_only(simulator, [ALICE_IN_VERBA, ROBERT_IN_VERBA, {"id": 5, "loginName": "carol@example.com"}])
    simulator.delete_user(5)

    creating.store.enqueue([user("u-carol", "carol@example.com", phones=(CAROL,))])
    drain(creating)
    [carol] = simulator.users("carol@example.com")
    assert carol["id"] != 5 and simulator.extensions()[CAROL]["user_id"] == carol["id"]
    assert every_user_lists(simulator) == 1

    [event_id] = creating.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(creating)

    [dead] = creating.store.list_events(state=EventState.DEAD)
    assert (dead.id, dead.last_cause, dead.last_error) == (
        event_id, "unresolved_user", make_the_names_match("bob@example.com", "robert@example.com"))
    assert [c["status"] for c in simulator.calls("createUser")] == ["OK"]  # carol's
    assert every_user_lists(simulator) == 1 and simulator.extensions()[BOB]["user_id"] == 4
