"""Issue 11, what IdPs really send: value filters on single-valued complex attributes (Entra's manager)
and one policy for unknown attributes in POST, PUT and PATCH."""

from __future__ import annotations

import logging
import pathlib
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from connector.config import ConfigError, load_config
from connector.sources.scim.errors import ScimError
from connector.sources.scim.schema import USERS
from connector.sources.scim.service import ScimService
from connector.store import Store
from tests.scim.helpers import events, patch

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
MANAGER_PATHS = [
    f"{ENTERPRISE}:manager",
    "manager",
    "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User:Manager",
]


@pytest.fixture
def user(api: httpx.Client) -> dict[str, Any]:
    return api.post("/Users", json={
        "userName": "mia@example.com", "name": {"givenName": "Mia", "familyName": "Wong"},
        "phoneNumbers": [{"type": "work", "value": "+14155550100"}],
        ENTERPRISE: {"department": "FX", "manager": {"value": "m-1", "displayName": "Max"}}}).json()


def manager(response: httpx.Response) -> Any:
    return response.json().get(ENTERPRISE, {}).get("manager")


# --- 1. value filters on single-valued complex attributes -------------------------------------------------------
@pytest.mark.parametrize("path", MANAGER_PATHS)
@pytest.mark.parametrize("operation, expected", [
    ({"op": "Replace", "value": {"value": "m-2"}}, {"value": "m-2"}),
    ({"op": "replace", "value": "m-2"}, {"value": "m-2"}),  # Entra's bare-string manager
    ({"op": "Add", "value": {"$ref": "../Users/m-1"}}, {"value": "m-1", "$ref": "../Users/m-1"}),
    ({"op": "Replace", "sub": ".value", "value": "m-2"}, {"value": "m-2"}),
    ({"op": "Remove"}, None),
    ({"op": "remove", "sub": ".value"}, None),
])
def test_a_matching_filter_on_the_manager_applies(
    api: httpx.Client, store: Store, user: dict[str, Any], path: str, operation: dict[str, Any], expected: Any
) -> None:
    op = {"op": operation["op"], "path": f'{path}[value eq "m-1"]{operation.get("sub", "")}'}
    if "value" in operation:
        op["value"] = operation["value"]
    response = patch(api, f"/Users/{user['id']}", op)
    assert response.status_code == 200, response.json()
    assert manager(response) == expected
    assert response.json()[ENTERPRISE]["department"] == "FX"  # the rest of the extension stays
    assert len(events(store, user["id"])) == 2
    state = events(store, user["id"])[-1].state["attributes"]
    assert state.get(f"{ENTERPRISE}:manager") == expected


@pytest.mark.parametrize("path", MANAGER_PATHS)
def test_removing_a_manager_that_does_not_match_changes_nothing(
    api: httpx.Client, store: Store, user: dict[str, Any], path: str
) -> None:
    response = patch(api, f"/Users/{user['id']}", {"op": "Remove", "path": f'{path}[value eq "someone-else"]'})
    assert response.status_code == 200 and manager(response) == {"value": "m-1"}
    assert response.headers["etag"] == user["meta"]["version"] and len(events(store, user["id"])) == 1


@pytest.mark.parametrize("path", MANAGER_PATHS)
def test_replacing_a_manager_that_does_not_match_still_sets_it_with_the_rest_of_the_patch(
    api: httpx.Client, store: Store, user: dict[str, Any], path: str
) -> None:
    response = patch(api, f"/Users/{user['id']}", {"op": "replace", "path": f'{path}[value eq "m-9"]', "value": "m-2"},
                     {"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+14155550177"})
    assert response.status_code == 200 and manager(response) == {"value": "m-2"}
    assert [p["value"] for p in response.json()["phoneNumbers"] if p.get("type") == "work"] == ["+14155550177"]


