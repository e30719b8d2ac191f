"""What a compliance admin new to the connector sees from `events show`, `list` and `replay` (review): a push that
sent nothing, a done user waiting in an extension conflict, how Verba's "no such extension" answer was read, usage
errors, and a replay while the running connector maps with a mapping file changed since it started."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from connector.config import DEFAULT_MAPPING
from connector.ops.report import attempt_lines
from connector.records import ExtensionRecord
from connector.store import Attempt, EventState, Instance
from tests.ops.helpers import cli, write_config
from tests.plugins.simulator import drain, user

A = "+14155550100"


def show(config_path: Path, event_id: int) -> list[str]:
    result = cli("events", "show", "--config", str(config_path), str(event_id))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def attempts_of(shown: list[str]) -> list[str]:
    return [line.strip() for line in shown if line.startswith("  attempt ")]


def test_show_says_when_a_done_push_sent_nothing(deliverer, config_path):
    """A new displayName leaves alice's records as Verba last confirmed them: nothing is sent, and `show` says so
    (an extension deleted in Verba by hand would go unseen: drift checks Verba itself)."""
    deliverer.store.enqueue([user("u-alice", phones=(A,))])
    drain(deliverer)
    [second] = deliverer.store.enqueue([user("u-alice", phones=(A,), displayName="Alice A.")])
    drain(deliverer)
    first_attempt = attempts_of(show(config_path, second - 1))
    assert first_attempt[0].endswith(": done"), first_attempt
    [line] = attempts_of(show(config_path, second))
    assert line.startswith("attempt 1 at ") and line.endswith(
        ": done, nothing sent: every record is as Verba last confirmed it, so Verba was not asked (`connector drift "
        "--user test/u-alice` checks what Verba holds; add --repair --reason R to push the user again)"), line


def test_list_flags_done_events_whose_user_waits_in_an_extension_conflict(deliverer, config_path):
    deliverer.client.create_extension(ExtensionRecord(A, 4, "FULL", True, False, False, False, eid="0000"))  # bob's
    deliverer.store.enqueue([user("u-alice", phones=(A,))])
    drain(deliverer)
    deliverer.store.enqueue([user("u-alice", phones=(A,), displayName="Alice A.")])
    deliverer.store.enqueue([user("u-svc", "svc@example.com", phones=())])  # a service account: no extension
    drain(deliverer)

    listed = cli("events", "list", "--config", str(config_path)).stdout.splitlines()
    rows = [line for line in listed if "  done  " in line]
    assert len(rows) == 3, listed
    alices = [line for line in rows if "test/u-alice" in line]
    assert len(alices) == 2 and all(line.endswith(f"  WAITS in extension conflict: {A}") for line in alices), rows
    [service] = [line for line in rows if "test/u-svc" in line]
    assert "WAITS" not in service, service
    assert listed[-1].startswith("  WAITS: the push was done, but the user is not recorded on that extension"), listed
    assert "`connector events show ID` says why and what resolves it" in listed[-1]

    by_user = cli("events", "list", "--config", str(config_path), "--user", "alice@example.com").stdout
    assert by_user.count(f"WAITS in extension conflict: {A}") == 2, by_user
    data = json.loads(cli("events", "list", "--config", str(config_path), "--json").stdout)
    assert {e["change"]["external_id"]: e["waits_in_conflict"] for e in data["events"]} == {
        "u-alice": [A], "u-svc": []}
    [alice_event, *_] = [e["id"] for e in data["events"] if e["change"]["external_id"] == "u-alice"]
    assert show(config_path, alice_event)[0].endswith(f"  WAITS in extension conflict: {A}")


def test_show_says_an_error_general_answer_was_taken_as_absent(deliverer, simulator, config_path):
    """Verba answers a missing extension ERROR_GENERAL (undocumented, its message says not found): the leaver's
    push takes it as absent and ends done; `show` says so, with Verba's message as the attempt recorded it."""
    deliverer.store.enqueue([user("u-alice", phones=(A,))])
    drain(deliverer)
    simulator.delete_extension(A)  # by hand, in Verba
    simulator.http.post("/_sim/behaviour", json={"missing_extension": "error_general"}).raise_for_status()
    [leaver] = deliverer.store.enqueue([user("u-alice", phones=(A,), kind="deactivate")])
    drain(deliverer)
    shown = show(config_path, leaver)
    assert attempts_of(shown)[0].endswith(": done"), shown
    [answer] = [line for line in shown if line.startswith("    getExtension -> ERROR_GENERAL: ")]
    assert A in answer and answer.endswith(" (taken as absent: the message says there is no such extension)"), shown


