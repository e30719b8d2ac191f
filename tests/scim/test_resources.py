"""Discovery, CRUD, errors and auth over real HTTP, on both store backends (reference/scim.md §4)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from connector.sources.scim.render import to_scim
from connector.sources.scim.schema import GROUPS, USERS
from connector.sources.scim.service import Found, ScimService
from connector.store import Store
from tests.scim.helpers import BASE, SCIM_JSON, client_for

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
T = TypeVar("T")


def test_discovery_describes_users_groups_and_the_extensions(api: httpx.Client) -> None:
    config = api.get("/ServiceProviderConfig")
    assert config.status_code == 200 and config.headers["content-type"] == SCIM_JSON
    assert config.json()["patch"]["supported"] and config.json()["etag"]["supported"]
    assert not config.json()["bulk"]["supported"] and not config.json()["sort"]["supported"]
    for path, ids in {"/ResourceTypes": {"User", "Group"},
                      "/Schemas": {"urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE,
                                   "urn:ietf:params:scim:schemas:extension:verba:2.0:User",
                                   "urn:ietf:params:scim:schemas:core:2.0:Group"}}.items():
        listed = api.get(path).json()  # Entra rejects a bare array: it must be a ListResponse
        assert listed["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
        assert {r["id"] for r in listed["Resources"]} == ids and listed["totalResults"] == len(ids)
    user_type = api.get("/ResourceTypes/User").json()
    assert user_type["endpoint"] == "/Users" and len(user_type["schemaExtensions"]) == 2
    assert api.get(f"/Schemas/{ENTERPRISE}").json()["name"] == "EnterpriseUser"
    assert api.get("/Schemas/urn:nope").status_code == 404


def test_create_returns_201_location_meta_and_round_trips_the_extension(api: httpx.Client) -> None:
    sent = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "alice@example.com", "externalId": "ext-1",
            ENTERPRISE: {"department": "Retail", "employeeNumber": 12345, "manager": {"value": "m-1"}}}
    created = api.post("/Users", json=sent)
    body = created.json()
    assert created.status_code == 201 and created.headers["location"] == body["meta"]["location"]
    assert body["meta"]["location"].endswith(f"{BASE}/Users/{body['id']}")
    assert body["meta"]["resourceType"] == "User" and body["meta"]["version"] == created.headers["etag"]
    assert created.headers["etag"].startswith('W/"')
    assert body[ENTERPRISE] == {"department": "Retail", "employeeNumber": "12345", "manager": {"value": "m-1"}}
    assert ENTERPRISE in body["schemas"]
    assert api.get(f"/Users/{body['id']}").json() == body


def test_a_user_name_taken_in_another_case_is_409_uniqueness(api: httpx.Client) -> None:
    api.post("/Users", json={"userName": "Alice@Example.com"})
    duplicate = api.post("/Users", json={"userName": "alice@EXAMPLE.com"})
    assert duplicate.status_code == 409
    assert duplicate.json() == {**duplicate.json(), "schemas": [ERROR], "status": "409", "scimType": "uniqueness"}
    other = api.post("/Users", json={"userName": "bob@example.com"}).json()
    renamed = api.patch(f"/Users/{other['id']}", json={"Operations": [{"op": "replace", "path": "userName",
                                                                        "value": "ALICE@example.com"}]})
    assert renamed.status_code == 409


def test_a_user_name_taken_in_another_unicode_form_is_409_uniqueness(api: httpx.Client) -> None:
    composed = unicodedata.normalize("NFC", "José@example.com")
    assert api.post("/Users", json={"userName": composed}).status_code == 201
    for spelling in (unicodedata.normalize("NFD", composed), unicodedata.normalize("NFD", composed.upper())):
        duplicate = api.post("/Users", json={"userName": spelling})
        assert duplicate.status_code == 409 and duplicate.json()["scimType"] == "uniqueness"
    # Verba's logins are not folded further: these are two users
    assert api.post("/Users", json={"userName": "straße@example.com"}).status_code == 201
    assert api.post("/Users", json={"userName": "STRASSE@example.com"}).status_code == 201
    assert api.post("/Users", json={"userName": "\ufb01ona@example.com"}).status_code == 201  # the "fi" ligature
    assert api.post("/Users", json={"userName": "fiona@example.com"}).status_code == 201


def test_pascal_case_keys_and_string_booleans_are_accepted(api: httpx.Client) -> None:
    # The Entra SCIM validator's Postman bodies use PascalCase keys.
    body = api.post("/Users", json={"UserName": "pascal@example.com", "Active": "False", "DisplayName": "P",
                                     "Emails": [{"Primary": "true", "Type": "work", "Value": "p@example.com"}]}).json()
    assert body["userName"] == "pascal@example.com" and body["active"] is False and body["displayName"] == "P"
    assert body["emails"] == [{"primary": True, "type": "work", "value": "p@example.com"}]


def test_okta_create_drops_the_password_and_read_only_groups(api: httpx.Client, store: Store) -> None:
    body = api.post("/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "middleName": "", "familyName": "User"}, "groups": [],
        "password": "1mz050nq", "active": True, "externalId": "00ujl29u0le5T6Aj10h7", "locale": "en-US"}).json()
    assert "password" not in body and "groups" not in body
    assert body["name"] == {"givenName": "Test", "middleName": "", "familyName": "User"}  # stored as sent
    stored = store.scim_get("entra", "User", body["id"])
    assert stored is not None and "1mz050nq" not in json.dumps(stored.body)
    assert all("1mz050nq" not in json.dumps(e.change.to_dict()) for e in store.list_events())


def test_attributes_and_excluded_attributes_are_case_insensitive(api: httpx.Client) -> None:
    user = api.post("/Users", json={"userName": "a@example.com", "displayName": "A", "title": "T",
                                     "name": {"givenName": "G", "familyName": "F"},
                                     ENTERPRISE: {"department": "D", "costCenter": "C"}}).json()
    only = api.get(f"/Users/{user['id']}", params={"attributes": f"DISPLAYNAME,name.GivenName,{ENTERPRISE}:department"})
    assert only.json() == {"schemas": user["schemas"], "id": user["id"], "displayName": "A",
                           "name": {"givenName": "G"}, ENTERPRISE: {"department": "D"}}
    without = api.get("/Users", params={"excludedAttributes": "title,name.familyName,meta"}).json()["Resources"][0]
    assert "title" not in without and "meta" not in without and without["name"] == {"givenName": "G"}
    assert without["id"] == user["id"]  # id is returned "always"


def test_soft_deleted_users_stay_visible_and_delete_is_204_then_404(api: httpx.Client) -> None:
    user = api.post("/Users", json={"userName": "gone@example.com"}).json()
    api.patch(f"/Users/{user['id']}", json={"Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    assert api.get("/Users", params={"filter": 'userName eq "gone@example.com"'}).json()["totalResults"] == 1
    assert api.delete(f"/Users/{user['id']}").status_code == 204
    missing = api.get(f"/Users/{user['id']}")
    assert missing.status_code == 404 and missing.json()["status"] == "404"
    assert api.delete(f"/Users/{user['id']}").status_code == 404
    assert (
        api.patch("/Users/nope", json={"Operations": [{"op": "add", "path": "title", "value": "x"}]}).status_code == 404
    )


def test_a_stale_if_match_is_412_and_a_current_one_applies(api: httpx.Client) -> None:
    created = api.post("/Users", json={"userName": "etag@example.com"})
    user_id, first = created.json()["id"], created.headers["etag"]
    patch = {"Operations": [{"op": "replace", "path": "title", "value": "one"}]}
    second = api.patch(f"/Users/{user_id}", json=patch, headers={"If-Match": first})
    assert second.status_code == 200 and second.headers["etag"] != first
    stale = api.patch(f"/Users/{user_id}", json=patch, headers={"If-Match": first})
    assert stale.status_code == 412 and stale.json()["status"] == "412"
    assert api.delete(f"/Users/{user_id}", headers={"If-Match": first}).status_code == 412
    assert (
        api.put(f"/Users/{user_id}", json={"userName": "etag@example.com"}, headers={"If-Match": "*"}).status_code
        == 200
    )


def test_a_get_with_the_current_etag_in_if_none_match_is_304(api: httpx.Client) -> None:
    """ServiceProviderConfig says etag is supported: a client that holds the current version gets 304, no body."""
    created = api.post("/Users", json={"userName": "cached@example.com"})
    user_id, tag = created.json()["id"], created.headers["etag"]
    cached = api.get(f"/Users/{user_id}", headers={"If-None-Match": tag})
    assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", tag)
    assert api.get(f"/Users/{user_id}", headers={"If-None-Match": f'W/"0", {tag}'}).status_code == 304
    api.patch(f"/Users/{user_id}", json={"Operations": [{"op": "replace", "path": "title", "value": "x"}]})
    changed = api.get(f"/Users/{user_id}", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.json()["title"] == "x" and changed.headers["etag"] != tag


def test_a_group_change_makes_a_new_etag_for_its_members(api: httpx.Client) -> None:
    """A user's groups change without a write of the user: a copy read before is not current."""
    user_id = api.post("/Users", json={"userName": "member@example.com"}).json()["id"]
    before = api.get(f"/Users/{user_id}").headers["etag"]
    group_id = api.post("/Groups", json={"displayName": "Sales", "members": [{"value": user_id}]}).json()["id"]
    fresh = api.get(f"/Users/{user_id}", headers={"If-None-Match": before})
    assert fresh.status_code == 200 and [g["display"] for g in fresh.json()["groups"]] == ["Sales"]
    assert fresh.headers["etag"] != before and fresh.json()["meta"]["version"] == fresh.headers["etag"]
    title = {"Operations": [{"op": "replace", "path": "title", "value": "x"}]}
    assert api.patch(f"/Users/{user_id}", json=title, headers={"If-Match": before}).status_code == 412
    current = fresh.headers["etag"]
    assert api.get(f"/Users/{user_id}", headers={"If-None-Match": current}).status_code == 304
    api.patch(f"/Groups/{group_id}", json={"Operations": [{"op": "replace", "path": "displayName", "value": "Desk"}]})
    renamed = api.get(f"/Users/{user_id}", headers={"If-None-Match": current})
    assert renamed.status_code == 200 and renamed.json()["groups"][0]["display"] == "Desk"
    assert api.patch(f"/Users/{user_id}", json=title, headers={"If-Match": renamed.headers["etag"]}).status_code == 200


