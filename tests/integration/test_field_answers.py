"""Verba's answers from the field, through the whole delivery path (store, workers, client, simulator):
each shape ends done, retried or dead-lettered as decided, with a readable cause, and no secret is
left in the store, the CLI output or the logs."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from tests.plugins.simulator import drain, user

SOAP = '<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>{}</S:Body></S:Envelope>'
V2 = 'xmlns:ns2="http://v2.provisioning.ws.web.verba.com/"'
OK_WITH_EXTRA = SOAP.format(f"<ns2:createExtensionResponse {V2}><return><statusCode>OK</statusCode>"
                            "<serverTime>2026-11-30T00:00:00Z</serverTime></return></ns2:createExtensionResponse>")
OK_NESTED = SOAP.format(f"<ns2:createExtensionResponse {V2}><return><status><statusCode>OK</statusCode></status>"
                        "</return></ns2:createExtensionResponse>")
CLIENT_FAULT = SOAP.format("<S:Fault><faultcode>S:Client</faultcode><faultstring>Cannot find dispatch method for "
                           "{urn:v9}createExtension</faultstring></S:Fault>")
MULTIPART = "--b\nContent-Type: text/xml\n\n" + OK_WITH_EXTRA + "\n--b--\n"
MAX_ATTEMPTS = 4

# (fault rules on createExtension, final state, last cause, attempts)
SHAPES: dict[str, tuple[list[dict[str, Any]], EventState, str | None, int]] = {
    "ok-with-unknown-element": ([{"body": OK_WITH_EXTRA, "times": 1}], EventState.DONE, None, 1),
    "ok-in-the-nested-shape": ([{"body": OK_NESTED, "times": 1}], EventState.DONE, None, 1),
    "two-503s-then-ok": ([{"http_status": 503, "times": 2}], EventState.DONE, "http_5xx", 3),
    "503-for-ever": ([{"http_status": 503}], EventState.DEAD, "http_5xx", MAX_ATTEMPTS),
    "429-retry-after": ([{"http_status": 429, "headers": {"Retry-After": "1"}, "times": 2}], EventState.DONE, None, 1),
    "soap-client-fault": ([{"http_status": 500, "body": CLIENT_FAULT}], EventState.DEAD, "target_misconfigured", 1),
    "redirect": ([{"http_status": 302, "headers": {"Location": "https://mr.example/verba/ws-provisioning-2"}}],
                 EventState.DEAD, "target_misconfigured", 1),
    "cut-off-xml": ([{"malformed": True}], EventState.DEAD, "malformed_response", 3),
    "html-page": ([{"body": "<html><title>Login</title><body>SSO</body></html>"}], EventState.DEAD,
                  "malformed_response", 3),
    "mime-bare-lf": ([{"body": MULTIPART, "headers": {"Content-Type": 'multipart/related; boundary="b"'}}],
                     EventState.DEAD, "malformed_response", 3),
    "unknown-status-code": ([{"status": "ERROR_SOMETHING_NEW"}], EventState.DEAD, "error_something_new", 1),
    "trickle-past-the-deadline": ([{"trickle_ms": 400, "times": 1}], EventState.DONE, "transport", 2),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_answer_shape_ends_as_decided(make_config, simulator, shape, tmp_path):
    rules, state, cause, attempts = SHAPES[shape]
    simulator.http.post("/_sim/faults", json=[{"operation": "createExtension", **r} for r in rules]).raise_for_status()
    config = make_config(target={"timeout_seconds": 2},
                         delivery={"max_attempts": MAX_ATTEMPTS, "lease_seconds": 5})
    store, client = open_configured_store(config, create=True), open_client(config)
    try:
        deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
        store.enqueue([user(phones=("+14155550100",))])
        drain(deliverer, timeout=60)
        [event] = store.list_events()
        assert (event.state, event.last_cause, event.attempts) == (state, cause, attempts), event.last_error
        if event.last_error:
            assert "\n" not in event.last_error and "Traceback" not in event.last_error
            assert len(event.last_error) < 600
    finally:
        client.close()
        store.close()


def test_a_token_echoed_by_verba_is_in_no_output(make_config, simulator, tmp_path, caplog):
    config = make_config(delivery={"max_attempts": 1})
    store, client = open_configured_store(config, create=True), open_client(config)
    try:
        client.request_token()
        token = client._token
        assert token and len(token) == 32
        simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT",
                        message=f"Rejected request with token {token} for 0000")
        deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
        store.enqueue([user(phones=("+14155550100",))])
        with caplog.at_level(logging.DEBUG):
            drain(deliverer)
        [event] = store.list_events()
        assert event.state == EventState.DEAD and "Rejected request with token *** for 0000" in event.last_error
        stored = "".join(str(a) for a in store.attempts(event.id))
        assert token not in stored and token not in caplog.text
    finally:
        client.close()
        store.close()
    (tmp_path / "show.toml").write_text(f'[store]\nurl = "sqlite:///{tmp_path / "connector.db"}"\n')
    shown = subprocess.run([sys.executable, "-m", "connector.cli", "events", "show", str(event.id), "--config",
                            str(tmp_path / "show.toml")], capture_output=True, text=True)
    assert shown.returncode == 0 and "Rejected request with token ***" in shown.stdout
    assert token not in shown.stdout + shown.stderr
