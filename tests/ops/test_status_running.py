"""What `connector status` and `status --check` say about the running connector: a failed probe is outweighed by a
push Verba answered after it (one blip must not page), and plain `status` flags a store no connector runs on and a
silent instance by the same rule `--check` fails for."""

from __future__ import annotations

import json
import time
from pathlib import Path

from connector.delivery.worker import Deliverer
from connector.store import Instance, TargetProbe
from tests.ops.helpers import run
from tests.plugins.simulator import Simulator, drain, user


def target_line(config: Path) -> str:
    shown = run(config, "status")
    assert shown.exit_code == 0, shown.output
    [line] = [line for line in shown.output.splitlines() if line.startswith("target: ")]
    return line


def test_a_push_verba_answered_after_a_failed_probe_outweighs_it(deliverer: Deliverer, simulator: Simulator,
                                                                  config_path: Path) -> None:
    store = deliverer.store
    store.register_instance(Instance("vm", "run-vm", "vm1", 101), 15, lambda previous: True)
    store.enqueue([user("u-bob", "bob@example.com", phones=("+14155550111",))])
    drain(deliverer)  # a push Verba answered before the probe: no evidence about what came after
    time.sleep(0.05)  # the probe's clock must be past that push's
    failed = TargetProbe("vm", simulator.url, time.time(), 0.01, "http_5xx", "Verba answered HTTP 503")
    store.note_target_probe(failed)
    blip = run(config_path, "status", "--check")
    assert blip.exit_code == 3 and "did not answer the last probe" in blip.output, blip.output
    assert " unreachable: http_5xx: Verba answered HTTP 503 (probed " in target_line(config_path)

    time.sleep(0.05)
    store.enqueue([user()])  # the fault is gone: alice is pushed, and Verba answers
    drain(deliverer)

    check = run(config_path, "status", "--check")
    assert check.exit_code == 0, check.output
    assert check.output.startswith("check ok: "), check.output
    line = target_line(config_path)
    assert f"target: {simulator.url} reachable (Verba answered a push " in line, line
    assert "after the last probe failed: http_5xx: Verba answered HTTP 503; probed " in line
    assert line.endswith("by instance vm)")


def test_plain_status_says_when_no_connector_runs_on_the_store(deliverer: Deliverer, config_path: Path) -> None:
    shown = run(config_path, "status")  # nothing registered: none runs (a clean stop leaves no record)
    assert shown.exit_code == 0, shown.output
    [line] = [line for line in shown.output.splitlines() if line.startswith("instances: ")]
    assert line.startswith("instances: NONE: no connector runs on the store sqlite:///"), line
    assert line.endswith("nothing delivers events or polls the directories; start it (`systemctl start "
                         "connector@NAME`, or `connector run --config <your config>`)")
    check = run(config_path, "status", "--check")
    assert f"CHECK FAILED: {line.removeprefix('instances: NONE: ')}" in check.output.splitlines()

    deliverer.store.register_instance(Instance("vm", "run-vm", "vm1", 101), 15, lambda previous: True)
    assert "instances: " not in run(config_path, "status").output


def test_plain_status_flags_a_silent_instance_as_check_does(deliverer: Deliverer, config_path: Path) -> None:
    store = deliverer.store
    store.register_instance(Instance("vm", "run-vm", "vm1", 101), 15, lambda previous: True)
    [heard] = [line for line in run(config_path, "status").output.splitlines() if line.startswith("instance vm:")]
    assert "SILENT" not in heard, heard
    assert [i["silent"] for i in json.loads(run(config_path, "status", "--json").output)["instances"]] == [False]

    with store._write() as conn:  # killed (kill -9) a minute ago: its heartbeats stopped, nothing counted it dead
        conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 60 WHERE name = 'vm'")
    [silent] = [line for line in run(config_path, "status").output.splitlines() if line.startswith("instance vm:")]
    assert silent.startswith("instance vm: vm1 pid 101, started "), silent
    as_json = json.loads(run(config_path, "status", "--json").output)
    assert [i["silent"] for i in as_json["instances"]] == [True] and as_json["nothing_runs"] is False
    assert ", heartbeat 1.0m ago: SILENT: it has not been heard from for 1.0m (more than 15s): is it running? Look " \
           "at pid 101 on vm1 (`systemctl status connector@vm`)" in silent, silent
    check = run(config_path, "status", "--check")
    assert check.exit_code == 3
    assert ("CHECK FAILED: connector instance vm (vm1, pid 101) has not been heard from for 1.0m (more than 15s): is "
            "it running? see `connector status`") in check.output.splitlines()
