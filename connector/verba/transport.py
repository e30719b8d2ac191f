"""The HTTP side of the zeep client: a pooled session, HTTP errors, answer shape."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import requests
import urllib3
import zeep
from lxml import etree
from requests.adapters import HTTPAdapter
from zeep.wsdl.utils import etree_to_string

from connector.verba.errors import (
    VerbaError,
    VerbaHTTPError,
    VerbaMalformedResponse,
    VerbaMisconfigured,
    VerbaRateLimited,
    VerbaTransportError,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://v2.provisioning.ws.web.verba.com/"
MAX_RETRY_AFTER = 300.0  # a Retry-After longer than this is capped: the rest of the queue must not starve


class Transport(zeep.Transport):
    """zeep's transport trimmed for a hot path shared by worker threads.

    It calls the pooled adapter directly (requests would re-read proxy settings from the
    environment, merge cookies and follow redirects on every call: a fifth of the client's
    time), never debug-logs envelopes (they hold the token and the password), and raises
    VerbaHTTPError for any HTTP status but 200.
    """

    def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> requests.Response:
        """POST the envelope; the whole call, answer included, ends within `operation_timeout` seconds."""
        deadline = time.monotonic() + self.operation_timeout
        session = self.session
        body = etree_to_string(envelope)
        request = requests.Request("POST", address, headers={**session.headers, **headers}, data=body)
        response = session.get_adapter(address).send(
            request.prepare(), timeout=self.operation_timeout, proxies=session.proxies, stream=True,
            verify=True if session.verify is None else session.verify,  # requests reads None as its default, True
        )
        try:
            response._content = read_within(response, deadline, self.operation_timeout)
        finally:
            response.close()
        if response.status_code != 200:
            raise http_error(response)
        return response


class EnvelopeCheck(zeep.Plugin):
    """Refuses a well-formed answer that is not Envelope/Body/<op>Response before zeep reads
    it: zeep answers such bodies with TypeError or IndexError, or reads another operation's
    answer as if it were this one's."""

    def ingress(self, envelope: Any, http_headers: dict[str, str], operation: Any) -> tuple[Any, dict[str, str]]:
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


def read_within(response: requests.Response, deadline: float, timeout: float) -> bytes:
    """The answer's body, read before `deadline` (time.monotonic()): a server that trickles its
    answer in cannot stretch a call past its timeout one read at a time."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    late = VerbaTransportError(f"Verba did not finish answering within {timeout:g} s; it is slow or overloaded")
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise late
        if sock is not None:
            sock.settimeout(remaining)
        try:
            chunk = response.raw.read1(65536)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise late from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise VerbaTransportError(
                f"Verba's answer broke off ({type(exc).__name__}); it is slow or unreachable"
            ) from exc
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def http_error(response: requests.Response) -> VerbaError:
    """The error for an answer that is not HTTP 200, classified by what it means."""
    status = response.status_code
    fault = fault_of(response.content)
    if status == 429:
        return VerbaRateLimited(retry_after(response.headers.get("Retry-After")))
    if 300 <= status < 400:
        return VerbaMisconfigured(f"Verba answered HTTP {status}, redirecting to {response.headers.get('Location')!r}; "
                                  "set target.url to the address Verba really serves")
    if fault is not None and fault[0].rpartition(":")[2] == "Client":
        return VerbaMisconfigured(f"Verba refused the call as a SOAP client fault ({fault[1]}); check target.url "
                                  "(path /provisioning, port 7002 for API v2) and that API v2 is enabled")
    return VerbaHTTPError(status, fault[1] if fault else "")


def retry_after(header: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), between 1 and MAX_RETRY_AFTER."""
    seconds = 1.0
    if header:
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = 1.0
    return min(max(seconds, 1.0), MAX_RETRY_AFTER)


def fault_of(content: bytes) -> tuple[str, str] | None:
    """(faultcode, faultstring) of a SOAP Fault body, or None when the body is something else."""
    try:
        root = etree.fromstring(content)
    except (etree.XMLSyntaxError, ValueError):
        return None
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    if fault is None:
        return None
    return (fault.findtext("faultcode") or "").strip(), (fault.findtext("faultstring") or "").strip()[:300]
