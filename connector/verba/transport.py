"""The HTTP side of the zeep client: a urllib3 pool and what an HTTP error means."""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests
import urllib3
import zeep
from lxml import etree
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_auth_from_url, select_proxy
from zeep.wsdl.utils import etree_to_string

from connector.verba.errors import (
    VerbaError,
    VerbaHTTPError,
    VerbaMisconfigured,
    VerbaNotServed,
    VerbaRateLimited,
    VerbaTransportError,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://v2.provisioning.ws.web.verba.com/"
NO_RETRIES = urllib3.Retry(total=False, redirect=False)  # a call is sent once; delivery decides what to retry
NOT_SERVED_HERE = (404, 405)  # HTTP statuses that say nothing takes SOAP calls at target.url's path
MAX_RETRY_AFTER = 300.0  # a Retry-After longer than this is capped: the rest of the queue must not starve


class Transport(zeep.Transport):
    """zeep's transport for a hot path shared by worker threads: urllib3's pool, without requests.

    requests costs more per call than the rest of the HTTP exchange (it prepares each request, looks up
    proxies and adapters and builds its response anew); here the pool is set up once (`verba_pool`) and
    each call is one urllib3 request. It never follows redirects nor retries, never debug-logs envelopes
    (they hold the token and the password), reads the answer within `operation_timeout` (compressed
    answers decoded), and raises VerbaHTTPError for any HTTP status but 200. The answer goes back through
    zeep (raw_response) as an `Answer`. `agent` is the User-Agent of every call (zeep's by default).
    """

    def __init__(self, pool: urllib3.PoolManager, timeout: float, agent: str | None = None) -> None:
        super().__init__(timeout=timeout, operation_timeout=timeout)  # type: ignore[no-untyped-call]
        self.pool = pool
        self.headers: dict[str, str] = {"User-Agent": agent or str(self.session.headers["User-Agent"]),
                                        "Accept-Encoding": "gzip, deflate"}
        self._local = threading.local()  # per thread: a longer timeout for the calls inside `longer`
        self._routes: dict[str, tuple[urllib3.PoolManager | urllib3.HTTPConnectionPool, str]] = {}  # see _route

    @contextlib.contextmanager
    def longer(self, seconds: float) -> Iterator[None]:
        """Calls this thread makes inside may take up to `seconds` (a whole directory read); other threads'
        calls keep `operation_timeout`."""
        self._local.timeout = max(seconds, self.operation_timeout)
        try:
            yield
        finally:
            self._local.timeout = None

    def timeout_now(self) -> float:
        """The seconds this thread's calls may take now (see `longer`)."""
        return float(getattr(self._local, "timeout", None) or self.operation_timeout)

    def _route(self, address: str) -> tuple[urllib3.PoolManager | urllib3.HTTPConnectionPool, str]:
        """Where a POST to `address` goes: its host's connection pool and path, looked up once (the pool
        manager's lookup costs a tenth of a call; the client posts to one address, so the manager never
        evicts that pool, and `close` forgets it); through a proxy, the manager, which routes each call."""
        route = self._routes.get(address)
        if route is None:
            if isinstance(self.pool, urllib3.ProxyManager):
                route = (self.pool, address)
            else:
                route = (self.pool.connection_from_url(address), urllib3.util.parse_url(address).request_uri)
            self._routes[address] = route
        return route

    def close(self) -> None:
        """Close every connection; a later call opens new ones."""
        self._routes.clear()
        self.pool.clear()

    def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Answer:
        """POST the envelope; the whole call, answer included, ends within `timeout_now()` seconds."""
        timeout = self.timeout_now()
        deadline = time.monotonic() + timeout
        pool, target = self._route(address)
        answer = pool.urlopen(
            "POST", target, body=etree_to_string(envelope), headers={**self.headers, **headers},
            timeout=urllib3.Timeout(timeout), retries=NO_RETRIES, redirect=False, preload_content=False,
        )
        try:
            response = Answer(answer.status, answer.headers, read_within(answer, deadline, timeout))
        except BaseException:
            answer.close()  # half read, its connection is unusable: closed, the pool opens a new one in its place
            raise
        finally:
            answer.release_conn()
        if response.status_code != 200:
            raise http_error(response, address)
        return response


@dataclasses.dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole (what zeep's send hands back with raw_response)."""

    status_code: int
    headers: urllib3.HTTPHeaderDict  # case-insensitive
    content: bytes


def verba_pool(url: str, pool_size: int) -> urllib3.PoolManager:
    """A pool of up to `pool_size` connections to Verba. The proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) and
    the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's: a file, or a directory of hashed
    certificates as `openssl rehash` makes) are read from the environment once, here, as requests reads them."""
    settings = requests.Session().merge_environment_settings(url, {}, None, None, None)
    verify = settings["verify"]
    tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"} if verify is False else {
        "cert_reqs": "CERT_REQUIRED", **trusted(verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH)}
    proxy = select_proxy(url, settings["proxies"])
    if proxy is None:
        return urllib3.PoolManager(num_pools=1, maxsize=pool_size, **tls)
    login, password = get_auth_from_url(proxy)
    auth = urllib3.make_headers(proxy_basic_auth=f"{login}:{password}") if login else None
    return urllib3.ProxyManager(proxy, num_pools=1, maxsize=pool_size, proxy_headers=auth, **tls)


def trusted(bundle: str) -> dict[str, str]:
    """urllib3's setting for the CA bundle at `bundle`: `ca_cert_dir` for a directory, else `ca_certs` (a file)."""
    return {"ca_cert_dir": bundle} if os.path.isdir(bundle) else {"ca_certs": bundle}


def read_within(answer: urllib3.BaseHTTPResponse, deadline: float, timeout: float) -> bytes:
    """The answer's body, read before `deadline` (time.monotonic()): a server that trickles its
    answer in cannot stretch a call past its timeout one read at a time."""
    late = VerbaTransportError(f"Verba did not finish answering within {timeout:g} s; it is slow or overloaded")
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise late
        # Asked anew each time: once the body is read, urllib3 gives the connection back to the pool (None
        # here), and a pool already full closes it, or another thread takes it.
        sock = getattr(answer.connection, "sock", None)
        if sock is not None:
            sock.settimeout(remaining)
        try:
            chunk = answer.read1(65536)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise late from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise VerbaTransportError(
                f"Verba's answer broke off ({type(exc).__name__}); it is slow or unreachable"
            ) from exc
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def http_error(response: Answer, address: str) -> VerbaError:
    """The error for an answer that is not HTTP 200 to a POST to `address`, classified by what it means: a redirect
    and a SOAP client fault are a misconfigured target.url; a path nothing is served at (404, 405) may be one too,
    or Verba's web application still starting (VerbaNotServed: delivery waits for it)."""
    status = response.status_code
    fault = fault_of(response.content)
    if status == 429:
        return VerbaRateLimited(retry_after(response.headers.get("Retry-After")))
    if 300 <= status < 400:
        return VerbaMisconfigured(f"Verba answered HTTP {status}, redirecting to {response.headers.get('Location')!r}; "
                                  "set target.url to the address Verba really serves")
    if status in NOT_SERVED_HERE and fault is None:
        path = urllib.parse.urlsplit(address).path or "/"
        return VerbaNotServed(f"Verba answered HTTP {status} at {address}: no SOAP service at path {path} (Verba's "
                              "web application answers so while it restarts); if it lasts, set target.url to Verba's "
                              "Provisioning API v2 (path /provisioning, port 7002), e.g. "
                              "http://verba-mr:7002/provisioning")
    if fault is not None and fault[0].rpartition(":")[2] == "Client":
        return VerbaMisconfigured(f"Verba refused the call as a SOAP client fault ({fault[1]}); check target.url "
                                  "(path /provisioning, port 7002 for API v2) and that API v2 is enabled")
    return VerbaHTTPError(status, fault[1] if fault else "", soap_fault=fault is not None)


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
