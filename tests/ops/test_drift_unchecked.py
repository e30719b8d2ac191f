"""What `connector drift` says when it cannot check everyone (a backlog: users waiting for a push, Verba failing for
one user), how it counts the users it looked at (those whose every change was discarded apart), how it prints a
repair's event ids, and when its progress bar starts and that it ends full (connector/cli/drift.py,
connector/ops/drift.py); what `connector status` and the metrics then show of the last check."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from prometheus_client import CollectorRegistry, generate_latest

from connector.cli.drift import NOTHING_RECORDED, lines
from connector.ops.drift import IN_FLIGHT, PENDING, VERBA_FAILED, Drift, DriftReport
from connector.ops.metrics import register_store
from connector.store import EventState
from tests.ops.helpers import bob_dead_lettered, run
from tests.plugins.simulator import drain, user

ALICE = "+14155550100"
BOB = "+14155550111"


def pushed(deliverer, *changes) -> None:
    deliverer.store.enqueue(list(changes))
    drain(deliverer)


def metrics(store) -> str:
    registry = CollectorRegistry()
    register_store(store, registry)
    return generate_latest(registry).decode()


def drift_status(config: Path) -> str:
    [line] = [x for x in run(config, "status").stdout.splitlines() if x.startswith("drift: ")]
    return line


def alice_and_bob_with_bob_missing(deliverer, simulator, config_path) -> None:
    """alice and bob pushed, bob's extension deleted in Verba: a check of every user finds it, and is recorded."""
    pushed(deliverer, user(), user("u-bob", "bob@example.com", phones=(BOB,)))
    simulator.delete_extension(BOB)
    assert run(config_path, "drift").exit_code == 3
    assert deliverer.store.last_drift_run().counts["missing"] == 1


def test_a_check_during_a_backlog_checks_nobody_exits_3_and_keeps_the_last_check(deliverer, simulator, config_path):
    alice_and_bob_with_bob_missing(deliverer, simulator, config_path)
    before = deliverer.store.last_drift_run()
    # A backlog: a change of each user waits to be pushed, and one user's is being pushed now.
    deliverer.store.enqueue([user(title="new"), user("u-bob", "bob@example.com", phones=(BOB,), title="new")]
                            + [user(f"bulk-{i:02}", f"bulk{i}@example.com") for i in range(12)])
    assert deliverer.store.claim("another-instance/0", time.time(), 600.0) is not None

    done = run(config_path, "drift")
    assert done.exit_code == 3, done.output
    out = done.stdout.splitlines()
    assert out[0].startswith("drift: 14 users: 0 compared with Verba (0 extensions), 14 not checked, in ")
    assert out[0].endswith(" s: nothing checked: see why below") and "in step" not in done.stdout
    assert "under way" not in done.stdout
    # One line per reason with its count, the first 10 users, how many more, and where to see them all.
    assert "not checked (14 users; `--json` lists every one):" in out
    pending = out.index(f"  {PENDING} (13):")
    assert [x.startswith("    test/") for x in out[pending + 1:pending + 11]] == [True] * 10
    assert out[pending + 11] == "    ... and 3 more"
    assert f"  {IN_FLIGHT} (1):" in out and len(out) < 25
    assert out[-1] == NOTHING_RECORDED

    # What status, status --check and the metrics show is still the last check that checked someone.
    assert deliverer.store.last_drift_run() == before
    assert "DRIFT missing 1" in drift_status(config_path)
    assert run(config_path, "status", "--check").exit_code == 3
    assert 'connector_drift_found{kind="missing"} 1.0' in metrics(deliverer.store)

    data = json.loads(run(config_path, "drift", "--json").stdout)
    assert (data["users_total"], data["users"], data["recorded"]) == (14, 0, False)
    assert data["unchecked_by_reason"] == {PENDING: 13, IN_FLIGHT: 1}
    assert len(data["unchecked"]) == 14 and {u["reason"] for u in data["unchecked"]} == {PENDING, IN_FLIGHT}
    assert {u["user"] for u in data["unchecked"]} >= {"test/u-alice", "test/u-bob", "test/bulk-11"}


def test_a_check_that_leaves_some_users_unchecked_never_reads_in_step(deliverer, simulator, config_path):
    """Recorded (it compared alice), but neither its output nor `connector status` calls it in step."""
    pushed(deliverer, user(), user("u-bob", "bob@example.com", phones=(BOB,)))
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,), title="new")])

    done = run(config_path, "drift")
    assert done.exit_code == 0, done.output
    first, *rest = done.stdout.splitlines()
    assert first.startswith("drift: 2 users: 1 compared with Verba (1 extension), 1 not checked, in ")
    assert first.endswith(" s: no drift in the 1 user compared, but 1 was not checked: see why below")
    assert rest[-2:] == [f"  {PENDING} (1):", "    test/u-bob"]

    run_ = deliverer.store.last_drift_run()
    assert (run_.users, run_.unchecked) == (1, 1)
    line = drift_status(config_path)
    assert "in step" not in line
    assert line.endswith("1 extension of 1 user, no drift in those; 1 user not checked (`connector drift` says why)")
    assert "connector_drift_users_not_checked 1.0" in metrics(deliverer.store)


