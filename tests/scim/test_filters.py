"""Filters run as SQL on both backends: every operator, value paths, the IdPs' probes, and refusals."""

from __future__ import annotations

import httpx
import pytest

from connector.sources.scim.filters import FilterError, matches, parse_filter, parse_value_filter
from connector.sources.scim.paths import resolve
from connector.sources.scim.schema import GROUPS, USERS

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PEOPLE = [
    {"userName": "Alice@Example.com", "externalId": "ext-A", "displayName": "Alice Archer", "title": "Trader",
     "emails": [{"type": "work", "value": "alice@example.com", "primary": True},
                {"type": "home", "value": "alice@home.example"}],
     "phoneNumbers": [{"type": "work", "value": "+14155550100"}],
     ENTERPRISE: {"department": "FX Trading", "manager": {"value": "boss-1"}}},
    {"userName": "bob@example.com", "externalId": "EXT-b", "displayName": "Bob", "active": False,
     "emails": [{"type": "home", "value": "bob@work.example"}],
     ENTERPRISE: {"department": "Legal"}},
    {"userName": "carol@example.org", "name": {"givenName": "Carol", "familyName": "C\"quoted"},
     "emails": [{"type": "work", "value": "carol@example.org"}]},
]

# filter -> the userNames it selects (in creation order)
CASES = {
    'userName eq "alice@example.com"': ["Alice@Example.com"],  # userName is caseExact false
    'USERNAME Eq "BOB@EXAMPLE.COM"': ["bob@example.com"],
    'userName eq "nobody-00000000-0000-0000-0000-000000000000"': [],  # Entra's Test Connection
    'externalId eq "ext-A"': ["Alice@Example.com"],
    'externalId eq "EXT-A"': [],  # externalId is caseExact
    "externalId eq ext-A": ["Alice@Example.com"],  # unquoted, as the Entra docs show it
    'userName ne "bob@example.com"': ["Alice@Example.com", "carol@example.org"],
    'displayName co "rch"': ["Alice@Example.com"],
    'displayName sw "bo"': ["bob@example.com"],
    'userName ew ".ORG"': ["carol@example.org"],
    'userName gt "b"': ["bob@example.com", "carol@example.org"],
    'userName le "bob@example.com"': ["Alice@Example.com", "bob@example.com"],
    "title pr": ["Alice@Example.com"],
    "name pr": ["carol@example.org"],
    "active eq false": ["bob@example.com"],
    "active eq true": [],  # nobody sent active true; RFC 7644 §3.4.2.2 filters what was returned
    'emails[type eq "work"].value eq "alice@example.com"': ["Alice@Example.com"],
    'emails[type eq "work"].value eq "bob@work.example"': [],  # the work value of one element
    'emails[type eq "home" and value co "work"]': ["bob@example.com"],
    'emails[not (type eq "home")]': ["Alice@Example.com", "carol@example.org"],
    'emails.value co "@example.org"': ["carol@example.org"],
    'emails co "home.example"': ["Alice@Example.com"],  # a complex attribute compares its value
    'phoneNumbers[type eq "work"].value eq "+14155550100"': ["Alice@Example.com"],
    f'{ENTERPRISE}:department eq "legal"': ["bob@example.com"],
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:DEPARTMENT sw "FX"': ["Alice@Example.com"],
    f"{ENTERPRISE}:manager.value eq \"boss-1\"": ["Alice@Example.com"],
    'name.familyName eq "C\\"quoted"': ["carol@example.org"],
    'userName eq "alice@example.com" and active eq false': [],
    'userName eq "alice@example.com" or active eq false': ["Alice@Example.com", "bob@example.com"],
    'not (userName sw "a") and (displayName pr or name.givenName eq "carol")': ["bob@example.com", "carol@example.org"],
    'meta.created gt "2000-01-01T00:00:00Z"': ["Alice@Example.com", "bob@example.com", "carol@example.org"],
    'meta.lastModified lt "2000-01-01T00:00:00+01:00"': [],
    "nickName eq null": ["Alice@Example.com", "bob@example.com", "carol@example.org"],
    "title eq null": ["bob@example.com", "carol@example.org"],
    # RFC 7644 §3.4.2.2: ne null is "has a value", as pr (it found nobody with a userName).
    "userName ne null": ["Alice@Example.com", "bob@example.com", "carol@example.org"],
    "title ne null": ["Alice@Example.com"],
    "nickName ne null": [],
    'emails[type ne null and value co "work"]': ["bob@example.com"],
    'not (title ne null)': ["bob@example.com", "carol@example.org"],
    'displayName co ""': ["Alice@Example.com", "bob@example.com"],
}

REFUSED = [
    'nosuch eq "x"',  # scim2-filter-parser's transpiler would return every row
    'userName eq "a" or nosuch eq "x"',  # ... or silently drop the unknown half
    'members[value eq "x"]',  # a Group attribute, not a User one
    'urn:example:unknown:User:department eq "x"',
    'userName eq "unterminated',
    "userName eq",
    "userName regex \"x\"",
    "active gt true",  # RFC 7644 §3.4.2.2: booleans only compare with eq/ne
    'active eq "maybe"',
    'userName eq true',
    'meta.created gt "not a date"',
    'groups.value eq "g1"',
    'password eq "x"',
    'name eq "x"',
    'emails[type eq "work"][value eq "x"]',
    "(" * 40 + 'userName eq "x"' + ")" * 40,
    " or ".join(['userName eq "x"'] * 40),
    "",
    # Issue 11: what the grammar accepts but no server can evaluate (these answered 500 or 503).
    'emails[type eq "work"] eq "x"',
    'emails[type eq "work"] ne "x"',
    'emails[type eq "work"] pr',
    'emails[type eq "work"] co "x"',
    f'{ENTERPRISE}:manager[value eq "x"] eq "y"',
    'name[givenName eq "x"] eq "y"',
    'userName pr and not (emails[type eq "work"] gt "x")',
    'userName[value eq "x"]',  # not complex
    'name.givenName[value eq "x"]',
    'userName eq "\\u0000"',  # a NUL: PostgreSQL cannot compare one
    'userName co "\\ud800"',  # an unpaired surrogate: no driver can send one
    'meta.created gt "0001-01-01T00:00:00+14:00"',  # year 0 in UTC
    'meta.lastModified lt "9999-12-31T23:59:59-14:00"',  # year 10000 in UTC
]


