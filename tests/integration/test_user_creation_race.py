"""[user_id] create_missing when two sources of one new person (Entra and Okta, the same login name) are pushed at
once (simulator over real HTTP): both looked the user up and found nobody, so both ask createUser; Verba creates
one user and answers the other ERROR_ALREADY_EXISTS, which must end linked to that user, not as a dead letter."""

from __future__ import annotations

import threading
from typing import Any

from connector.events import UserChange
from connector.store import EventState
from connector.verba.errors import VerbaAmbiguous
from tests.plugins.simulator import drain

X = "+14155550100"
CAROL = "carol@example.com"



def carol(source: str) -> UserChange:
    return UserChange(source, "c1", "upsert", {"userName": CAROL, "phoneNumbers": [{"type": "work", "value": X}]})


def verba_users(simulator, login: str) -> list[dict[str, Any]]:
    return [u for u in simulator.http.get("/_sim/state").raise_for_status().json()["users"] if u["loginName"] == login]


def test_two_sources_creating_one_new_user_at_once_both_end_linked_to_it(creating, simulator, monkeypatch):
    # Neither source's createUser is sent before both looked the login name up and found nobody: the race, every time.
    both_looked_up = threading.Barrier(2, timeout=30)
    create_user = creating.client.create_user

    def create_once_both_looked_up(*args: Any, **kwargs: Any) -> int:
        both_looked_up.wait()
        return create_user(*args, **kwargs)

    monkeypatch.setattr(creating.client, "create_user", create_once_both_looked_up)
    creating.store.enqueue([carol("entra"), carol("okta")])
    workers = [threading.Thread(target=creating.deliver_one, args=(f"w{n}",)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    drain(creating)

    assert sorted(c["status"] for c in simulator.calls("createUser")) == ["ERROR_ALREADY_EXISTS", "OK"]
    [created] = verba_users(simulator, CAROL)
    assert {(e.change.source, e.state, e.last_cause) for e in creating.store.list_events()} == {
        ("entra", EventState.DONE, None), ("okta", EventState.DONE, None)}
    assert [creating.store.verba_user_id(source, "c1") for source in ("entra", "okta")] == [created["id"]] * 2
    assert simulator.extensions()[X]["user_id"] == created["id"]


def test_a_user_verba_says_exists_but_does_not_list_is_retried_a_few_times_then_named(creating, simulator):
    """createUser answers ERROR_ALREADY_EXISTS, yet listUsers finds nobody (Verba may leave an inactive or
    invalidated user out of it): a bounded retry, then a dead letter that says what to check in Verba."""
    simulator.fault(operation="createUser", status="ERROR_ALREADY_EXISTS",
                    message=f"This user already exists in the database: 0000:{CAROL}")
    [event_id] = creating.store.enqueue([carol("entra")])
    drain(creating)

    [event] = creating.store.list_events()
    assert event.state is EventState.DEAD and event.last_cause == "verba_ambiguous"
    assert f"createUser says a Verba user with loginName {CAROL!r} exists, but listUsers finds none" in event.last_error
    assert "inactive or invalidated user with that login name" in event.last_error
    assert len(creating.store.attempts(event_id)) == VerbaAmbiguous.max_attempts < creating.config.max_attempts
    assert verba_users(simulator, CAROL) == [] and simulator.extensions() == {}
