"""From dead letters to a fix: list grouped by cause, dry-run, replay, discard, audit."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
import time

from connector.events import UserChange
from connector.ops.health import TargetHealth
from connector.ops.replay import requeue
from connector.store import EventState, Instance
from tests.ops.helpers import cli, unreachable_target, write_config
from tests.plugins.simulator import drain, free_port

A, B, C = "+14155550100", "+14155550111", "+14155550122"


def alice(phone: str, **kw):
    from tests.plugins.simulator import user

    return user("u-alice", "alice@example.com", phones=(phone,), **kw)


def bob(phone: str):
    from tests.plugins.simulator import user

    return user("u-bob", "bob@example.com", phones=(phone,))


def carol(phone: str):
    from tests.plugins.simulator import user

    return user("u-carol", "carol@example.com", phones=(phone,))


def fail_creates(simulator, times: int) -> None:
    simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT",
                    message="Unknown recording mode: SOMETIMES", times=times)


def make_dead_letters(deliverer, simulator) -> None:
    """Two illegal-argument dead letters (alice, bob) and one unresolved user (carol)."""
    fail_creates(simulator, 2)
    deliverer.store.enqueue([alice(A), bob(B), carol(C)])
    drain(deliverer)
    simulator.clear_faults()
    simulator.http.delete("/_sim/calls")


def dump(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_dead_letters_are_grouped_by_cause_and_replay_by_cause_delivers_exactly_those(
        deliverer, simulator, config_path):
    make_dead_letters(deliverer, simulator)
    listed = json.loads(cli("events", "list", "--config", str(config_path), "--json").stdout)
    groups = {(g["cause"], g["count"]) for g in listed["dead_letters_by_cause"]}
    assert groups == {("error_illegal_argument", 2), ("unresolved_user", 1)}
    text = cli("events", "list", "--config", str(config_path), "--state", "dead").stdout
    assert "2  error_illegal_argument" in text and "Unknown recording mode: SOMETIMES" in text

    replay = cli("events", "replay", "--config", str(config_path), "--cause", "error_illegal_argument",
                 "--reason", "recording mode fixed in Verba", "--operator", "oncall-jane")
    assert replay.returncode == 0, replay.stderr
    assert "replaying 2 event(s)" in replay.stdout
    drain(deliverer)
    creates = simulator.calls("createExtension")
    assert sorted(c["extension"] for c in creates) == [A, B] and all(c["status"] == "OK" for c in creates)
    states = {e.change.external_id: e.state for e in deliverer.store.list_events()}
    assert states == {"u-alice": EventState.DONE, "u-bob": EventState.DONE, "u-carol": EventState.DEAD}

    [entry] = json.loads(cli("audit", "--config", str(config_path), "--json").stdout)
    assert entry["actor"] == "oncall-jane" and entry["action"] == "replay"
    assert entry["reason"] == "recording mode fixed in Verba" and len(entry["event_ids"]) == 2

    # The replay gave a new retry budget: `show` numbers the attempts after it from 1, as `attempts=` counts them.
    alices = next(e for e in deliverer.store.list_events() if e.change.external_id == "u-alice")
    shown = cli("events", "show", "--config", str(config_path), str(alices.id)).stdout
    history = [line.strip() for line in shown.splitlines() if line.startswith(("  attempt ", "  replay "))]
    assert [line.split(" at ")[0] for line in history] == ["attempt 1", "replay by oncall-jane", "attempt 1"], shown
    assert "dead (error_illegal_argument" in history[0] and history[2].endswith(": done")
    assert "recording mode fixed in Verba (a new retry budget" in history[1]
    assert "attempts=1" in shown.splitlines()[0]


def test_dry_run_shows_what_would_be_sent_and_changes_nothing(deliverer, simulator, config_path, tmp_path):
    make_dead_letters(deliverer, simulator)
    store_before, calls_before = dump(tmp_path / "c.db"), simulator.calls()
    result = cli("events", "replay", "--config", str(config_path), "--state", "dead", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "3 event(s) of 3 user(s) would be replayed; nothing changed" in result.stdout
    assert (
        f"upsert {A}: recording_mode=FULL, voice=True, im=False, video=False, screen_capture_enabled=False "
        "(same as the last attempt)" in result.stdout
    )
    assert (
        f"upsert {C}: recording_mode=FULL, voice=True, im=False, video=False, screen_capture_enabled=False (new)"
        in result.stdout
    )
    assert "listUsers loginName='carol@example.com'" in result.stdout
    assert dump(tmp_path / "c.db") == store_before
    assert simulator.calls() == calls_before


def test_a_dry_run_of_many_users_shows_the_first_and_counts_the_rest(deliverer, simulator, config_path):
    make_dead_letters(deliverer, simulator)
    shown = cli("events", "replay", "--config", str(config_path), "--state", "dead", "--dry-run", "--show", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len([line for line in lines if line.startswith("test/")]) == 2
    assert lines[-1] == "... and 1 more user(s): pass --show 0 to show every one, or the ids of the events to see"
    forgotten = cli("events", "replay", "--config", str(config_path), "--state", "dead", "--show", "2")
    assert forgotten.returncode == 2 and "add --dry-run (nothing was replayed)" in forgotten.stderr
    assert len(deliverer.store.list_events(state=EventState.DEAD)) == 3
    every = cli("events", "replay", "--config", str(config_path), "--state", "dead", "--dry-run", "--show", "0")
    assert len([line for line in every.stdout.splitlines() if line.startswith("test/")]) == 3
    assert "more user(s)" not in every.stdout


def refused_then_moved(deliverer, simulator, failing_creates: int):
    """alice's create of A is refused (a dead letter, returned); then her number moves to B, whose push fails too
    when `failing_creates` is 2."""
    fail_creates(simulator, failing_creates)
    deliverer.store.enqueue([alice(A)])
    drain(deliverer)
    [old] = deliverer.store.list_events(state=EventState.DEAD)
    deliverer.store.enqueue([alice(B)])
    drain(deliverer)
    return old


def test_replaying_an_old_event_does_not_roll_the_user_back(deliverer, simulator, config_path):
    old = refused_then_moved(deliverer, simulator, 2)
    [newer] = [e for e in deliverer.store.list_events(state=EventState.DEAD) if e.id != old.id]
    assert cli("events", "replay", "--config", str(config_path), str(old.id), "--reason", "x").returncode == 0
    drain(deliverer)
    extensions = simulator.extensions()
    assert A not in extensions, "the replay pushed the stale number"
    assert extensions[B]["user_id"] == 3 and extensions[B]["voice"] is True
    assert deliverer.store.get_event(old.id).state is EventState.DONE
    superseded = deliverer.store.get_event(newer.id)  # its state is what the replay delivered
    assert superseded.state is EventState.DISCARDED and superseded.discard_reason.startswith("superseded: ")


def test_a_dead_letter_a_later_delivery_superseded_is_not_replayed(deliverer, simulator, config_path):
    old = refused_then_moved(deliverer, simulator, 1)  # the push of B is delivered
    assert deliverer.store.list_events(state=EventState.DEAD) == []  # nothing left to page about
    nothing = cli("events", "replay", "--config", str(config_path), "--state", "dead", "--reason", "x")
    assert nothing.returncode == 0 and "nothing to replay" in nothing.stdout, nothing.stderr
    shown = cli("events", "show", "--config", str(config_path), str(old.id)).stdout
    assert "connector     supersede" in shown and "reason: superseded: event " in shown, shown


def test_concurrent_replays_of_the_same_events_push_once(deliverer, simulator, config_path):
    make_dead_letters(deliverer, simulator)
    args = [sys.executable, "-m", "connector.cli", "events", "replay", "--config", str(config_path),
            "--cause", "error_illegal_argument", "--reason", "fixed"]
    first, second = (
        subprocess.Popen(args, stdout=subprocess.PIPE, text=True),
        subprocess.Popen(args, stdout=subprocess.PIPE, text=True),
    )
    outs = [first.communicate(timeout=60)[0], second.communicate(timeout=60)[0]]
    drain(deliverer)
    assert len([c for c in simulator.calls("createExtension") if c["status"] == "OK"]) == 2
    total = sum(int(out.split("replaying ")[1].split(" ")[0]) for out in outs if "replaying" in out)
    assert total == 2, outs


def test_bad_operator_input_gets_a_clear_message_and_changes_nothing(deliverer, simulator, config_path, tmp_path):
    make_dead_letters(deliverer, simulator)
    before = dump(tmp_path / "c.db")
    unknown = cli("events", "replay", "--config", str(config_path), "999", "--reason", "x")
    assert unknown.returncode == 1 and "there is no event 999" in unknown.stderr
    [dead] = deliverer.store.list_events(state=EventState.DEAD, limit=1)
    no_reason = cli("events", "discard", "--config", str(config_path), str(dead.id))
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    empty_reason = cli("events", "discard", "--config", str(config_path), str(dead.id), "--reason", " ")
    assert empty_reason.returncode == 2 and "Invalid value for '--reason': say why, for the audit (it is blank)" in (
        empty_reason.stderr), empty_reason.stderr
    nothing = cli("events", "replay", "--config", str(config_path))
    assert nothing.returncode == 2 and "name the events: give event ids, --cause C or --state S" in nothing.stderr
    assert nothing.stderr.startswith("Usage: "), nothing.stderr
    for why in ([], ["--reason", " "]):  # a replay is audited with why, as a discard is
        unsaid = cli("events", "replay", "--config", str(config_path), str(dead.id), *why)
        assert unsaid.returncode == 2 and unsaid.stderr.startswith("Usage: "), unsaid.stderr
        assert ("say why with --reason R, for the audit (a --dry-run needs none); nothing was replayed" if not why else
                "Invalid value for '--reason': say why, for the audit (it is blank)") in unsaid.stderr
    down = write_config(tmp_path, unreachable_target(), name="down.toml")
    target_down = cli("events", "replay", "--config", str(down), "--state", "dead", "--reason", "x")
    assert target_down.returncode == 1 and "nothing was replayed" in target_down.stderr
    assert dump(tmp_path / "c.db") == before


def test_discard_and_show(deliverer, simulator, config_path):
    make_dead_letters(deliverer, simulator)
    [carols] = deliverer.store.list_events(state=EventState.DEAD, cause="unresolved_user")
    shown = cli("events", "show", "--config", str(config_path), str(carols.id))
    assert shown.returncode == 0, shown.stderr
    assert "unresolved_user" in shown.stdout and "carol@example.com" in shown.stdout
    [alices] = [e for e in deliverer.store.list_events(state=EventState.DEAD) if e.change.external_id == "u-alice"]
    shown = json.loads(cli("events", "show", "--config", str(config_path), str(alices.id), "--json").stdout)
    [attempt] = shown["attempts"]
    assert attempt["outcome"] == "dead" and attempt["cause"] == "error_illegal_argument"
    # refused: the login name is looked up again once (a user deleted in Verba since its id was cached?), in vain
    assert [c["operation"] for c in attempt["sent"]][-3:] == ["listUsers", "createExtension", "listUsers"]
    create = attempt["sent"][-2]
    assert create["status"] == "ERROR_ILLEGAL_ARGUMENT"
    assert f"<extension>{A}</extension>" in create["envelope"] and "<token>***</token>" in create["envelope"]

    # On-call needs no identity provider's token: a SCIM client whose token is not set stops no store command.
    oncall = config_path.with_name("oncall.toml")
    oncall.write_text(config_path.read_text() + '[[scim.clients]]\nname = "entra"\ntoken_env = "UNSET_SCIM_TOKEN_7"\n')
    assert "UNSET_SCIM_TOKEN_7" in cli("run", "--config", str(oncall)).stderr  # `connector run` needs it
    result = cli("events", "discard", "--config", str(oncall), str(carols.id), "--reason", "carol left",
                 "--operator", "oncall-jane")
    assert result.returncode == 0 and "discarded 1 event(s)" in result.stdout
    assert deliverer.store.get_event(carols.id).state is EventState.DISCARDED
    [entry] = deliverer.store.list_audit()
    assert (entry.actor, entry.action, entry.reason, entry.event_ids) == (
        "oncall-jane",
        "discard",
        "carol left",
        (carols.id,),
    )
    again = cli("events", "discard", "--config", str(oncall), str(carols.id), "--reason", "carol left")
    assert again.returncode == 0, again.stderr  # run twice (a retried script): nothing more to do, no error
    assert f"already discarded: {carols.id}" in again.stdout and "discarded 0 event(s)" in again.stdout
    assert len(deliverer.store.list_audit()) == 1


def test_a_discard_by_mistake_is_undone_by_replaying_the_event_by_id(deliverer, simulator, config_path):
    """3 a.m.: alice's dead letter was discarded instead of bob's. Nothing else would ever deliver her (drift skips a
    user whose every event is discarded): a replay of her event by id undoes the discard, audited."""
    make_dead_letters(deliverer, simulator)
    [alices] = [e for e in deliverer.store.list_events(state=EventState.DEAD) if e.change.external_id == "u-alice"]
    assert cli("events", "discard", "--config", str(config_path), str(alices.id), "--reason", "bob's, not hers",
               "--operator", "oncall-jane").returncode == 0
    by_cause = cli("events", "replay", "--config", str(config_path), "--cause", "error_illegal_argument", "--reason",
                   "fixed")
    assert by_cause.returncode == 0 and "replaying 1 event(s)" in by_cause.stdout, by_cause  # bob's only

    dry = cli("events", "replay", "--config", str(config_path), str(alices.id), "--dry-run")
    assert f"1 event(s) of 1 user(s) would be replayed (the discard of {alices.id} undone); nothing" in dry.stdout
    undone = cli("events", "replay", "--config", str(config_path), str(alices.id), "--reason", "discarded by mistake",
                 "--operator", "oncall-jane")
    assert undone.returncode == 0, undone.stderr
    assert undone.stdout == f"replaying 1 event(s); the discard of {alices.id} is undone\n", undone.stdout
    event = deliverer.store.get_event(alices.id)
    assert (event.state, event.discard_reason) == (EventState.PENDING, None)
    drain(deliverer)
    assert deliverer.store.get_event(alices.id).state is EventState.DONE and A in simulator.extensions()
    assert [(e.actor, e.action, e.reason) for e in deliverer.store.audit_of_event(alices.id)] == [
        ("oncall-jane", "discard", "bob's, not hers"), ("oncall-jane", "replay", "discarded by mistake")]
    assert deliverer.store.audit_of_event(alices.id)[-1].detail["undiscarded"] == [alices.id]


def test_approve_by_source_releases_that_sources_held_events_only(deliverer, config_path):
    hr = deliverer.store.enqueue([alice(A)], state=EventState.HELD)
    other = deliverer.store.enqueue([dataclasses.replace(bob(B), source="hr2")], state=EventState.HELD)
    result = cli("events", "approve", "--source", "test", "--reason", "CHG-7: intended", "--config", str(config_path))
    assert result.returncode == 0 and "approved 1 held event(s)" in result.stdout, result.stderr
    assert [deliverer.store.get_event(i).state for i in hr + other] == [EventState.PENDING, EventState.HELD]
    mixed = cli("events", "approve", str(other[0]), "--source", "hr2", "--reason", "x", "--config", str(config_path))
    assert mixed.returncode == 2 and "give event ids, or --source, not both" in mixed.stderr, mixed.stderr
    [entry] = [a for a in deliverer.store.list_audit() if a.action == "approve"]
    assert entry.reason == "CHG-7: intended" and entry.detail["source"] == "test" and list(entry.event_ids) == hr


def test_approve_releases_held_events_and_a_paced_replay_spreads_them_out(deliverer, simulator, config_path):
    held = deliverer.store.enqueue([alice(A), bob(B)], state=EventState.HELD)
    result = cli("events", "approve", "--config", str(config_path), "--all", "--reason", "expected reorg",
                 "--operator", "oncall-jane")
    assert result.returncode == 0 and "approved 2 held event(s)" in result.stdout
    unnamed = cli("events", "approve", "--config", str(config_path), "--reason", "x")
    assert unnamed.returncode == 2 and "give the ids of held events, --source S, --cause C or --all" in unnamed.stderr
    unexplained = cli("events", "approve", "--config", str(config_path), "--all")
    assert unexplained.returncode == 2 and "Missing option '--reason'" in unexplained.stderr
    nothing = cli("events", "approve", "--config", str(config_path), "--all", "--reason", "again")
    assert nothing.returncode == 0 and "no held events: nothing approved" in nothing.stdout  # no audit (below)
    drain(deliverer)
    assert {e.id: e.state for e in deliverer.store.list_events()} == {i: EventState.DONE for i in held}
    assert sorted(c["extension"] for c in simulator.calls("createExtension")) == [A, B]

    fail_creates(simulator, 3)
    deliverer.store.enqueue([alice(C), bob(A), carol(B)])
    drain(deliverer)
    simulator.clear_faults()
    dead = sorted(e.id for e in deliverer.store.list_events(state=EventState.DEAD))
    assert cli("events", "replay", "--config", str(config_path), *map(str, dead), "--rate", "2",
               "--reason", "x").returncode == 0
    due = [deliverer.store.get_event(i).next_attempt_at for i in dead]
    assert [round(b - a, 2) for a, b in zip(due, due[1:], strict=False)] == [0.5, 0.5]

    recent = json.loads(cli("audit", "--config", str(config_path), "--since", "1h", "--json").stdout)
    assert [e["action"] for e in recent] == ["replay", "approve"]
    assert json.loads(cli("audit", "--config", str(config_path), "--since", "0s", "--json").stdout) == []
    bad = cli("audit", "--config", str(config_path), "--since", "yesterday")
    assert bad.returncode == 2 and "90s, 30m, 1h or 2d" in bad.stderr


def test_status_shows_queue_sources_and_target(deliverer, simulator, config_path, tmp_path):
    (tmp_path / "ldap-pw").write_text("x")
    (tmp_path / "scim-token").write_text("t0k3n-for-status")
    with config_path.open("a") as f:
        f.write(f'[[scim.clients]]\nname = "entra"\ntoken_file = "{tmp_path / "scim-token"}"\n'
                f'[ldap.corp]\nurl = "ldap://127.0.0.1:{free_port()}"\ndialect = "openldap"\nbase = "dc=corp"\n'
                f'bind_dn = "cn=admin,dc=corp"\npassword_file = "{tmp_path / "ldap-pw"}"\n')
    make_dead_letters(deliverer, simulator)
    result = cli("status", "--config", str(config_path))
    assert result.returncode == 0, result.stderr
    assert "queue: pending=0  in_flight=0  done=0  dead=3" in result.stdout
    assert "clients: entra" in result.stdout and ("source ldap.corp: never run; no running connector polls it (one "
                                                  "with [ldap.corp] in its config does)") in result.stdout
    # status calls nothing: it shows what a running connector's probe recorded in the store, and none did yet
    assert f"target: {simulator.url} unknown: no running connector has recorded a probe of Verba yet" in result.stdout
    assert "2  error_illegal_argument" in result.stdout
    TargetHealth(deliverer.client.probe, deliverer.store, "conn-a", simulator.url).check()
    result = cli("status", "--config", str(config_path))
    [line] = [line for line in result.stdout.splitlines() if line.startswith("target:")]
    assert line.startswith(f"target: {simulator.url} reachable (probed ") and " ago, at " in line
    assert line.endswith("by instance conn-a; instance conn-a is not running now)")
    data = json.loads(cli("status", "--config", str(config_path), "--json").stdout)
    assert data["sources"]["ldap.corp"].startswith("never run; no running connector polls it")
    assert data["target"]["state"].startswith("reachable (probed ")
    [probe] = data["target"]["probes"]
    assert (probe["instance"], probe["url"], probe["cause"], probe["error"]) == ("conn-a", simulator.url, None, None)


def test_an_extension_conflict_in_status_list_and_replay_after_verba_is_fixed(deliverer, simulator, config_path):
    deliverer.client.create_extension(_record(A, user_id=4))  # made by hand for bob, whom no source manages
    deliverer.store.enqueue([alice(A)])
    drain(deliverer)
    status = cli("status", "--config", str(config_path))
    assert status.returncode == 0, status.stderr
    assert "extension conflicts:\n  +14155550100  event 1" in status.stdout
    assert "linked to Verba user 4 (bob@example.com): the connector manages no user linked to it" in status.stdout
    data = json.loads(cli("status", "--config", str(config_path), "--json").stdout)
    assert [c["extension"] for c in data["extension_conflicts"]] == [A]
    listed = cli("events", "list", "--config", str(config_path), "--cause", "extension_conflict")
    assert "1 event(s)" in listed.stdout and "test/u-alice" in listed.stdout

    simulator.http.post("/_sim/reset").raise_for_status()  # on-call frees the extension in Verba
    replay = cli("events", "replay", "--config", str(config_path), "--cause", "extension_conflict",
                 "--reason", "freed +14155550100 in Verba")
    assert replay.returncode == 0 and "replaying 1 event(s)" in replay.stdout, replay.stderr
    drain(deliverer)
    assert simulator.extensions()[A]["user_id"] == 3
    assert "extension conflicts: none" in cli("status", "--config", str(config_path)).stdout
    assert [a.action for a in deliverer.store.list_audit()][:3] == ["conflict_cleared", "replay", "conflict"]


def _record(extension: str, user_id: int):
    from connector.records import ExtensionRecord

    return ExtensionRecord(extension, user_id, "FULL", True, False, False, False, eid="0000")


def test_events_held_by_the_stop_recording_guard_in_status_show_and_approve(simulator, tmp_path):
    from connector.config import load_config
    from connector.delivery.worker import Deliverer
    from connector.mapping import load_mapping
    from connector.runtime import open_client, open_configured_store
    from tests.plugins.simulator import user

    path = write_config(tmp_path, simulator.url, extra="guard_max_count = 1\nguard_max_share = 0\n")
    config = load_config(str(path))
    store, client = open_configured_store(config, create=True), open_client(config)
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    try:
        store.enqueue([alice(A), bob(B)])
        drain(deliverer)
        store.enqueue([alice(A, kind="deactivate"), user("u-bob", "bob@example.com", phones=(B,), kind="deactivate")])
        drain(deliverer)
        status = cli("status", "--config", str(path))
        assert "held for `connector events approve`" in status.stdout
        assert "     1  stop_recording_guard  source test" in status.stdout
        [held] = store.list_events(state=EventState.HELD)
        shown = cli("events", "show", str(held.id), "--config", str(path))
        assert "(same as the last attempt)" not in shown.stdout, shown.stdout
        # Delivery stops recording only what Verba still links to the user (else it leaves it alone): so does `show`.
        assert (f"stop recording {held.change.state['phoneNumbers'][0]['value']} (stays linked to user"
                in shown.stdout), shown.stdout
        assert "if Verba still links it to this user" in shown.stdout
        approved = cli("events", "approve", "--all", "--reason", "leavers, intended", "--config", str(path))
        assert "approved 1 held event(s)" in approved.stdout
        shown = cli("events", "show", str(held.id), "--config", str(path)).stdout
        assert "audit:\n  " in shown and "approve" in shown and "reason: leavers, intended" in shown, shown
        drain(deliverer)
        assert not any(simulator.extensions()[n]["voice"] for n in (A, B))
    finally:
        client.close()
        store.close()


def test_events_list_takes_a_user_as_every_output_names_it(deliverer, simulator, config_path):
    make_dead_letters(deliverer, simulator)
    for user in ("test/u-alice", "u-alice", "ALICE@example.com"):
        listed = cli("events", "list", "--config", str(config_path), "--user", user).stdout
        assert "1 event(s)" in listed and "test/u-alice (alice@example.com)" in listed, (user, listed)
        assert "dead=1 " in listed, listed
    other = cli("events", "list", "--config", str(config_path), "--user", "hr/u-alice").stdout
    assert other.splitlines()[-1] == "no events match", other
    shown = " ".join(cli("events", "list", "--help").stdout.split())
    assert ("--user TEXT Only this user: source/external_id (as every output names users), its external id or "
            "userName.") in shown, shown


def _attempts_shown(config_path, event_id: int) -> list[str]:
    shown = cli("events", "show", "--config", str(config_path), str(event_id)).stdout
    return [line.strip() for line in shown.split("attempts:\n")[1].split("\nmaps to now")[0].splitlines()
            if line.startswith(("  attempt ", "  replay "))]


LOST = ("no outcome recorded (the claim went back to the queue: its connector instance stopped or died mid-push, "
        "or its lease ran out; the push may have sent writes)")


def test_an_attempt_lost_with_a_dead_instance_is_shown_as_counted_without_an_outcome(deliverer, config_path):
    """Instance a is SIGKILLed mid-push; b counts it dead and its claim goes back to the queue, still counted in the
    retry budget (the push may have written to Verba): `show` lists that attempt where `attempts=` counts it."""
    store = deliverer.store
    [event_id] = store.enqueue([UserChange("hr", "100", "upsert", {"userName": "u100@example.com"})])
    b = Instance("b", "run-b", "vm2", 202)
    for instance in (Instance("a", "run-a", "vm1", 101), b):
        store.register_instance(instance, 15.0, lambda previous: True)
    assert store.claim("run-a/0", time.time(), 120.0) is not None
    with store._write() as conn:
        conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 60 WHERE name = 'a'")
    assert [(dead.name, released) for dead, released in store.heartbeat(b, 15.0).reaped] == [("a", 1)]

    claim = store.claim("run-b/0", time.time(), 120.0)
    assert claim is not None and claim.attempts == 2
    assert _attempts_shown(config_path, event_id) == [f"attempt 1: {LOST}", "attempt 2: in flight now (no outcome yet)"]
    store.retry(claim, time.time(), "transient", "timed out")
    store.dead_letter(store.claim("run-b/0", time.time(), 120.0), "mapping", "no phone number")

    shown = _attempts_shown(config_path, event_id)
    assert [line.split(" at ")[0] for line in shown] == [
        f"attempt 1: {LOST} (its place among the first 2 attempts is not recorded)", "attempt 2", "attempt 3"], shown
    assert shown[1].endswith(": retry (transient: timed out)"), shown
    assert shown[2].endswith(": dead (mapping: no phone number)"), shown
    assert "attempts=3" in cli("events", "show", "--config", str(config_path), str(event_id)).stdout


def test_an_attempt_lost_after_a_replay_counts_in_the_new_budget(deliverer, config_path):
    store = deliverer.store
    [event_id] = store.enqueue([UserChange("hr", "100", "upsert", {"userName": "u100@example.com"})])
    store.dead_letter(store.claim("w1", time.time(), 120.0), "mapping", "no phone number")
    requeue(store, [store.get_event(event_id)], actor="oncall-jane", action="replay", reason="fixed", rate=None,
            detail={})
    assert store.claim("w1", time.time(), 120.0) is not None
    assert store.release_leases() == 1  # the connector was restarted mid-push
    store.complete(store.claim("w1", time.time(), 120.0), [], None)

    shown = _attempts_shown(config_path, event_id)
    assert [line.split(" at ")[0] for line in shown] == [
        "attempt 1", "replay by oncall-jane", f"attempt 1: {LOST}", "attempt 2"], shown
    assert shown[0].endswith(": dead (mapping: no phone number)"), shown
    assert ": done, nothing sent, so Verba was not asked" in shown[3], shown


def test_events_show_says_what_queued_an_event_and_explains_the_connectors_own(deliverer, simulator, config_path):
    deliverer.store.enqueue([dataclasses.replace(alice(A), cause="scim PATCH User/u-alice")])
    drain(deliverer)
    deliverer.store.enqueue([bob(A)])  # waits: alice holds A
    drain(deliverer)
    deliverer.store.enqueue([alice(B)])  # alice lets A go: bob is queued again by the connector
    drain(deliverer)
    first, *_ = deliverer.store.list_events(user="test/u-alice")[::-1]
    woken = deliverer.store.list_events(user="test/u-bob")[0]
    shown = cli("events", "show", "--config", str(config_path), str(first.id)).stdout.splitlines()
    assert shown[1] == "queued by: scim PATCH User/u-alice"
    shown = cli("events", "show", "--config", str(config_path), str(woken.id)).stdout.splitlines()
    assert shown[1] == ("queued by: extension_released (the connector: an extension this user waited for in a "
                        "conflict was released)")