def create_people(api: httpx.Client) -> None:
    for person in PEOPLE:
        assert api.post("/Users", json=person).status_code == 201


def test_every_operator_selects_the_same_rows_on_both_backends(api: httpx.Client) -> None:
    create_people(api)
    wrong = {}
    for text, expected in CASES.items():
        response = api.get("/Users", params={"filter": text})
        got = [r["userName"] for r in response.json().get("Resources", [])]
        if response.status_code != 200 or got != expected or response.json()["totalResults"] != len(expected):
            wrong[text] = (response.status_code, got, expected)
    assert not wrong


def test_a_filter_that_cannot_run_is_400_invalid_filter_never_every_row(api: httpx.Client) -> None:
    create_people(api)
    for text in REFUSED:
        response = api.get("/Users", params={"filter": text})
        body = response.json()
        assert (response.status_code, body.get("scimType"), body.get("status")) == (400, "invalidFilter", "400"), text
        assert "Resources" not in body


def test_groups_by_display_name_and_by_member(api: httpx.Client) -> None:
    create_people(api)
    users = {u["userName"]: u["id"] for u in api.get("/Users").json()["Resources"]}
    alice = users["Alice@Example.com"]
    traders = api.post("/Groups", json={"displayName": "Traders", "members": [{"value": alice}]}).json()
    api.post("/Groups", json={"displayName": "Legal", "members": [{"value": users["bob@example.com"]}]})
    for text, names in {
        'displayName eq "traders"': ["Traders"],
        f'members[value eq "{alice}"]': ["Traders"],
        f'members.value eq "{alice}"': ["Traders"],
        'members[value eq "nobody"]': [],
        f'displayName eq "Traders" and members[value eq "{alice}"]': ["Traders"],
        f'id eq "{traders["id"]}"': ["Traders"],
    }.items():
        response = api.get("/Groups", params={"filter": text, "excludedAttributes": "members"})
        assert response.status_code == 200, text
        assert [g["displayName"] for g in response.json()["Resources"]] == names, text
        assert all("members" not in g for g in response.json()["Resources"])
    assert api.get("/Groups", params={"filter": 'userName eq "x"'}).json()["scimType"] == "invalidFilter"


def test_paging_is_stable_with_integer_counts(api: httpx.Client) -> None:
    for n in range(7):
        api.post("/Users", json={"userName": f"user{n}@example.com"})
    pages = [api.get("/Users", params={"startIndex": start, "count": 3}).json() for start in (1, 4, 7)]
    assert [len(p["Resources"]) for p in pages] == [3, 3, 1]
    assert [p["startIndex"] for p in pages] == [1, 4, 7]
    assert all(p["totalResults"] == 7 and isinstance(p["itemsPerPage"], int) for p in pages)
    names = [r["userName"] for p in pages for r in p["Resources"]]
    assert names == [f"user{n}@example.com" for n in range(7)]
    total_only = api.get("/Users", params={"count": 0}).json()
    assert total_only["totalResults"] == 7 and total_only["Resources"] == []
    assert api.get("/Users", params={"startIndex": 0, "count": 1}).json()["startIndex"] == 1
    assert api.get("/Users", params={"count": "ten"}).json()["scimType"] == "invalidValue"


@pytest.mark.parametrize("text", ['type eq "work"', 'type eq "work" and not (primary eq true)', 'value sw "a"'])
def test_value_filters_match_elements_in_python_as_sql_does(text: str) -> None:
    target = resolve(USERS, None, "emails")
    assert target is not None
    expr = parse_value_filter(target, text)
    elements = [{"type": "work", "value": "a@x", "primary": True}, {"type": "Work", "value": "b@x"}]
    expected = {'type eq "work"': [True, True], 'type eq "work" and not (primary eq true)': [False, True],
                'value sw "a"': [True, False]}[text]
    assert [matches(e, expr) for e in elements] == expected


def test_member_value_paths_parse_against_the_group_schema() -> None:
    assert parse_filter(GROUPS, 'members[value eq "u1"]') is not None
    with pytest.raises(FilterError):
        parse_filter(GROUPS, 'members[nosuch eq "u1"]')


@pytest.mark.parametrize("endpoint, text", [
    ("/Users", 'emails[type eq "work"] eq "x"'),
    ("/Users", 'emails[type eq "work"] ne "x"'),
    ("/Users", 'emails[type eq "work"] pr'),
    ("/Groups", 'members[value eq "x"] eq "y"'),
    ("/Groups", 'members[value eq "x"] pr'),
])
def test_a_comparison_after_a_value_filter_names_the_missing_sub_attribute(
    api: httpx.Client, endpoint: str, text: str
) -> None:
    response = api.get(endpoint, params={"filter": text})
    assert (response.status_code, response.json()["scimType"]) == (400, "invalidFilter")
    assert "needs a sub-attribute" in response.json()["detail"] and "[...].value" in response.json()["detail"]