def test_a_retried_replace_finds_its_own_value_and_succeeds(
    api: httpx.Client, store: Store, user: dict[str, Any]
) -> None:
    op = {"op": "Replace", "path": f'{ENTERPRISE}:manager[value eq "m-1"]', "value": {"value": "m-2"}}
    assert manager(patch(api, f"/Users/{user['id']}", op)) == {"value": "m-2"}
    again = patch(api, f"/Users/{user['id']}", op)
    assert again.status_code == 200 and manager(again) == {"value": "m-2"} and len(events(store, user["id"])) == 2


def test_a_filter_on_an_unset_manager_sets_it_from_the_filter(api: httpx.Client) -> None:
    bare = api.post("/Users", json={"userName": "bare@example.com"}).json()
    response = patch(api, f"/Users/{bare['id']}", {"op": "add", "path": 'manager[value eq "m-5"].$ref', "value": "x"})
    assert manager(response) == {"value": "m-5", "$ref": "x"}
    # Neither a filter that is no equality nor one on a read-only sub-attribute says what to start from.
    other = api.post("/Users", json={"userName": "bare2@example.com"}).json()
    for path in ('name[givenName pr].familyName', 'manager[displayName eq "Max"].value'):
        refused = patch(api, f"/Users/{other['id']}", {"op": "add", "path": path, "value": "F"})
        assert refused.json()["scimType"] == "noTarget", path


def test_core_single_valued_complex_attributes_take_filters_too(api: httpx.Client, user: dict[str, Any]) -> None:
    replaced = patch(api, f"/Users/{user['id']}", {"op": "replace", "path": 'name[givenName eq "MIA"].familyName',
                                                   "value": "Lee"})  # givenName is caseExact false
    assert replaced.json()["name"] == {"givenName": "Mia", "familyName": "Lee"}
    kept = patch(api, f"/Users/{user['id']}", {"op": "remove", "path": 'name[givenName eq "Zoe"]'})
    assert kept.json()["name"] == {"givenName": "Mia", "familyName": "Lee"}
    gone = patch(api, f"/Users/{user['id']}", {"op": "remove", "path": 'name[familyName sw "L"]'})
    assert "name" not in gone.json()


def test_get_filters_take_value_paths_on_single_valued_attributes(api: httpx.Client, user: dict[str, Any]) -> None:
    for text, hits in {f'{ENTERPRISE}:manager[value eq "m-1"]': 1, 'manager[value eq "m-2"]': 0,
                       'name[givenName eq "mia" and familyName pr]': 1, 'manager[value eq "m-1"].value eq "m-1"': 1,
                       'not (manager[value eq "m-1"])': 0}.items():
        response = api.get("/Users", params={"filter": text})
        assert (response.status_code, response.json()["totalResults"]) == (200, hits), text


# --- 2. unknown attributes: one policy ------------------------------------------------------------------------
def ignored_count() -> float:
    return REGISTRY.get_sample_value("connector_scim_ignored_attributes_total", {"resource": "User"}) or 0.0


@pytest.fixture
def company() -> str:
    """A company's own extension URN, new to this process (each name is logged once per process)."""
    return f"urn:ietf:params:scim:schemas:extension:acme{uuid.uuid4().hex[:8]}:2.0:User"


