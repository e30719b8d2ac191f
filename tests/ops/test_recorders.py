"""[target] apply_configuration (issue 16, item 6): after a batch of writes, applyExtensionConfiguration once;
each recording server's answer in the store, `connector status` and the metrics; failures tried again."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from connector.delivery import recorders as recorders_module
from connector.delivery.recorders import RecorderApply
from connector.ops.metrics import register_store
from connector.runtime import Connector
from connector.store import Instance
from tests.ops.helpers import run, wait_for
from tests.plugins.simulator import drain, user

APPLY = "applyExtensionConfiguration"


@pytest.fixture
def applier(deliverer, monkeypatch):
    """Delivery with a RecorderApply that ends a batch after 1 s without writes and retries after 0.5 s."""
    monkeypatch.setattr(recorders_module, "QUIET_SECONDS", 1.0)  # far longer than a push, even on a busy machine
    monkeypatch.setattr(recorders_module, "RETRY_SECONDS", 0.5)
    applier = RecorderApply(deliverer.client, deliverer.store, "conn-a")
    deliverer.on_written = applier.written
    applier.start()
    yield applier
    applier.stop()


def applies(simulator) -> list[str]:
    return [c["status"] for c in simulator.calls(APPLY)]


def test_a_batch_of_pushes_is_applied_once_after_it_ends(deliverer, simulator, applier):
    deliverer.store.enqueue([user(f"u-{i}", phones=(f"+1415555020{i}",)) for i in range(3)])
    drain(deliverer)
    [recorder] = wait_for(lambda: deliverer.store.recorders(), what="the stored answer of applyExtensionConfiguration")
    time.sleep(1.5)
    assert applies(simulator) == ["OK"]
    assert (recorder.location, recorder.status, recorder.message, recorder.instance) == (
        "recorder-1", "OK", None, "conn-a")
    assert all(r["in_step"] for r in simulator.http.get("/_sim/state").json()["recorders"])

    deliverer.store.enqueue([user("u-0", phones=("+14155550200",), displayName="Renamed")])  # nothing to write
    drain(deliverer)
    time.sleep(1.5)
    assert applies(simulator) == ["OK"]


def test_a_recorder_that_does_not_take_the_table_shows_and_is_tried_again(deliverer, simulator, applier,
                                                                           config_path):
    simulator.http.put("/_sim/recorders/rec-b", json={"status": "ERROR_GENERAL", "message": "disk full"})
    deliverer.store.enqueue([user()])
    drain(deliverer)
    wait_for(lambda: len(applies(simulator)) >= 2, what="a second applyExtensionConfiguration")  # the retry
    shown = run(config_path, "status")
    assert "recorder rec-b: ERROR_GENERAL: disk full (" in shown.output, shown.output
    assert "recorder recorder-1: took the extension table (" in shown.output
    checked = run(config_path, "status", "--check")
    assert checked.exit_code == 3 and "recording server(s) did not take the extension table" in checked.output
    assert "rec-b (ERROR_GENERAL: disk full)" in checked.output
    registry = CollectorRegistry()
    register_store(deliverer.store, registry)
    assert registry.get_sample_value("connector_recorder_in_step", {"recorder": "rec-b"}) == 0
    assert registry.get_sample_value("connector_recorder_in_step", {"recorder": "recorder-1"}) == 1

    simulator.http.put("/_sim/recorders/rec-b", json={"status": "OK"}).raise_for_status()
    wait_for(lambda: {r.location: r.status for r in deliverer.store.recorders()}["rec-b"] == "OK",
             what="rec-b taking the table")
    calls = len(applies(simulator))
    time.sleep(1.5)
    assert len(applies(simulator)) == calls  # all in step: no more calls
    deliverer.store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)  # it runs
    assert run(config_path, "status", "--check").exit_code == 0


def test_a_failed_call_is_tried_again_and_a_stop_applies_what_is_left(deliverer, simulator, applier):
    simulator.fault(operation=APPLY, http_status=503, times=1)
    deliverer.store.enqueue([user()])
    drain(deliverer)
    wait_for(lambda: "OK" in applies(simulator), what="the retried call")
    assert len(applies(simulator)) == 2 and applies(simulator)[1] == "OK"
    # the simulator records the call before the connector has stored its answer
    stored = wait_for(lambda: deliverer.store.recorders(), what="the stored answer")
    assert [r.status for r in stored] == ["OK"]

    recorders_module.QUIET_SECONDS = 60.0  # restored by monkeypatch: the batch would wait a minute
    deliverer.store.enqueue([user(phones=("+14155550999",))])
    drain(deliverer)
    before = len(applies(simulator))
    applier.stop()
    assert len(applies(simulator)) == before + 1


def test_connector_run_applies_when_the_config_says_so(make_config, simulator):
    from tests.plugins.simulator import free_port

    config = make_config(target={"apply_configuration": True}, admin={"listen": f"127.0.0.1:{free_port()}"},
                         scim={"listen": f"127.0.0.1:{free_port()}"})
    connector = Connector(config)
    connector.start()
    try:
        connector.store.enqueue([user()])
        # 90 s: a first apply that a dropped keep-alive connection fails (seen on a loaded machine) is retried at 60 s
        found = wait_for(lambda: connector.store.recorders(), timeout=90, what="the recorders' answers")
    finally:
        connector.stop()
    assert [(r.location, r.status, r.instance) for r in found] == [("recorder-1", "OK", config.instance.name)]
    assert applies(simulator) == ["OK"]
    # its store, closed, is no longer read by /metrics (of this process's registry)
    assert REGISTRY.get_sample_value("connector_queue_depth", {"state": "done"}) is None


def test_without_the_setting_nothing_is_applied(make_config, simulator):
    from tests.plugins.simulator import free_port

    config = make_config(admin={"listen": f"127.0.0.1:{free_port()}"}, scim={"listen": f"127.0.0.1:{free_port()}"})
    connector = Connector(config)
    connector.start()
    try:
        connector.store.enqueue([user()])
        wait_for(lambda: simulator.calls("createExtension"), what="the push")
    finally:
        connector.stop()
    assert connector.recorders is None and applies(simulator) == []


def test_retries_wait_twice_as_long_each_time_and_a_refusal_waits_for_the_next_write(deliverer, simulator, caplog):
    now = [1000.0]
    applier = RecorderApply(deliverer.client, deliverer.store, "conn-a", clock=lambda: now[0])
    simulator.http.put("/_sim/recorders/rec-b", json={"status": "ERROR_GENERAL", "message": "disk full"})
    waits = []
    for _ in range(4):
        applier.apply()
        waits.append(applier.due() - now[0])
    assert waits == [60.0, 120.0, 240.0, 480.0]
    simulator.http.put("/_sim/recorders/rec-b", json={"status": "OK"}).raise_for_status()
    assert [s.code for s in applier.apply()] == ["OK"] and applier.due() is None
    assert applier.apply() == []  # every server has the table already: said, since a misread answer looks the same
    assert "named no recording server" in caplog.text

    applier.written()
    simulator.fault(operation=APPLY, status="ERROR_ILLEGAL_ARGUMENT", message="not allowed", times=1)
    assert applier.apply() is None and applier.due() is None  # not retryable: waits for the next write
    assert "not tried again before the next write" in caplog.text