def test_the_summary_counts_every_user_and_says_which_had_no_extension_to_compare(deliverer, simulator, config_path):
    """carol has no number: nothing to compare, counted apart rather than left out of the figure."""
    pushed(deliverer, user(), user("u-carol", "carol@example.com", phones=()))
    done = run(config_path, "drift")
    assert done.exit_code == 0, done.output
    first = done.stdout.splitlines()[0]
    assert first.startswith("drift: 2 users: 1 compared with Verba (1 extension), 1 with no extension to compare, in ")
    assert first.endswith(" s: in step")
    data = json.loads(run(config_path, "drift", "--json").stdout)
    assert (data["users_total"], data["users"], data["users_with_no_extension"], data["extensions"]) == (2, 1, 1, 1)


def test_a_repair_prints_its_event_ids_short(deliverer, simulator, config_path):
    alice_and_bob_with_bob_missing(deliverer, simulator, config_path)
    simulator.delete_extension(ALICE)
    done = run(config_path, "drift", "--repair", "--reason", "restore")
    assert done.exit_code == 3, done.output
    ids = sorted(e.id for e in deliverer.store.list_events(state=EventState.PENDING))
    assert len(ids) == 2
    assert (f"repair: queued 2 users (events {ids[0]} to {ids[1]}); the running connector pushes them: follow them "
            "with `connector events list`") in done.stdout.splitlines()


def repair_line(ids: list[int]) -> str:
    report = DriftReport(started_at=0.0, finished_at=3.0, users=len(ids), extensions=len(ids),
                         drifts=[Drift("missing", "+1", "test/u", 3, "Verba has no such extension")],
                         repaired=len(ids))
    [line] = [x for x in lines(report, ids) if x.startswith("repair: ")]
    return line


def test_a_repair_of_thousands_of_users_prints_a_range_or_the_first_ids_not_every_one():
    assert repair_line(list(range(233006, 236007))).startswith("repair: queued 3001 users (events 233006 to 236006);")
    apart = repair_line(list(range(1, 6002, 2)))  # other writers' events in between
    assert apart.startswith("repair: queued 3001 users (events 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, ... (3001 in all; "
                            "`--json` lists every one));")
    assert repair_line([7]).startswith("repair: queued 1 user (event 7);")


def test_the_progress_bar_starts_once_verba_has_listed_its_users(deliverer, simulator, config_path, monkeypatch):
    """click's time estimate counts from the bar's start: opened before the listUsers of every user, a check of
    seconds showed hours."""
    pushed(deliverer, user(), user("u-bob", "bob@example.com", phones=(BOB,)))
    simulator.clear_calls()
    opened: list[dict[str, Any]] = []
    real = click.progressbar

    def progressbar(**options: Any):
        opened.append({"length": options["length"], "listed": len(simulator.calls("listUsers"))})
        return real(**options)

    monkeypatch.setattr(click, "progressbar", progressbar)
    assert run(config_path, "drift").exit_code == 0
    assert opened == [{"length": 2, "listed": 1}]



def test_the_progress_bar_ends_at_its_total(deliverer, simulator, config_path, monkeypatch):
    """It stayed at 0/2: the check was given the bar's step before the bar was opened."""
    pushed(deliverer, user(), user("u-bob", "bob@example.com", phones=(BOB,)))
    bars: list[Any] = []
    real = click.progressbar

    def progressbar(**options: Any):
        bars.append(real(**options))
        return bars[-1]

    monkeypatch.setattr(click, "progressbar", progressbar)
    assert run(config_path, "drift").exit_code == 0
    [bar] = bars
    assert (bar.pos, bar.length) == (2, 2)


def test_verba_failing_for_one_user_leaves_that_user_unchecked_and_checks_the_rest(deliverer, simulator, config_path):
    """A 503 on one getExtension ended the whole check: "Error: Verba answered HTTP 503", exit 1, nothing recorded."""
    pushed(deliverer, user(), user("u-bob", "bob@example.com", phones=(BOB,)))
    simulator.delete_extension(BOB)  # asked with getExtension: the list of every user no longer holds it
    simulator.fault(operation="getExtension", http_status=503, times=1)

    done = run(config_path, "drift")
    assert done.exit_code == 0, done.output
    out = done.stdout.splitlines()
    assert out[0].endswith(" s: no drift in the 1 user compared, but 1 was not checked: see why below"), out
    assert f"  {VERBA_FAILED} (1):" in out
    [bob] = [x for x in out if x.startswith("    test/u-bob: ")]
    assert bob.startswith("    test/u-bob: Verba answered HTTP 503")
    assert deliverer.store.last_drift_run().unchecked == 1
    assert "1 user not checked" in drift_status(config_path)  # not "in step"

    assert run(config_path, "drift").exit_code == 3  # Verba answers again: bob's extension is missing


def test_a_user_whose_every_change_was_discarded_is_counted_apart_so_a_clean_state_reads_in_step(
        deliverer, simulator, config_path):
    """bob left, his last change died and was discarded on purpose: every check said "1 users not checked"."""
    dead = bob_dead_lettered(deliverer, simulator, BOB)
    assert run(config_path, "events", "discard", str(dead.id), "--reason", "bob left").exit_code == 0

    done = run(config_path, "drift")
    assert done.exit_code == 0, done.output
    first = done.stdout.splitlines()[0]
    assert first.startswith("drift: 2 users: 1 compared with Verba (1 extension), 1 with every change discarded, in ")
    assert first.endswith(" s: in step") and "not checked" not in done.stdout
    assert deliverer.store.last_drift_run().unchecked == 0
    line = drift_status(config_path)
    assert "not checked" not in line and "in step" in line
    assert "connector_drift_users_not_checked 0.0" in metrics(deliverer.store)
    data = json.loads(run(config_path, "drift", "--json").stdout)
    assert (data["discarded"], data["unchecked"], data["users_with_no_extension"]) == (["test/u-bob"], [], 0)
