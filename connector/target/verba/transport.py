"""The HTTP side of the zeep client: a pooled session, HTTP errors, answer shape."""

from __future__ import annotations

from typing import Any

import requests
import zeep
from lxml import etree
from requests.adapters import HTTPAdapter
from zeep.wsdl.utils import etree_to_string

from connector.target.verba.errors import VerbaHTTPError, VerbaMalformedResponse

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://v2.provisioning.ws.web.verba.com/"


class Transport(zeep.Transport):
    """zeep's transport trimmed for a hot path shared by worker threads.

    It calls the pooled adapter directly (requests would re-read proxy settings from the
    environment, merge cookies and follow redirects on every call: a fifth of the client's
    time), never debug-logs envelopes (they hold the token and the password), and raises
    VerbaHTTPError for any HTTP status but 200.
    """

    def post_xml(self, address: str, envelope: Any, headers: dict) -> requests.Response:
        session = self.session
        request = requests.Request("POST", address, headers={**session.headers, **headers}, data=etree_to_string(envelope))
        response = session.get_adapter(address).send(
            request.prepare(), timeout=self.operation_timeout, verify=session.verify, proxies=session.proxies
        )
        if response.status_code != 200:
            raise VerbaHTTPError(response.status_code, fault_string(response.content))
        return response


class EnvelopeCheck(zeep.Plugin):
    """Refuses a well-formed answer that is not Envelope/Body/<op>Response before zeep reads
    it: zeep answers such bodies with TypeError or IndexError, or reads another operation's
    answer as if it were this one's."""

    def ingress(self, envelope: Any, http_headers: dict, operation: Any) -> tuple[Any, dict]:
        body = envelope.find(f"{{{SOAP_ENV}}}Body") if envelope.tag == f"{{{SOAP_ENV}}}Envelope" else None
        payload = body[0] if body is not None and len(body) else None
        expected = {f"{{{TNS}}}{operation.name}Response", f"{{{SOAP_ENV}}}Fault"}
        if payload is None or payload.tag not in expected:
            raise VerbaMalformedResponse(
                f"{operation.name} answered XML that is not a SOAP 1.1 {operation.name}Response; "
                "check that target.url points at Verba Provisioning API v2"
            )
        return envelope, http_headers


def pooled_session(url: str, pool_size: int) -> requests.Session:
    """One adapter pooling `pool_size` connections; proxy and CA bundle settings are read
    from the environment once, here."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(settings["proxies"])
    session.verify = settings["verify"]
    return session


def fault_string(content: bytes) -> str:
    """The faultstring of a SOAP Fault body, or '' when the body is something else."""
    try:
        root = etree.fromstring(content)
    except (etree.XMLSyntaxError, ValueError):
        return ""
    text = root.findtext(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault/faultstring")
    return (text or "").strip()[:300]
