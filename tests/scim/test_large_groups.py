"""Member pushes on large groups, as an IdP admin checks them: the one member added or removed, and nobody else, is
changed, shown and turned into an event (bench/bench_scim_patch.py measures how long it takes)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from connector.sources.scim.index import index_values
from connector.sources.scim.patch import apply_patch
from connector.sources.scim.schema import GROUPS, USERS
from connector.store import ScimResource, Store
from tests.scim.helpers import events, members, patch

LARGE = 20_000


def _op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}


@pytest.fixture(scope="module")
def large_group() -> dict[str, Any]:
    return {"displayName": "Everyone", "members": [{"value": str(uuid.UUID(int=n))} for n in range(LARGE)]}


def test_a_member_add_on_a_large_group_appends_only_the_new_member(large_group: dict[str, Any]) -> None:
    stored = large_group["members"]
    added = apply_patch(GROUPS, large_group, "g", _op(
        {"op": "Add", "path": "members", "value": [{"value": "new-1"}, stored[7], {"value": "new-1"}]},
        {"op": "add", "path": "members", "value": [{"value": stored[LARGE - 1]["value"], "display": "Ann"}]}))
    assert added["members"] == [*stored, {"value": "new-1"}]  # a member already there is left as it is
    assert large_group["members"] is stored and len(stored) == LARGE  # the stored body is untouched


@pytest.mark.parametrize("operation", [
    {"op": "Remove", "path": "members", "value": [{"value": str(uuid.UUID(int=5))}, {"value": "never-a-member"}]},
    {"op": "remove", "path": f'members[value eq "{uuid.UUID(int=5)}"]'},
])
def test_a_member_remove_on_a_large_group_takes_only_that_member(
    large_group: dict[str, Any], operation: dict[str, Any]
) -> None:
    removed = apply_patch(GROUPS, large_group, "g", _op(operation))
    assert removed["members"] == large_group["members"][:5] + large_group["members"][6:]


def test_a_large_replace_of_members_keeps_each_member_once(large_group: dict[str, Any]) -> None:
    sent = [*large_group["members"], *large_group["members"][:100], {"value": "x", "display": "X"}]
    replaced = apply_patch(GROUPS, large_group, "g", _op({"op": "replace", "path": "members", "value": sent}))
    assert replaced["members"] == [*large_group["members"], {"value": "x", "display": "X"}]


def _seed_group(store: Store, size: int) -> tuple[str, list[str]]:
    """A Group of `size` Users of the client entra, written straight to the store in one transaction."""
    user_ids = [str(uuid.uuid4()) for _ in range(size)]
    now = "2026-01-01T00:00:00.000000Z"
    with store.scim_transaction("entra") as tx:
        for n, user_id in enumerate(user_ids):
            body = {"userName": f"u{n}@example.com"}
            tx.put(ScimResource("entra", USERS.name, user_id, body, 1, now, now, body["userName"]),
                   index_values(USERS, body))
        body = {"displayName": "Everyone", "members": [{"value": user_id} for user_id in user_ids]}
        tx.put(ScimResource("entra", GROUPS.name, "g-large", body, 1, now, now, display="Everyone"),
               index_values(GROUPS, body))
    return "g-large", user_ids


def test_member_pushes_on_a_large_group_change_and_tell_only_those_members(api: httpx.Client, store: Store) -> None:
    group, user_ids = _seed_group(store, 3000)
    newcomer = api.post("/Users", json={"userName": "newcomer@example.com"}).json()["id"]
    response = patch(api, f"/Groups/{group}", {"op": "Add", "path": "members", "value": [{"value": newcomer}]})
    assert response.status_code == 204, response.text
    response = patch(api, f"/Groups/{group}", {"op": "remove", "path": f'members[value eq "{user_ids[10]}"]'})
    assert response.status_code == 204, response.text
    assert members(api, group) == [*user_ids[:10], *user_ids[11:], newcomer]
    assert api.get(f"/Users/{newcomer}").json()["groups"][0]["display"] == "Everyone"
    assert "groups" not in api.get(f"/Users/{user_ids[10]}").json()
    told = [(e.external_id, e.state["groups"]) for e in events(store)]
    assert told == [(newcomer, []), (newcomer, ["Everyone"]), (user_ids[10], [])]


def test_a_rename_of_a_large_group_tells_every_member(api: httpx.Client, store: Store) -> None:
    group, user_ids = _seed_group(store, 3000)
    response = patch(api, f"/Groups/{group}", {"op": "replace", "path": "displayName", "value": "All staff"})
    assert response.status_code == 204, response.text
    told = {e.change.external_id: e.change.state["groups"] for e in store.list_events(limit=5000)}
    assert told == {user_id: ["All staff"] for user_id in user_ids}