def test_okta_put_with_id_groups_and_meta_replaces_the_user(api: httpx.Client) -> None:
    user = api.post("/Users", json={"userName": "test.user@okta.local", "title": "old", "displayName": "T"}).json()
    put = api.put(f"/Users/{user['id']}", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": user["id"], "userName": "test.user@okta.local",
        "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"}, "active": False,
        "groups": [], "meta": {"resourceType": "User"}})
    body = put.json()
    assert put.status_code == 200 and body["active"] is False and body["name"]["middleName"] == "Excited"
    assert "title" not in body and "displayName" not in body  # PUT replaces: what was not sent is gone
    moved = api.put(f"/Users/{user['id']}", json={"id": "another-id", "userName": "test.user@okta.local"})
    assert moved.status_code == 400 and moved.json()["scimType"] == "mutability"
    assert api.put(f"/Users/{user['id']}", json={"displayName": "no userName"}).json()["scimType"] == "invalidValue"


def test_malformed_and_oversized_bodies_get_scim_errors(api: httpx.Client) -> None:
    for content in (b"{not json", b"[1, 2]", b'"text"', b"NaN", b"[" * 50_000):
        response = api.post("/Users", content=content)
        assert response.status_code == 400 and response.json()["scimType"] in ("invalidSyntax", "invalidValue"), content
    big = api.post("/Users", json={"userName": "big", "title": "x" * 70_000})
    assert big.status_code == 413 and big.json()["status"] == "413"
    chunked = api.post("/Users", content=iter([b'{"userName": "c", "title": "', b"y" * 70_000, b'"}']))
    assert chunked.status_code == 413
    assert api.post("/Users", json={"userName": "u", "emails": [1]}).json()["scimType"] == "invalidValue"
    assert api.post("/Users", json={"userName": "u", "active": "maybe"}).json()["scimType"] == "invalidValue"
    assert api.post("/Users", json={"userName": "nul\u0000"}).json()["scimType"] == "invalidValue"
    assert api.post("/Users", content=b'{"userName": "\\ud800"}').json()["scimType"] == "invalidValue"


