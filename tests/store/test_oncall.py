"""The store API behind the on-call tooling (attempt history, replay, discard, filters, metrics, readiness),
checked on every backend."""

from __future__ import annotations

import dataclasses
import pathlib
import sqlite3
import threading
import time
from typing import Any

import pytest

from connector.store import EventState, Store, StoreError
from connector.store import sqlite as sqlite_backend
from connector.store.postgres import PostgresStore
from connector.store.sqlite import SQLiteStore
from tests.postgres_server import PostgresServer

from .test_conformance import LEASE, NOW, T0, change, claim_now, record, state_of


def envelope(operation: str, status: str, body: str = "") -> dict[str, Any]:
    return {"operation": operation, "status": status, "envelope": f"<soap:Envelope>{body}</soap:Envelope>"}


def dead(store: Store, user: str, cause: str = "mapping", error: str = "no phone number", **state: Any) -> int:
    """Enqueue one change of `user` and dead-letter it; return its id."""
    [event_id] = store.enqueue([change(user, **state)])
    claim = claim_now(store, now=NOW + 1_000_000)
    assert claim.event_ids == (event_id,)
    store.dead_letter(claim, cause, error)
    return event_id


def pause() -> float:
    """A moment strictly between the writes before and after it."""
    time.sleep(0.02)
    moment = time.time()
    time.sleep(0.02)
    return moment


# --- attempt history --------------------------------------------------------------------------


def test_each_settle_records_an_attempt_with_what_was_sent_in_order(store: Store) -> None:
    [a1] = store.enqueue([change("alice", 1)])
    [b1] = store.enqueue([change("bob", 1)])
    first = [envelope("createExtension", "TIMEOUT", "+15551230001")]
    second = [envelope("getExtension", "OK"), envelope("updateExtension", "ERROR_BUSY", "token=***")]
    third = [envelope("getExtension", "OK"), envelope("updateExtension", "OK")]

    store.retry(claim_now(store), NOW + 10, "transient", "timed out", sent=first)
    store.complete(claim_now(store), [], None)  # bob, nothing sent
    [a2] = store.enqueue([change("alice", 2, accepted_at=NOW)])
    both = claim_now(store, now=NOW + 10)
    assert both.event_ids == (a1, a2)
    store.retry(both, NOW + 20, "busy", "ERROR_BUSY", sent=second)
    store.complete(claim_now(store, now=NOW + 20), [record("+15551230001")], 7, sent=third)

    history = store.attempts(a1)
    assert [(a.outcome, a.event_ids, a.cause, a.error) for a in history] == [
        ("retry", (a1,), "transient", "timed out"),
        ("retry", (a1, a2), "busy", "ERROR_BUSY"),
        ("done", (a1, a2), None, None),
    ]
    assert [a.sent for a in history] == [tuple(first), tuple(second), tuple(third)]
    assert history[0].at <= history[1].at <= history[2].at
    assert store.attempts(a2) == history[1:]
    assert [(a.outcome, a.sent) for a in store.attempts(b1)] == [("done", ())]
    assert store.attempts(999_999) == []


