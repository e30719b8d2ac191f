"""Resource paths as clients send them, served directly over real HTTP: any case, trailing slashes (issue 11 item 5).

Microsoft's own test collection sends `/users`; a `307` for `/Users/` is not followed by some clients on POST or PATCH.
"""

from __future__ import annotations

import httpx

from tests.scim.helpers import BASE, SCIM_JSON

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SEARCH = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}


def test_every_method_on_users_in_any_case_and_with_trailing_slashes(api: httpx.Client) -> None:
    created = api.post("/users/", json={"userName": "lower@example.com"})
    assert created.status_code == 201
    user_id = created.json()["id"]
    assert created.headers["location"].endswith(f"{BASE}/Users/{user_id}")  # the canonical spelling
    for path in ("/users", "/USERS/", "/Users/", "/uSeRs"):
        listed = api.get(path)
        assert listed.status_code == 200 and listed.json()["totalResults"] == 1, path
    for path in (f"/users/{user_id}", f"/Users/{user_id}/", f"/USERS/{user_id}/"):
        got = api.get(path)
        assert got.status_code == 200 and got.json()["id"] == user_id, path
    head = api.head(f"/Users/{user_id}")  # as GET, without the body
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == got.headers["etag"]
    patched = api.patch(f"/users/{user_id}/", json={"Operations": [{"op": "replace", "path": "title", "value": "T"}]})
    assert patched.status_code == 200 and patched.json()["title"] == "T"
    put = api.put(f"/USERS/{user_id}/", json={"userName": "lower@example.com", "title": "U"})
    assert put.status_code == 200 and put.json()["title"] == "U"
    searched = api.post("/users/.search/", json={**SEARCH, "filter": 'userName eq "lower@example.com"'})
    assert searched.status_code == 200 and searched.json()["Resources"][0]["id"] == user_id
    assert api.delete(f"/users/{user_id}/").status_code == 204
    assert api.get(f"/Users/{user_id}").status_code == 404


def test_every_method_on_groups_in_any_case_and_with_trailing_slashes(api: httpx.Client) -> None:
    user_id = api.post("/Users", json={"userName": "member@example.com"}).json()["id"]
    created = api.post("/groups/", json={"displayName": "Sales"})
    assert created.status_code == 201
    group_id = created.json()["id"]
    assert created.headers["location"].endswith(f"{BASE}/Groups/{group_id}")
    assert api.get("/GROUPS/").json()["totalResults"] == 1
    add = {"Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]}
    assert api.patch(f"/groups/{group_id}/", json=add).status_code == 204
    assert api.get(f"/groups/{group_id}/").json()["members"][0]["value"] == user_id
    assert api.put(f"/Groups/{group_id}/", json={"displayName": "Sales"}).status_code == 200
    assert api.post("/GROUPS/.search", json=SEARCH).json()["totalResults"] == 1
    assert api.delete(f"/groups/{group_id}/").status_code == 204
    assert api.get(f"/Groups/{group_id}").status_code == 404


def test_discovery_endpoints_in_any_case_and_with_trailing_slashes(api: httpx.Client) -> None:
    for path in ("/serviceproviderconfig", "/ServiceProviderConfig/", "/SERVICEPROVIDERCONFIG/"):
        config = api.get(path)
        assert config.status_code == 200 and config.headers["content-type"] == SCIM_JSON, path
        assert config.json()["patch"]["supported"] is True
    for path in ("/schemas", "/Schemas/", "/resourcetypes", "/RESOURCETYPES/"):
        assert api.get(path).json()["totalResults"] in (2, 4), path
    assert api.get("/resourcetypes/user/").json()["endpoint"] == "/Users"
    assert api.get(f"/schemas/{CORE_GROUP}/").json()["id"] == CORE_GROUP
    assert api.post("/.SEARCH/", json=SEARCH).status_code == 200


def test_ids_keep_their_case_and_unknown_paths_are_404_never_a_redirect(server: str, api: httpx.Client) -> None:
    user_id = api.post("/Users", json={"userName": "case@example.com", "externalId": "e"}).json()["id"]
    assert user_id != user_id.upper()
    missing = api.get(f"/users/{user_id.upper()}")  # ids are case-exact (RFC 7643 §3.1): only the endpoint folds
    assert missing.status_code == 404 and missing.json()["schemas"] == [ERROR]
    for path in ("/Nope/", "/nope", "/Users/a/b", "/Users/a/b/"):
        answer = api.get(path)  # httpx does not follow redirects: a 307 would show
        assert answer.status_code == 404 and answer.json()["status"] == "404", path
    assert api.post("/Users/", content=b"{").status_code == 400  # answered by the endpoint, not a redirect
    assert httpx.get(f"{server}{BASE}//users//", headers=api.headers).status_code == 200
    assert httpx.get(f"{server}/healthz/").status_code == 200  # open without a token, slash or not


def test_schemas_say_a_group_display_name_is_unique(api: httpx.Client) -> None:
    # Issue 11 item 4: a second Group of one displayName is 409 uniqueness, so /Schemas says uniqueness "server".
    for group in (api.get(f"/Schemas/{CORE_GROUP}").json(),
                  next(s for s in api.get("/Schemas").json()["Resources"] if s["id"] == CORE_GROUP)):
        display_name = next(a for a in group["attributes"] if a["name"] == "displayName")
        assert display_name["uniqueness"] == "server" and display_name["caseExact"] is False
        assert next(a for a in group["attributes"] if a["name"] == "members")["uniqueness"] == "none"