def test_auth_is_a_bearer_token_per_client_and_health_needs_none(server: str, api: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic ZW50cmE6eA=="}):
        response = httpx.get(f"{server}{BASE}/Users", headers=headers)
        assert response.status_code == 401 and response.json()["schemas"] == [ERROR], headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "secret" not in response.text
    assert httpx.get(f"{server}/healthz").status_code == 200
    # Each client sees only what it provisioned: the events' source is the client's name.
    api.post("/Users", json={"userName": "mine@example.com"})
    with client_for(server, "okta") as okta:
        assert okta.get("/Users").json()["totalResults"] == 0
        assert okta.post("/Users", json={"userName": "mine@example.com"}).status_code == 201


def test_unknown_endpoints_and_methods_get_scim_errors(server: str, api: httpx.Client) -> None:
    assert api.get("/Nope").json()["status"] == "404"
    assert api.put("/Users", json={}).json()["status"] == "405"
    assert httpx.get(f"{server}{BASE}//Users", headers=api.headers).status_code == 200  # a Tenant URL ending in "/"


def test_an_id_holding_a_nul_is_404_not_a_store_outage(api: httpx.Client) -> None:
    """PostgreSQL cannot compare a NUL: asking it answered 503 "store unavailable" and logged an ERROR."""
    replace = {"op": "replace", "path": "title", "value": "x"}
    answers = [
        api.get("/Users/%00"), api.get("/Groups/a%00b"), api.delete("/Users/%00"),
        api.put("/Users/%00", json={"userName": "nul@example.com"}),
        api.patch("/Groups/%00", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                       "Operations": [replace]}),
    ]
    assert [(r.status_code, r.json()["status"]) for r in answers] == [(404, "404")] * 5


