"""Ownership over SCIM, end to end: a number two IdP users share, a desk number passed from a leaver
to a joiner, and a user deleted and re-created at once, down to the simulator. Both store backends."""

from __future__ import annotations

from tests.scim.test_stop_recording_guard import (  # noqa: F401 (fixtures)
    FIRST_ID,
    POOL,
    connector,
    login,
    seed_users,
)

SHARED = "+14155550999"


def create(entra, n: int, phone: str) -> str:
    created = entra.post("/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                         "userName": login(n), "phoneNumbers": [{"type": "work", "value": phone}]})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_two_idp_users_on_one_number_conflict_until_the_holder_is_deleted(connector, simulator):  # noqa: F811 (the imported fixture)
    connector, entra = connector
    holder = create(entra, 1, SHARED)
    connector.deliver()
    create(entra, 2, SHARED)
    connector.deliver()
    assert simulator.extensions()[SHARED]["user_id"] == FIRST_ID + 1
    [conflict] = connector.store.open_conflicts()
    assert conflict.claimant.login_name == login(2) and conflict.owner_user_id == FIRST_ID + 1
    status = connector.cli("status")
    assert f"{SHARED}  event" in status.stdout and "claims it too and holds it" in status.stdout

    assert entra.delete(f"/Users/{holder}").status_code == 204
    connector.deliver(POOL)
    ext = simulator.extensions()[SHARED]
    assert ext["user_id"] == FIRST_ID + 2 and ext["voice"] is True
    assert connector.store.open_conflicts() == []
    assert [a.action for a in connector.store.list_audit()] == ["conflict_cleared", "hand_over", "conflict"]


def test_a_deleted_and_re_created_user_with_the_same_number_ends_recorded(connector, simulator):  # noqa: F811 (the imported fixture)
    connector, entra = connector
    old = create(entra, 3, SHARED)
    connector.deliver()
    assert entra.delete(f"/Users/{old}").status_code == 204
    create(entra, 3, SHARED)  # a new SCIM id for the same person and number
    connector.deliver(POOL)
    ext = simulator.extensions()[SHARED]
    assert ext["user_id"] == FIRST_ID + 3 and ext["voice"] is True
    assert connector.store.open_conflicts() == [] and connector.store.extension_clashes() == []
