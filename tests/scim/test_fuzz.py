"""Hypothesis against the live endpoint: no body, filter or PATCH gives a 5xx, and a refused request
leaves the resource and the event queue exactly as they were."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.store import Store

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
NAMES = ["userName", "UserName", "active", "displayName", "name", "name.givenName", "emails", "phoneNumbers",
         "externalId", "id", "meta", "groups", "password", "title", "x509Certificates", "members", "nosuch",
         f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager", ENTERPRISE, "urn:x:y", "emails.value", ""]
PATHS = NAMES + ['emails[type eq "work"].value', 'emails[type eq "work"]', 'phoneNumbers[value co "5"].type',
                 'emails[type eq "work" and not (primary eq true)]', "emails[", 'members[value eq "x"]',
                 'emails[nosuch eq "1"].value', "name.nosuch", 'emails[type eq "work"].nosuch']
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["True", "False", "work", "", "a@b.c", "+14155550100"]), st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.sampled_from(NAMES + ["value", "type", "primary"]),
                                                      st.text(max_size=6)), inner, max_size=4)),
    max_leaves=12,
)
operations = st.lists(
    st.fixed_dictionaries({"op": st.sampled_from(["add", "Add", "replace", "REPLACE", "remove", "Remove", "move", 1])},
                          optional={"path": st.one_of(st.sampled_from(PATHS), st.text(max_size=20)), "value": json_values}),
    max_size=4,
)
words = st.sampled_from(["userName", "emails", "emails.value", "active", "meta.created", "name.givenName", "title",
                         "nosuch", "members", f"{ENTERPRISE}:department", "id", "groups", "x509Certificates.value"])
atoms = st.builds(lambda a, op, v: f"{a} {op} {v}".strip(), words,
                  st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "EQ", "regex"]),
                  st.sampled_from(['"x"', '"a\\"b"', "true", "false", "null", "12", "-1.5", "bare", '"2020-01-01T00:00:00Z"', ""]))
filters = st.one_of(
    st.recursive(atoms, lambda inner: st.one_of(
        st.builds(lambda a, o, b: f"{a} {o} {b}", inner, st.sampled_from(["and", "or", "AND"]), inner),
        st.builds(lambda a: f"not ({a})", inner), st.builds(lambda a: f"({a})", inner),
        st.builds(lambda a: f"emails[{a}]", inner)), max_leaves=6),
    st.text(max_size=40),
)


def snapshot(api: httpx.Client, store: Store, path: str) -> tuple[Any, int]:
    return api.get(path).json(), len(store.list_events(limit=100_000))


@SETTINGS
@given(operations=operations)
def test_patches_never_fail_with_5xx_nor_leave_partial_state(api: httpx.Client, store: Store, operations: Any) -> None:
    user = api.get("/Users", params={"filter": 'userName eq "fuzz@example.com"'}).json()["Resources"]
    user_id = user[0]["id"] if user else api.post("/Users", json={
        "userName": "fuzz@example.com", "emails": [{"type": "work", "value": "f@x.com"}],
        ENTERPRISE: {"department": "D"}}).json()["id"]
    before = snapshot(api, store, f"/Users/{user_id}")
    response = api.patch(f"/Users/{user_id}", json={"Operations": operations})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["status"] == str(response.status_code)
        assert snapshot(api, store, f"/Users/{user_id}") == before


@SETTINGS
@given(body=st.dictionaries(st.sampled_from(NAMES), json_values, max_size=6))
def test_bodies_never_fail_with_5xx_nor_store_a_refused_user(api: httpx.Client, store: Store, body: dict[str, Any]) -> None:
    before = (api.get("/Users", params={"count": 0}).json()["totalResults"], len(store.list_events(limit=100_000)))
    response = api.post("/Users", content=json.dumps(body))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["status"] == str(response.status_code)
        assert (api.get("/Users", params={"count": 0}).json()["totalResults"],
                len(store.list_events(limit=100_000))) == before
    else:
        assert "password" not in json.dumps(response.json()) and response.status_code == 201


@SETTINGS
@given(text=filters)
def test_filters_answer_200_or_400_invalid_filter(api: httpx.Client, text: str) -> None:
    response = api.get("/Users", params={"filter": text})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["scimType"] == "invalidFilter"