def test_a_dead_letter_records_its_attempt(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    sent = [envelope("createExtension", "ERROR_ILLEGAL_ARGUMENT")]

    store.dead_letter(claim_now(store), "illegal_argument", "bad eid", sent=sent)

    [attempt] = store.attempts(event_id)
    assert (attempt.outcome, attempt.event_ids, attempt.cause, attempt.error, attempt.sent) == (
        "dead",
        (event_id,),
        "illegal_argument",
        "bad eid",
        tuple(sent),
    )


def test_a_settle_after_the_lease_was_lost_records_no_attempt(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    stale = store.claim("w1", NOW, 10)
    assert stale is not None
    fresh = claim_now(store, now=NOW + 11, owner="w2")
    sent = [envelope("createExtension", "OK")]

    store.complete(stale, [], None, sent=sent)
    store.retry(stale, NOW + 100, "transient", "late", sent=sent)
    store.dead_letter(stale, "transient", "late", sent=sent)
    assert store.attempts(event_id) == []

    store.complete(fresh, [], None, sent=sent)
    assert [(a.outcome, a.sent) for a in store.attempts(event_id)] == [("done", tuple(sent))]


def test_a_postponed_push_that_sent_something_is_recorded_but_not_counted(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    sent = [envelope("listUsers", "http 503")]
    store.postpone(claim_now(store), NOW, cause="http_5xx", error="Verba answered HTTP 503", sent=sent)
    store.postpone(claim_now(store, now=NOW + 1), NOW + 1)  # sent nothing: nothing to show
    event = store.get_event(event_id)
    assert (event.state, event.attempts) == (EventState.PENDING, 0)
    assert [(a.outcome, a.cause, a.error, a.sent) for a in store.attempts(event_id)] == [
        ("postponed", "http_5xx", "Verba answered HTTP 503", tuple(sent))]


def test_the_events_retrying_after_a_failure_are_grouped_by_cause_with_the_newest_message(store: Store) -> None:
    dead(store, "erin")  # dead letters are not retrying
    store.enqueue([change("alice"), change("bob"), change("carol"), change("dave")])
    for n, (cause, error) in enumerate([("http_5xx", "503 for alice"), ("http_5xx", "503 for bob"),
                                        ("error_general", "disk full")]):
        store.retry(claim_now(store, now=NOW + n), NOW + 1000, cause, error)
    store.postpone(claim_now(store, now=NOW + 10), NOW)  # dave: postponed, never failed
    assert [(g.cause, g.sample, g.size) for g in store.retrying_summary()] == [
        ("http_5xx", "503 for bob", 2), ("error_general", "disk full", 1)]


def test_sent_that_is_not_json_is_refused_and_changes_nothing(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    claim = claim_now(store)

    with pytest.raises(ValueError, match="not JSON"):
        store.complete(claim, [], None, sent=[{"operation": "createExtension", "envelope": object()}])

    assert state_of(store, event_id) is EventState.IN_FLIGHT
    assert store.attempts(event_id) == []


def test_sent_keeps_any_text_an_envelope_may_hold(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    sent = [{"operation": "createExtension", "status": "OK", "envelope": "<a>\x00 \\u0000 \u00e9 \U0001f4de</a>"}]

    store.complete(claim_now(store), [], None, sent=sent)

    assert state_of(store, event_id) is EventState.DONE
    assert store.attempts(event_id)[0].sent == tuple(sent)


# --- requeue ----------------------------------------------------------------------------------


def test_requeue_spaces_the_replayed_events_in_id_order(store: Store) -> None:
    d1 = dead(store, "alice")
    [done] = store.enqueue([change("bob")])
    store.complete(claim_now(store, now=NOW + 1_000_000), [], None)
    [held] = store.enqueue([change("carol")], state=EventState.HELD)
    d2 = dead(store, "dave")

    assert store.requeue([d2, done, held, d1, 999_999], NOW, spacing=2.5) == 3

    due = {event_id: store.get_event(event_id) for event_id in (d1, held, d2)}
    assert [(e.state, e.attempts, e.next_attempt_at) for e in due.values() if e is not None] == [
        (EventState.PENDING, 0, NOW),
        (EventState.PENDING, 0, NOW + 2.5),
        (EventState.PENDING, 0, NOW + 5.0),
    ]
    assert state_of(store, done) is EventState.DONE
    assert [claim_now(store, now=NOW + 5).event_ids for _ in range(3)] == [(d1,), (held,), (d2,)]


def test_requeue_without_spacing_makes_everything_due_now(store: Store) -> None:
    ids = [dead(store, f"user{i}") for i in range(3)]

    assert store.requeue(ids, NOW) == 3

    assert {store.get_event(i).next_attempt_at for i in ids} == {NOW}  # type: ignore[union-attr]


def test_concurrent_requeues_of_the_same_events_change_each_once(store: Store) -> None:
    for round_ in range(5):
        ids = store.enqueue([change(f"r{round_}-user{i}") for i in range(200)], state=EventState.HELD)
        barrier = threading.Barrier(2)
        changed: list[int] = []
        problems: list[str] = []

        # The threads are joined before the loop moves on: B023's late binding cannot bite.
        def replay(order: list[int]) -> None:
            try:
                barrier.wait(timeout=10)  # noqa: B023
                changed.append(store.requeue(order, NOW, spacing=0.1))  # noqa: B023
            except Exception as error:  # surfaced below; a thread cannot fail the test itself
                problems.append(repr(error))  # noqa: B023

        threads = [threading.Thread(target=replay, args=(order,)) for order in (ids, ids[::-1])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert problems == []
        assert sum(changed) == len(ids), f"round {round_}: {changed} requeued, expected {len(ids)} in all"
        assert all(state_of(store, i) is EventState.PENDING for i in ids)


# --- discard ----------------------------------------------------------------------------------


def test_discard_takes_only_dead_and_held_events_and_keeps_why_they_failed(store: Store) -> None:
    dead_id = dead(store, "alice", "illegal_argument", "bad eid")
    [held] = store.enqueue([change("bob")], state=EventState.HELD)
    [done] = store.enqueue([change("carol")])
    store.complete(claim_now(store, now=NOW + 1_000_000), [], None)
    [in_flight] = store.enqueue([change("dave")])
    claim_now(store, now=NOW + 1_000_000)
    [pending] = store.enqueue([change("erin", accepted_at=NOW + 1_000_000)])

    assert store.discard([dead_id, held, done, in_flight, pending, 999_999], "test data from the pilot") == 2

    discarded = store.get_event(dead_id)
    assert discarded is not None
    assert (discarded.state, discarded.last_cause, discarded.last_error, discarded.discard_reason) == (
        EventState.DISCARDED,
        "illegal_argument",
        "bad eid",
        "test data from the pilot",
    )
    assert state_of(store, held) is EventState.DISCARDED
    assert [state_of(store, i) for i in (done, in_flight, pending)] == [
        EventState.DONE,
        EventState.IN_FLIGHT,
        EventState.PENDING,
    ]
    assert store.count_by_state()[EventState.DISCARDED] == 2
    assert [e.id for e in store.list_events(state=EventState.DISCARDED)] == [held, dead_id]
    assert store.discard([dead_id], "again") == 0
    # ... until an operator undoes the discard by replaying it: pending again, its discard reason gone (audited)
    assert store.requeue([dead_id], NOW) == 1
    undone = store.get_event(dead_id)
    assert (undone.state, undone.discard_reason, undone.attempts) == (EventState.PENDING, None, 0)


def test_discarded_events_are_never_claimed_and_block_nobody(store: Store) -> None:
    [held] = store.enqueue([change("alice", 1)], state=EventState.HELD)
    store.discard([held], "superseded")
    [later] = store.enqueue([change("alice", 2)])

    assert claim_now(store).event_ids == (later,)
    assert store.claim("w1", NOW, LEASE) is None


def test_discard_needs_a_reason(store: Store) -> None:
    [held] = store.enqueue([change("alice")], state=EventState.HELD)

    with pytest.raises(ValueError, match="reason"):
        store.discard([held], "  ")

    assert state_of(store, held) is EventState.HELD


# --- finding events ---------------------------------------------------------------------------


def test_list_events_finds_a_user_by_external_id_or_user_name_ignoring_case(store: Store) -> None:
    alice = store.enqueue([change("u-1", n, userName="Alice.Smith@Example.com") for n in (1, 2)])
    store.enqueue([change("u-2", userName="bob@example.com"), change("u-3", userName=None)])

    assert [e.id for e in store.list_events(user="alice.smith@EXAMPLE.com")] == alice[::-1]
    assert [e.id for e in store.list_events(user="u-1")] == alice[::-1]
    assert [e.id for e in store.list_events(user="u-1", limit=1)] == alice[:0:-1]
    assert store.list_events(user="alice") == []
    assert store.list_events(user="u-1", state=EventState.DEAD) == []


def test_list_events_finds_a_user_as_source_slash_external_id_as_every_output_names_it(store: Store) -> None:
    dead(store, "u-4")
    alice = store.enqueue([change("u-1", n) for n in (1, 2)])
    [ldap] = store.enqueue([dataclasses.replace(change("u-1"), source="ldap")])
    [nested] = store.enqueue([dataclasses.replace(change("u-2"), source="hr/eu")])  # a source with a slash in it
    [slashed] = store.enqueue([change("u-3", userName="corp/carol")])  # a userName with a slash in it

    assert [e.id for e in store.list_events(user="scim/u-1")] == alice[::-1]
    assert [e.id for e in store.list_events(user="ldap/u-1")] == [ldap]
    assert [e.id for e in store.list_events(user="hr/eu/u-2")] == [nested]
    assert [e.id for e in store.list_events(user="corp/carol")] == [slashed]  # still its userName
    assert store.list_events(user="scim/u-") == [] and store.list_events(user="SCIM/u-1") == []
    assert store.count_by_state(user="scim/u-4")[EventState.DEAD] == 1
    assert store.dead_letter_summary(user="scim/u-4") == [("mapping", "no phone number", 1)]


def test_list_events_filters_by_source(store: Store) -> None:
    [scim] = store.enqueue([change("alice")])
    [ldap] = store.enqueue([dataclasses.replace(change("alice"), source="ldap")])

    assert [e.id for e in store.list_events(source="ldap")] == [ldap]
    assert [e.id for e in store.list_events(source="scim", user="alice")] == [scim]
    assert store.list_events(source="nowhere") == []


def test_list_events_since_shows_what_changed_after_a_moment(store: Store) -> None:
    old = store.enqueue([change("alice"), change("bob")])
    moment = pause()
    [new] = store.enqueue([change("carol")])

    assert [e.id for e in store.list_events(since=moment)] == [new]

    store.dead_letter(claim_now(store), "mapping", "no phone number")  # alice's event changes now
    assert [e.id for e in store.list_events(since=moment)] == [new, old[0]]
    assert [e.id for e in store.list_events(since=moment, state=EventState.DEAD)] == [old[0]]
    assert len(store.list_events(since=0)) == 3


def test_current_event_is_the_newest_not_held_or_discarded(store: Store) -> None:
    [done] = store.enqueue([change("alice", 1)])
    store.complete(claim_now(store), [], None)
    assert store.current_event("scim", "alice").id == done  # type: ignore[union-attr]

    dead_id = dead(store, "alice")
    [held] = store.enqueue([change("alice", 3)], state=EventState.HELD)
    current = store.current_event("scim", "alice")
    assert current is not None and (current.id, current.change.state["n"]) == (dead_id, 0)

    [pending] = store.enqueue([change("alice", 4)])
    assert store.current_event("scim", "alice").id == pending  # type: ignore[union-attr]
    [newest_held] = store.enqueue([change("alice", 5)], state=EventState.HELD)
    store.discard([held, newest_held], "not this one")
    assert store.current_event("scim", "alice").id == pending  # type: ignore[union-attr]

    store.enqueue([change("bob")], state=EventState.HELD)
    assert store.current_event("scim", "bob") is None
    assert store.current_event("ldap", "alice") is None
    assert store.current_event("scim", "nobody") is None


# --- metrics ----------------------------------------------------------------------------------


def test_dead_letter_summary_has_one_group_per_cause_with_the_newest_message_largest_first(store: Store) -> None:
    assert store.dead_letter_summary() == []
    for i in range(3):
        dead(store, f"m{i}", "mapping", f"no phone number for m{i}")
    for i in range(2):
        dead(store, f"t{i}", "transient", "timed out")
    dead(store, "x", "mapping", "two phone numbers")
    dead(store, "y", "illegal_argument", "bad eid")
    gone = dead(store, "z", "mapping", "no phone number")
    store.discard([gone], "left the company")
    [retrying] = store.enqueue([change("r")])
    store.retry(claim_now(store, now=NOW + 1_000_000), NOW + 2_000_000, "transient", "timed out")

    summary = store.dead_letter_summary()
    assert summary == [
        ("mapping", "two phone numbers", 4),
        ("transient", "timed out", 2),
        ("illegal_argument", "bad eid", 1),
    ]
    assert (summary[0].cause, summary[0].sample, summary[0].size) == ("mapping", "two phone numbers", 4)
    assert state_of(store, retrying) is EventState.PENDING


def test_summaries_and_counts_take_the_filters_of_list_events(store: Store) -> None:
    dead(store, "a", "mapping", "no phone number for a")
    dead(store, "b", "transient", "timed out")
    store.enqueue([change("c")], state=EventState.HELD)  # the LDAP mass-change guard's: no cause
    [other] = store.enqueue([dataclasses.replace(change("d"), source="ldap")])
    store.dead_letter(claim_now(store, now=NOW + 1_000_000), "mapping", "no phone number for d")

    assert store.dead_letter_summary(cause="mapping") == [("mapping", "no phone number for d", 2)]
    assert store.dead_letter_summary(source="scim") == [("mapping", "no phone number for a", 1),
                                                       ("transient", "timed out", 1)]
    assert store.dead_letter_summary(user="B@example.com") == [("transient", "timed out", 1)]
    assert store.dead_letter_summary(since=time.time() + 3600) == []
    assert store.held_summary(source="ldap") == []
    assert store.held_summary(cause="ldap_mass_change") == [("ldap_mass_change", "scim", 1, None)]
    assert [e.change.external_id for e in store.list_events(cause="ldap_mass_change")] == ["c"]
    counts = store.count_by_state(source="ldap")
    assert counts[EventState.DEAD] == 1 and sum(counts.values()) == 1
    assert store.count_by_state(cause="mapping")[EventState.DEAD] == 2
    assert store.get_event(other) is not None


def test_oldest_pending_at_covers_pending_and_in_flight_events(store: Store) -> None:
    assert store.oldest_pending_at() is None
    store.enqueue([change("done", accepted_at=T0 - 100)])
    store.complete(claim_now(store), [], None)
    store.enqueue([change("held", accepted_at=T0 - 50)], state=EventState.HELD)
    dead(store, "dead", accepted_at=T0 - 40)
    assert store.oldest_pending_at() is None

    store.enqueue([change("alice", accepted_at=T0 + 1), change("bob", accepted_at=T0 + 5)])
    alice = claim_now(store)
    assert alice.external_id == "alice"
    assert store.oldest_pending_at() == T0 + 1

    store.complete(alice, [], None)
    assert store.oldest_pending_at() == T0 + 5
    store.complete(claim_now(store), [], None)
    assert store.oldest_pending_at() is None


def test_a_replayed_or_approved_event_is_as_old_as_its_replay_not_its_first_acceptance(store: Store) -> None:
    """A paced replay of dead letters accepted long ago (or an approval of events held for hours) must not look
    like delivery falling behind: the oldest undelivered event counts from when it was due again."""
    first = dead(store, "old", accepted_at=T0)
    second = dead(store, "older", accepted_at=T0 - 500)
    [held] = store.enqueue([change("held", accepted_at=T0 - 900)], state=EventState.HELD)
    assert store.requeue([first, second], NOW, spacing=30.0) == 2
    assert store.oldest_pending_at() == NOW, "the first of a paced replay is due at once, the second 30 s later"
    store.complete(claim_now(store, now=NOW), [], None)
    assert store.oldest_pending_at() == NOW + 30.0
    assert store.requeue([held], NOW + 10, approve=True) == 1
    assert store.oldest_pending_at() == NOW + 10
    store.enqueue([change("new", accepted_at=NOW + 5)])
    assert store.oldest_pending_at() == NOW + 5, "a new event counts from its acceptance"


def test_list_audit_since_shows_only_the_later_entries(store: Store) -> None:
    first = store.add_audit("alice", "replay", [1], "fixed the mapping", {})
    moment = pause()
    second = store.add_audit("bob", "discard", [2], "test data", {})
    third = store.add_audit("bob", "discard", [3], "test data", {})

    assert [e.id for e in store.list_audit(since=moment)] == [third, second]
    assert [e.id for e in store.list_audit(1, since=moment)] == [third]
    assert [e.id for e in store.list_audit(since=time.time() + 60)] == []
    assert [e.id for e in store.list_audit()] == [third, second, first]


# --- readiness --------------------------------------------------------------------------------


def test_ping_succeeds_on_a_writable_store(store: Store) -> None:
    store.ping()
    store.ping()


def test_sqlite_ping_on_a_read_only_file_raises_store_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "connector.db"
    writer = SQLiteStore(str(path))
    writer.migrate()
    writer.ping()
    # Root ignores file modes, so the file is opened read-only, which SQLite treats the same way.
    connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite_backend.sqlite3, "connect", lambda path, **kw: connect(f"file:{path}?mode=ro", uri=True, **kw)
    )
    reader = SQLiteStore(str(path))
    try:
        assert reader.count_by_state()[EventState.PENDING] == 0, "reading still works"
        with pytest.raises(StoreError, match="writable") as error:
            reader.ping()
        assert str(path) in str(error.value)
    finally:
        reader.close()
        writer.close()


def test_postgres_ping_on_a_read_only_server_raises_store_error(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.create_schema()
    writer = PostgresStore(dsn)
    writer.migrate()
    standby_like = PostgresStore(f"{dsn}%20-cdefault_transaction_read_only%3Don")
    try:
        assert standby_like.count_by_state()[EventState.PENDING] == 0, "reading still works"
        with pytest.raises(StoreError, match="read-only"):
            standby_like.ping()
        writer.ping()
    finally:
        standby_like.close()
        writer.close()


def test_expedite_makes_only_the_backed_off_events_of_those_causes_due(store: Store) -> None:
    transport, general = store.enqueue([change("alice"), change("bob")])
    for user, cause in (("alice", "transport"), ("bob", "error_general")):
        claim = store.claim("w1", NOW, 30)
        assert claim is not None and claim.external_id == user
        store.retry(claim, NOW + 600, cause, "failed")

    assert store.expedite(["transport", "http_5xx"], NOW + 1) == 1
    assert store.get_event(transport).next_attempt_at == NOW + 1
    assert store.get_event(general).next_attempt_at == NOW + 600


def test_open_breakers_are_recorded_per_instance_and_go_when_closed(store: Store) -> None:
    store.note_breaker("host-a", NOW, None, "HTTP 503")
    store.note_breaker("host-b", NOW + 5, None, "refused")
    store.note_breaker("host-a", NOW, NOW + 10, "still 503")
    store.note_breaker("host-b", None)
    [breaker] = store.open_breakers()
    assert (breaker.instance, breaker.opened_at, breaker.probed_at, breaker.error) == ("host-a", NOW, NOW + 10,
                                                                                      "still 503")
