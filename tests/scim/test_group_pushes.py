"""Issue 11, group pushes as IdPs send them: members the server does not know are kept pending instead of
failing the push, and group names are unique per SCIM client, in any case."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from connector.sources.scim.index import index_values
from connector.sources.scim.schema import GROUPS, USERS
from connector.sources.scim.service import MAX_PENDING_MEMBERS, ScimService
from connector.sources.scim.values import PENDING_MEMBERS
from connector.store import Store
from tests.scim.helpers import events, group_names, members, patch


def pending(store: Store, group_id: str, client: str = "entra") -> list[str]:
    row = store.scim_get(client, "Group", group_id)
    assert row is not None
    return [m["value"] for m in row.body.get(PENDING_MEMBERS, [])]


def pending_count(outcome: str, client: str = "entra") -> float:
    return REGISTRY.get_sample_value("connector_scim_pending_members_total",
                                     {"outcome": outcome, "client": client}) or 0.0


@pytest.fixture
def people(api: httpx.Client) -> list[str]:
    return [api.post("/Users", json={"userName": f"p{n}@example.com"}).json()["id"] for n in range(3)]


def send_members(api: httpx.Client, gid: str, name: str, write: str, sent: list[dict[str, Any]]) -> httpx.Response:
    """Send `sent` as the members of the Group `gid` (displayName `name`) by "put", "patch-add" or "patch-replace"."""
    if write == "put":
        return api.put(f"/Groups/{gid}", json={"id": gid, "displayName": name, "members": sent})
    op = {"op": "add" if write == "patch-add" else "replace", "path": "members", "value": sent}
    return patch(api, f"/Groups/{gid}", op)


# --- 3. members the server does not know ----------------------------------------------------------------------
@pytest.mark.parametrize("write", ["post", "put", "patch-add", "patch-replace"])
def test_a_push_with_an_unknown_member_applies_the_known_ones(
    api: httpx.Client, store: Store, people: list[str], write: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, _ = people
    sent = [{"value": a, "display": "p0"}, {"value": "not-provisioned-1", "display": "ghost"}, {"value": b}]
    before = pending_count("pending")
    if write == "post":
        response = api.post("/Groups", json={"displayName": "Traders", "members": sent})
        gid = response.json()["id"]
    else:
        gid = api.post("/Groups", json={"displayName": "Traders"}).json()["id"]
        response = send_members(api, gid, "Traders", write, sent)
    assert response.status_code in (200, 201, 204), response.text
    if response.content:
        assert [m["value"] for m in response.json()["members"]] == [a, b]
        assert PENDING_MEMBERS not in response.text and "not-provisioned-1" not in response.text
    assert members(api, gid) == [a, b] and pending(store, gid) == ["not-provisioned-1"]
    assert group_names(store, a) == group_names(store, b) == ["Traders"]
    assert pending_count("pending") == before + 1
    assert any("not-provisioned-1" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    # Not a member to filters either.
    for text in ('members[value eq "not-provisioned-1"]', 'members.value eq "not-provisioned-1"'):
        assert api.get("/Groups", params={"filter": text}).json()["totalResults"] == 0
    assert api.get("/Groups", params={"filter": "_pendingMembers pr"}).json()["scimType"] == "invalidFilter"


def test_okta_repushing_the_same_members_changes_and_warns_nothing(
    okta: httpx.Client, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    a = okta.post("/Users", json={"userName": "o@okta.local"}).json()["id"]
    body = {"displayName": "Push", "members": [{"value": a}, {"value": "gone-1"}]}
    group = okta.post("/Groups", json=body).json()
    caplog.clear()
    again = okta.put(f"/Groups/{group['id']}", json={**body, "id": group["id"]})
    assert again.status_code == 200 and again.headers["etag"] == group["meta"]["version"]
    assert not [r for r in caplog.records if "gone-1" in r.getMessage()]
    assert len(events(store, a)) == 2 and pending(store, group["id"], "okta") == ["gone-1"]


def test_the_client_removes_and_replaces_pending_members_like_members(
    api: httpx.Client, store: Store, people: list[str]
) -> None:
    a, b, c = people
    gid = api.post("/Groups", json={"displayName": "G", "members": [{"value": a}, {"value": "x1"}, {"value": "x2"}]}
                   ).json()["id"]
    assert pending(store, gid) == ["x1", "x2"]
    patch(api, f"/Groups/{gid}", {"op": "remove", "path": 'members[value eq "x1"]'})
    assert pending(store, gid) == ["x2"] and members(api, gid) == [a]
    patch(api, f"/Groups/{gid}", {"op": "Remove", "path": "members", "value": [{"value": "x2"}]},
          {"op": "Add", "path": "members", "value": [{"value": b}, {"value": "x3"}, {"value": a}]})
    assert pending(store, gid) == ["x3"] and members(api, gid) == [a, b]
    patch(api, f"/Groups/{gid}", {"op": "replace", "path": "members", "value": [{"value": c}]})
    assert pending(store, gid) == [] and members(api, gid) == [c]
    assert group_names(store, a) == group_names(store, b) == [] and group_names(store, c) == ["G"]


@pytest.fixture
def ids() -> list[str]:
    """The ids `service` gives the resources it creates, in order."""
    return []


@pytest.fixture
def service(store: Store, ids: list[str]) -> ScimService:
    return ScimService(store, new_id=lambda: ids.pop(0))


def test_a_pending_member_joins_when_a_resource_with_its_id_is_created(
    service: ScimService, store: Store, ids: list[str]
) -> None:
    ids += ["u-known", "g-1", "g-2"]
    service.create("entra", USERS, {"userName": "known@example.com"})
    service.create("entra", GROUPS, {"displayName": "One", "members": [{"value": "u-known"}, {"value": "u-later"}]})
    service.create("entra", GROUPS, {"displayName": "Two", "members": [{"value": "u-later"}, {"value": "g-later"}]})
    before = pending_count("applied")
    ids += ["u-later", "g-later"]
    user = service.create("entra", USERS, {"userName": "later@example.com"})
    assert user.groups == [("g-1", "One"), ("g-2", "Two")]
    assert events(store, "u-later")[-1].state["groups"] == ["One", "Two"]  # its first event names them
    assert pending(store, "g-1") == [] and pending(store, "g-2") == ["g-later"]
    service.create("entra", GROUPS, {"displayName": "Nested"})
    assert pending(store, "g-2") == [] and pending_count("applied") == before + 3  # u-later twice, g-later once
    two = store.scim_get("entra", "Group", "g-2")
    assert two is not None and [m["value"] for m in two.body["members"]] == ["u-later", "g-later"]


def test_pending_members_are_capped_per_group(service: ScimService, store: Store, ids: list[str]) -> None:
    ids.append("g")
    sent = [{"value": f"x{n}"} for n in range(MAX_PENDING_MEMBERS + 5)]
    dropped = pending_count("dropped")
    service.create("entra", GROUPS, {"displayName": "Big", "members": sent})
    assert pending(store, "g") == [f"x{n}" for n in range(5, MAX_PENDING_MEMBERS + 5)]
    assert pending_count("dropped") == dropped + 5


# --- 4. group names are unique per client -------------------------------------------------------------------
def test_a_second_group_of_one_name_in_any_case_is_409(api: httpx.Client, okta: httpx.Client) -> None:
    first = api.post("/Groups", json={"displayName": "Sales"})
    assert first.status_code == 201
    for name in ("Sales", "SALES", "sales"):
        again = api.post("/Groups", json={"displayName": name})
        assert again.status_code == 409 and again.json()["scimType"] == "uniqueness" and again.json()["status"] == "409"
        assert first.json()["id"] in again.json()["detail"]
    assert okta.post("/Groups", json={"displayName": "Sales"}).status_code == 201  # another client's own name
    assert api.get("/Groups", params={"count": 0}).json()["totalResults"] == 1
    assert api.delete(f"/Groups/{first.json()['id']}").status_code == 204
    assert api.post("/Groups", json={"displayName": "sales"}).status_code == 201  # free again


@pytest.mark.parametrize("rename", [
    lambda api, gid: api.put(f"/Groups/{gid}", json={"displayName": "SALES"}),
    lambda api, gid: patch(api, f"/Groups/{gid}", {"op": "Replace", "path": "displayName", "value": "sales"}),
    lambda api, gid: patch(api, f"/Groups/{gid}", {"op": "replace", "value": {"id": gid, "displayName": "Sales"}}),
])
def test_renaming_into_a_taken_name_is_409_and_changes_nothing(
    api: httpx.Client, store: Store, people: list[str], rename: Any
) -> None:
    api.post("/Groups", json={"displayName": "Sales"})
    other = api.post("/Groups", json={"displayName": "Legal", "members": [{"value": people[0]}]}).json()
    response = rename(api, other["id"])
    assert response.status_code == 409 and response.json()["scimType"] == "uniqueness"
    assert api.get(f"/Groups/{other['id']}").json() == other and group_names(store, people[0]) == ["Legal"]


def test_a_group_keeps_its_own_name_in_another_case(api: httpx.Client) -> None:
    gid = api.post("/Groups", json={"displayName": "Sales"}).json()["id"]
    renamed = api.put(f"/Groups/{gid}", json={"displayName": "SALES"})
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "SALES"


def test_schemas_say_group_display_names_are_unique(api: httpx.Client) -> None:
    group = api.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group").json()
    display = next(a for a in group["attributes"] if a["name"] == "displayName")
    assert display["uniqueness"] == "server"


def test_group_names_the_rules_would_take_for_one_are_one_name(api) -> None:
    assert api.post("/Groups", json={"displayName": "Sales Team"}).status_code == 201
    for twin in ("sales team ", "SALES  TEAM", "Ｓａｌｅｓ Team"):  # case, spacing, full-width (NFKC)
        answer = api.post("/Groups", json={"displayName": twin})
        assert answer.status_code == 409 and answer.json()["scimType"] == "uniqueness", twin
    assert api.post("/Groups", json={"displayName": "Sales Teams"}).status_code == 201


@pytest.mark.parametrize("write", ["post", "put", "patch-add", "patch-replace"])
def test_a_member_without_a_value_is_refused_and_nothing_changes(
    api: httpx.Client, store: Store, people: list[str], write: str
) -> None:
    """A member sent as {"display": ...} alone names nobody (one with an "id" is 400 invalidPath already): a 400
    that says so, not a silent skip that leaves the person out of a group that may decide their recording."""
    a, b, _ = people
    gid = api.post("/Groups", json={"displayName": "Traders", "members": [{"value": a}]}).json()["id"]
    sent = [{"value": b}, {"display": "p2", "type": "User"}]
    if write == "post":
        response = api.post("/Groups", json={"displayName": "Sales", "members": sent})
    else:
        response = send_members(api, gid, "Traders", write, sent)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["scimType"] == "invalidValue" and error["status"] == "400"
    assert '{"display": "p2", "type": "User"} has no value' in error["detail"]
    for blank in ("", "  "):  # an empty value names nobody either
        response = send_members(api, gid, "Traders", "patch-add", [{"value": blank}])
        assert response.status_code == 400 and "has no value" in response.json()["detail"], response.text
    assert members(api, gid) == [a] and group_names(store, b) == []
    assert [g["displayName"] for g in api.get("/Groups").json()["Resources"]] == ["Traders"]


# --- 5. groups as members -----------------------------------------------------------------------------------
@pytest.mark.parametrize("write", ["put", "patch-add", "patch-replace"])
def test_a_group_cannot_be_its_own_member_and_nothing_changes(
    api: httpx.Client, store: Store, people: list[str], write: str
) -> None:
    a, b, _ = people
    group = api.post("/Groups", json={"displayName": "Traders", "members": [{"value": a}]}).json()
    gid = group["id"]
    response = send_members(api, gid, "Traders", write, [{"value": b}, {"value": gid, "type": "Group"}])
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["scimType"] == "invalidValue" and error["status"] == "400"
    assert error["detail"] == (f'the member {{"value": "{gid}", "type": "Group"}} is this Group itself: a group '
                               "cannot be its own member; leave it out; nothing was changed")
    assert members(api, gid) == [a] and group_names(store, b) == []
    assert api.get(f"/Groups/{gid}").json()["meta"]["version"] == group["meta"]["version"]


def test_a_group_stored_as_its_own_member_before_the_check_can_still_be_written(
    service: ScimService, store: Store, ids: list[str]
) -> None:
    ids += ["u-1", "g-1"]
    service.create("entra", USERS, {"userName": "one@example.com"})
    service.create("entra", GROUPS, {"displayName": "Loop", "members": [{"value": "u-1"}]})
    with store.scim_transaction("entra") as tx:  # as a write before the check left it
        row = tx.get(GROUPS.name, "g-1")
        assert row is not None
        body = {**row.body, "members": [{"value": "u-1"}, {"value": "g-1"}]}
        tx.put(dataclasses.replace(row, body=body, version=row.version + 1), index_values(GROUPS, body))
    found = service.replace("entra", GROUPS, "g-1", {"displayName": "Loop 2", "members": body["members"]}, None)
    assert found.row.body["displayName"] == "Loop 2" and found.row.body["members"] == body["members"]


def nesting_warnings(caplog: pytest.LogCaptureFixture, inner: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and inner in r.getMessage() and "not followed" in r.getMessage()]


@pytest.mark.parametrize("write", ["post", "put", "patch-add"])
def test_a_group_in_a_group_is_kept_but_not_followed_and_warned_about_once(
    api: httpx.Client, store: Store, people: list[str], write: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nested groups are not followed (Entra provisions a group's direct members only, Okta groups do not nest):
    the inner group's users are not members of the outer group to the recording rules, and the log says so."""
    a, b, _ = people
    inner = api.post("/Groups", json={"displayName": "Inner", "members": [{"value": b}]}).json()["id"]
    sent = [{"value": a}, {"value": inner, "type": "Group"}]
    if write == "post":
        outer = api.post("/Groups", json={"displayName": "Outer", "members": sent}).json()["id"]
    else:
        outer = api.post("/Groups", json={"displayName": "Outer", "members": [{"value": a}]}).json()["id"]
        if write == "put":
            response = api.put(f"/Groups/{outer}", json={"displayName": "Outer", "members": sent})
        else:
            response = patch(api, f"/Groups/{outer}", {"op": "add", "path": "members", "value": sent[1:]})
        assert response.status_code in (200, 204), response.text
    assert members(api, outer) == [a, inner]
    assert group_names(store, a) == ["Outer"] and group_names(store, b) == ["Inner"]
    warned = nesting_warnings(caplog, inner)
    assert len(warned) == 1 and outer in warned[0], warned
    caplog.clear()
    again = api.put(f"/Groups/{outer}", json={"displayName": "Outer", "members": sent})  # Okta re-pushes all
    assert again.status_code == 200 and nesting_warnings(caplog, inner) == []
    # A cycle (Outer in Inner in Outer) is nothing more: neither is followed.
    assert patch(api, f"/Groups/{inner}", {"op": "add", "path": "members", "value": [{"value": outer}]}
                 ).status_code == 204
    assert len(nesting_warnings(caplog, outer)) == 1
    assert group_names(store, a) == ["Outer"] and group_names(store, b) == ["Inner"]
