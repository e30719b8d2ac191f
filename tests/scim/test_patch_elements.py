"""PATCH on the elements of a multi-valued attribute: an add or a remove with a value names the elements that have
every sub-attribute it gives (a work and a mobile element of one number are two elements; a member is its id), and
elements a PATCH leaves identical collapse into one. Checked as a user would: GET after the PATCH, and the event."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connector.store import Store
from tests.scim.helpers import events, members, patch

NUMBER = "+1 415 555 8200"
WORK = {"type": "work", "value": NUMBER}
MOBILE = {"type": "mobile", "value": NUMBER}


def _user(api: httpx.Client, **attributes: Any) -> dict[str, Any]:
    created = api.post("/Users", json={"userName": "dana@example.com", **attributes})
    assert created.status_code == 201, created.json()
    body: dict[str, Any] = created.json()
    return body


def _phones(api: httpx.Client, store: Store, user_id: str) -> list[dict[str, Any]]:
    """The user's phone numbers as GET shows them; the newest event must carry the same."""
    shown: list[dict[str, Any]] = api.get(f"/Users/{user_id}").json().get("phoneNumbers", [])
    assert events(store, user_id)[-1].state.get("phoneNumbers", []) == shown
    return shown


@pytest.mark.parametrize("removed", [
    MOBILE,
    {"type": "Mobile", "value": NUMBER},  # type compares case-insensitively
    {"type": "mobile", "value": NUMBER, "display": "Dana's mobile", "primary": False},  # descriptive parts ignored
])
def test_remove_of_a_typed_number_keeps_the_work_entry_of_the_same_number(
    api: httpx.Client, store: Store, removed: dict[str, Any]
) -> None:
    user = _user(api, phoneNumbers=[WORK, MOBILE])
    response = patch(api, f"/Users/{user['id']}", {"op": "Remove", "path": "phoneNumbers", "value": [removed]})
    assert response.status_code == 200, response.json()
    assert _phones(api, store, user["id"]) == [WORK]  # the work number is still recorded
    assert len(events(store, user["id"])) == 2


def test_remove_of_a_number_without_a_type_removes_every_element_of_it(api: httpx.Client, store: Store) -> None:
    user = _user(api, phoneNumbers=[WORK, MOBILE, {"type": "home", "value": "+1 415 555 0000"}])
    patch(api, f"/Users/{user['id']}", {"op": "Remove", "path": "phoneNumbers", "value": [{"value": NUMBER}]})
    assert _phones(api, store, user["id"]) == [{"type": "home", "value": "+1 415 555 0000"}]


def test_remove_of_a_number_not_stored_changes_nothing(api: httpx.Client, store: Store) -> None:
    user = _user(api, phoneNumbers=[WORK])
    response = patch(api, f"/Users/{user['id']}", {"op": "Remove", "path": "phoneNumbers", "value": [MOBILE]})
    assert response.status_code == 200 and response.headers["etag"] == user["meta"]["version"]
    assert _phones(api, store, user["id"]) == [WORK] and len(events(store, user["id"])) == 1


@pytest.mark.parametrize("operation", [
    {"op": "Add", "path": "phoneNumbers", "value": [WORK]},
    {"op": "Add", "path": "phoneNumbers", "value": WORK},  # one value object (RFC 7644 §3.5.2.1)
    {"op": "add", "value": {"phoneNumbers": [WORK]}},  # no path
])
def test_add_of_a_work_entry_beside_a_mobile_one_of_the_same_number_stores_it(
    api: httpx.Client, store: Store, operation: dict[str, Any]
) -> None:
    user = _user(api, phoneNumbers=[MOBILE])
    response = patch(api, f"/Users/{user['id']}", operation)
    assert response.status_code == 200 and response.json()["phoneNumbers"] == [MOBILE, WORK]
    assert _phones(api, store, user["id"]) == [MOBILE, WORK]
    assert [e.kind for e in events(store, user["id"])] == ["upsert", "upsert"]


