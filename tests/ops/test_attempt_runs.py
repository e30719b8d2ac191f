"""During an outage of writes alone the circuit breaker's trial push is postponed at every probe, each recorded with
its SOAP requests: `events show` of that event shows the run as one entry (how many, from when to when, the cause
and the newest one's error, what the newest sent), not one entry per probe all night."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connector.delivery.worker import Deliverer
from connector.ops.report import attempt_lines, when
from connector.store import Attempt, AuditEntry, EventState
from tests.ops.helpers import run, write_config
from tests.plugins.simulator import Simulator, drain, user

A, B = "+14155550100", "+14155550111"


@pytest.fixture
def config_path(tmp_path: Path, simulator: Simulator) -> Path:
    """The on-call config, its breaker probing every 20 ms (the line follows [delivery]'s, so it is its)."""
    return write_config(tmp_path, simulator.url, extra="probe_seconds = 0.02\n")


def attempts_shown(output: str) -> list[str]:
    return output.split("\nattempts:\n")[1].split("\nmaps to now")[0].splitlines()


def test_the_trial_pushes_of_an_outage_of_writes_show_as_one_entry(
        deliverer: Deliverer, simulator: Simulator, config_path: Path) -> None:
    for operation in ("createExtension", "updateExtension"):
        simulator.fault(operation=operation, http_status=503)
    deliverer.store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
    for n in range(80):  # dozens of probe intervals, each probe answered, each trial push refused
        deliverer.deliver_one(f"w{n % 2}")
        time.sleep(0.03)
    assert deliverer.breaker.state.open
    runs = {e.id: [a for a in deliverer.store.attempts(e.id) if a.outcome == "postponed"]
            for e in deliverer.store.list_events()}
    event_id, postponed = max(runs.items(), key=lambda item: len(item[1]))
    assert len(postponed) >= 5, runs  # the night, shortened
    assert {a.cause for a in postponed} == {"http_5xx"}

    shown = run(config_path, "events", "show", str(event_id))
    assert shown.exit_code == 0, shown.output
    lines = attempts_shown(shown.stdout)
    [entry] = [n for n, line in enumerate(lines) if "postponed" in line]
    newest = postponed[-1]
    assert lines[entry] == (f"  {len(postponed)} times from {when(postponed[0].at)} to {when(newest.at)}: postponed, "
                            f"not counted as attempts (http_5xx; the newest: {newest.error}); the newest sent:")
    calls = lines[entry + 1:entry + 1 + 2 * len(newest.sent)]
    assert [line.split(" -> ")[0].strip() for line in calls[::2]] == [c["operation"] for c in newest.sent]
    assert [line.strip() for line in calls[1::2]] == [c["envelope"] for c in newest.sent]
    envelopes = [line for line in lines if line.startswith("      <")]
    counted = [a for a in deliverer.store.attempts(event_id) if a.outcome != "postponed"]
    assert len(envelopes) == len(newest.sent) + sum(len(a.sent) for a in counted), lines  # not one set per probe
    assert len([line for line in lines if line.startswith("  attempt ")]) == len(counted)  # each shown as before

    simulator.clear_faults()  # Verba takes writes again: the next trial is delivered and ends the run
    drain(deliverer)
    assert deliverer.store.get_event(event_id).state is EventState.DONE
    after = attempts_shown(run(config_path, "events", "show", str(event_id)).stdout)
    assert after[entry] == lines[entry]  # the run is as it was, then the push that went through
    assert [line for line in after if line.startswith("  attempt ")][-1].endswith(": done"), after


def attempt(at: float, outcome: str = "postponed", cause: str | None = "http_5xx", error: str = "HTTP 503",
            operation: str = "createExtension") -> Attempt:
    return Attempt(at, (7,), outcome, cause, error,
                   ({"operation": operation, "status": "HTTP_503", "envelope": f"<envelope of {at:g}>"},))


def test_a_run_ends_at_another_cause_a_counted_attempt_or_a_replay_and_one_postponed_push_shows_as_before() -> None:
    t = 1_800_000_000.0
    attempts = [attempt(t), attempt(t + 1, error="HTTP 502"), attempt(t + 2, "retry"), attempt(t + 3),
                attempt(t + 4, cause="rate_limited", error="HTTP 429"), attempt(t + 5), attempt(t + 6),
                attempt(t + 8)]
    replay = AuditEntry(1, t + 7, "oncall-jane", "replay", (7,), "fixed", {"requeued": 1})
    assert attempt_lines(attempts, [replay]) == [
        f"  2 times from {when(t)} to {when(t + 1)}: postponed, not counted as attempts (http_5xx; the newest: HTTP "
        "502); the newest sent:",
        "    createExtension -> HTTP_503", f"      <envelope of {t + 1:g}>",
        f"  attempt 1 at {when(t + 2)}: retry (http_5xx: HTTP 503)",
        "    createExtension -> HTTP_503", f"      <envelope of {t + 2:g}>",
        f"  at {when(t + 3)}: postponed, not counted as an attempt (http_5xx: HTTP 503)",
        "    createExtension -> HTTP_503", f"      <envelope of {t + 3:g}>",
        f"  at {when(t + 4)}: postponed, not counted as an attempt (rate_limited: HTTP 429)",
        "    createExtension -> HTTP_503", f"      <envelope of {t + 4:g}>",
        f"  2 times from {when(t + 5)} to {when(t + 6)}: postponed, not counted as attempts (http_5xx; the newest: "
        "HTTP 503); the newest sent:",
        "    createExtension -> HTTP_503", f"      <envelope of {t + 6:g}>",
        f"  replay by oncall-jane at {when(t + 7)}: fixed (a new retry budget: attempts count from 1)",
        f"  at {when(t + 8)}: postponed, not counted as an attempt (http_5xx: HTTP 503)",
        "    createExtension -> HTTP_503", f"      <envelope of {t + 8:g}>",
    ]
