"""Entra ID and Okta provisioning, replayed request by request against the live endpoint, down to
the extensions the Verba simulator ends up holding (mappings/entra.toml, mappings/okta.toml)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connector.config import Config
from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.sources.scim import create_scim_app
from connector.store import EventState
from tests.plugins.simulator import Simulator, drain
from tests.scim.helpers import CONFIG, client_for
from tests.scim.live import serve

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
VERBA = "urn:ietf:params:scim:schemas:extension:verba:2.0:User"
OFF = {"voice": False, "im": False, "video": False, "screenCaptureEnabled": False}


class Connector:
    """The SCIM endpoint and a deliverer on one store, as `connector run` assembles them."""

    def __init__(self, config: Config) -> None:
        self.store = open_configured_store(config, create=True)
        self.client = open_client(config)
        self.deliverer = Deliverer(self.store, self.client, load_mapping(config.mapping_file), config.delivery)

    def deliver(self) -> None:
        drain(self.deliverer)
        assert self.store.count_by_state()[EventState.DEAD] == 0

    def close(self) -> None:
        self.client.close()
        self.store.close()


@pytest.fixture
def connect(make_config: Callable[..., Config]) -> Iterator[Callable[[str, str], tuple[Connector, httpx.Client]]]:
    with contextlib.ExitStack() as stack:

        def start(mapping: str, client: str) -> tuple[Connector, httpx.Client]:
            connector = Connector(make_config(mapping))
            stack.callback(connector.close)
            url = stack.enter_context(serve(create_scim_app(connector.store, CONFIG)))
            return connector, stack.enter_context(client_for(url, client))

        yield start


def has(extension: dict[str, Any], **fields: Any) -> bool:
    return {key: extension.get(key) for key in fields} == fields


def empty(response: httpx.Response) -> bool:
    body = response.json()
    return response.status_code == 200 and body["totalResults"] == 0 and body["Resources"] == []


def test_entra_id_provisioning_reaches_verba(connect: Any, simulator: Simulator) -> None:
    connector, entra = connect("mappings/entra.toml", "entra")
    number = "+14155550100"
    # Test Connection: a random GUID that matches nobody.
    assert empty(entra.get("/Users", params={"filter": 'userName eq "6d6f9cb1-2a40-4d3c-9e3f-0b7a8f6a1c55"'}))
    assert empty(entra.get("/Users", params={"filter": 'userName eq "alice@example.com"'}))
    created = entra.post("/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "userName": "alice@example.com", "active": True,
        "emails": [{"primary": True, "type": "work", "value": "alice@example.com"}],
        "phoneNumbers": [{"type": "work", "value": "+1 415 555 0100"}],
        "meta": {"resourceType": "User"}, "name": {"formatted": "Alice A", "familyName": "A", "givenName": "Alice"},
        "roles": []})
    assert created.status_code == 201
    alice = created.json()["id"]
    connector.deliver()
    assert has(simulator.extensions()[number], user_id=3, recordingMode="FULL", voice=True, im=False)
    # Group provisioning: probe by displayName without members, create empty, add members (204).
    probe = {"excludedAttributes": "members", "filter": 'displayName eq "Teams Recording - Full"'}
    assert empty(entra.get("/Groups", params=probe))
    group = entra.post("/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                        "externalId": "8aa1a0c0", "displayName": "Teams Recording - Full"}).json()
    assert entra.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"}).status_code == 200
    added = entra.patch(f"/Groups/{group['id']}", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                                        "Operations": [{"op": "Add", "path": "members",
                                                                        "value": [{"$ref": None, "value": alice}]}]})
    assert added.status_code == 204
    connector.deliver()
    assert has(simulator.extensions()[number], im=True, video=True)
    # Attribute change, then leaving the group: the department rule (Legal: on demand) takes over.
    entra.patch(f"/Users/{alice}", json={"Operations": [
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Legal"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alice@example.com"}]})
    entra.patch(f"/Groups/{group['id']}", json={"Operations": [{"op": "Remove", "path": "members",
                                                                "value": [{"value": alice}]}]})
    connector.deliver()
    assert simulator.extensions()[number]["recordingMode"] == "ON_DEMAND"
    # Soft delete (active "False" as Entra sends it), then the hard delete 30 days later.
    disabled = entra.patch(
        f"/Users/{alice}", json={"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    )
    assert disabled.json()["active"] is False
    connector.deliver()
    assert has(simulator.extensions()[number], user_id=3, **OFF)  # the user link is kept
    assert entra.delete(f"/Users/{alice}").status_code == 204
    assert entra.get(f"/Users/{alice}").status_code == 404
    connector.deliver()
    assert simulator.extensions()[number]["user_id"] == 3
    assert all(c["user_id"] == 3 for c in simulator.calls() if c["operation"] in ("createExtension", "updateExtension"))


def test_entra_s_older_group_mapping_with_emails_reaches_verba(connect: Any, simulator: Simulator) -> None:
    """Entra's older default group mapping sends mail and proxyAddresses as emails, which a Group does not have:
    the group is still created and its members follow its rule (here: not recorded)."""
    connector, entra = connect("mappings/entra.toml", "entra")
    number = "+14155550100"
    alice = entra.post("/Users", json={"userName": "alice@example.com",
                                       "phoneNumbers": [{"type": "work", "value": "+1 415 555 0100"}]}).json()["id"]
    connector.deliver()
    assert has(simulator.extensions()[number], user_id=3, recordingMode="FULL", voice=True)
    emails = [{"type": "work", "value": "exempt@example.com"}, {"type": "other", "value": "smtp:exempt@example.org"}]
    created = entra.post("/Groups", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "5f0c7e2a", "displayName": "Teams Recording - Exempt", "emails": emails, "members": []})
    assert created.status_code == 201, created.text
    group = created.json()["id"]
    added = entra.patch(f"/Groups/{group}", json={"Operations": [
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": alice}]},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "no-recording@example.com"}]})
    assert added.status_code == 204, added.text
    connector.deliver()
    assert has(simulator.extensions()[number], user_id=3, **OFF)


def test_okta_provisioning_reaches_verba(connect: Any, simulator: Simulator) -> None:
    connector, okta = connect("mappings/okta.toml", "okta")
    number = "+442079460000"
    assert okta.get("/Users", params={"startIndex": 1, "count": 2}).status_code == 200  # the connection test
    assert okta.get("/Groups", params={"startIndex": 1, "count": 100}).json()["totalResults"] == 0
    assert empty(okta.get("/Users", params={"filter": 'userName eq "bob@example.com"', "startIndex": 1, "count": 100}))
    created = okta.post("/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", VERBA], "userName": "bob@example.com",
        "name": {"givenName": "Bob", "familyName": "B"}, "displayName": "Bob B", "locale": "en-GB",
        "emails": [{"primary": True, "value": "bob@example.com", "type": "work"}],
        "phoneNumbers": [{"type": "work", "value": "020 7946 0000"}],
        VERBA: {"verbaUserId": "4", "recordingPolicy": "full"},
        "externalId": "00ujl29u0le5T6Aj10h7", "groups": [], "password": "1mz050nq", "active": True})
    assert created.status_code == 201 and created.json()["id"]
    bob = created.json()
    connector.deliver()
    assert has(simulator.extensions()[number], user_id=4, recordingMode="FULL", im=True, video=True)
    # Updates: GET, then a full PUT carrying id, groups and meta.
    current = okta.get(f"/Users/{bob['id']}").json()
    current[VERBA] = {"verbaUserId": "4", "recordingPolicy": "on-demand"}
    assert okta.put(f"/Users/{bob['id']}", json=current).status_code == 200
    connector.deliver()
    assert simulator.extensions()[number]["recordingMode"] == "ON_DEMAND"
    # Group Push: create, add the member; the group lands in Bob's next event.
    group = okta.post("/Groups", json={"displayName": "Traders", "members": []}).json()
    okta.patch(f"/Groups/{group['id']}", json={"Operations": [
        {"op": "add", "path": "members", "value": [{"value": bob["id"], "display": "bob@example.com"}]},
        {"op": "replace", "value": {"id": group["id"], "displayName": "Traders"}}]})
    assert connector.store.list_events(limit=1)[0].change.state["groups"] == ["Traders"]
    # Deactivation (OIN apps PATCH; Okta never DELETEs users).
    okta.patch(f"/Users/{bob['id']}", json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                            "Operations": [{"op": "replace", "value": {"active": False}}]})
    connector.deliver()
    assert has(simulator.extensions()[number], user_id=4, **OFF)


def test_an_accepted_write_is_delivered_after_a_restart(
    make_config: Callable[..., Config], simulator: Simulator
) -> None:
    config = make_config("mappings/entra.toml")
    store = open_configured_store(config, create=True)
    with serve(create_scim_app(store, CONFIG)) as url, client_for(url) as entra:
        assert (
            entra.post(
                "/Users",
                json={"userName": "bob@example.com", "phoneNumbers": [{"type": "work", "value": "+14155550111"}]},
            ).status_code
            == 201
        )
    store.close()  # the process stops before any push
    connector = Connector(config)
    try:
        connector.deliver()
    finally:
        connector.close()
    assert simulator.extensions()["+14155550111"]["user_id"] == 4
