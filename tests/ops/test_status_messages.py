"""`connector status` prints a held group's message whole (it says how to review, approve or discard them), cuts a
long dead letter's only at a sentence end, saying where to read it whole, and groups the events retrying after a
failure by cause as it groups dead letters."""

from __future__ import annotations

import json
import time
from pathlib import Path

from connector.delivery.worker import Deliverer
from connector.ops.report import retry_lines
from connector.store import CauseGroup, Instance, Store
from tests.ops.helpers import run
from tests.plugins.simulator import Simulator, user

HELD = ("source 'test' would stop recording 1200 of about 4000 recorded users within 3600 s (more than "
        "guard_max_count = 20 and guard_max_share = 0.2); check them with `connector events list --state held "
        "--source test`, then release them with `connector events approve --source test --reason \"...\"` or "
        "discard them")
FIRST = "createExtension answered ERROR_ILLEGAL_ARGUMENT: " + "x" * 150 + "."
DEAD = (f"{FIRST} The record names extension +14155550100 with recordingMode 'sometimes', which this Verba does not "
        "know; fix the mapping's recording rule, then replay the events.")


def test_status_prints_a_held_message_whole_and_cuts_a_dead_letter_at_a_sentence_end(config: Path,
                                                                                     store: Store) -> None:
    store.register_instance(Instance("vm", "run-vm", "vm1", 101), 15, lambda previous: True)
    store.enqueue([user("u-held"), user("u-dead", "dead@example.com", phones=("+14155550111",))])
    while (claim := store.claim("run-vm/1", time.time(), 60)) is not None:
        if claim.external_id == "u-held":
            store.hold(claim, "stop_recording_burst", HELD)
        else:
            store.dead_letter(claim, "error_illegal_argument", DEAD)
    assert len(HELD) > 300 and len(DEAD) > 300  # both longer than a sample was cut at

    shown = run(config, "status")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert f"     1  stop_recording_burst  source test: {HELD}" in lines, shown.output
    [dead] = [line for line in lines if "  error_illegal_argument: " in line]
    assert dead == (f"     1  error_illegal_argument: {FIRST} … (all of it: `connector events list --state dead "
                    "--cause error_illegal_argument`)"), dead


def test_status_shows_the_events_retrying_after_a_failure_grouped_by_cause(deliverer: Deliverer, simulator: Simulator,
                                                                         config_path: Path) -> None:
    """Verba answers (the target is reachable) but refuses the writes with ERROR_GENERAL: status says why pending
    grows, by cause with the newest message, not only pending=3 (the new event, not failed yet, is not counted)."""
    simulator.fault(operation="createExtension", status="ERROR_GENERAL", message="disk full on the recorder")
    deliverer.store.enqueue([user("u-alice"), user("u-bob", "bob@example.com", phones=("+14155550111",)),
                             user("u-carol", "carol@example.com", phones=("+14155550122",))])
    for _ in range(3):  # alice and bob: one attempt each, then they back off (max_attempts = 2: not yet dead);
        assert deliverer.deliver_one("w1")  # carol: a dead letter at once (no Verba user), not retried
    deliverer.store.enqueue([user("u-dave", "dave@example.com", phones=("+14155550133",))])  # new: no failure yet

    shown = run(config_path, "status")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    at = lines.index("retrying after a failure (pending or in flight; count, cause: the newest one's message):")
    sample = "createExtension answered ERROR_GENERAL: disk full on the recorder"
    assert lines[at + 1] == f"     2  error_general: {sample}", shown.output
    assert lines[at + 2] == ("  each is tried again with backoff, up to [delivery] max_attempts = 2, then "
                             "dead-lettered; list them with `connector events list --state pending --cause CAUSE`")
    as_json = json.loads(run(config_path, "status", "--json").output)
    assert as_json["retrying_by_cause"] == [{"cause": "error_general", "count": 2, "error": sample}]


def test_the_retrying_events_are_said_to_wait_while_the_breaker_is_open() -> None:
    """Under 'DOWN: circuit breaker open ... spends no attempts', the retrying section must not promise backoff."""
    groups = [CauseGroup("transport", "could not reach Verba", 2)]
    waiting = retry_lines(groups, 12, waiting=True)[-1]
    assert waiting.startswith("  while the circuit breaker on Verba is open none is tried and no attempt is spent; "
                              "then each is tried again, up to [delivery] max_attempts = 12, then dead-lettered"), \
        waiting
    assert retry_lines(groups, 12)[-1].startswith("  each is tried again with backoff, up to")
