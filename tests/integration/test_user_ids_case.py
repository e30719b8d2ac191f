"""[user_id] create_missing and a login name Verba holds differing only in case ("Oscar@example.com" for the source's
"oscar@example.com"): no second Verba user is created for the person, whether or not the other spelling was cached,
and whether Verba would create it or answer ERROR_ALREADY_EXISTS (the vendor does not say which: the simulator's
`case_duplicate_login` behaviour); the push is an unresolved_user dead letter naming both spellings and the fix
(simulator over real HTTP)."""

from __future__ import annotations

import pytest

from connector.delivery.worker import Deliverer
from connector.simulator.operations import CASE_DUPLICATE_LOGIN_SHAPES
from connector.store import EventState
from tests.plugins.simulator import Simulator, drain, user

OSCAR = "+14155550133"
IN_CASE = ("no Verba user has loginName 'oscar@example.com'; Verba has 'Oscar@example.com', which differs only in "
           "case: fix the case at the source or in Verba (do not create another user), then replay the event")



def oscars(simulator: Simulator) -> list[str]:
    return [u["loginName"] for u in simulator.users() if u["loginName"].casefold() == "oscar@example.com"]


def every_user_lists(simulator: Simulator) -> int:
    """How many listUsers asked for every user (no loginName criterion)."""
    return sum(1 for c in simulator.calls("listUsers") if not c["loginName"])


@pytest.mark.parametrize("shape", CASE_DUPLICATE_LOGIN_SHAPES)
def test_a_login_name_verba_holds_in_another_case_is_not_created_again(
        creating: Deliverer, simulator: Simulator, shape: str) -> None:
    """Nothing cached the other spelling: it was created a second time ("created"), or refused as existing and
    retried as an ambiguous answer, then dead-lettered saying to look for an inactive user ("already_exists")."""
    simulator.add_user("Oscar@example.com")
    simulator.behave(case_duplicate_login=shape)

    [event_id] = creating.store.enqueue([user("u-oscar", "oscar@example.com", phones=(OSCAR,))])
    drain(creating)

    [dead] = creating.store.list_events(state=EventState.DEAD)
    assert (dead.id, dead.last_cause, dead.last_error) == (event_id, "unresolved_user", IN_CASE)
    assert len(creating.store.attempts(event_id)) == 1
    assert oscars(simulator) == ["Oscar@example.com"] and simulator.calls("createUser") == []
    assert OSCAR not in simulator.extensions()


def test_a_spelling_made_in_verba_after_the_list_was_read_is_named_when_verba_refuses_the_creation(
        creating: Deliverer, simulator: Simulator) -> None:
    """The list of every user read for carol's creation is reused for ten minutes; Oscar@example.com was added after
    it. Verba answers createUser of oscar@example.com ERROR_ALREADY_EXISTS, and listUsers finds no oscar@example.com:
    every user is read again, which tells the other spelling from an inactive user."""
    simulator.behave(case_duplicate_login="already_exists")
    creating.store.enqueue([user("u-carol", "carol@example.com", phones=("+14155550122",))])
    drain(creating)
    assert every_user_lists(simulator) == 1
    simulator.add_user("Oscar@example.com")

    [event_id] = creating.store.enqueue([user("u-oscar", "oscar@example.com", phones=(OSCAR,))])
    drain(creating)

    [dead] = creating.store.list_events(state=EventState.DEAD)
    assert (dead.id, dead.last_cause, dead.last_error) == (event_id, "unresolved_user", IN_CASE)
    assert len(creating.store.attempts(event_id)) == 1
    assert [c["status"] for c in simulator.calls("createUser")] == ["OK", "ERROR_ALREADY_EXISTS"]
    assert every_user_lists(simulator) == 2 and oscars(simulator) == ["Oscar@example.com"]
