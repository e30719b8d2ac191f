"""What a new user's mistakes get back: attribute types (a userName is a string, a multi-valued attribute a list),
filter syntax errors in words, query parameters named as the RFC spells them, a body nested too deeply, and /Bulk.
Every refusal is a SCIM error that says what to fix, and stores and enqueues nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connector.store import Store
from tests.scim.helpers import events, patch

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
EXAMPLE = 'e.g. userName eq "alice@example.com"'


def refused(response: httpx.Response, status: int, scim_type: str | None = None) -> str:
    """The detail of a SCIM error response (RFC 7644 §3.12) with that status and scimType."""
    body = response.json()
    assert response.status_code == status, body
    assert response.headers["content-type"] == "application/scim+json"
    assert body["schemas"] == [ERROR] and body["status"] == str(status) and body.get("scimType") == scim_type
    detail: str = body["detail"]
    return detail


def nothing_stored(api: httpx.Client, store: Store) -> None:
    assert api.get("/Users").json()["totalResults"] == 0 and api.get("/Groups").json()["totalResults"] == 0
    assert events(store) == []


@pytest.fixture
def user(api: httpx.Client) -> dict[str, Any]:
    created = api.post("/Users", json={"userName": "mia@example.com",
                                       "phoneNumbers": [{"type": "work", "value": "+14155550100"}]})
    assert created.status_code == 201
    return created.json()


def unchanged(api: httpx.Client, store: Store, user: dict[str, Any]) -> None:
    assert api.get(f"/Users/{user['id']}").json() == user and len(events(store, user["id"])) == 1


# --- 1. userName is a string -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, body, detail", [
    ("/Users", {"userName": 42}, "userName must be a string, not 42"),
    ("/Users", {"userName": 4.2e1}, "userName must be a string, not 42.0"),
    ("/Groups", {"displayName": 42}, "displayName must be a string, not 42"),
])
def test_a_number_for_user_name_or_group_display_name_is_400_invalid_value(
    api: httpx.Client, store: Store, path: str, body: dict[str, Any], detail: str
) -> None:
    assert refused(api.post(path, json=body), 400, "invalidValue") == detail
    nothing_stored(api, store)


def test_a_patch_setting_user_name_to_a_number_is_refused(api: httpx.Client, store: Store,
                                                           user: dict[str, Any]) -> None:
    response = patch(api, f"/Users/{user['id']}", {"op": "replace", "path": "userName", "value": 42})
    assert refused(response, 400, "invalidValue") == "userName must be a string, not 42"
    unchanged(api, store, user)


def test_an_employee_number_sent_as_a_number_is_still_its_text(api: httpx.Client) -> None:
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    created = api.post("/Users", json={"userName": "n@example.com", enterprise: {"employeeNumber": 12345}})
    assert created.status_code == 201 and created.json()[enterprise] == {"employeeNumber": "12345"}


# --- 2. a multi-valued attribute is a list, and each value's `value` a string ---------------------------------------
LIST = 'is multi-valued: send a list of its values, e.g. [{"value": "..."}], not '


@pytest.mark.parametrize("path, body, detail", [
    ("/Users", {"userName": "p@example.com", "phoneNumbers": "+14155550100"}, f"phoneNumbers {LIST}'+14155550100'"),
    ("/Users", {"userName": "p@example.com", "emails": {"value": "p@example.com"}},
     f"emails {LIST}{{'value': 'p@example.com'}}"),
    ("/Users", {"userName": "p@example.com", "Addresses": {"locality": "Oslo"}},
     "addresses is multi-valued: send a list of its values, e.g. [{...}], not {'locality': 'Oslo'}"),
    ("/Groups", {"displayName": "Sales", "members": "x"}, f"members {LIST}'x'"),
    ("/Users", {"userName": "p@example.com", "emails": [{"value": None}]},
     "emails.value is null; send each of its values as a string, or leave that element out"),
    ("/Users", {"userName": "p@example.com", "phoneNumbers": [{"type": "work", "Value": None}]},
     "phoneNumbers.value is null; send each of its values as a string, or leave that element out"),
    ("/Users", {"userName": "p@example.com", "phoneNumbers": [{"type": "work", "value": 4155550100}]},
     "phoneNumbers.value must be a string, not 4155550100"),
    ("/Groups", {"displayName": "Sales", "members": [{"value": None}]},
     "members.value is null; send each of its values as a string, or leave that element out"),
    ("/Groups", {"displayName": "Sales", "members": [{"value": 7}]}, "members.value must be a string, not 7"),
])
def test_a_multi_valued_attribute_that_is_not_a_list_of_string_values_is_400_invalid_value(
    api: httpx.Client, store: Store, path: str, body: dict[str, Any], detail: str
) -> None:
    assert refused(api.post(path, json=body), 400, "invalidValue") == detail
    nothing_stored(api, store)


def test_entra_members_with_a_null_ref_and_okta_empty_lists_are_still_accepted(api: httpx.Client) -> None:
    user = api.post("/Users", json={"userName": "u@example.com", "groups": [], "emails": []}).json()
    group = api.post("/Groups", json={"displayName": "Sales", "members": [{"$ref": None, "value": user["id"]}]})
    assert group.status_code == 201 and group.json()["members"][0]["value"] == user["id"]


@pytest.mark.parametrize("operation, detail", [
    ({"op": "add", "path": "phoneNumbers", "value": "+14155550199"}, f"phoneNumbers {LIST}'+14155550199'"),
    ({"op": "replace", "value": {"phoneNumbers": "+14155550199"}}, f"phoneNumbers {LIST}'+14155550199'"),
    ({"op": "add", "path": "phoneNumbers", "value": [{"value": None, "type": "mobile"}]},
     "phoneNumbers.value is null; send each of its values as a string, or leave that element out"),
    ({"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": 4155550199},
     "phoneNumbers.value must be a string, not 4155550199"),
])
def test_a_patch_with_such_a_value_is_refused_and_changes_nothing(
    api: httpx.Client, store: Store, user: dict[str, Any], operation: dict[str, Any], detail: str
) -> None:
    assert refused(patch(api, f"/Users/{user['id']}", operation), 400, "invalidValue") == detail
    unchanged(api, store, user)


def test_a_patch_may_add_one_member_object_without_a_list(api: httpx.Client, store: Store,
                                                          user: dict[str, Any]) -> None:
    # RFC 7644 §3.5.2.1: the value of an add "may be a JSON object containing the sub-attributes" of the path.
    group = api.post("/Groups", json={"displayName": "Sales", "members": []}).json()
    response = patch(api, f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": {"value": user["id"]}})
    assert response.status_code == 204
    assert [m["value"] for m in api.get(f"/Groups/{group['id']}").json()["members"]] == [user["id"]]
    assert events(store, user["id"])[-1].state["groups"] == ["Sales"]


# --- 3. filter syntax errors in words ----------------------------------------------------------------------------
SHAPE = (f"write each comparison as attribute operator value, {EXAMPLE}, "
         "with an operator of eq, ne, co, sw, ew, gt, ge, lt, le, pr")


@pytest.mark.parametrize("text, detail", [
    ('userName eqq "alice@example.com"', f"the filter cannot be read at 'eqq \"alice@example.com\"'; {SHAPE}"),
    ('userName eq "a" userName eq "b"', f"the filter cannot be read at 'userName eq \"b\"'; {SHAPE}"),
    ('userName eq "a") and displayName eq "a long group name"',
     f"the filter cannot be read at ') and displayName eq \"a long g...'; {SHAPE}"),
    ("userName eq", f"the filter ends too soon, after 'userName eq': finish each comparison and close each ( and [, "
                    f"{EXAMPLE}"),
    ('(userName eq "a"', f"the filter ends too soon, after '(userName eq \"a\"': finish each comparison and close "
                         f"each ( and [, {EXAMPLE}"),
    ("userName eq 'alice'", f"the filter cannot hold \"'\" (at \"'alice'\"); quote values with double quotes, "
                            f"{EXAMPLE}"),
    ('userName eq "a\\q"', "the string at '\"a\\\\q\"' is not a JSON string; write a backslash as \\\\, a quote as "
                           "\\\" and a tab or newline as \\t or \\n"),
])
def test_a_filter_syntax_error_says_where_and_what_shape_in_one_sentence(
    api: httpx.Client, store: Store, text: str, detail: str
) -> None:
    for response in (api.get("/Users", params={"filter": text}),
                     api.post("/Users/.search", json={"filter": text})):
        shown = refused(response, 400, "invalidFilter")
        assert shown == detail
        assert "Token" not in shown and "Parsing error" not in shown and "None" not in shown
    nothing_stored(api, store)


def test_a_long_filter_is_shown_only_near_the_error(api: httpx.Client) -> None:
    text = 'userName eq "a" and ' + " and ".join(f'displayName eq "n{i}"' for i in range(8)) + " and"
    detail = refused(api.get("/Users", params={"filter": text}), 400, "invalidFilter")
    assert detail.startswith("the filter ends too soon, after '...6\" and displayName eq \"n7\" and':")


def test_a_patch_path_filter_syntax_error_is_invalid_path_in_words(api: httpx.Client, store: Store,
                                                                    user: dict[str, Any]) -> None:
    response = patch(api, f"/Users/{user['id']}",
                     {"op": "replace", "path": 'phoneNumbers[type eqq "work"].value', "value": "+14155550199"})
    detail = refused(response, 400, "invalidPath")
    assert detail == f"Operations[0]: the filter cannot be read at 'eqq \"work\"'; {SHAPE}"
    unchanged(api, store, user)


# --- 4. query parameters named as the RFC spells them -------------------------------------------------------------
@pytest.mark.parametrize("query, detail", [
    ({"startIndex": "abc"}, "startIndex is 'abc'; it must be an integer"),
    ({"STARTINDEX": "1.5"}, "startIndex is '1.5'; it must be an integer"),
    ({"count": "ten"}, "count is 'ten'; it must be an integer"),
])
def test_a_bad_paging_parameter_is_named_as_the_rfc_spells_it(
    api: httpx.Client, query: dict[str, str], detail: str
) -> None:
    assert refused(api.get("/Users", params=query), 400, "invalidValue") == detail


def test_a_bad_start_index_in_a_search_request_is_named_the_same(api: httpx.Client) -> None:
    response = api.post("/Users/.search", json={"startindex": "abc"})
    assert refused(response, 400, "invalidValue") == "startIndex is 'abc'; it must be an integer"


HUGE = "9" * 10_000  # more digits than any list here; it is never read into an int


@pytest.mark.parametrize("count, shown", [
    ("2147483647", 2), ("+2147483647", 2), pytest.param(HUGE, 2, id="huge"), ("-1", 0), ("-2147483648", 0),
    pytest.param("-" + HUGE, 0, id="-huge"),
    ("0000000000000000000000001", 1), (" 1 ", 1),
])
def test_any_integer_count_is_read_as_the_rfc_says(api: httpx.Client, count: str, shown: int) -> None:
    """RFC 7644 §3.4.2.4: a count over the server's maximum (maxResults) is that maximum; a negative one is 0."""
    for n in range(2):
        api.post("/Users", json={"userName": f"c{n}@example.com"})
    page = api.get("/Users", params={"count": count})
    assert page.status_code == 200, page.text
    assert page.json()["totalResults"] == 2 and page.json()["itemsPerPage"] == shown