@pytest.mark.parametrize("added", [WORK, {"type": "Work", "value": NUMBER}, {"value": NUMBER}])
def test_add_of_a_number_already_there_changes_nothing(
    api: httpx.Client, store: Store, added: dict[str, Any]
) -> None:
    user = _user(api, phoneNumbers=[WORK])
    response = patch(api, f"/Users/{user['id']}", {"op": "Add", "path": "phoneNumbers", "value": [added]})
    assert response.status_code == 200 and response.headers["etag"] == user["meta"]["version"]
    assert _phones(api, store, user["id"]) == [WORK] and len(events(store, user["id"])) == 1


def test_add_that_marks_a_stored_number_primary_sets_the_flag_without_a_second_copy(
    api: httpx.Client, store: Store
) -> None:
    user = _user(api, phoneNumbers=[WORK, MOBILE])
    patch(api, f"/Users/{user['id']}", {"op": "Add", "path": "phoneNumbers", "value": [{**WORK, "primary": True}]})
    assert _phones(api, store, user["id"]) == [{**WORK, "primary": True}, MOBILE]
    assert len(events(store, user["id"])) == 2


def test_two_identical_values_in_one_add_store_one(api: httpx.Client, store: Store) -> None:
    user = _user(api, phoneNumbers=[MOBILE])
    patch(api, f"/Users/{user['id']}", {"op": "Add", "path": "phoneNumbers", "value": [WORK, dict(WORK)]})
    assert _phones(api, store, user["id"]) == [MOBILE, WORK]


def test_emails_match_on_type_and_value_and_the_address_ignores_case(api: httpx.Client, store: Store) -> None:
    work, home = {"type": "work", "value": "dana@example.com"}, {"type": "home", "value": "dana@example.com"}
    user = _user(api, emails=[work, home])
    patch(api, f"/Users/{user['id']}", {"op": "remove", "path": "emails", "value": [{"type": "home",
                                                                                     "value": "DANA@example.com"}]})
    assert api.get(f"/Users/{user['id']}").json()["emails"] == [work]
    patch(api, f"/Users/{user['id']}", {"op": "add", "path": "emails", "value": [home]})
    assert api.get(f"/Users/{user['id']}").json()["emails"] == [work, home]
    assert events(store, user["id"])[-1].state["emails"] == [work, home]


def test_addresses_match_on_the_parts_sent(api: httpx.Client) -> None:
    office = {"type": "work", "locality": "London", "postalCode": "EC1A 1BB"}
    user = _user(api, addresses=[office])
    home = {"type": "home", "locality": "London"}
    patch(api, f"/Users/{user['id']}", {"op": "add", "path": "addresses", "value": [home]})
    assert api.get(f"/Users/{user['id']}").json()["addresses"] == [office, home]
    patch(api, f"/Users/{user['id']}", {"op": "remove", "path": "addresses", "value": [{"type": "HOME",
                                                                                        "locality": "london"}]})
    assert api.get(f"/Users/{user['id']}").json()["addresses"] == [office]


def test_a_member_is_its_id_whatever_comes_with_it(api: httpx.Client, okta: httpx.Client) -> None:
    a, b = (api.post("/Users", json={"userName": f"m{n}@example.com"}).json()["id"] for n in range(2))
    gid = api.post("/Groups", json={"displayName": "Recorded", "members": [{"value": a}, {"value": b}]}).json()["id"]
    patch(api, f"/Groups/{gid}", {"op": "Add", "path": "members",
                                  "value": [{"$ref": None, "value": a}, {"value": b, "type": "User"}]})
    assert members(api, gid) == [a, b]  # no second copy of either
    patch(api, f"/Groups/{gid}", {"op": "Remove", "path": "members",
                                  "value": [{"value": a, "display": "m0@example.com", "type": "User"}]})
    assert members(api, gid) == [b]


