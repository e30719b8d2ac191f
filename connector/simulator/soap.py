"""SOAP 1.1 envelopes as the simulator reads them and writes them, JAX-WS style.

Requests: children may come in any order, qualified or not; booleans may be 1/0/true/false.
Answers: `S:Envelope/S:Body/ns2:<op>Response/return`, children in alphabetical order as
JAX-WS writes them (the documented getExtension answer shows that order).
"""

from __future__ import annotations

import dataclasses
from xml.sax.saxutils import escape

from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://v2.provisioning.ws.web.verba.com/"
CONTENT_TYPE = "text/xml; charset=utf-8"

_ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
_BODY = f"{{{SOAP_ENV}}}Body"
_BOOLEANS = {"1": True, "true": True, "0": False, "false": False}
_parser = etree.XMLParser(remove_comments=True, remove_pis=True, resolve_entities=False, no_network=True)


class NotSoap(Exception):
    """The request body is not a SOAP 1.1 envelope with a payload."""


@dataclasses.dataclass(frozen=True)
class Call:
    operation: str
    namespace: str | None
    fields: dict[str, etree._Element]


def parse_call(body: bytes) -> Call:
    try:
        root = etree.fromstring(body, _parser)
    except etree.XMLSyntaxError as exc:
        raise NotSoap(f"Couldn't create SOAP message due to exception: {exc}") from exc
    if root.tag != _ENVELOPE:
        raise NotSoap(f"Couldn't create SOAP message: expected a SOAP 1.1 Envelope, found {root.tag}")
    soap_body = root.find(_BODY)
    payload = None if soap_body is None else next((child for child in soap_body if isinstance(child.tag, str)), None)
    if payload is None:
        raise NotSoap("Couldn't create SOAP message: the SOAP Body holds no operation")
    qname = etree.QName(payload)
    return Call(qname.localname, qname.namespace, children(payload))


def children(element: etree._Element | None) -> dict[str, etree._Element]:
    """Child elements by local name (namespace ignored); the first of a name wins."""
    found: dict[str, etree._Element] = {}
    if element is not None:
        for child in element:
            tag = child.tag
            if isinstance(tag, str):
                found.setdefault(tag[tag.rfind("}") + 1 :], child)
    return found


def text(fields: dict[str, etree._Element], name: str) -> str | None:
    element = fields.get(name)
    return None if element is None else (element.text or "")


def boolean(value: str | None) -> bool | None:
    """xs:boolean from the wire; None when absent. Raises ValueError for anything else."""
    if value is None:
        return None
    try:
        return _BOOLEANS[value.strip()]
    except KeyError:
        raise ValueError(value) from None


def element(name: str, value: object) -> str:
    """`<name>value</name>`, or nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def status(code: str, message: str | None = None) -> str:
    return element("message", message) + element("statusCode", code)


def response(operation: str, inner: str) -> bytes:
    return (
        f'<S:Envelope xmlns:S="{SOAP_ENV}"><S:Body><ns2:{operation}Response xmlns:ns2="{TNS}">'
        f"<return>{inner}</return></ns2:{operation}Response></S:Body></S:Envelope>"
    ).encode()


def fault(code: str, message: str) -> bytes:
    return (
        f'<S:Envelope xmlns:S="{SOAP_ENV}"><S:Body><S:Fault><faultcode>S:{code}</faultcode>'
        f"<faultstring>{escape(message)}</faultstring></S:Fault></S:Body></S:Envelope>"
    ).encode()


def truncated(operation: str) -> bytes:
    """A response cut off in the middle: not well-formed XML."""
    return response(operation, status("OK"))[:-60]