def test_an_unclear_error_general_and_a_recorded_message_are_shown_as_read() -> None:
    def call(operation: str, status: str, **more: str) -> dict[str, str]:
        return {"operation": operation, "status": status, "envelope": "<soap-env:Envelope .../>", **more}

    unclear = Attempt(time.time(), (1,), "done", None, None, (
        call("createExtension", "ERROR_ALREADY_EXISTS"), call("getExtension", "ERROR_GENERAL"),
        call("listUsers", "OK"), call("updateExtension", "OK")))
    lines = attempt_lines([unclear])
    assert "    getExtension -> ERROR_GENERAL (unclear: the listUsers below asked Verba who holds the extension)" in (
        lines)
    told = Attempt(time.time(), (1,), "done", None, None, (
        call("getExtension", "ERROR_GENERAL", message="Extension +14155550100 not found"),))
    assert ("    getExtension -> ERROR_GENERAL: Extension +14155550100 not found (taken as absent: the message says "
            "there is no such extension)") in attempt_lines([told])
    refused = Attempt(time.time(), (1,), "dead", "error_illegal_argument", "getExtension answered ...", (
        call("getExtension", "ERROR_ILLEGAL_ARGUMENT"),))
    assert "    getExtension -> ERROR_ILLEGAL_ARGUMENT" in attempt_lines([refused])  # not absence: it ended the push


def test_show_marks_an_undocumented_not_found_code_taken_as_absent_as_the_push_read_it(deliverer, simulator,
                                                                                       config_path):
    """Verba answers a missing extension with a code the vendor does not document (ERROR_NOT_FOUND): the push takes
    it as absent (connector.verba.status.says_extension_absent), and `show` says so from the same rule, not from a
    list of its own that knows only ERROR_GENERAL and ERROR_ILLEGAL_ARGUMENT."""
    deliverer.store.enqueue([user("u-alice", phones=(A,))])
    drain(deliverer)
    simulator.delete_extension(A)  # by hand, in Verba
    simulator.http.post("/_sim/behaviour", json={"missing_extension": {
        "status": "ERROR_NOT_FOUND", "message": "Extension {eid}:{extension} not found"}}).raise_for_status()
    [leaver] = deliverer.store.enqueue([user("u-alice", phones=(A,), kind="deactivate")])
    drain(deliverer)
    shown = show(config_path, leaver)
    assert attempts_of(shown)[0].endswith(": done"), shown
    answers = [line for line in shown if " -> ERROR_NOT_FOUND: " in line]
    assert answers and all(line.endswith(" (taken as absent: the message says there is no such extension)")
                           for line in answers), shown


def test_show_reads_every_answer_code_with_the_push_s_own_rule() -> None:
    def call(operation: str, status: str, **more: str) -> dict[str, str]:
        return {"operation": operation, "status": status, "envelope": "<soap-env:Envelope .../>", **more}

    named = Attempt(time.time(), (1,), "done", None, None, (call("updateExtension", "ERROR_EXTENSION_NOT_FOUND"),
                                                            call("createExtension", "OK")))
    assert ("    updateExtension -> ERROR_EXTENSION_NOT_FOUND (taken as absent: the status code says there is no such "
            "extension)") in attempt_lines([named])
    renewed = Attempt(time.time(), (1,), "done", None, None, (
        call("getExtension", "ERROR_UNAUTHORIZED", message="token expired"), call("requestToken", "OK"),
        call("getExtension", "OK")))
    assert "    getExtension -> ERROR_UNAUTHORIZED: token expired" in attempt_lines([renewed])  # not absence
    other = Attempt(time.time(), (1,), "done", None, None, (
        call("getExtension", "ERROR_GENERAL", message="Extension lookup failed, linked user record not found"),
        call("listUsers", "OK")))
    assert ("    getExtension -> ERROR_GENERAL: Extension lookup failed, linked user record not found (unclear: the "
            "listUsers below asked Verba who holds the extension)") in attempt_lines([other])


