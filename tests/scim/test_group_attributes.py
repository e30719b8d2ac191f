"""Attributes a Group does not define (Entra's older default group mapping: mail -> emails[type eq "work"].value,
proxyAddresses -> emails[type eq "other"].value) are ignored in every write of a Group, counted and logged once;
the group's name and members are applied, and a Group read back has none of them. A User's unknown names stay
400 invalidPath (tests/scim/test_field_input.py)."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY

from connector.sources.scim.errors import ScimError
from connector.sources.scim.schema import GROUPS
from connector.sources.scim.service import ScimService
from connector.store import Store
from tests.scim.helpers import group_names, members, patch

EMAILS = [{"type": "work", "value": "traders@example.com"}, {"type": "other", "value": "smtp:traders@example.org"}]


def ignored_count() -> float:
    return REGISTRY.get_sample_value("connector_scim_ignored_attributes_total", {"resource": "Group"}) or 0.0


@pytest.fixture
def people(api: httpx.Client) -> list[str]:
    return [api.post("/Users", json={"userName": f"p{n}@example.com"}).json()["id"] for n in range(2)]


def write(api: httpx.Client, shape: str, gid: str, member: str) -> httpx.Response:
    """Rename the Group `gid` to "Traders 2" and make `member` its member, sending emails as Entra does."""
    renamed = {"displayName": "Traders 2", "members": [{"value": member}]}
    if shape == "put":
        return api.put(f"/Groups/{gid}", json={"id": gid, **renamed, "emails": EMAILS})
    if shape == "patch-path":
        return patch(api, f"/Groups/{gid}",
                     {"op": "Replace", "path": "displayName", "value": "Traders 2"},
                     {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "new@example.com"},
                     {"op": "Add", "path": "emails", "value": [{"type": "other", "value": "smtp:x@example.org"}]},
                     {"op": "Remove", "path": 'emails[type eq "other"]'},
                     {"op": "Add", "path": "members", "value": [{"$ref": None, "value": member}]})
    return patch(api, f"/Groups/{gid}", {"op": "replace", "value": {**renamed, "emails": EMAILS,
                                                                     'emails[type eq "work"].value': "n@example.com"}})


def test_a_group_created_with_emails_is_created_with_its_members(
    api: httpx.Client, store: Store, people: list[str]
) -> None:
    before = ignored_count()
    created = api.post("/Groups", json={"displayName": "Traders", "emails": EMAILS,
                                        "members": [{"value": person} for person in people]})
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    assert members(api, gid) == people
    assert [group_names(store, person) for person in people] == [["Traders"], ["Traders"]]
    assert ignored_count() == before + 1
    # Not stored, so not returned (RFC 7644 §3.3: the server is free to ignore what it does not support).
    assert "emails" not in created.json() and "emails" not in api.get(f"/Groups/{gid}").json()
    assert "emails" not in str(store.scim_get("entra", "Group", gid))


@pytest.mark.parametrize("shape", ["put", "patch-path", "patch-no-path"])
def test_every_group_write_with_emails_applies_the_rest(
    api: httpx.Client, store: Store, people: list[str], shape: str
) -> None:
    gid = api.post("/Groups", json={"displayName": "Traders"}).json()["id"]
    before = ignored_count()
    answer = write(api, shape, gid, people[0])
    assert answer.status_code in (200, 204), answer.text
    assert ignored_count() > before
    group = api.get(f"/Groups/{gid}").json()
    assert group["displayName"] == "Traders 2" and members(api, gid) == [people[0]]
    assert "emails" not in group and group_names(store, people[0]) == ["Traders 2"]


def test_each_ignored_group_attribute_is_logged_once(api: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    name = f"mail{uuid.uuid4().hex[:8]}"  # new to this process: each name is logged once per process
    for n in range(3):
        gid = api.post("/Groups", json={"displayName": f"G{n}", name: "g@example.com"}).json()["id"]
        for kind in ("work", "other"):  # the same attribute, by another path
            path = f'{name}[type eq "{kind}"].value'
            assert patch(api, f"/Groups/{gid}", {"op": "Replace", "path": path, "value": "g@x"}).status_code == 204
    logged = [r for r in caplog.records if name in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert logged[0].getMessage() == (f"SCIM Group attribute {name!r} ignored: /Schemas lists no such Group "
                                      "attribute; the rest of the request is applied. Logged once; counted in "
                                      "connector_scim_ignored_attributes_total")


def test_what_a_group_defines_is_still_checked_beside_emails(api: httpx.Client) -> None:
    gid = api.post("/Groups", json={"displayName": "Traders"}).json()["id"]
    refused = api.put(f"/Groups/{gid}", json={"displayName": "X", "emails": EMAILS,
                                              "members": [{"value": "u1", "valeu": "u2"}]})
    assert refused.status_code == 400 and refused.json()["detail"] == (
        "Group has no attribute 'members.valeu' (did you mean 'value'?); see /Schemas for its attributes")
    refused = patch(api, f"/Groups/{gid}", {"op": "add", "path": "emails", "value": EMAILS},
                    {"op": "add", "path": 'members[value eq "u1"].valeu', "value": "x"})
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidPath", refused.text
    assert api.get(f"/Groups/{gid}").json()["displayName"] == "Traders"


def test_strict_attributes_refuses_them_as_it_does_unknown_schemas(store: Store) -> None:
    service = ScimService(store, strict_attributes=True)
    with pytest.raises(ScimError) as refused:
        service.create("entra", GROUPS, {"displayName": "Traders", "emails": EMAILS})
    assert (refused.value.status, refused.value.scim_type) == (400, "invalidPath")
    assert refused.value.detail.startswith("'emails' is no Group attribute /Schemas lists, and [scim] "
                                           "strict_attributes refuses those")