def test_a_filtered_replace_matching_two_numbers_stores_the_one_number_once(api: httpx.Client, store: Store) -> None:
    user = _user(api, phoneNumbers=[{"type": "work", "value": "+1 212 555 0142 x105"},
                                    {"type": "work", "value": "+1 212 555 0142"}, MOBILE])
    response = patch(api, f"/Users/{user['id']}",
                     {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 212 555 0142 x106"})
    assert response.status_code == 200, response.json()
    assert _phones(api, store, user["id"]) == [{"type": "work", "value": "+1 212 555 0142 x106"}, MOBILE]
    assert len(events(store, user["id"])) == 2


def test_a_filtered_replace_keeps_elements_that_still_differ(api: httpx.Client, store: Store) -> None:
    user = _user(api, phoneNumbers=[{"type": "work", "value": "+1 212 555 0142", "primary": True},
                                    {"type": "work", "value": "+1 212 555 0143"}])
    patch(api, f"/Users/{user['id']}",
          {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 212 555 0144"})
    assert _phones(api, store, user["id"]) == [{"type": "work", "value": "+1 212 555 0144", "primary": True},
                                               {"type": "work", "value": "+1 212 555 0144"}]


def test_a_replace_of_the_whole_list_stores_a_repeated_element_once(api: httpx.Client, store: Store) -> None:
    user = _user(api, phoneNumbers=[MOBILE])
    patch(api, f"/Users/{user['id']}", {"op": "replace", "path": "phoneNumbers", "value": [WORK, MOBILE, WORK]})
    assert _phones(api, store, user["id"]) == [WORK, MOBILE]


def test_a_typed_remove_or_add_names_an_element_stored_without_a_type(api: httpx.Client, store: Store) -> None:
    """An IdP that first sent the number without a type, then names it with one: the untyped element is the one it
    names (as before elements were matched by every sub-attribute), unless one of that very type is there."""
    user = _user(api, phoneNumbers=[{"value": NUMBER}])
    patch(api, f"/Users/{user['id']}", {"op": "Add", "path": "phoneNumbers", "value": [WORK]})
    assert _phones(api, store, user["id"]) == [WORK]  # typed now: a mapping reading work numbers records it
    other = _user(api, userName="erin@example.com", phoneNumbers=[{"value": NUMBER}, MOBILE])
    patch(api, f"/Users/{other['id']}", {"op": "Remove", "path": "phoneNumbers", "value": [MOBILE]})
    assert _phones(api, store, other["id"]) == [{"value": NUMBER}]  # the mobile one, by its type
    patch(api, f"/Users/{other['id']}", {"op": "Remove", "path": "phoneNumbers", "value": [WORK]})
    assert _phones(api, store, other["id"]) == []


A_MAIL = {"type": "work", "value": "a@example.com", "primary": True}
B_MAIL = {"type": "work", "value": "b@example.com", "primary": True}


@pytest.mark.parametrize("operation", [
    {"op": "add", "path": "emails", "value": [B_MAIL]},
    {"op": "add", "value": {"emails": [B_MAIL]}},
    {"op": "replace", "path": 'emails[value eq "b@example.com"].primary', "value": True},
    {"op": "replace", "path": 'emails[value eq "b@example.com"]', "value": B_MAIL},
])
def test_a_value_made_primary_is_the_only_primary_one(api: httpx.Client, operation: dict[str, Any]) -> None:
    """RFC 7643 §2.4: primary true appears no more than once; an IdP's new primary email takes the flag."""
    user = _user(api, emails=[A_MAIL, {"type": "work", "value": "b@example.com"}])
    response = patch(api, f"/Users/{user['id']}", operation)
    assert response.status_code == 200, response.json()
    assert [e for e in response.json()["emails"] if e.get("primary")] == [B_MAIL]
    assert {"type": "work", "value": "a@example.com"} in api.get(f"/Users/{user['id']}").json()["emails"]


def test_post_put_and_replace_with_two_primary_values_keep_the_first(api: httpx.Client) -> None:
    sent = [A_MAIL, B_MAIL]
    user = _user(api, emails=sent)
    assert user["emails"] == [A_MAIL, {"type": "work", "value": "b@example.com"}]
    put = api.put(f"/Users/{user['id']}", json={"userName": "dana@example.com", "emails": sent[::-1]})
    assert put.json()["emails"] == [B_MAIL, {"type": "work", "value": "a@example.com"}]
    replaced = patch(api, f"/Users/{user['id']}", {"op": "replace", "path": "emails", "value": sent})
    assert replaced.json()["emails"] == [A_MAIL, {"type": "work", "value": "b@example.com"}]
