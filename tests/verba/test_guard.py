"""Invariant 1 on the wire: no createExtension / updateExtension leaves without <user><id>."""

from __future__ import annotations

from typing import Any

import pytest
from zeep import Plugin

from connector.verba import MissingUserIdError, VerbaClient
from tests.verba.helpers import Sim, envelope, record

EXTENSION = "<eid>0000</eid><extension>{number}</extension><recordingMode>FULL</recordingMode><voice>1</voice>"


def test_update_without_user_unlinks_in_the_simulator_as_documented(sim: Sim) -> None:
    token = sim.token()
    created = sim.post_soap(envelope("createExtension", f"<token>{token}</token><extension>"
                                     + EXTENSION.format(number="100") + "<user><id>3</id></user></extension>"))
    assert "<statusCode>OK</statusCode>" in created.text
    assert sim.extension("100")["user_id"] == 3  # type: ignore[index]

    updated = sim.post_soap(envelope("updateExtension", f"<token>{token}</token><extension>"
                                     + EXTENSION.format(number="100") + "</extension>"))
    assert "<statusCode>OK</statusCode>" in updated.text
    stored = sim.extension("100")
    assert stored is not None, "the extension stays"
    assert stored["user_id"] is None, "the vendor's comment: no <user> deletes the extension-user association"
    assert sim.calls("updateExtension")[0]["user_id"] is None


@pytest.mark.parametrize("operation", ["updateExtension", "createExtension"])
@pytest.mark.parametrize("user", [None, {}, {"id": None}])
def test_the_guard_refuses_an_envelope_without_user_id(
    sim: Sim, client: VerbaClient, operation: str, user: object
) -> None:
    client.request_token()
    extension = {"eid": "0000", "extension": "100", "recordingMode": "FULL", "voice": True}
    if user is not None:
        extension["user"] = user
    # A write of the same shape went first, with a user id: its envelope is the one later writes copy.
    client._send(operation, token=client._current_token(), extension={**extension, "user": {"id": 5}})
    sim.http.delete("/_sim/calls")
    with pytest.raises(MissingUserIdError) as caught:
        client._send(operation, token="not-sent", extension=extension)  # a bug that bypasses ExtensionRecord
    assert caught.value.cause == "missing_user_id" and not caught.value.retryable
    assert "'100'" in str(caught.value) and "not-sent" not in str(caught.value)
    assert sim.calls() == [], "nothing reached Verba"


class DropUser(Plugin):
    """A bug after serialization: <user> vanishes from a good envelope."""

    def egress(self, envelope: Any, http_headers: dict, operation: Any, binding_options: dict) -> tuple[Any, dict]:
        for user in list(envelope.iter("user")):
            user.getparent().remove(user)
        return envelope, http_headers


def test_the_guard_reads_the_xml_not_the_call(sim: Sim, client: VerbaClient) -> None:
    client._zeep.plugins.insert(0, DropUser())
    with pytest.raises(MissingUserIdError):
        client.create_extension(record("101"))
    assert sim.calls("createExtension") == []
