"""The SCIM access log and per-client request metrics (issue 18 item 5): one INFO line per request on the logger
`connector.scim` with method, path, status, client and duration; never a token or a body."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from connector.ops.logs import JSONFormatter
from tests.scim.helpers import BASE, TOKENS

PASSWORD = "a-password-Okta-sends-9f3e"


def requests_counted(method: str, status: str, client: str) -> float:
    return REGISTRY.get_sample_value("connector_scim_requests_total",
                                     {"method": method, "status": status, "client": client}) or 0.0


def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    """The access log records, once `count` of them are there (each is written once its answer is sent)."""
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in caplog.records if r.name == "connector.scim" and hasattr(r, "duration_ms")]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_one_line_per_request_with_method_path_status_client_and_duration(
    server: str, api: httpx.Client, okta: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connector.scim")
    before = {key: requests_counted(*key) for key in
              [("POST", "201", "entra"), ("GET", "200", "okta"), ("GET", "401", "-"), ("GET", "200", "-")]}
    created = api.post("/Users?attributes=userName", json={"userName": "alice@example.com", "password": PASSWORD})
    assert created.status_code == 201
    assert okta.get("/Users").status_code == 200
    assert httpx.get(f"{server}{BASE}/Users", headers={"Authorization": "Bearer not-a-token-of-anyone"}).status_code \
        == 401
    assert httpx.get(f"{server}/healthz").status_code == 200

    lines = access_lines(caplog, 4)
    assert [(r.method, r.path, r.status, r.client) for r in lines] == [  # type: ignore[attr-defined]
        ("POST", f"{BASE}/Users", 201, "entra"),  # the query string is not logged
        ("GET", f"{BASE}/Users", 200, "okta"),
        ("GET", f"{BASE}/Users", 401, "-"),
        ("GET", "/healthz", 200, "-"),
    ]
    assert all(r.levelno == logging.INFO for r in lines)
    assert all(isinstance(r.duration_ms, float) and r.duration_ms >= 0 for r in lines)  # type: ignore[attr-defined]
    assert lines[0].getMessage().startswith(f"SCIM POST {BASE}/Users 201 client entra ")
    assert lines[0].getMessage().endswith(" ms")

    as_json = json.loads(JSONFormatter().format(lines[0]))
    assert as_json["logger"] == "connector.scim" and as_json["level"] == "info"
    assert {key: as_json[key] for key in ("method", "path", "status", "client")} == {
        "method": "POST", "path": f"{BASE}/Users", "status": 201, "client": "entra"}
    assert isinstance(as_json["duration_ms"], float)
    assert "instance" not in as_json and json.loads(JSONFormatter("mr-conn-1").format(lines[0]))["instance"] == \
        "mr-conn-1", "connector run names its [instance] in each line, for logs of several gathered in one place"

    everything = "\n".join(JSONFormatter().format(r) for r in lines)
    for secret in (*TOKENS.values(), "not-a-token-of-anyone", PASSWORD, "alice@example.com", "Bearer"):
        assert secret not in everything

    assert requests_counted("POST", "201", "entra") == before["POST", "201", "entra"] + 1
    assert requests_counted("GET", "200", "okta") == before["GET", "200", "okta"] + 1
    assert requests_counted("GET", "401", "-") == before["GET", "401", "-"] + 1
    assert requests_counted("GET", "200", "-") == before["GET", "200", "-"] + 1
    assert (REGISTRY.get_sample_value("connector_scim_request_duration_seconds_count", {"client": "okta"}) or 0) >= 1


def test_an_odd_path_is_logged_as_sent_and_cut_when_long(
    server: str, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connector.scim")
    assert api.get(f"{server}{BASE}//users/").status_code == 200  # served as /Users, logged as sent
    assert api.get("/Users/" + "x" * 1000).status_code == 404
    first, second = access_lines(caplog, 2)
    assert first.path == f"{BASE}//users/"  # type: ignore[attr-defined]
    assert second.status == 404 and len(second.path) == 303  # type: ignore[attr-defined]


def test_made_up_methods_are_counted_as_other_without_a_series_each(server: str) -> None:
    before = requests_counted("OTHER", "405", "-") + requests_counted("OTHER", "401", "-")
    with httpx.Client(base_url=server + BASE) as anyone:  # no token: counted before authentication
        for n in range(20):
            anyone.request(f"M{n:05d}", "/Users")
    after = requests_counted("OTHER", "405", "-") + requests_counted("OTHER", "401", "-")
    assert after == before + 20
    methods = {sample.labels["method"] for metric in REGISTRY.collect() if metric.name == "connector_scim_requests"
               for sample in metric.samples}
    assert not any(method.startswith("M0") for method in methods)
