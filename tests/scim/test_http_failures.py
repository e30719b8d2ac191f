"""Requests that go wrong at the HTTP level, under real uvicorn: a client that hangs up before its body arrived is
no server error (logged at info, counted as 499, nothing stored), an exception no handler expects is one SCIM 500
with one structured log line holding its traceback (uvicorn prints none), and a 405 says which methods are allowed.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from connector.ops.logs import JSONFormatter
from connector.simulator.app import create_app
from connector.store import Store
from tests.ops.helpers import wait_for
from tests.scim.helpers import BASE, TOKENS
from tests.scim.live import serve

HUNG_UP = f"SCIM POST {BASE}/Users: the client hung up before its body arrived; nothing was stored"


def requests_counted(method: str, status: str, client: str = "entra") -> float:
    return REGISTRY.get_sample_value("connector_scim_requests_total",
                                     {"method": method, "status": status, "client": client}) or 0.0


def hang_up_mid_body(url: str, path: str, headers: dict[str, str]) -> None:
    """Send a request head that promises a 10,000-byte body (under max_body_bytes), then a few bytes of it, and
    close the connection."""
    host, port = url.removeprefix("http://").split(":")
    head = [f"POST {path} HTTP/1.1", "Host: x", "Content-Length: 10000", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"userName": "a')


@pytest.fixture
def uvicorn_records(server: str, caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """What uvicorn's own loggers write (they do not reach the root logger): its "Exception in ASGI application"
    line carries the plain-text traceback. Attached once the server runs, as uvicorn sets its handlers at start."""
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    try:
        yield caplog.records
    finally:
        uvicorn_logger.removeHandler(caplog.handler)


def access_line(caplog: pytest.LogCaptureFixture, status: int) -> logging.LogRecord:
    return wait_for(lambda: next((r for r in caplog.records if getattr(r, "duration_ms", None) is not None
                                  and getattr(r, "status", None) == status), None), what=f"the {status} access line")


def test_a_client_that_hangs_up_mid_body_is_logged_at_info_and_counted_as_499(
    server: str, store: Store, uvicorn_records: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = {status: requests_counted("POST", status) for status in ("499", "500")}
    hang_up_mid_body(server, f"{BASE}/Users", {"Authorization": f"Bearer {TOKENS['entra']}",
                                               "Content-Type": "application/scim+json"})

    line = access_line(caplog, 499)
    assert line.getMessage().startswith(f"SCIM POST {BASE}/Users 499 client entra ")
    assert requests_counted("POST", "499") == before["499"] + 1
    assert requests_counted("POST", "500") == before["500"]
    said = [r for r in caplog.records if r.getMessage() == HUNG_UP]
    assert len(said) == 1 and said[0].levelno == logging.INFO and said[0].name == "connector.scim"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in uvicorn_records)
    assert store.list_events(limit=10) == [] and store.scim_search("entra", "User", None, 0, 10)[0] == 0


def test_an_unexpected_exception_is_a_scim_500_and_one_structured_error_line(
    api: httpx.Client, store: Store, uvicorn_records: list[logging.LogRecord], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    before = requests_counted("GET", "500")

    def broken(*args: object) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(store, "scim_get", broken)
    answer = api.get("/Users/2819c223-7f76-453a-919d-413861904646")

    assert answer.status_code == 500 and answer.headers["content-type"] == "application/scim+json"
    assert answer.json() == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "500",
                             "detail": "the connector failed on this request; it is logged, retry later"}
    access_line(caplog, 500)
    assert requests_counted("GET", "500") == before + 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["connector.scim"], [r.getMessage() for r in errors]
    as_json = json.loads(JSONFormatter().format(errors[0]))
    assert as_json["message"] == f"SCIM GET {BASE}/Users/2819c223-7f76-453a-919d-413861904646 failed"
    assert as_json["exception"].startswith("Traceback") and "RuntimeError: the disk is on fire" in as_json["exception"]
    assert not any(r.exc_info for r in uvicorn_records), "uvicorn printed a second, plain-text traceback"


@pytest.mark.parametrize("method, path, allowed", [
    ("PATCH", "/Users", {"GET", "HEAD", "POST"}),
    ("OPTIONS", "/Users", {"GET", "HEAD", "POST"}),
    ("DELETE", "/ServiceProviderConfig", {"GET", "HEAD"}),
    ("POST", "/Groups/2819c223", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
    ("GET", "/Bulk", {"POST"}),
])
def test_a_405_names_the_methods_the_endpoint_takes(api: httpx.Client, method: str, path: str,
                                                   allowed: set[str]) -> None:
    answer = api.request(method, path)
    assert answer.status_code == 405 and answer.json()["status"] == "405"
    assert {name.strip() for name in answer.headers["allow"].split(",")} == allowed  # RFC 9110 §15.5.6


def test_the_simulator_takes_a_caller_that_hangs_up_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with serve(create_app()) as url:
        uvicorn_logger = logging.getLogger("uvicorn")
        uvicorn_logger.addHandler(caplog.handler)
        try:
            hang_up_mid_body(url, "/provisioning", {"Content-Type": "text/xml; charset=utf-8"})
            # A request after it is answered: the server got past the one that hung up.
            assert httpx.get(f"{url}/provisioning", timeout=10).status_code == 200
        finally:
            uvicorn_logger.removeHandler(caplog.handler)
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
