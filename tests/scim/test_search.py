"""POST /.search (RFC 7644 §3.4.3) over real HTTP: /Users/.search, /Groups/.search and the root (issue 11 item 7).

A SearchRequest answers exactly the ListResponse that GET with the same query parameters answers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.scim.helpers import SCIM_JSON

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def search(**members: Any) -> dict[str, Any]:
    return {"schemas": [SEARCH_REQUEST], **members}


@pytest.fixture
def people(api: httpx.Client) -> dict[str, str]:
    """Three users and two groups; name -> id."""
    ids = {}
    for n, name in enumerate(("ann", "bob", "cid")):
        user = {"userName": f"{name}@example.com", "displayName": f"S {name}", "title": "Agent", "externalId": f"x{n}",
                "emails": [{"type": "work", "value": f"{name}@example.com"}], ENTERPRISE: {"department": "Sales"}}
        ids[name] = api.post("/Users", json=user).json()["id"]
    for name in ("Sales", "Support"):
        ids[name] = api.post("/Groups", json={"displayName": name, "members": [{"value": ids["ann"]}]}).json()["id"]
    return ids


@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
def test_a_search_answers_what_get_with_those_parameters_answers(api: httpx.Client, people: dict[str, str],
                                                                 endpoint: str) -> None:
    cases = [
        ({}, {}),
        ({"filter": 'displayName sw "S"'}, {"filter": 'displayName sw "S"'}),
        ({"startIndex": 2, "count": 1}, {"startIndex": "2", "count": "1"}),
        ({"count": 0}, {"count": "0"}),
        ({"startIndex": 9}, {"startIndex": "9"}),
        ({"attributes": ["displayName", "META.created"]}, {"attributes": "displayName,META.created"}),
        ({"excludedAttributes": ["members", "emails", "meta"]}, {"excludedAttributes": "members,emails,meta"}),
        ({"filter": 'displayName eq "nobody"', "attributes": "displayName"},
         {"filter": 'displayName eq "nobody"', "attributes": "displayName"}),
    ]
    for body, params in cases:
        searched = api.post(f"{endpoint}/.search", json=search(**body))
        assert searched.status_code == 200 and searched.headers["content-type"] == SCIM_JSON, body
        assert searched.json() == api.get(endpoint, params=params).json(), body


def test_user_search_filters_pages_and_projects(api: httpx.Client, people: dict[str, str]) -> None:
    found = api.post("/Users/.search", json=search(filter='emails[type eq "work"].value eq "bob@example.com"',
                                                    attributes=["userName", f"{ENTERPRISE}:department"])).json()
    assert found["totalResults"] == 1 and found["itemsPerPage"] == 1 and found["startIndex"] == 1
    assert found["Resources"] == [{"schemas": [CORE_USER, ENTERPRISE], "id": people["bob"],
                                   "userName": "bob@example.com", ENTERPRISE: {"department": "Sales"}}]
    page = api.post("/Users/.search", json=search(startIndex=2, count=2, excludedAttributes=["emails"])).json()
    assert page["totalResults"] == 3 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert all("emails" not in user and user["title"] == "Agent" for user in page["Resources"])
    # Member names in any case (RFC 7643 §2.1), as GET's query parameter names.
    shouting = api.post("/Users/.search", json={"SCHEMAS": [SEARCH_REQUEST.upper()], "COUNT": 5,
                                                 "Filter": 'userName eq "ANN@example.com"', "Attributes": ["USERNAME"]})
    shouting = shouting.json()
    assert shouting["Resources"] == [{"schemas": [CORE_USER, ENTERPRISE], "id": people["ann"],
                                      "userName": "ann@example.com"}]


def test_group_search_excludes_members_like_entra(api: httpx.Client, people: dict[str, str]) -> None:
    found = api.post("/Groups/.search", json=search(filter='displayName eq "sales"', excludedAttributes=["members"]))
    assert found.json()["totalResults"] == 1
    assert found.json()["Resources"][0]["id"] == people["Sales"] and "members" not in found.json()["Resources"][0]


def test_the_root_search_covers_users_then_groups_and_pages_across_them(api: httpx.Client,
                                                                        people: dict[str, str]) -> None:
    users, groups = api.get("/Users").json()["Resources"], api.get("/Groups").json()["Resources"]
    everything = api.post("/.search", json=search()).json()
    assert everything["totalResults"] == 5 and everything["Resources"] == users + groups
    assert [r["meta"]["resourceType"] for r in everything["Resources"]] == ["User"] * 3 + ["Group"] * 2
    for start, count in ((1, 2), (2, 2), (3, 2), (4, 5), (5, 1), (6, 3), (1, 0)):
        page = api.post("/.search", json=search(startIndex=start, count=count)).json()
        assert page["totalResults"] == 5 and page["startIndex"] == start, (start, count)
        assert page["Resources"] == (users + groups)[start - 1:start - 1 + count], (start, count)
    projected = api.post("/.search", json=search(attributes=["displayName"])).json()["Resources"]
    assert [set(r) for r in projected] == [{"schemas", "id", "displayName"}] * 5


def test_a_root_filter_matches_each_type_that_can_evaluate_it(api: httpx.Client, people: dict[str, str]) -> None:
    both = api.post("/.search", json=search(filter='displayName sw "S"')).json()
    assert both["totalResults"] == 5  # "S ann", "S bob", "S cid", "Sales", "Support"
    # userName is not a Group attribute: no Group matches, the Users that match do.
    one = api.post("/.search", json=search(filter='userName eq "cid@example.com" or title eq "x"')).json()
    assert one["totalResults"] == 1 and one["Resources"][0]["id"] == people["cid"]
    groups = api.post("/.search", json=search(filter='members[value eq "' + people["ann"] + '"]')).json()
    assert {r["id"] for r in groups["Resources"]} == {people["Sales"], people["Support"]}
    none = api.post("/.search", json=search(filter='externalId eq "nobody"')).json()
    assert none["totalResults"] == 0 and none["Resources"] == []
    for bad in ('nosuch eq "x"', 'userName eq', "((", 'userName eq "a" and nosuch eq "b"'):
        refused = api.post("/.search", json=search(filter=bad))
        assert refused.status_code == 400 and refused.json()["scimType"] == "invalidFilter", bad


@pytest.mark.parametrize("endpoint", ["/.search", "/Users/.search", "/Groups/.search"])
def test_a_malformed_search_request_is_a_scim_400(api: httpx.Client, endpoint: str) -> None:
    cases: list[tuple[Any, str]] = [
        ([SEARCH_REQUEST], "invalidSyntax"),
        ("filter", "invalidSyntax"),
        ({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}, "invalidValue"),
        ({"schemas": SEARCH_REQUEST}, "invalidValue"),
        (search(filter=["userName eq \"x\""]), "invalidFilter"),
        (search(filter="userName eq"), "invalidFilter"),
        (search(count="many"), "invalidValue"),
        (search(startIndex=1.5), "invalidValue"),
        (search(count=True), "invalidValue"),
        (search(attributes=[1]), "invalidValue"),
        (search(excludedAttributes={"name": True}), "invalidValue"),
    ]
    for body, scim_type in cases:
        refused = api.post(endpoint, json=body)
        assert refused.status_code == 400 and refused.json()["scimType"] == scim_type, body
    assert api.post(endpoint, content=b"{").json()["scimType"] == "invalidSyntax"


def test_lenient_search_requests_are_answered(api: httpx.Client, people: dict[str, str]) -> None:
    # No schemas at all, GET's string forms, null members and sortBy (sorting is not offered: ignored, as on GET).
    lenient = {"filter": 'userName eq "ann@example.com"', "startIndex": "1", "count": "10", "attributes": "userName",
               "excludedAttributes": None, "sortBy": "userName", "sortOrder": "descending"}
    found = api.post("/Users/.search", json=lenient)
    assert found.status_code == 200 and found.json()["totalResults"] == 1
    assert found.json()["Resources"][0] == {"schemas": [CORE_USER, ENTERPRISE], "id": people["ann"],
                                            "userName": "ann@example.com"}
    assert api.post("/Users/.search", json=search(count=100_000)).json()["itemsPerPage"] == 3  # capped at maxResults
    assert api.post("/.search", json=search(startIndex=-4)).json()["startIndex"] == 1  # below 1 means 1


def test_a_search_reads_any_integer_as_get_does(api: httpx.Client, people: dict[str, str]) -> None:
    """One reading of startIndex and count (RFC 7644 §3.4.2.4): over maxResults is maxResults, below 1 is 1."""
    for name, value in [("count", 2147483647), ("count", "2147483647"), ("count", 10**50), ("count", -10**50),
                        ("startIndex", 2147483647), ("startIndex", -10**50), ("startIndex", 10**50)]:
        searched = api.post("/Users/.search", json=search(**{name: value}))
        assert searched.status_code == 200, (name, value, searched.text)
        assert searched.json() == api.get("/Users", params={name: str(value)}).json(), (name, value)


def test_an_integer_too_long_to_read_is_refused_for_what_it_is(api: httpx.Client) -> None:
    body = b'{"schemas": ["' + SEARCH_REQUEST.encode() + b'"], "count": ' + b"9" * 5000 + b"}"
    refused = api.post("/Users/.search", content=body)
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidValue", refused.text
    assert refused.json()["detail"] == ("the body has an integer of 5000 digits; no SCIM value is that long, "
                                        "send a shorter number")


def test_a_search_is_a_read_and_needs_the_token(server: str, api: httpx.Client, people: dict[str, str]) -> None:
    assert httpx.post(f"{server}/scim/v2/.search", json=search()).status_code == 401
    assert api.get("/Users/.search").status_code == 404  # GET names a User whose id is ".search"
    before = api.get("/Users").json()
    api.post("/.search", json=search())
    assert api.get("/Users").json() == before
