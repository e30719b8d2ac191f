"""`connector status` and `status --check` follow the circuit breaker: each of its probes of Verba, failed or not, is
recorded as the instance's last probe of the target, so that once it closes they show the probe that closed it, not
a failed one taken during the outage (a false page) nor a good one taken before it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.config import load_config
from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.ops.health import TargetHealth
from connector.ops.report import when
from connector.runtime import open_client, open_configured_store
from connector.store import Instance
from tests.ops.helpers import run
from tests.plugins.simulator import Simulator, drain, user

PROBE_SECONDS = 0.05


@pytest.fixture
def deliverer(config_path: Path) -> Iterator[Deliverer]:
    """Delivery as instance "a" (registered, alive), its breaker probing every PROBE_SECONDS."""
    config = load_config(config_path)
    store, client = open_configured_store(config, create=True), open_client(config)
    store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)
    delivery = dataclasses.replace(config.delivery, probe_seconds=PROBE_SECONDS)
    yield Deliverer(store, client, load_mapping(config.mapping_file), delivery, instance="a")
    client.close()
    store.close()


def open_breaker(deliverer: Deliverer, simulator: Simulator) -> None:
    """Verba answers HTTP 503 to everything: two users fail, and the breaker opens."""
    simulator.fault(operation="*", http_status=503)
    deliverer.store.enqueue([user("u-alice", phones=("+14155550100",)),
                             user("u-bob", "bob@example.com", phones=("+14155550111",))])
    for _ in range(4):
        deliverer.deliver_one("w1")
        if deliverer.breaker.state.open:
            return
        time.sleep(PROBE_SECONDS)
    raise AssertionError("the breaker did not open")


def probe_once(deliverer: Deliverer) -> None:
    """Wait for the breaker's next probe and let this worker take it."""
    time.sleep(PROBE_SECONDS * 1.5)
    deliverer.deliver_one("w1")


def test_a_failed_probe_from_the_outage_does_not_page_once_the_breaker_closed(
        deliverer: Deliverer, simulator: Simulator, config_path: Path) -> None:
    open_breaker(deliverer, simulator)
    # The running connector's own probe (every 30 s) fails during the outage and is recorded.
    failed = TargetHealth(deliverer.client.probe, deliverer.store, "a", simulator.url).check()
    assert not failed.answered

    simulator.clear_faults()
    cleared = time.time()
    probe_once(deliverer)
    assert not deliverer.breaker.state.open, "the breaker's probe should have closed it"
    drain(deliverer)

    checked = run(config_path, "status", "--check")
    assert checked.exit_code == 0, checked.output
    [probe] = deliverer.store.target_probes()
    assert probe.answered and probe.instance == "a" and probe.probed_at >= cleared
    shown = run(config_path, "status").output
    assert f"target: {simulator.url} reachable (probed " in shown and "by instance a)" in shown


def test_status_shows_the_breakers_probes_not_one_from_before_the_outage(
        deliverer: Deliverer, simulator: Simulator, config_path: Path) -> None:
    before = TargetHealth(deliverer.client.probe, deliverer.store, "a", simulator.url).check()
    assert before.answered
    open_breaker(deliverer, simulator)

    probe_once(deliverer)
    assert deliverer.breaker.state.open
    [failed] = deliverer.store.target_probes()  # the breaker's failed probe, with what failed
    assert not failed.answered and failed.probed_at > before.probed_at
    assert failed.cause == "http_5xx" and deliverer.breaker.state.error == f"{failed.cause}: {failed.error}"

    simulator.clear_faults()
    cleared = time.time()
    probe_once(deliverer)
    assert not deliverer.breaker.state.open
    [closed] = deliverer.store.target_probes()
    assert closed.answered and closed.probed_at >= cleared
    shown = run(config_path, "status").output
    assert f"target: {simulator.url} reachable (probed " in shown and f", at {when(closed.probed_at)}, " in shown, shown
