"""/livez, /readyz and /metrics of a running connector process."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.version import VERSION
from tests.ops.helpers import cli, unreachable_target, wait_for, write_config
from tests.plugins.simulator import free_port

EVENTS = [
    {"source": "hr", "external_id": "u-alice",
     "state": {"userName": "alice@example.com", "phoneNumbers": [{"type": "work", "value": "+14155550100"}]}},
    {"source": "hr", "external_id": "u-bob",
     "state": {"userName": "bob@example.com", "phoneNumbers": [{"type": "work", "value": "+14155550111"}]}},
    {"source": "hr", "external_id": "u-carol",
     "state": {"userName": "carol@example.com", "phoneNumbers": [{"type": "work", "value": "+14155550122"}]}},
]


@pytest.fixture
def running(tmp_path):
    """Start `connector run` on a config; yields (admin base URL, config path)."""
    processes = []

    def start(target_url: str):
        port = free_port()
        config = write_config(tmp_path, target_url, admin_port=port)
        with (tmp_path / "log").open("ab") as log:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
                                       stdout=subprocess.DEVNULL, stderr=log)
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/livez"), what="the admin listener")
        wait_for(lambda: _scim_listening(base), what="SCIM (the last part to start)")
        return base, config

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def _scim_listening(base: str) -> bool:
    """Whether /readyz says SCIM listens: `connector run` starts it last, once delivery runs."""
    return str(httpx.get(f"{base}/readyz", timeout=20).json()["sources"]["scim"]).startswith("ok")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def ingest(tmp_path, config) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in EVENTS))
    assert cli("events", "ingest", "--config", str(config), str(events)).returncode == 0


def test_livez_and_readyz_when_all_is_well(running, simulator):
    base, _ = running(simulator.url)
    assert httpx.get(f"{base}/livez").json() == {"status": "alive"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["store"] == "writable"


def test_readyz_is_degraded_when_verba_is_down_and_unready_when_the_store_cannot_be_written(running, tmp_path):
    base, _ = running(unreachable_target())
    degraded = httpx.get(f"{base}/readyz", timeout=20)
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded" and degraded.json()["target"].startswith("unreachable")

    blocker = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the store: it cannot be written
    try:
        unready = httpx.get(f"{base}/readyz", timeout=30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert unready.status_code == 503
    assert unready.json()["status"] == "unready" and unready.json()["store"].startswith("unwritable")
    assert httpx.get(f"{base}/livez").status_code == 200, "liveness must not depend on the store"


def test_readyz_is_unready_once_another_start_took_the_instances_name(running, simulator, tmp_path):
    """It logs that it calls Verba no more and must be stopped: a load balancer must send it no SCIM request either."""
    base, _ = running(simulator.url)
    assert httpx.get(f"{base}/readyz", timeout=20).json()["status"] == "ready"
    with contextlib.closing(sqlite3.connect(tmp_path / "c.db", isolation_level=None)) as db:
        # it was counted dead (paused past liveness_seconds) and another start registered under its name meanwhile
        db.execute("UPDATE instances SET run = 'newer', pid = 1")

    answer = wait_for(lambda: (r := httpx.get(f"{base}/readyz", timeout=20)).status_code == 503 and r,
                      what="/readyz to turn unready at the next heartbeat")
    assert answer.json()["status"] == "unready" and answer.json()["store"] == "writable"
    assert answer.json()["instance"].startswith("displaced: another connector took the name ")


def test_metrics_parse_and_match_what_the_simulator_logged(running, simulator, tmp_path):
    base, config = running(simulator.url)
    scim = config.read_text().split("[scim]\nlisten = \"")[1].split('"')[0]
    assert httpx.get(f"http://{scim}/scim/v2/Users").status_code == 401  # no client token: counted as a 401
    ingest(tmp_path, config)
    wait_for(
        lambda: (
            len(simulator.extensions()) == 2 and '"dead": 1' in cli("status", "--config", str(config), "--json").stdout
        ),
        what="two pushed users and one dead letter",
    )

    def scrape() -> dict[str, Any]:
        return {f.name: f for f in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)}

    def counted(families: dict[str, Any]) -> dict[tuple[str, str], float]:
        return {(s.labels["operation"], s.labels["status"]): s.value
                for s in families["connector_soap_calls"].samples if s.name == "connector_soap_calls_total"}

    def logged() -> dict[tuple[str, str], int]:
        by_status: dict[tuple[str, str], int] = {}
        for call in simulator.calls():
            by_status[call["operation"], call["status"]] = by_status.get((call["operation"], call["status"]), 0) + 1
        return by_status

    def agreeing() -> dict[str, Any] | None:
        scraped = scrape()
        return scraped if counted(scraped) == logged() else None

    # Every SOAP call is counted, the connector's own health probes (listUsers) too; one may fall between the
    # two reads, so they are read again until they agree.
    families = wait_for(agreeing, what="the metrics to count every call the simulator logged")
    assert ("listUsers", "OK") in counted(families)  # the probes at least

    def sample(family: str, **labels: str) -> float:
        return sum(s.value for s in families[family].samples
                   if not s.name.endswith("_created") and all(s.labels.get(k) == v for k, v in labels.items()))

    assert sample("connector_queue_depth", state="done") == 2
    assert sample("connector_pending_events") == 1  # the dead letter; done is not pending work
    assert sample("connector_pending_events", state="dead") == 1
    assert "done" not in {s.labels["state"] for s in families["connector_pending_events"].samples}
    assert sample("connector_dead_letters", cause="unresolved_user") == 1
    assert sample("connector_events_accepted", source="hr", kind="upsert") == 3
    assert families["connector_soap_call_duration_seconds"].type == "histogram"
    [build] = families["connector_build_info"].samples
    assert build.value == 1 and build.labels["version"] == VERSION
    assert sample("connector_scim_requests", method="GET", status="401", client="-") == 1


def readyz(base: str) -> dict[str, Any]:
    answer = httpx.get(f"{base}/readyz", timeout=20)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_readyz_probes_verba_with_a_real_call_cached_and_http_503_on_every_call_is_unreachable(running, simulator):
    base, config = running(simulator.url)
    ready = wait_for(lambda: (body := readyz(base))["status"] == "ready" and body, what="readyz to say ready")
    assert ready["target"] == "reachable" and ready["store"] == "writable"
    assert ready["sources"]["scim"].startswith("ok: listening on http://127.0.0.1:")
    assert ready["sources"]["scim"].endswith("no clients configured (every request gets 401)")

    probes = len(simulator.calls("listUsers"))
    assert probes >= 1  # the probe is an authenticated listUsers, not GET ?wsdl
    for _ in range(20):  # a load balancer asking every moment: the probe is reused for a few seconds
        readyz(base)
    assert len(simulator.calls("listUsers")) - probes <= 1

    simulator.fault(http_status=503)  # every SOAP call; the WSDL is still served, as a proxy in front would
    assert httpx.get(simulator.url, params={"wsdl": ""}).status_code == 200
    degraded = wait_for(lambda: (body := readyz(base))["target"] != "reachable" and body, timeout=30,
                        what="readyz to see the 503s")
    assert degraded["status"] == "degraded"
    assert degraded["target"].startswith("unreachable: http_5xx: Verba answered HTTP 503")

    shown = cli("status", "--config", str(config))  # from the probe the running connector recorded
    assert shown.returncode == 0, shown.stderr
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("target:")]
    assert line.startswith(f"target: {simulator.url} unreachable: http_5xx: Verba answered HTTP 503")
    assert " ago, at " in line and "by instance " in line and "not running" not in line
    [recorded] = json.loads(cli("status", "--config", str(config), "--json").stdout)["target"]["probes"]
    assert recorded["cause"] == "http_5xx" and recorded["url"] == simulator.url and recorded["age_seconds"] < 30

    simulator.clear_faults()
    wait_for(lambda: readyz(base)["status"] == "ready", timeout=30, what="readyz to be ready again")
