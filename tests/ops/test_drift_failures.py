"""A scheduled drift check that fails (Verba failing as a whole mid-run, a store error) shows in `connector status`,
`status --check` and the metrics, when and why, until a check is recorded after it: it was only logged, and all three
kept showing the last good check as if checks were fine (connector/ops/drift.py DriftSchedule)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from connector.config import DriftConfig, load_config
from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.ops.drift import DriftCheck, DriftSchedule
from connector.ops.metrics import register_store
from connector.store import Instance, StoreError
from tests.ops.helpers import run
from tests.plugins.simulator import Simulator, drain, user

ME = Instance("a", "run-a", "vm1", 101)


@pytest.fixture
def schedule(deliverer: Deliverer, config_path: Path) -> DriftSchedule:
    """Five users pushed, an instance registered (so that `status --check` has nothing else to say), and the
    scheduled check on them."""
    deliverer.store.enqueue([user(f"u-{i}", "alice@example.com", phones=(f"+1415555020{i}",)) for i in range(5)])
    drain(deliverer)
    deliverer.store.register_instance(ME, 15, lambda previous: True)
    check = DriftCheck(deliverer.store, deliverer.client, load_mapping(load_config(config_path).mapping_file), 1)
    return DriftSchedule(check, DriftConfig())


def checked(deliverer: Deliverer, config: Path) -> list[str]:
    deliverer.store.heartbeat(ME, 15)
    return json.loads(run(config, "status", "--check", "--json").stdout)["problems"]


def failing(deliverer: Deliverer) -> str:
    registry = CollectorRegistry()
    register_store(deliverer.store, registry)
    [line] = [x for x in generate_latest(registry).decode().splitlines()
              if x.startswith("connector_drift_check_failing ")]
    return line


def drift_lines(config: Path) -> list[str]:
    return [x for x in run(config, "status").stdout.splitlines() if x.startswith("drift: ")]


def test_a_scheduled_check_verba_stopped_shows_failed_until_a_check_is_recorded_after_it(
        deliverer: Deliverer, simulator: Simulator, config_path: Path, schedule: DriftSchedule) -> None:
    assert schedule.run_once() is not None
    assert checked(deliverer, config_path) == [] and failing(deliverer) == "connector_drift_check_failing 0.0"
    [good] = drift_lines(config_path)

    simulator.fault(operation="listUsers", http_status=500)  # Verba fails as a whole: the check stops
    assert schedule.run_once() is None
    [problem] = checked(deliverer, config_path)
    assert problem.startswith("the scheduled drift check failed at "), problem
    assert ("and no check has been recorded since: drift check stopped after 5 of 5 users: Verba failed as a whole "
            "for the last 5 users in a row (the last: Verba answered HTTP 500") in problem
    assert problem.endswith("see `connector status`, and once what failed is fixed run `connector drift` (or wait "
                            "for the next scheduled check)")
    assert run(config_path, "status", "--check").exit_code == 3
    lines = drift_lines(config_path)
    assert lines[0] == good  # the last check recorded, as it was
    assert lines[1].startswith("drift: FAILED: the scheduled drift check failed at ") and "Verba answered HTTP 500" in \
        lines[1]
    assert json.loads(run(config_path, "status", "--json").stdout)["drift_failure"]["error"].startswith(
        "drift check stopped after 5 of 5 users")
    assert failing(deliverer) == "connector_drift_check_failing 1.0"

    simulator.clear_faults()  # Verba is back: the next check is recorded, and the failure is over
    assert schedule.run_once() is not None
    assert checked(deliverer, config_path) == [] and failing(deliverer) == "connector_drift_check_failing 0.0"
    assert len(drift_lines(config_path)) == 1


def test_a_scheduled_check_the_store_failed_says_so(
        deliverer: Deliverer, config_path: Path, schedule: DriftSchedule, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(keys: object) -> None:
        raise StoreError("database is locked")

    monkeypatch.setattr(deliverer.store, "stored_users", fails)
    assert schedule.run_once() is None
    monkeypatch.undo()
    [problem] = checked(deliverer, config_path)
    assert "and no check has been recorded since: database is locked: see `connector status`" in problem, problem


def test_a_scheduled_check_that_checks_nobody_shows_failed_with_why_until_a_check_is_recorded_after_it(
        deliverer: Deliverer, simulator: Simulator, config_path: Path, schedule: DriftSchedule) -> None:
    """Verba answers every listUsers ERROR_GENERAL: each user "not checked", no exception. Such a check was neither
    recorded nor shown as failed: status kept showing the older check as fine, the metric stayed 0, `status --check`
    passed, and a nightly check could check nobody for days unseen."""
    assert schedule.run_once() is not None
    [good] = drift_lines(config_path)

    simulator.fault(operation="listUsers", status="ERROR_GENERAL", message="index rebuilding")
    report = schedule.run_once()
    assert report is not None and report.nothing_checked and report.total == 5
    [problem] = checked(deliverer, config_path)
    assert problem.startswith("the scheduled drift check failed at "), problem
    assert ("and no check has been recorded since: no user could be checked: 5 users not checked: Verba failed to "
            "answer about it: check it again (`connector drift --user USER`) (the first: test/u-") in problem
    assert "listUsers answered ERROR_GENERAL: index rebuilding" in problem
    assert run(config_path, "status", "--check").exit_code == 3
    lines = drift_lines(config_path)
    assert lines[0] == good  # the last check that checked someone, as it was
    assert lines[1].startswith("drift: FAILED: the scheduled drift check failed at ") and \
        "no user could be checked: 5 users not checked: " in lines[1]
    assert failing(deliverer) == "connector_drift_check_failing 1.0"

    simulator.clear_faults()
    assert schedule.run_once() is not None
    assert checked(deliverer, config_path) == [] and failing(deliverer) == "connector_drift_check_failing 0.0"
    assert len(drift_lines(config_path)) == 1


def test_a_scheduled_check_that_checks_nobody_for_a_backlog_is_no_failure(
        deliverer: Deliverer, config_path: Path, schedule: DriftSchedule) -> None:
    """Every user waits for a push (a first sync at night, say): nobody could be checked, but nothing failed. Shown as a
    failure, `status --check` would fail until the next night's check, long after the backlog was pushed."""
    assert schedule.run_once() is not None
    deliverer.store.enqueue([user(f"u-{i}", "alice@example.com", phones=(f"+1415555030{i}",)) for i in range(5)])
    report = schedule.run_once()
    assert report is not None and report.nothing_checked and report.total == 5
    assert deliverer.store.last_drift_failure() is None
    assert failing(deliverer) == "connector_drift_check_failing 0.0"
    assert not any("drift" in problem for problem in checked(deliverer, config_path))