@pytest.mark.parametrize("start, shown, echoed", [
    ("2147483647", 0, 2147483647), pytest.param(HUGE, 0, 10**18, id="huge"), ("-2147483648", 1, 1),
    pytest.param("-" + HUGE, 1, 1, id="-huge"), ("+1", 1, 1),
])
def test_any_integer_start_index_is_read_as_the_rfc_says(api: httpx.Client, start: str, shown: int,
                                                         echoed: int) -> None:
    """RFC 7644 §3.4.2.4: a startIndex below 1 is 1; one past the last result is an empty page (over 18 digits is
    past any list: read as 10**18)."""
    api.post("/Users", json={"userName": "s@example.com"})
    page = api.get("/Users", params={"startIndex": start})
    assert page.status_code == 200, page.text
    assert page.json()["itemsPerPage"] == shown and page.json()["startIndex"] == echoed


@pytest.mark.parametrize("value", ["1.0", "1e3", "0x10", "1_000", "--1", "+", "\u0661"])
def test_a_paging_parameter_that_is_no_integer_is_refused(api: httpx.Client, value: str) -> None:
    assert refused(api.get("/Users", params={"count": value}), 400, "invalidValue") == (
        f"count is {value!r}; it must be an integer")


# --- 5. a body nested too deeply ----------------------------------------------------------------------------------
DEEP = "the body nests JSON arrays or objects too deeply to read; a SCIM resource needs only a few levels"