def test_list_of_discarded_events_shows_why_they_were_discarded(deliverer, config_path):
    [dead] = deliverer.store.enqueue([user("u-alice", phones=(A,))])
    claim = deliverer.store.claim("w/1", time.time(), 60)
    deliverer.store.dead_letter(claim, "error_illegal_argument", "createExtension answered ERROR_ILLEGAL_ARGUMENT")
    result = cli("events", "discard", str(dead), "--reason", "CHG-12: a test user", "--config", str(config_path))
    assert result.returncode == 0, result.stderr
    listed = cli("events", "list", "--state", "discarded", "--config", str(config_path)).stdout.splitlines()
    [line] = [line for line in listed if "test/u-alice" in line]
    assert line.endswith("  discarded: CHG-12: a test user (its last failure: error_illegal_argument)"), line


def test_naming_no_events_or_two_ways_is_a_usage_error(deliverer, config_path):
    [held] = deliverer.store.enqueue([user("u-alice", phones=(A,))], state=EventState.HELD)
    for args, said in [
        (("replay",), "name the events: give event ids, --cause C or --state S"),
        (("replay", "1", "--state", "dead"), "give event ids, or --state, not both"),
        (("discard", "--reason", "x"), "name the events: give the ids of dead or held events, --cause C and/or"),
        (("approve", "--reason", "x"), "name the events: give the ids of held events, --source S, --cause C or --all"),
        (("approve", str(held), "--all", "--reason", "x"), "give event ids, or --all, not both"),
        (("approve", "--all", "--reason", " "), "Invalid value for '--reason': say why, for the audit (it is blank)"),
        (("discard", str(held), "--reason", ""), "Invalid value for '--reason': say why, for the audit (it is blank)"),
    ]:
        result = cli("events", *args, "--config", str(config_path))
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("Usage: ") and f" events {args[0]} [OPTIONS]" in result.stderr, (
            args, result.stderr)
        assert said in result.stderr and "nothing was changed" in result.stderr, (args, result.stderr)
    assert deliverer.store.get_event(held).state is EventState.HELD
    assert deliverer.store.list_audit() == []


def test_a_replay_warns_when_the_running_connector_maps_with_an_older_mapping_file(deliverer, simulator, tmp_path):
    """An operator sets on_conflict = "take_over" as the conflict advises, and replays before restarting: the replay
    and its dry run warn (stderr) that the running instance still maps with the file as it was."""
    mapping = tmp_path / "mapping.toml"
    shutil.copyfile(DEFAULT_MAPPING, mapping)
    config_path = write_config(tmp_path, simulator.url, extra=f'[mapping]\nfile = "{mapping}"\n', name="m.toml")
    deliverer.client.create_extension(ExtensionRecord(A, 4, "FULL", True, False, False, False, eid="0000"))  # bob's
    [event] = deliverer.store.enqueue([user("u-alice", phones=(A,))])
    drain(deliverer)
    deliverer.store.register_instance(Instance("conn-a", "run-a", "vm1", 101), 15.0, lambda previous: True)
    replay = ("events", "replay", str(event), "--config", str(config_path))

    assert "WARNING" not in cli(*replay, "--dry-run").stderr  # the instance started after the mapping was written
    later = time.time() + 60
    os.utime(mapping, (later, later))  # the operator edits the mapping
    dry = cli(*replay, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("dry run: 1 event(s) of 1 user(s) would be replayed"), dry
    [warning] = dry.stderr.splitlines()
    assert warning.startswith("WARNING: instance conn-a started at "), warning
    assert f"with another mapping than {mapping} holds now" in warning
    assert warning.endswith(
        "it still maps users with the file as it was; restart every instance to use it. The running connector "
        "delivers a replay, so it would map it with the file as it was (a dry run maps with the file as it is now): "
        "restart it first (`systemctl restart connector@NAME`), then replay")
    real = cli(*replay, "--reason", "take_over set")
    assert real.returncode == 0 and real.stdout == "replaying 1 event(s)\n", real
    assert real.stderr == dry.stderr
    drain(deliverer)  # the running connector, with the mapping as it was: alice still waits
    waited = cli(*replay, "--reason", "again", "--wait", "0.1")  # nothing delivers now: it ends still pending
    assert waited.returncode == 3, waited
    assert f"still in conflict: {A} of test/u-alice (alice@example.com): " in waited.stdout, waited.stdout
    assert waited.stdout.splitlines()[-1] == (
        "a running instance still maps with the mapping file as it was when it started (see the WARNING above): if you "
        "changed the mapping to resolve these, restart every instance, then replay again"), waited.stdout
