"""Extension writes' envelopes are copies of one zeep built (VerbaClient._extension_write): each must be the
envelope zeep itself builds for that call, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from connector.records import ExtensionRecord
from connector.verba.client import VerbaClient, extension_payload

RECORDS = [
    ExtensionRecord("+14155550100", 7, "FULL", True, False, False, False, eid="0000"),
    ExtensionRecord("+14155550101", 123456, "CONTROLLED", False, True, True, True, eid="0000"),
    ExtensionRecord("alice@example.com", 8, "FULL", True, None, None, False, eid="0000"),
    ExtensionRecord("sip:bob&co<1>@example.com", 9, "ON_DEMAND", None, False, True, None,
                    environment_short_name="Prod & Test"),
    ExtensionRecord("+14155550102", 10, "FULL", True, False, False, False, environment_short_name="prod"),
]


def zeeps_own(client: VerbaClient, operation: str, params: dict[str, Any]) -> bytes:
    serialized = client._binding.get(operation).create(**params)
    return etree.tostring(serialized.content)


@pytest.mark.parametrize("operation", ["createExtension", "updateExtension"])
def test_every_extension_write_is_the_envelope_zeep_builds(operation: str) -> None:
    client = VerbaClient("http://127.0.0.1:9/provisioning", eid="0000", token="fixed-token-of-the-test")
    # Twice over, in both orders: the first of each shape is zeep's, the others copies with their values.
    for n, record in enumerate(RECORDS + RECORDS[::-1] + RECORDS):
        params = {"token": f"token-{n}", "extension": extension_payload(record)}
        envelope, headers = client._extension_write(operation, params)

        assert etree.tostring(envelope) == zeeps_own(client, operation, params), record
        assert headers["SOAPAction"] == '""'
    assert len(client._templates) == 4  # one per operation and fields left out; copies for the rest
