"""Why a SCIM request gets 401, in its answer and in its access log line, for an admin whose identity provider's
"Test Connection" fails: no Authorization header, one that is not "Bearer <token>", or a token no client has.
Never which tokens exist, never the token sent."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from connector.config import ScimConfig
from connector.ops.logs import JSONFormatter
from connector.sources.scim import create_scim_app
from connector.store import Store
from tests.scim.helpers import BASE, TOKENS
from tests.scim.live import serve
from tests.scim.test_access_log import access_lines

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
FIX = "send the bearer token configured for your SCIM client: Authorization: Bearer <token>"
NOT_BEARER = 'the Authorization header is not "Bearer <token>"'
UNKNOWN = "not-a-token-of-anyone-3f9a"


@pytest.mark.parametrize("headers, reason", [
    ({}, "no Authorization header"),
    ({"Authorization": TOKENS["entra"]}, NOT_BEARER),  # the token without "Bearer "
    ({"Authorization": f"Basic {TOKENS['entra']}"}, NOT_BEARER),
    ({"Authorization": "Bearer"}, NOT_BEARER),
    ({"Authorization": f"Bearer {UNKNOWN}"}, "a token no SCIM client has"),
])
def test_a_refused_request_is_told_why_and_so_is_the_log(
    server: str, caplog: pytest.LogCaptureFixture, headers: dict[str, str], reason: str
) -> None:
    caplog.set_level(logging.INFO, logger="connector.scim")
    response = httpx.get(f"{server}{BASE}/Users", headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer realm="SCIM"'
    assert response.json() == {"schemas": [ERROR], "status": "401", "detail": f"{reason}; {FIX}"}

    [line] = access_lines(caplog, 1)
    assert line.getMessage().startswith(f"SCIM GET {BASE}/Users 401 client - ")
    assert line.getMessage().endswith(f" ms: {reason}")
    logged = JSONFormatter().format(line)
    assert json.loads(logged)["refused"] == reason
    assert TOKENS["entra"] not in logged and UNKNOWN not in logged


def test_an_accepted_request_logs_no_refusal(api: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connector.scim")
    assert api.get("/Users").status_code == 200
    [line] = access_lines(caplog, 1)
    assert line.getMessage().endswith(" ms") and "refused" not in json.loads(JSONFormatter().format(line))


def test_without_clients_every_request_is_told_to_add_one(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="connector.scim")
    with serve(create_scim_app(store, ScimConfig())) as url:
        response = httpx.get(f"{url}{BASE}/Users", headers={"Authorization": f"Bearer {TOKENS['entra']}"})
    assert response.status_code == 401 and response.json()["detail"] == (
        "no SCIM clients are configured; add a [[scim.clients]] entry with a token_env or token_file")
    assert access_lines(caplog, 1)[0].getMessage().endswith(" ms: no SCIM clients are configured")