def test_a_group_change_makes_its_members_last_modified_newer_with_their_etag(store: Store) -> None:
    """Entra and Okta compare meta.lastModified with the ETag: a user whose groups change has both changed."""
    clock = [1_000.0]
    service = ScimService(store, clock=lambda: clock[0])
    user_id = service.create("entra", USERS, {"userName": "member@example.com"}).row.id

    def meta() -> dict[str, str]:
        found = service.get("entra", USERS, user_id)
        return to_scim(USERS, found.row, BASE, found.groups)["meta"]

    def changed_since(before: dict[str, str]) -> list[str]:
        since = f'meta.lastModified gt "{before["lastModified"]}"'
        return [found.row.id for found in service.search("entra", USERS, since, 0, 10)[1]]

    def changes(write: Callable[[], T]) -> T:
        before = meta()
        clock[0] += 60
        result = write()
        after = meta()
        assert after["version"] != before["version"]
        assert after["lastModified"] > before["lastModified"] and after["created"] == before["created"]
        assert changed_since(before) == [user_id]
        return result

    def group_patch(operation: dict[str, Any]) -> Callable[[], Found]:
        return lambda: service.patch("entra", GROUPS, group_id, {"Operations": [operation]}, None)

    sales = {"displayName": "Sales", "members": [{"value": user_id}]}
    group_id = changes(lambda: service.create("entra", GROUPS, sales)).row.id
    changes(group_patch({"op": "replace", "path": "displayName", "value": "Desk"}))
    changes(group_patch({"op": "remove", "path": f'members[value eq "{user_id}"]'}))
    changes(group_patch({"op": "add", "path": "members", "value": [{"value": user_id}]}))
    changes(lambda: service.delete("entra", GROUPS, group_id, None))
