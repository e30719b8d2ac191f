"""The shipped WSDL produces the vendor's documented envelopes and parses its answers."""

from __future__ import annotations

from pathlib import Path

import zeep
from lxml import etree

from connector.records import ExtensionRecord
from connector.verba import VerbaClient
from connector.verba.client import BINDING, _returned, extension_payload
from connector.verba.status import read_status
from tests.verba.helpers import Sim

SAMPLES = Path(__file__).parent / "samples"
SOAP_BODY = "{http://schemas.xmlsoap.org/soap/envelope/}Body"
BOOLEAN_FIELDS = {"im", "video", "voice", "screenCaptureEnabled"}


def shape(element: etree._Element, ordered: bool = True) -> tuple:
    """(qualified tag, text, children) with xs:boolean 1/0 written as true/false."""
    text = (element.text or "").strip()
    if etree.QName(element).localname in BOOLEAN_FIELDS:
        text = {"1": "true", "0": "false"}.get(text, text)
    kids = [shape(child, ordered) for child in element if isinstance(child.tag, str)]
    return (element.tag, text, tuple(kids if ordered else sorted(kids)))


def body_of(envelope: etree._Element) -> etree._Element:
    return envelope.find(SOAP_BODY)


def sample(name: str) -> etree._Element:
    return etree.parse(str(SAMPLES / name)).getroot()


def client_message(operation: str, token: str, record: ExtensionRecord) -> etree._Element:
    client = VerbaClient("http://127.0.0.1:9/provisioning", eid="0000", token=token)
    return client._zeep.create_message(client._service, operation, token=token, extension=extension_payload(record))


def test_create_extension_matches_the_vendor_examples() -> None:
    on_demand = ExtensionRecord("verbatestuser2@verbalabs.com", 4, "ON_DEMAND", True, True, True, True, eid="0000")
    full = ExtensionRecord("verbatestuser@verbalabs.com", 3, "FULL", True, False, False, False, eid="0000")
    for record, name in ((on_demand, "createExtension-on-demand.xml"), (full, "createExtension-full.xml")):
        produced = client_message("createExtension", "tbESeqhBDsevSwi4HZdYAz8mKbBg8f6j", record)
        assert shape(body_of(produced)) == shape(body_of(sample(name)))


def test_update_extension_matches_the_vendor_example() -> None:
    # The vendor's own examples disagree on the voice/video order, so compare children as a set.
    record = ExtensionRecord("verbatestuser2@verbalabs.com", 25, "CONTROLLED", True, True, True, True, eid="0000")
    produced = client_message("updateExtension", "FipASZ3Y336Kvmv7W1BV7aXY7hDFeMxq", record)
    assert shape(body_of(produced), ordered=False) == shape(body_of(sample("updateExtension.xml")), ordered=False)


def test_environment_short_name_replaces_eid_and_nothing_empty_is_sent() -> None:
    record = ExtensionRecord("100", 3, "FULL", True, False, False, False, environment_short_name="default")
    produced = etree.tostring(client_message("updateExtension", "t" * 32, record)).decode()
    assert "<environmentShortName>default</environmentShortName>" in produced
    assert "<eid" not in produced and "/>" not in produced


def test_both_status_shapes_are_read() -> None:
    client = VerbaClient("http://127.0.0.1:9/provisioning", eid="0000", token="t")
    flat = client._service._binding.get("createExtension").process_reply(
        sample("createExtension-already-exists-response.xml")
    )
    unread = _returned(sample("createExtension-already-exists-response.xml"))  # as extension writes read it
    for status in (read_status(flat, "createExtension"), read_status(unread, "createExtension")):
        assert status.code == "ERROR_ALREADY_EXISTS"
        assert status.message == "This extension already exists in the database: 0000:verbatestuser@verbalabs.com"
    nested = etree.fromstring(
        b'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>'
        b'<ns2:requestTokenResponse xmlns:ns2="http://v2.provisioning.ws.web.verba.com/"><return>'
        b"<status><message>com.verba.web.user.UserNotFoundException</message><statusCode>ERROR_GENERAL</statusCode></status>"
        b"</return></ns2:requestTokenResponse></S:Body></S:Envelope>"
    )
    status = read_status(client._service._binding.get("requestToken").process_reply(nested), "requestToken")
    assert (status.code, status.message) == ("ERROR_GENERAL", "com.verba.web.user.UserNotFoundException")


def test_get_extension_answer_in_jaxws_order_with_unknown_user_fields_parses() -> None:
    client = VerbaClient("http://127.0.0.1:9/provisioning", eid="0000", token="t")
    answer = etree.fromstring(
        b'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>'
        b'<ns2:getExtensionResponse xmlns:ns2="http://v2.provisioning.ws.web.verba.com/"><return><extension>'
        b"<eid>0000</eid><environmentShortName>default</environmentShortName><extension>12444</extension><id>56</id>"
        b"<im>true</im><recordingMode>FULL</recordingMode><screenCaptureEnabled>false</screenCaptureEnabled>"
        b"<user><id>3</id><loginName>alice</loginName><passwordHash>x</passwordHash><locked>false</locked></user>"
        b"<video>false</video><voice>true</voice></extension><status><statusCode>OK</statusCode></status>"
        b"</return></ns2:getExtensionResponse></S:Body></S:Envelope>"
    )
    value = client._service._binding.get("getExtension").process_reply(answer)
    assert read_status(value, "getExtension").code == "OK"
    assert (value.extension.id, value.extension.user.id, value.extension.voice) == (56, 3, True)


def test_served_wsdl_loads_in_zeep_with_the_simulator_address(sim: Sim) -> None:
    client = zeep.Client(f"{sim.url}?wsdl")
    assert client.service._binding_options["address"] == sim.url
    assert BINDING in [str(name) for name in client.wsdl.bindings]
    assert (
        client.service.requestToken(eid="0000", loginName="connector", password="nope").status.statusCode
        == "ERROR_GENERAL"
    )
