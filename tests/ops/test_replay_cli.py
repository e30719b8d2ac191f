"""What on-call sees from `events replay`, `approve`, `discard` and `list` when a cause is misspelt, Verba is down,
a secret is not set, or a hint would repeat what they typed: on a store made here, with no Verba (nothing answers
at the target's port)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from connector.cli import events as events_cli
from connector.config import DEFAULT_MAPPING, load_config
from connector.errors import ConnectorError
from connector.ops import replay
from connector.store import EventState, Store, TargetProbe
from tests.ops.helpers import change, dead_letters, run

CAUSES_NOW = ("the causes of dead and held events now: ldap_mass_change, mapping, unresolved_user (and "
              "extension_conflict for the events of open conflicts)")


def test_a_dry_run_says_the_replay_would_be_refused_while_verba_is_not_answering(config: Path, store: Store) -> None:
    [event] = dead_letters(store, "unresolved_user", "u1")
    assert "WARNING" not in run(config, "events", "replay", "--state", "dead", "--dry-run").output
    url = load_config(config, secrets=()).target_url
    store.note_target_probe(TargetProbe("a", url, time.time() - 3, 0.1, "transport", "could not reach Verba"))

    dry = run(config, "events", "replay", str(event), "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    assert lines[0] == "dry run: 1 event(s) of 1 user(s) would be replayed; nothing changed"
    assert lines[1].startswith("WARNING: the real replay would be refused until Verba answers (the connector last "
                               "found it unreachable: transport: could not reach Verba (probed "), lines[1]
    assert lines[1].endswith("by instance a; instance a is not running now)); check with `connector status`")
    real = run(config, "events", "replay", str(event), "--reason", "x")
    assert real.exit_code == 1 and "Verba is unreachable" in real.output, real.output

    store.note_target_probe(TargetProbe("a", url, time.time(), 0.1, None, None))  # it answers again
    assert "WARNING" not in run(config, "events", "replay", str(event), "--dry-run").output
    store.note_breaker("b", time.time() - 60, error="requestToken could not reach Verba")
    broken = run(config, "events", "replay", str(event), "--dry-run").output.splitlines()
    assert broken[1].startswith("WARNING: the real replay would be refused until Verba answers (the connector last "
                                "found it DOWN: circuit breaker open since "), broken
    assert store.get_event(event).state is EventState.DEAD


def test_a_cause_no_event_has_is_refused_with_the_causes_events_list_names(config: Path, store: Store) -> None:
    dead_letters(store, "unresolved_user", "u1")
    dead_letters(store, "mapping", "u2")
    store.enqueue([change("leaver")], state=EventState.HELD)
    listed = run(config, "events", "list", "--cause", "unresolved")
    assert listed.exit_code == 0 and listed.output.splitlines()[-1] == f"no events match; {CAUSES_NOW}"

    refused = f"no event has the cause 'unresolved'; {CAUSES_NOW}; nothing was changed"
    for args in (["events", "replay", "--cause", "unresolved", "--reason", "x", "--wait", "5"],
                 ["events", "replay", "--cause", "unresolved", "--dry-run"],
                 ["events", "approve", "--cause", "unresolved", "--reason", "x"],
                 ["events", "discard", "--cause", "unresolved", "--reason", "x"]):
        result = run(config, *args)
        assert result.exit_code == 1 and refused in result.output, (args, result.output)
    assert [a.action for a in store.list_audit()] == []

    [mapped] = store.list_events(cause="mapping")
    store.discard([mapped.id], "left")  # a cause events had: none now is nothing to replay, not a typo
    nothing = run(config, "events", "replay", "--cause", "mapping", "--reason", "x", "--wait", "5")
    assert nothing.exit_code == 0 and nothing.output.startswith("nothing to replay: no event matches"), nothing.output
    conflicts = run(config, "events", "replay", "--cause", "extension_conflict", "--reason", "x")
    assert conflicts.exit_code == 0 and "nothing to replay" in conflicts.output, conflicts.output
    guarded = run(config, "events", "approve", "--cause", "stop_recording_guard", "--reason", "x")
    assert guarded.exit_code == 0 and "no held events: nothing approved" in guarded.output, guarded.output


def test_a_replay_that_selects_nothing_needs_no_verba_password(tmp_path: Path, config: Path, store: Store) -> None:
    unset = tmp_path / "unset.toml"
    text = config.read_text()
    start = text.index("password_file")
    unset.write_text(text[:start] + 'password_env = "CONNECTOR_TEST_UNSET_VERBA_PASSWORD"'
                     + text[text.index("\n", start):])
    dead_letters(store, "mapping", "u1")
    store.discard([e.id for e in store.list_events()], "left")
    nothing = run(unset, "events", "replay", "--cause", "mapping", "--reason", "x")
    assert nothing.exit_code == 0, nothing.output
    assert nothing.output == "nothing to replay: no event matches (see `connector events list --state dead`)\n"

    [event] = dead_letters(store, "mapping", "u2")
    needed = run(unset, "events", "replay", "--cause", "mapping", "--reason", "x")
    assert needed.exit_code == 1 and "CONNECTOR_TEST_UNSET_VERBA_PASSWORD, which is not set" in needed.output
    assert store.get_event(event).state is EventState.DEAD and store.list_audit() == []


def test_events_list_by_cause_does_not_hint_at_listing_by_cause(config: Path, store: Store) -> None:
    dead_letters(store, "mapping", "u1")
    hint = "  list them with `connector events list --state dead --cause CAUSE`"
    assert hint in run(config, "events", "list", "--state", "dead").output.splitlines()
    for args in (["--state", "dead", "--cause", "mapping"], ["--cause", "mapping"]):
        shown = run(config, "events", "list", *args).output
        assert "     1  mapping: u1: mapping" in shown and "--cause CAUSE" not in shown, (args, shown)


def test_a_dry_run_by_id_suggests_only_what_applies(config: Path, store: Store) -> None:
    ids = dead_letters(store, "mapping", "u1", "u2")
    by_id = run(config, "events", "replay", *map(str, ids), "--dry-run", "--show", "1")
    assert by_id.output.splitlines()[-1] == "... and 1 more user(s): pass --show 0 to show every one", by_id.output
    by_cause = run(config, "events", "replay", "--cause", "mapping", "--dry-run", "--show", "1")
    assert by_cause.output.splitlines()[-1] == ("... and 1 more user(s): pass --show 0 to show every one, or the ids "
                                                "of the events to see")


def test_discard_says_which_events_it_takes(config: Path, store: Store) -> None:
    [event] = store.enqueue([change("u1")])
    store.complete(store.claim("test", time.time(), 60), [], None)
    done = run(config, "events", "discard", str(event), "--reason", "x")
    assert done.exit_code == 1, done.output
    assert f"only dead or held events can be discarded; event {event} is done; nothing was changed" in done.output


def test_discard_by_cause_and_source_takes_dead_and_held_events(config: Path, store: Store) -> None:
    mapping_hr = dead_letters(store, "mapping", "u1", "u2")
    [mapping_idp] = dead_letters(store, "mapping", "u3", source="idp")
    [unresolved] = dead_letters(store, "unresolved_user", "u4")
    held_hr = store.enqueue([change("u5")], state=EventState.HELD)  # the LDAP mass-change guard's
    held_idp = store.enqueue([change("u6", "idp")], state=EventState.HELD)

    unnamed = run(config, "events", "discard", "--reason", "x")
    assert unnamed.exit_code == 2 and "give the ids of dead or held events, --cause C and/or --source S" in (
        unnamed.output)
    mixed = run(config, "events", "discard", str(unresolved), "--cause", "mapping", "--reason", "x")
    assert mixed.exit_code == 2 and "give event ids, or --cause, not both" in mixed.output, mixed.output
    typo = run(config, "events", "discard", "--source", "hrr", "--reason", "x")
    assert typo.exit_code == 1 and "no event came from the source 'hrr'; did you mean 'hr'? the sources of events: " \
        "hr, idp; nothing was changed" in typo.output, typo.output

    by_both = run(config, "events", "discard", "--cause", "mapping", "--source", "hr", "--reason", "users left",
                  "--operator", "oncall-jane")
    assert by_both.exit_code == 0 and by_both.output == "discarded 2 event(s)\n", by_both.output
    by_source = run(config, "events", "discard", "--source", "idp", "--reason", "idp retired")
    assert by_source.output == "discarded 2 event(s)\n", by_source.output
    by_cause = run(config, "events", "discard", "--cause", "ldap_mass_change", "--reason", "intended? no")
    assert by_cause.output == "discarded 1 event(s)\n", by_cause.output
    again = run(config, "events", "discard", "--cause", "mapping", "--reason", "users left")
    assert again.exit_code == 0, again.output
    assert again.output == "no dead or held events match: nothing discarded (see `connector events list`)\n"

    states = {e.id: e.state for e in store.list_events()}
    assert [i for i, s in states.items() if s is EventState.DISCARDED] == sorted(
        [*mapping_hr, mapping_idp, *held_hr, *held_idp], reverse=True)
    assert states[unresolved] is EventState.DEAD
    first = store.list_audit()[-1]
    assert (first.actor, first.action, first.reason, list(first.event_ids)) == (
        "oncall-jane", "discard", "users left", mapping_hr)


def test_a_replay_by_a_cause_only_retrying_events_have_says_they_are_still_retried(config: Path, store: Store) -> None:
    store.enqueue([change("u1"), change("u2")])
    while (claim := store.claim("test", time.time() + 60, 60)) is not None:
        store.retry(claim, time.time() + 3600, "error_general", "disk full")
    result = run(config, "events", "replay", "--cause", "error_general", "--reason", "x")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "nothing to replay: no event matches (see `connector events list --state dead`); 2 event(s) with cause "
        "error_general are still being retried (pending or in flight): the connector delivers or dead-letters them "
        "itself, see `connector status`\n"), result.output


def test_a_replay_by_a_cause_says_which_retrying_events_wait_behind_a_held_event_instead(
        config: Path, store: Store) -> None:
    store.enqueue([change("u1"), change("u2"), change("u3")])
    while (claim := store.claim("test", time.time() + 60, 60)) is not None:
        store.retry(claim, time.time() + 3600, "error_general", "disk full")
    [held] = store.enqueue([change("u2")], state=EventState.HELD)  # u2's retries wait for an operator now
    result = run(config, "events", "replay", "--cause", "error_general", "--reason", "x")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "nothing to replay: no event matches (see `connector events list --state dead`); 2 event(s) with cause "
        "error_general are still being retried (pending or in flight): the connector delivers or dead-letters them "
        "itself, see `connector status`; 1 event(s) with cause error_general wait behind a held event of their user "
        f"(held event(s) {held}): nothing of a user is pushed while an event of theirs is held, so approve or discard "
        "that one\n"), result.output


def test_events_show_shows_the_event_its_attempts_and_audit_while_the_mapping_file_has_an_error(
        tmp_path: Path, config: Path, store: Store) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(Path(DEFAULT_MAPPING).read_text() + "bogus_key = 1\n")  # mid-fix
    broken = tmp_path / "broken.toml"
    broken.write_text(config.read_text() + f'[mapping]\nfile = "{mapping}"\n')
    [event] = dead_letters(store, "mapping", "u1")
    assert run(config, "events", "discard", str(event), "--reason", "left", "--operator", "oncall-jane").exit_code == 0

    shown = run(broken, "events", "show", str(event))
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].split()[:4] == [str(event), "discarded", "upsert", "hr/u1"], lines
    assert "attempts:" in lines and "audit:" in lines
    assert any("oncall-jane" in line and "reason: left" in line for line in lines), lines
    assert lines[-1].startswith("maps to now: cannot tell: ") and "bogus_key is not a known key" in lines[-1], lines
    as_json = json.loads(run(broken, "events", "show", str(event), "--json").output)
    assert as_json["maps_to_now"] is None and "bogus_key" in as_json["maps_to_now_unknown"]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """Batches of 3 events instead of 100,000, and a replay that does not probe Verba (nothing answers here)."""
    monkeypatch.setattr(replay, "MAX_SELECTED", 3)
    monkeypatch.setattr(events_cli, "_check_target", lambda config: None)
    return 3


def test_approve_all_discard_and_replay_by_group_act_on_every_event_in_batches(
        config: Path, store: Store, small_batches: int) -> None:
    dead_letters(store, "mapping", *(f"d{i}" for i in range(7)))
    store.enqueue([change(f"h{i}") for i in range(7)], state=EventState.HELD)
    approved = run(config, "events", "approve", "--all", "--reason", "intended")
    assert approved.exit_code == 0, approved.output
    assert approved.stdout == "approved 7 held event(s); the connector delivers them now\n"
    assert "approving: 3 event(s) approved so far; 3 more next ..." in approved.stderr
    assert store.count_by_state()[EventState.HELD] == 0
    assert [len(a.event_ids) for a in store.list_audit()] == [1, 3, 3]  # a row per batch, newest first

    replayed = run(config, "events", "replay", "--cause", "mapping", "--reason", "fixed", "--rate", "10")
    assert replayed.exit_code == 0 and replayed.stdout == "replaying 7 event(s)\n", replayed.output
    assert replayed.stderr.splitlines() == ["replaying: 3 event(s) queued so far; 3 more next ...",
                                            "replaying: 6 event(s) queued so far; 1 more next ..."]
    due = sorted(e.next_attempt_at for e in store.list_events(state=EventState.PENDING, source="hr")
                 if e.change.external_id.startswith("d"))
    assert len(due) == 7 and due[-1] - due[0] >= 0.55  # one pace across the batches: 6 gaps of 0.1 s

    while (claim := store.claim("test", time.time() + 60, 60)) is not None:
        store.dead_letter(claim, "mapping", "still")
    discarded = run(config, "events", "discard", "--cause", "mapping", "--reason", "left")
    assert discarded.exit_code == 0 and discarded.stdout == "discarded 14 event(s)\n", discarded.output
    assert "discarding: 12 event(s) discarded so far; 2 more next ..." in discarded.stderr.splitlines()
    assert store.count_by_state()[EventState.DEAD] == 0


def test_a_group_replay_takes_older_dead_letters_after_a_batch_is_dead_again(store: Store, small_batches: int) -> None:
    ids = dead_letters(store, "mapping", *(f"u{i}" for i in range(5)))
    taken = []
    for batch in replay.select_batches(store, (), "mapping", EventState.DEAD, [EventState.DEAD], rule="r"):
        taken.append([e.id for e in batch])
        store.requeue([e.id for e in batch], time.time())
        claim = store.claim("test", time.time() + 60, 60)  # one of them dead again at once, while the run goes on
        store.dead_letter(claim, "mapping", "still")
    assert taken == [ids[2:], ids[:2]]

    ids = dead_letters(store, "mapping", *(f"v{i}" for i in range(5)))  # 5 newer than the first batch of 3 ...
    with pytest.raises(ConnectorError, match="older ones may remain"):
        for batch in replay.select_batches(store, (), "mapping", EventState.DEAD, [EventState.DEAD], rule="r"):
            store.requeue([e.id for e in batch], time.time())
            while (claim := store.claim("test", time.time() + 60, 60)) is not None:  # ... all dead again, newest
                store.dead_letter(claim, "mapping", "still")


def test_replay_or_approve_run_again_is_harmless_and_an_id_given_twice_is_one_event(
        config: Path, store: Store, small_batches: int) -> None:
    [first, second] = dead_letters(store, "mapping", "u1", "u2")
    twice = run(config, "events", "replay", str(first), str(first), "--reason", "fixed")
    assert twice.exit_code == 0 and twice.output == "replaying 1 event(s)\n", twice.output
    again = run(config, "events", "replay", str(first), str(second), "--reason", "fixed")
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == [
        f"already queued: {first} (pending or in flight: the connector delivers them; `connector events show ID` "
        "says when it next tries)", "replaying 1 event(s)"]

    [held] = store.enqueue([change("u3")], state=EventState.HELD)
    assert run(config, "events", "approve", str(held), str(held), "--reason", "ok").output == (
        "approved 1 held event(s); the connector delivers them now\n")
    rerun = run(config, "events", "approve", str(held), "--reason", "ok")
    assert rerun.exit_code == 0 and rerun.output.startswith(f"already queued: {held} (pending"), rerun.output
    assert [a.action for a in store.list_audit()] == ["approve", "replay", "replay"]

    store.complete(store.claim("test", time.time() + 60, 60), [], None)  # delivered: a done event is not held
    done = run(config, "events", "approve", str(first), "--reason", "ok")
    assert done.exit_code == 1 and f"only held events can be approved; event {first} is done" in done.output