def test_entra_adds_a_company_attribute_and_the_phone_change_still_lands(
    api: httpx.Client, store: Store, user: dict[str, Any], company: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = ignored_count()
    for number in ("+14155550111", "+14155550122"):  # Entra resends the whole mapped set on every update
        response = patch(api, f"/Users/{user['id']}",
                         {"op": "Add", "path": f"{company}:costCode", "value": "CC-7"},
                         {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": number})
        assert response.status_code == 200, response.json()
        assert response.json()["phoneNumbers"] == [{"type": "work", "value": number}]
        assert events(store, user["id"])[-1].state["phoneNumbers"] == [{"type": "work", "value": number}]
    assert company not in str(api.get(f"/Users/{user['id']}").json())
    assert ignored_count() == before + 2
    logged = [r for r in caplog.records if f"{company}:costCode" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING


@pytest.mark.parametrize("shape", ["post", "put", "patch-no-path", "patch-extension", "patch-remove"])
def test_every_write_ignores_a_schema_the_server_does_not_define(
    api: httpx.Client, store: Store, user: dict[str, Any], company: str, shape: str
) -> None:
    before = ignored_count()
    fields = {f"{company}:costCode": "CC-7", company: {"region": "EMEA"}, "title": "Dealer"}
    if shape == "post":
        response = api.post("/Users", json={"userName": "new@example.com", **fields})
    elif shape == "put":
        response = api.put(f"/Users/{user['id']}", json={"userName": user["userName"], **fields})
    elif shape == "patch-no-path":
        response = patch(api, f"/Users/{user['id']}", {"op": "replace", "value": fields})
    elif shape == "patch-extension":
        response = patch(api, f"/Users/{user['id']}", {"op": "add", "path": company, "value": {"region": "EMEA"}},
                         {"op": "add", "path": "title", "value": "Dealer"})
    else:
        response = patch(api, f"/Users/{user['id']}", {"op": "remove", "path": f'{company}:tags[value eq "x"]'},
                         {"op": "add", "path": "title", "value": "Dealer"})
    assert response.status_code in (200, 201), response.json()
    assert response.json()["title"] == "Dealer" and company not in str(response.json())
    assert ignored_count() > before


@pytest.mark.parametrize("shape, body", [
    ("post", {"userName": "typo@example.com", "phoneNumber": "+14155550111"}),
    ("post", {"userName": "typo@example.com", "urn:ietf:params:scim:schemas:core:2.0:User:phoneNumber": "+1"}),
    ("post", {"userName": "typo@example.com", ENTERPRISE: {"departmnet": "Legal"}}),
    ("post", {"userName": "typo@example.com", f"{ENTERPRISE}:departmnet": "Legal"}),
    ("post", {"userName": "typo@example.com", "phoneNumbers": [{"type": "work", "valeu": "+14155550111"}]}),
    ("post", {"userName": "typo@example.com", "name": {"firstName": "Mia"}}),
    ("post", {"userName": "typo@example.com", "members": [{"value": "x"}]}),  # a Group attribute
    ("post", {"userName": "typo@example.com", 'emails[type eq "work"].value': "a@x.com"}),
    ("put", {"userName": "mia@example.com", "phoneNumber": "+14155550111"}),
    ("patch", {"op": "replace", "value": {"phoneNumber": "+14155550111"}}),
    ("patch", {"op": "replace", "value": {ENTERPRISE: {"departmnet": "Legal"}}}),
    ("patch", {"op": "add", "path": "phoneNumbers", "value": [{"type": "work", "valeu": "+1"}]}),
    ("patch", {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "value": "G"}),
])
def test_a_typo_in_a_defined_schema_is_invalid_path_and_changes_nothing(
    api: httpx.Client, store: Store, user: dict[str, Any], shape: str, body: dict[str, Any]
) -> None:
    response = send(api, user, shape, body)
    assert response.status_code == 400 and response.json()["scimType"] == "invalidPath", response.json()
    assert api.get("/Users", params={"count": 0}).json()["totalResults"] == 1
    assert api.get(f"/Users/{user['id']}").json() == user and len(events(store, user["id"])) == 1


def send(api: httpx.Client, user: dict[str, Any], shape: str, body: dict[str, Any]) -> httpx.Response:
    """`body` as a POST of a new user, a PUT of `user`, or the one operation of a PATCH of `user`."""
    if shape == "post":
        return api.post("/Users", json=body)
    if shape == "put":
        return api.put(f"/Users/{user['id']}", json=body)
    return patch(api, f"/Users/{user['id']}", body)


@pytest.mark.parametrize("shape, body, detail", [
    ("post", {"userName": "typo@example.com", "phoneNumber": "+14155550111"},
     "User has no attribute 'phoneNumber' (did you mean 'phoneNumbers'?); see /Schemas for its attributes"),
    ("put", {"userName": "mia@example.com", "costCode": "4711", "title": "Dealer", "valeu": "x"},
     "User has no attributes 'costCode' (did you mean 'costCenter'?), 'valeu'; see /Schemas for its attributes"),
    ("post", {"userName": "typo@example.com", "phoneNumbers": [{"type": "work", "valeu": "+1"}], "costCode": "4711"},
     "User has no attributes 'costCode' (did you mean 'costCenter'?), 'phoneNumbers.valeu' (did you mean 'value'?); "
     "see /Schemas for its attributes"),
    ("post", {"userName": "typo@example.com", "PhoneNumber": "+1", "active": "maybe", ENTERPRISE: {"departmnet": "L"}},
     f"User has no attributes 'PhoneNumber' (did you mean 'phoneNumbers'?), '{ENTERPRISE}:departmnet' (did you mean "
     "'department'?); see /Schemas for its attributes"),  # names before values: "maybe" is no boolean either
    ("patch", {"op": "add", "path": "phoneNumber", "value": "+14155550111"},
     "Operations[0]: User has no attribute 'phoneNumber' (did you mean 'phoneNumbers'?); see /Schemas for its "
     "attributes"),
])
def test_every_unknown_attribute_is_named_at_once_with_the_one_it_is_close_to(
    api: httpx.Client, user: dict[str, Any], shape: str, body: dict[str, Any], detail: str
) -> None:
    response = send(api, user, shape, body)
    assert response.status_code == 400 and response.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "scimType": "invalidPath",
        "detail": detail}


def test_strict_attributes_refuses_unknown_schemas_in_every_write(store: Store, company: str) -> None:
    service = ScimService(store, strict_attributes=True)
    user = service.create("entra", USERS, {"userName": "s@example.com"}).row
    writes = [
        lambda: service.create("entra", USERS, {"userName": "t@example.com", f"{company}:costCode": "1"}),
        lambda: service.replace("entra", USERS, user.id, {"userName": "s@example.com", company: {"a": 1}}, None),
        lambda: service.patch("entra", USERS, user.id, {"Operations": [
            {"op": "add", "path": f"{company}:costCode", "value": "1"}]}, None),
        lambda: service.patch("entra", USERS, user.id, {"Operations": [
            {"op": "replace", "value": {"title": "T", f"{company}:costCode": "1"}}]}, None),
    ]
    for write in writes:
        with pytest.raises(ScimError) as refused:
            write()
        assert (refused.value.status, refused.value.scim_type) == (400, "invalidPath")
        assert "strict_attributes" in refused.value.detail
    assert store.scim_get("entra", "User", user.id) == user


def test_strict_attributes_is_a_scim_config_key(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "connector.toml"
    path.write_text("")
    assert load_config(path).scim.strict_attributes is False
    path.write_text("[scim]\nstrict_attributes = true\n")
    assert load_config(path).scim.strict_attributes is True
    path.write_text('[scim]\nstrict_attributes = "yes"\n')
    with pytest.raises(ConfigError, match="scim.strict_attributes is 'yes'; it must be true or false"):
        load_config(path)


def test_the_app_honours_strict_attributes(store: Store) -> None:
    import dataclasses

    from connector.sources.scim import create_scim_app
    from tests.scim.helpers import CONFIG, client_for
    from tests.scim.live import serve

    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "strict@example.com",
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"costCenter": "7"}}
    for strict, status in ((False, 201), (True, 400)):
        with serve(create_scim_app(store, dataclasses.replace(CONFIG, strict_attributes=strict))) as url, \
                client_for(url) as api:
            answer = api.post("/Users", json={**body, "userName": f"{strict}-{body['userName']}"})
            assert answer.status_code == status, answer.text


def test_meta_takes_no_value_filter(api: httpx.Client) -> None:
    for text in ('meta[created gt "2020-01-01T00:00:00Z"]', 'meta[resourceType eq "User"]'):
        refused = api.get("/Users", params={"filter": text})
        assert refused.status_code == 400 and refused.json()["scimType"] == "invalidFilter", text
