"""PATCH as Entra ID and Okta send it (reference/scim.md §2, §4), and the events each write emits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connector.store import Store
from tests.scim.helpers import events, group_names, members, patch

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture
def user(api: httpx.Client) -> dict[str, Any]:
    return api.post("/Users", json={
        "userName": "ellen@example.com", "active": True, "name": {"givenName": "Ellen", "familyName": "Reckert"},
        "emails": [{"type": "work", "value": "ellen@example.com", "primary": True}],
        "phoneNumbers": [{"type": "work", "value": "+14155550100"}]}).json()


@pytest.mark.parametrize("op, value", [("Replace", "False"), ("replace", "false"), ("REPLACE", False)])
def test_deactivation_in_every_spelling_emits_exactly_one_deactivate(
    api: httpx.Client, store: Store, user: dict[str, Any], op: str, value: Any
) -> None:
    response = patch(api, f"/Users/{user['id']}", {"op": op, "path": "active", "value": value})
    assert response.status_code == 200 and response.json()["active"] is False
    assert [e.kind for e in events(store, user["id"])] == ["upsert", "deactivate"]
    again = patch(api, f"/Users/{user['id']}", {"op": op, "path": "active", "value": value})
    assert again.status_code == 200 and len(events(store, user["id"])) == 2  # nothing changed, nothing emitted


def test_okta_deactivates_with_a_no_path_value_object(api: httpx.Client, store: Store, user: dict[str, Any]) -> None:
    response = patch(api, f"/Users/{user['id']}", {"op": "replace", "value": {"active": False}})
    assert response.json()["active"] is False
    assert events(store, user["id"])[-1].kind == "deactivate"
    assert events(store, user["id"])[-1].state["active"] is False


def test_entra_no_path_replace_expands_dotted_and_urn_keys(
    api: httpx.Client, store: Store, user: dict[str, Any]
) -> None:
    response = patch(api, f"/Users/{user['id']}", {"op": "replace", "value": {
        "displayName": "Bjfe", "name.givenName": "Kkom", f"{ENTERPRISE}:employeeNumber": "Aklq",
        ENTERPRISE: {"department": "Retail"}}})
    body = response.json()
    assert body["displayName"] == "Bjfe" and body["name"] == {"givenName": "Kkom", "familyName": "Reckert"}
    assert body[ENTERPRISE] == {"employeeNumber": "Aklq", "department": "Retail"}
    state = events(store, user["id"])[-1].state
    assert state["attributes"][f"{ENTERPRISE}:department"] == "Retail"
    assert state["name"]["givenName"] == "Kkom" and state["displayName"] == "Bjfe"


def test_entra_multi_valued_replace_and_extension_add(api: httpx.Client, store: Store, user: dict[str, Any]) -> None:
    response = patch(api, f"/Users/{user['id']}",
                     {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@example.com"},
                     {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+14155550199"},
                     {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Legal"},
                     {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"})
    body = response.json()
    assert body["emails"] == [{"type": "work", "value": "new@example.com", "primary": True}]
    assert body["phoneNumbers"] == [
        {"type": "work", "value": "+14155550100"},
        {"type": "mobile", "value": "+14155550199"},
    ]
    assert body[ENTERPRISE] == {"department": "Legal"} and body["name"]["familyName"] == "updatedFamilyName"
    assert len(events(store, user["id"])) == 2  # one PATCH, one event


def test_entra_validator_add_creates_a_missing_work_email(api: httpx.Client) -> None:
    bare = api.post("/Users", json={"userName": "bare@example.com"}).json()
    response = patch(
        api, f"/Users/{bare['id']}", {"op": "add", "path": 'emails[type eq "work"].value', "value": "w@x.com"}
    )
    assert response.json()["emails"] == [{"type": "work", "value": "w@x.com"}]


def test_manager_as_a_bare_string_or_an_object(api: httpx.Client, user: dict[str, Any]) -> None:
    as_string = patch(api, f"/Users/{user['id']}", {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "m-1"})
    assert as_string.json()[ENTERPRISE]["manager"] == {"value": "m-1"}
    as_object = patch(
        api, f"/Users/{user['id']}", {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": "m-2"}}
    )
    assert as_object.json()[ENTERPRISE]["manager"] == {"value": "m-2"}
    removed = patch(api, f"/Users/{user['id']}", {"op": "remove", "path": f"{ENTERPRISE}:manager"})
    assert ENTERPRISE not in removed.json()


@pytest.mark.parametrize("operations, scim_type", [
    ([{"op": "replace", "path": "id", "value": "other"}], "mutability"),
    ([{"op": "add", "path": "groups", "value": [{"value": "g"}]}], "mutability"),
    ([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}], "mutability"),
    ([{"op": "remove"}], "noTarget"),
    ([{"op": "remove", "path": "userName"}], "invalidValue"),
    ([{"op": "add", "path": "nosuch", "value": "x"}], "invalidPath"),
    ([{"op": "add", "path": f"{ENTERPRISE}:nosuch", "value": "x"}], "invalidPath"),  # a defined schema's typo
    ([{"op": "add", "path": "phoneNumber", "value": "+14155550111"}], "invalidPath"),
    ([{"op": "add", "path": "emails[bad filter", "value": "x"}], "invalidPath"),
    ([{"op": "replace", "value": {"nosuch": 1}}], "invalidPath"),
    ([{"op": "move", "path": "title", "value": "x"}], "invalidSyntax"),
    ([], "invalidSyntax"),
    ([{"op": "replace", "path": "active", "value": "maybe"}], "invalidValue"),
    ([{"op": "replace", "path": 'emails[type eq "work" or type eq "home"].value', "value": ["a", "b"]}],
     "invalidValue"),
    ([{"op": "replace", "path": 'emails[type co "x"].value', "value": "a"}], "noTarget"),
    # A valid first operation is rolled back with the failing second one: no partial state, no event.
    ([{"op": "replace", "path": "title", "value": "changed"}, {"op": "add", "path": "nosuch", "value": 1}],
     "invalidPath"),
])
def test_refused_patches_change_nothing_and_emit_nothing(
    api: httpx.Client, store: Store, user: dict[str, Any], operations: list[dict[str, Any]], scim_type: str
) -> None:
    response = patch(api, f"/Users/{user['id']}", *operations)
    assert response.status_code == 400 and response.json()["scimType"] == scim_type, response.json()
    assert api.get(f"/Users/{user['id']}").json() == user
    assert len(events(store, user["id"])) == 1


def test_a_patch_that_changes_nothing_keeps_the_version(api: httpx.Client, store: Store, user: dict[str, Any]) -> None:
    same = patch(api, f"/Users/{user['id']}", {"op": "replace", "path": "name.givenName", "value": "Ellen"},
                 {"op": "add", "path": "password", "value": "secret"})
    assert same.headers["etag"] == user["meta"]["version"] and len(events(store, user["id"])) == 1


@pytest.fixture
def people(api: httpx.Client) -> list[str]:
    return [api.post("/Users", json={"userName": f"u{n}@example.com"}).json()["id"] for n in range(4)]


def test_entra_group_membership_in_batches(api: httpx.Client, store: Store, people: list[str]) -> None:
    a, b, c, d = people
    group = api.post("/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                                                   "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                                      "externalId": "8aa1a0c0", "displayName": "Teams Recording - Full",
                                      "meta": {"resourceType": "Group"}}).json()
    gid = group["id"]
    assert [len(events(store, p)) for p in people] == [1, 1, 1, 1]
    added = patch(
        api,
        f"/Groups/{gid}",
        {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": a}, {"$ref": None, "value": b}, {"value": c}],
        },
    )
    assert added.status_code == 204 and added.content == b""
    assert members(api, gid) == [a, b, c]
    assert group_names(store, a) == ["Teams Recording - Full"] and len(events(store, d)) == 1
    # Entra's default shape: Remove members with a value array removes only those.
    patch(api, f"/Groups/{gid}", {"op": "Remove", "path": "members", "value": [{"value": b}]})
    assert members(api, gid) == [a, c] and group_names(store, b) == []
    # Adding a member twice is no change; removing a non-member is no change.
    patch(api, f"/Groups/{gid}", {"op": "Add", "path": "members", "value": [{"value": a}]},
          {"op": "remove", "path": f'members[value eq "{d}"]'})
    assert members(api, gid) == [a, c] and [len(events(store, p)) for p in people] == [2, 3, 2, 1]
    # Rename: every member's event carries the new name.
    patch(api, f"/Groups/{gid}", {"op": "Replace", "path": "displayName", "value": "Teams Recording - Exempt"})
    assert group_names(store, a) == group_names(store, c) == ["Teams Recording - Exempt"]
    assert api.get(f"/Groups/{gid}", params={"excludedAttributes": "members"}).json().get("members") is None


def test_okta_group_push(api: httpx.Client, okta: httpx.Client, store: Store) -> None:
    a, b = (okta.post("/Users", json={"userName": f"o{n}@okta.local"}).json()["id"] for n in range(2))
    group = okta.post("/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                       "displayName": "Test SCIMv2", "members": []}).json()
    gid = group["id"]
    okta.patch(f"/Groups/{gid}", json={"Operations": [{"op": "replace", "path": "members",
                                                       "value": [{"value": a, "display": "o0@okta.local"}]}]})
    # Membership: remove with a value filter plus add, in one request; the rename repeats the read-only id.
    mixed = okta.patch(f"/Groups/{gid}", json={"Operations": [
        {"op": "remove", "path": f'members[value eq "{a}"]'},
        {"op": "add", "path": "members", "value": [{"value": b, "display": "o1@okta.local"}]},
        {"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2"}}]})
    assert mixed.status_code == 204
    assert [m["value"] for m in okta.get(f"/Groups/{gid}").json()["members"]] == [b]
    assert group_names(store, a) == [] and group_names(store, b) == ["Test SCIMv2"]
    assert all(e.source == "okta" for e in events(store))
    renamed_id = okta.patch(f"/Groups/{gid}", json={"Operations": [{"op": "replace", "value": {"id": "other"}}]})
    assert renamed_id.json()["scimType"] == "mutability"
    put = okta.put(f"/Groups/{gid}", json={"displayName": "Test SCIMv2", "members": [{"value": a}, {"value": b}]})
    assert put.status_code == 200 and group_names(store, a) == ["Test SCIMv2"]
    assert okta.delete(f"/Groups/{gid}").status_code == 204
    assert group_names(store, a) == group_names(store, b) == []
    assert api.get(f"/Groups/{gid}").status_code == 404  # and Entra never saw it: each client has its own


def test_deleted_users_leave_their_groups(api: httpx.Client, store: Store, people: list[str]) -> None:
    a, b, *_ = people
    gid = api.post("/Groups", json={"displayName": "G", "members": [{"value": a}, {"value": b}]}).json()["id"]
    assert api.delete(f"/Users/{a}").status_code == 204
    assert members(api, gid) == [b]
    deleted = events(store, a)[-1]
    assert deleted.kind == "delete" and deleted.state["userName"] == "u0@example.com"
    assert api.get(f"/Users/{b}").json()["groups"][0]["display"] == "G"