@pytest.mark.parametrize("body", [
    "[" * 30000 + "]" * 30000,  # under max_body_bytes (64 KiB in these tests)
    '{"userName": "d@example.com", "name": ' + '{"givenName": ' * 3000 + '"x"' + "}" * 3000 + "}",
])
def test_a_body_nested_too_deeply_says_so(api: httpx.Client, store: Store, body: str) -> None:
    assert refused(api.post("/Users", content=body), 400, "invalidSyntax") == DEEP
    nothing_stored(api, store)


def test_a_patch_nested_too_deeply_says_so_and_changes_nothing(api: httpx.Client, store: Store,
                                                               user: dict[str, Any]) -> None:
    body = '{"Operations": [{"op": "add", "value": ' + "[" * 5000 + "]" * 5000 + "}]}"
    assert refused(api.patch(f"/Users/{user['id']}", content=body), 400, "invalidSyntax") == DEEP
    unchanged(api, store, user)


def test_a_body_that_is_not_json_is_still_not_valid_json(api: httpx.Client, store: Store) -> None:
    detail = refused(api.post("/Users", content='{"userName": '), 400, "invalidSyntax")
    assert detail == "the body is not valid JSON; send a SCIM object as application/scim+json"
    nothing_stored(api, store)


# --- 6. /Bulk is not implemented, as /ServiceProviderConfig says --------------------------------------------------
@pytest.mark.parametrize("path", ["/Bulk", "/bulk", "/Bulk/"])
def test_bulk_is_501_not_implemented_as_the_service_provider_config_says(
    api: httpx.Client, store: Store, path: str
) -> None:
    assert api.get("/ServiceProviderConfig").json()["bulk"]["supported"] is False
    request = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "q1", "data": {"userName": "b@example.com"}}]}
    detail = refused(api.post(path, json=request), 501)
    assert detail == ("bulk operations are not supported (see /ServiceProviderConfig); send each one as its own "
                      "request to /Users or /Groups")
    nothing_stored(api, store)


def test_bulk_takes_only_post(api: httpx.Client) -> None:
    assert refused(api.get("/Bulk"), 405) == "this endpoint does not take that method"


def test_a_detail_that_echoes_a_huge_value_is_cut_to_a_readable_length(api: httpx.Client) -> None:
    detail = refused(api.post("/Users/.search", json={"filter": ["x" * 5000]}), 400, "invalidFilter")
    assert detail.startswith("filter is ['xxx") and " … " in detail and len(detail) <= 1000
    assert detail.endswith("']; send the filter expression as a string")


def test_a_string_left_open_in_a_filter_says_so(api: httpx.Client) -> None:
    detail = refused(api.get("/Users", params={"filter": 'userName eq "alice'}), 400, "invalidFilter")
    assert "has no closing double quote" in detail and EXAMPLE in detail
