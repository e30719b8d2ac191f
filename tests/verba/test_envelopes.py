"""The delivery path's envelopes (extension writes, getExtension) are copies of one zeep built
(VerbaClient._envelope): each must be the envelope zeep itself builds for that call, byte for byte. And
getExtension's answer, read without zeep (_read_element), must read as zeep reads it."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import zeep.helpers
from lxml import etree

from connector.records import ExtensionRecord
from connector.verba.client import VerbaClient, _children, _read_element, _returned, extension_payload
from connector.verba.status import read_status

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
        envelope, headers = client._envelope(operation, params)

        assert etree.tostring(envelope) == zeeps_own(client, operation, params), record
        assert headers["SOAPAction"] == '""'
    assert len(client._templates) == 4  # one per operation and fields left out; copies for the rest


def test_every_get_extension_is_the_envelope_zeep_builds() -> None:
    for settings in ({"eid": "0000"}, {"environment_short_name": "Prod & Test"}):
        client = VerbaClient("http://127.0.0.1:9/provisioning", token="fixed-token-of-the-test", **settings)
        for n, record in enumerate(RECORDS * 2):
            params = {"token": f"token-{n}", "environmentFilter": client._environment_filter(),
                      "extension": record.extension}
            envelope, _ = client._envelope("getExtension", params)

            assert etree.tostring(envelope) == zeeps_own(client, "getExtension", params), record
        assert len(client._templates) == 1


ANSWER = ('<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>'
          '<ns2:getExtensionResponse xmlns:ns2="http://v2.provisioning.ws.web.verba.com/"><return>{}</return>'
          '</ns2:getExtensionResponse></S:Body></S:Envelope>')
EXTENSION = ("<extension><eid>0000</eid><environmentShortName>default</environmentShortName><extension>+14155550100"
             "</extension><id>6</id><im>false</im><recordingMode>FULL</recordingMode><screenCaptureEnabled>1"
             "</screenCaptureEnabled><user><eid>0000</eid><id>3</id><loginName>alice@example.com</loginName></user>"
             "<video>0</video><voice>true</voice></extension>")
STATUS = "<status><statusCode>OK</statusCode></status>"


@pytest.mark.parametrize("inner", [
    EXTENSION + STATUS,
    STATUS + EXTENSION.replace("<voice>true</voice>", "<voice/>"),  # another order, an empty value
    STATUS,  # no extension
    "<status><statusCode>ERROR_GENERAL</statusCode><message>Extension not found</message></status>",
    "<statusCode>OK</statusCode>" + EXTENSION,  # the flat shape: kept aside, as zeep keeps it
    STATUS + EXTENSION.replace("<id>6</id>", "<id>6</id><serverTime>12:00</serverTime><id>7</id>"),  # unknown, twice
    STATUS + EXTENSION.replace("<loginName>", "<displayName>Alice</displayName><loginName>"),
    STATUS + EXTENSION.replace("</user>", "<extensions><extension>+1</extension><voice>1</voice></extensions>"
                                          "<extensions><id>9</id></extensions></user>"),  # a list
    STATUS + EXTENSION.replace("<user>", '<user xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><email '
                                         'xsi:nil="true"/>'),
])
def test_get_extension_answers_are_read_as_zeep_reads_them(inner: str) -> None:
    client = VerbaClient("http://127.0.0.1:9/provisioning", eid="0000", token="fixed-token-of-the-test")
    envelope = etree.fromstring(ANSWER.format(inner))
    answer = client._binding.get("getExtension")

    zeeps = zeep.helpers.serialize_object(answer.process_reply(envelope), dict)
    ours = _read_element("getExtension", _returned(envelope), _children(answer.output.body.type)["return"].type)

    def comparable(value: Any) -> Any:  # elements kept aside as text to compare
        if isinstance(value, dict):
            return {k: comparable(v) for k, v in value.items()}
        if isinstance(value, (list, collections.deque)):
            return [etree.tostring(v) if isinstance(v, etree._Element) else comparable(v) for v in value]
        return value

    assert comparable(ours) == comparable(zeeps)
    assert read_status(ours, "getExtension") == read_status(zeeps, "getExtension")
