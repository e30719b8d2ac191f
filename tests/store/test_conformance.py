"""The store contract (connector/store/base.py), checked on every backend.

Times are explicit: events are accepted at T0 and claims run at NOW unless a test says otherwise.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import random
import sqlite3
import threading
import time
from typing import Any

import pytest

from connector.events import UserChange
from connector.records import ExtensionRecord
from connector.store import Claim, DriftFailure, DriftRun, EventState, Store, StoreError
from connector.store import sqlite as sqlite_backend
from connector.store.queries import migrations
from connector.store.sqlite import SQLiteStore
from tests.plugins.stores import Opener

T0 = 1_000.0
NOW = 2_000.0
LEASE = 60.0


def change(user: str, n: int = 0, *, idem_key: str | None = None, accepted_at: float = T0, **state: Any) -> UserChange:
    return UserChange(
        source="scim",
        external_id=user,
        kind="upsert",
        state={"userName": f"{user}@example.com", "n": n, **state},
        accepted_at=accepted_at,
        cause="scim:PUT",
        idem_key=idem_key,
    )


def record(extension: str, user_id: int = 7, **fields: Any) -> ExtensionRecord:
    values: dict[str, Any] = {
        "recording_mode": "FULL",
        "voice": True,
        "im": False,
        "video": False,
        "screen_capture_enabled": False,
    }
    values.update(fields)
    return ExtensionRecord(extension=extension, user_id=user_id, eid="0000", **values)


def claim_now(store: Store, now: float = NOW, owner: str = "w1") -> Claim:
    claim = store.claim(owner, now, LEASE)
    assert claim is not None, "expected a claimable user"
    return claim


def state_of(store: Store, event_id: int) -> EventState:
    event = store.get_event(event_id)
    assert event is not None
    return event.state


# --- intake -----------------------------------------------------------------------------------


def test_enqueue_stores_each_change_as_pending_and_returns_ids_in_order(store: Store) -> None:
    changes = [change("alice", 1, idem_key="k1"), change("bob", 2, accepted_at=T0 + 1)]
    ids = store.enqueue(changes)

    assert len(ids) == 2 and ids[0] < ids[1]
    for event_id, original in zip(ids, changes, strict=True):
        event = store.get_event(event_id)
        assert event is not None
        assert event.change == original
        assert event.state is EventState.PENDING
        assert event.attempts == 0
        assert event.next_attempt_at == original.accepted_at
        assert event.last_cause is None and event.last_error is None
    assert store.get_event(ids[-1] + 1000) is None


def test_enqueue_is_all_or_nothing_when_a_state_is_not_json(store: Store) -> None:
    batch = [change("alice", 1), change("bob", 2), change("carol", 3, photo=object())]

    with pytest.raises(ValueError, match="carol"):
        store.enqueue(batch)

    assert store.list_events() == []
    assert sum(store.count_by_state().values()) == 0
    assert len(store.enqueue(batch[:2])) == 2


def test_enqueue_skips_a_repeated_idem_key(store: Store) -> None:
    first = store.enqueue([change("alice", 1, idem_key="scim-req-1"), change("bob", 1, idem_key="scim-req-2")])
    again = store.enqueue(
        [
            change("alice", 99, idem_key="scim-req-1"),
            change("carol", 1, idem_key="scim-req-3"),
            change("carol", 2, idem_key="scim-req-3"),
        ]
    )
    without_key = store.enqueue([change("dave", 1), change("dave", 2)])

    assert len(first) == 2
    assert len(again) == 1 and again[0] > first[-1]
    assert len(without_key) == 2
    assert store.count_by_state()[EventState.PENDING] == 5
    kept = store.get_event(first[0])
    assert kept is not None and kept.change.state["n"] == 1
    only_carol = store.get_event(again[0])
    assert only_carol is not None and only_carol.change.state["n"] == 1


def test_held_events_wait_until_requeued(store: Store) -> None:
    [held] = store.enqueue([change("alice")], state=EventState.HELD)

    assert state_of(store, held) is EventState.HELD
    assert store.claim("w1", NOW, LEASE) is None
    assert store.requeue([held], NOW) == 1
    assert claim_now(store).event_ids == (held,)


# --- claiming: order, coalescing, per-user exclusion ------------------------------------------


def test_claim_takes_the_oldest_user_first_with_all_their_pending_events(store: Store) -> None:
    a1, b1, a2 = store.enqueue([change("alice", 1), change("bob", 1), change("alice", 2)])

    first = claim_now(store)
    second = claim_now(store)

    assert (first.external_id, first.event_ids, first.latest.id) == ("alice", (a1, a2), a2)
    assert (second.external_id, second.event_ids) == ("bob", (b1,))
    assert store.claim("w1", NOW, LEASE) is None


def test_a_claim_carries_the_user_s_current_state_verba_id_and_last_pushed_records(store: Store) -> None:
    store.enqueue([change("alice", 1)])
    store.complete(claim_now(store), [record("100"), record("101", voice=False)], 7)
    [pending] = store.enqueue([change("alice", 2)])

    claim = claim_now(store)

    assert claim.event_ids == (pending,)
    # The newest event neither held nor discarded: the state to push.
    assert claim.current is not None and (claim.current.id, claim.current.change.state["n"]) == (pending, 2)
    assert claim.verba_user_id == 7
    assert claim.pushed == (record("100"), record("101", voice=False))
    store.enqueue([change("bob", 1)])
    bob = claim_now(store)
    assert (bob.current == bob.latest, bob.verba_user_id, bob.pushed) == (True, None, ())


def test_a_busy_worker_s_claim_claims_as_any_other(store: Store) -> None:
    """`busy=True` (which only skips the look first) claims as a first claim does: the same users in the same
    order, expired leases included, and nothing when nothing is due."""
    a1, b1 = store.enqueue([change("alice", 1), change("bob", 1)])

    first = store.claim("w1", NOW, LEASE, busy=True)
    second = store.claim("w2", NOW, LEASE, busy=True)

    assert (first and first.event_ids, second and second.event_ids) == ((a1,), (b1,))
    assert store.claim("w1", NOW, LEASE, busy=True) is None
    again = store.claim("w3", NOW + LEASE + 1, LEASE, busy=True)  # alice's and bob's leases expired
    assert again is not None and (again.event_ids, again.attempts) == ((a1,), 2)


def test_users_are_served_in_the_order_their_head_event_became_due(store: Store) -> None:
    store.enqueue([change("late", accepted_at=T0 + 50)])
    [early] = store.enqueue([change("early", accepted_at=T0)])

    assert claim_now(store).event_ids == (early,)


def test_fifty_changes_of_one_user_coalesce_into_one_claim_of_the_latest_state(store: Store) -> None:
    [bob] = store.enqueue([change("bob", 0)])
    ids = store.enqueue([change("alice", n) for n in range(50)])

    assert claim_now(store).event_ids == (bob,)
    claim = claim_now(store)

    assert claim.event_ids == tuple(ids)
    assert claim.latest.id == ids[-1]
    assert claim.latest.change.state["n"] == 49
    assert claim.latest.state is EventState.IN_FLIGHT
    assert claim.attempts == 1
    assert all(state_of(store, i) is EventState.IN_FLIGHT for i in ids)


def test_a_user_with_an_event_in_flight_is_not_claimed_again(store: Store) -> None:
    [first_id] = store.enqueue([change("alice", 1)])
    first = claim_now(store)
    [later_id] = store.enqueue([change("alice", 2)])

    assert store.claim("w2", NOW, LEASE) is None
    assert state_of(store, later_id) is EventState.PENDING

    store.complete(first, [], None)
    second = claim_now(store, owner="w2")
    assert first.event_ids == (first_id,)
    assert second.event_ids == (later_id,)


def test_events_accepted_in_the_future_are_not_due_yet(store: Store) -> None:
    [event_id] = store.enqueue([change("alice", accepted_at=NOW + 10)])

    assert store.claim("w1", NOW, LEASE) is None
    assert claim_now(store, now=NOW + 10).event_ids == (event_id,)


def test_backoff_blocks_its_user_but_not_others(store: Store) -> None:
    a1, a2 = store.enqueue([change("alice", 1), change("alice", 2)])
    store.retry(claim_now(store), NOW + 100, "transient", "connection reset")
    [a3] = store.enqueue([change("alice", 3, accepted_at=NOW)])
    [b1] = store.enqueue([change("bob", 1, accepted_at=NOW)])

    bob = claim_now(store, now=NOW + 1)
    assert bob.event_ids == (b1,)
    assert store.claim("w1", NOW + 1, LEASE) is None, "alice's oldest event is still backing off"
    store.complete(bob, [], None)

    alice = claim_now(store, now=NOW + 100)
    assert alice.event_ids == (a1, a2, a3)
    assert alice.latest.id == a3
    assert alice.attempts == 2


def test_held_dead_and_done_events_are_never_claimed_and_dead_and_done_ones_block_nobody(store: Store) -> None:
    [done] = store.enqueue([change("alice", 1)])
    store.complete(claim_now(store), [], None)
    [dead] = store.enqueue([change("alice", 2)])
    store.dead_letter(claim_now(store), "illegal_argument", "bad eid")
    [pending] = store.enqueue([change("alice", 3)])
    [held] = store.enqueue([change("alice", 4)], state=EventState.HELD)
    assert store.claim("w1", NOW, LEASE) is None  # a held event holds its user back (below)
    assert store.discard([held], "not intended") == 1

    claim = claim_now(store)

    assert claim.event_ids == (pending,)
    assert claim.current is not None and claim.current.id == pending
    assert (state_of(store, done), state_of(store, dead), state_of(store, held)) == (
        EventState.DONE,
        EventState.DEAD,
        EventState.DISCARDED,
    )


# --- a held event holds back its user's later events ------------------------------------------


def held_user(store: Store) -> tuple[int, int, int, int]:
    """alice: a done event, a held one (a guard stopped it), then two later changes; bob: one change. Their ids."""
    [done] = store.enqueue([change("alice", 1)])
    store.complete(claim_now(store), [record("100")], 7)
    [held] = store.enqueue([change("alice", 2, active=False)], state=EventState.HELD)
    later = store.enqueue([change("alice", 3, active=False), change("alice", 4, active=False)])
    return done, held, *later


def test_a_held_event_holds_back_its_user_s_later_events(store: Store) -> None:
    """A guard held alice's stop: her later changes must not push her state past it before an operator decides."""
    done, held, a3, a4 = held_user(store)
    [bob] = store.enqueue([change("bob", 1)])

    bobs = claim_now(store)
    assert bobs.event_ids == (bob,)  # others go on
    store.complete(bobs, [], None)
    assert store.claim("w1", NOW + 10_000, LEASE) is None  # alice waits, however long
    assert store.claim("w1", NOW + 10_000, LEASE, busy=True) is None
    assert (state_of(store, a3), state_of(store, a4), state_of(store, held)) == (
        EventState.PENDING, EventState.PENDING, EventState.HELD)
    # Visible: each waiting event names the held one, and they are counted apart from the undelivered ones.
    assert [store.get_event(i).waits_behind for i in (done, held, a3, a4)] == [None, None, held, held]
    assert {e.id: e.waits_behind for e in store.list_events(user="alice")} == {
        done: None, held: None, a3: held, a4: held}
    assert store.waiting_behind_held() == (2, 1)
    assert store.oldest_pending_at() is None  # they wait for an operator, as the held one does
    store.enqueue([change("carol", accepted_at=T0 + 7)])  # accepted after alice's, and the oldest that is delivered
    assert store.oldest_pending_at() == T0 + 7
    # The user's current state for replays and drift is still the newest (what the approval would push).
    current = store.current_event("scim", "alice")
    assert current is not None and current.id == a4


def test_an_approved_held_event_is_claimed_with_the_later_events_and_pushes_the_newest_state_once(
        store: Store) -> None:
    _, held, a3, a4 = held_user(store)

    assert store.requeue([held], NOW, approve=True) == 1
    claim = claim_now(store)

    assert claim.event_ids == (held, a3, a4)
    assert claim.latest.id == a4 and claim.current is not None and claim.current.id == a4
    assert store.waiting_behind_held() == (0, 0)
    store.complete(claim, [record("100", voice=False)], 7)
    assert {state_of(store, i) for i in (held, a3, a4)} == {EventState.DONE}
    assert store.claim("w1", NOW, LEASE) is None


def test_a_discarded_held_event_lets_the_later_events_go_on_their_own(store: Store) -> None:
    _, held, a3, a4 = held_user(store)

    assert store.discard([held], "not a leaver: HR's mistake") == 1
    claim = claim_now(store)

    assert claim.event_ids == (a3, a4)
    assert claim.current is not None and claim.current.id == a4
    assert store.get_event(a3).waits_behind is None and store.waiting_behind_held() == (0, 0)


def test_events_before_a_held_one_wait_for_it_too(store: Store) -> None:
    """An LDAP mass-change guard holds a delete behind a pending change, or a replay queues a dead letter older than
    a held change: pushed, it would push a state older than the held change (a stop a replayed old leave sends to a
    user back at work). Every event of the user waits for the operator; an approval pushes the newest state once."""
    [before] = store.enqueue([change("alice", 1)])
    [held] = store.enqueue([change("alice", 2)], state=EventState.HELD)
    [after] = store.enqueue([change("alice", 3)])

    assert store.claim("w1", NOW, LEASE) is None
    assert store.get_event(before).waits_behind == held and store.get_event(after).waits_behind == held
    assert store.requeue([held], NOW, approve=True) == 1
    claim = claim_now(store)
    assert claim.event_ids == (before, held, after)
    assert claim.current is not None and claim.current.id == after


def test_a_change_that_arrives_while_its_push_is_held_waits_behind_it(store: Store) -> None:
    """The stop-recording guard holds a claim: a change of the user accepted meanwhile must not deliver the stop."""
    [stop] = store.enqueue([change("alice", 1, active=False)])
    claim = claim_now(store)
    [meanwhile] = store.enqueue([change("alice", 2, active=False)])
    store.hold(claim, "stop_recording_guard", "would stop too many")

    assert store.claim("w1", NOW + 400, LEASE) is None
    assert store.get_event(meanwhile).waits_behind == stop
    assert store.requeue([stop], NOW + 400, approve=True) == 1
    assert claim_now(store, now=NOW + 400).event_ids == (stop, meanwhile)


# --- leases -----------------------------------------------------------------------------------


def test_an_expired_lease_is_claimed_again_and_the_old_claim_can_no_longer_settle(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    stale = store.claim("w1", NOW, 10)
    assert stale is not None

    assert store.claim("w2", NOW + 5, 10) is None
    assert store.claim("w2", NOW + 10, 10) is None, "a lease is valid up to and including lease_until"
    fresh = store.claim("w2", NOW + 11, 10)
    assert fresh is not None
    assert (fresh.event_ids, fresh.owner, fresh.attempts) == ((event_id,), "w2", 2)

    store.complete(stale, [record("+15551230001")], 7)
    store.retry(stale, NOW + 500, "transient", "late")
    store.dead_letter(stale, "illegal_argument", "late")
    assert state_of(store, event_id) is EventState.IN_FLIGHT
    assert store.pushed_extensions("scim", "alice") == []
    assert store.verba_user_id("scim", "alice") is None

    store.complete(fresh, [record("+15551230001")], 7)
    assert state_of(store, event_id) is EventState.DONE
    assert store.verba_user_id("scim", "alice") == 7


def test_a_worker_may_still_settle_after_its_lease_time_if_nobody_reclaimed(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    claim = store.claim("w1", NOW, 10)
    assert claim is not None

    store.complete(claim, [], None)

    assert state_of(store, event_id) is EventState.DONE


def test_release_leases_returns_every_in_flight_event_to_pending(store: Store) -> None:
    ids = store.enqueue([change("alice", 1), change("alice", 2), change("bob", 1)])
    alice, bob = claim_now(store), claim_now(store)

    assert store.release_leases() == 3
    assert all(state_of(store, i) is EventState.PENDING for i in ids)
    assert store.release_leases() == 0

    again = claim_now(store, owner="w2")
    assert again.event_ids == alice.event_ids and again.attempts == 2
    store.complete(bob, [], None)
    assert state_of(store, bob.event_ids[0]) is EventState.PENDING


# --- settling: retry, dead letters, requeue ---------------------------------------------------


def test_retry_keeps_cause_and_error_and_attempts_count_every_claim(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])

    for attempt in (1, 2, 3):
        claim = claim_now(store, now=NOW + attempt * 10)
        assert claim.attempts == attempt
        store.retry(claim, NOW + attempt * 10 + 5, "transient", f"timeout #{attempt}")

    event = store.get_event(event_id)
    assert event is not None
    assert event.state is EventState.PENDING
    assert event.attempts == 3
    assert event.next_attempt_at == NOW + 35
    assert (event.last_cause, event.last_error) == ("transient", "timeout #3")
    assert store.claim("w1", NOW + 34, LEASE) is None


def test_dead_letters_stay_until_requeued_with_attempts_reset(store: Store) -> None:
    [dead] = store.enqueue([change("alice")])
    store.dead_letter(claim_now(store), "illegal_argument", "ERROR_ILLEGAL_ARGUMENT: eid")
    [done] = store.enqueue([change("bob")])
    store.complete(claim_now(store), [], None)
    [pending] = store.enqueue([change("carol")])

    dead_events = store.list_events(state=EventState.DEAD)
    assert [e.id for e in dead_events] == [dead]
    assert (dead_events[0].last_cause, dead_events[0].last_error) == ("illegal_argument", "ERROR_ILLEGAL_ARGUMENT: eid")
    carol = claim_now(store, now=NOW + 10_000)
    assert carol.event_ids == (pending,)
    assert state_of(store, dead) is EventState.DEAD

    assert store.requeue([dead, done, pending, 999_999], NOW + 20_000) == 1
    requeued = store.get_event(dead)
    assert requeued is not None
    assert (requeued.state, requeued.attempts, requeued.next_attempt_at) == (EventState.PENDING, 0, NOW + 20_000)
    assert state_of(store, done) is EventState.DONE
    assert state_of(store, pending) is EventState.IN_FLIGHT
    store.complete(carol, [], None)
    assert store.claim("w1", NOW + 19_999, LEASE) is None
    assert claim_now(store, now=NOW + 20_000).attempts == 1


# --- per-user projection ----------------------------------------------------------------------


def test_complete_replaces_the_pushed_extensions_and_remembers_the_user_id(store: Store) -> None:
    old = [record("+15551230001"), record("+15551230002", recording_mode="ON_DEMAND")]
    ids = store.enqueue([change("alice", 1), change("bob", 1)])
    store.complete(claim_now(store), old, 7)
    store.complete(claim_now(store), [record("+15559990000", user_id=8)], 8)

    assert store.pushed_extensions("scim", "alice") == old
    assert store.verba_user_id("scim", "alice") == 7
    assert all(state_of(store, i) is EventState.DONE for i in ids)

    store.enqueue([change("alice", 2)])
    new = [record("+15551230002", recording_mode="FULL", voice=False)]
    store.complete(claim_now(store), new, None)

    assert store.pushed_extensions("scim", "alice") == new
    assert store.verba_user_id("scim", "alice") == 7
    assert store.pushed_extensions("scim", "bob") == [record("+15559990000", user_id=8)]
    assert store.verba_user_id("scim", "nobody") is None
    assert store.pushed_extensions("scim", "nobody") == []


def test_stored_users_reads_for_many_users_at_once_what_the_single_reads_give(store: Store) -> None:
    pushed = [record("+15551230002"), record("+15551230001", recording_mode="ON_DEMAND")]
    store.enqueue([change("alice", 1), change("bob", 1)])
    store.complete(claim_now(store), pushed, 7)
    store.complete(claim_now(store), [], 8)
    store.enqueue([change("alice", 2)], state=EventState.HELD)  # not current: the done event stays so
    store.enqueue([dataclasses.replace(change("carol"), source="ldap")])
    keys = [("scim", "bob"), ("ldap", "carol"), ("scim", "nobody"), ("scim", "alice")]

    found = store.stored_users(keys)

    assert [(u.source, u.external_id) for u in found] == keys
    assert [(u.current, u.verba_user_id, u.pushed) for u in found] == [
        (store.current_event(*key), store.verba_user_id(*key), store.pushed_extensions(*key)) for key in keys]
    assert found[3].pushed == pushed and found[3].current is not None and found[3].current.change.state["n"] == 1
    assert found[1].current is not None and found[2].current is None and found[2].pushed == []


def test_a_delivered_push_supersedes_the_user_s_older_dead_letters(store: Store) -> None:
    """hank's create was refused (dead); his next change was delivered: nothing is left to deliver for the dead
    letter, and status --check must not page for it forever."""
    [refused] = store.enqueue([change("hank", 1)])
    store.dead_letter(claim_now(store), "error_illegal_argument", "refused")
    [bob_dead] = store.enqueue([change("bob", 1)])
    store.dead_letter(claim_now(store), "mapping", "bad number")
    [later] = store.enqueue([change("hank", 2)])

    store.complete(claim_now(store), [], None)

    superseded = store.get_event(refused)
    assert superseded is not None and superseded.state is EventState.DISCARDED
    assert superseded.discard_reason == (f"superseded: event {later} is done, Verba in step with the user's "
                                         f"current state (event {later}'s), all a replay of this one would send")
    assert (superseded.last_cause, superseded.last_error) == ("error_illegal_argument", "refused")  # kept
    assert store.get_event(bob_dead).state is EventState.DEAD  # another user's
    [entry] = store.audit_of_event(refused)
    assert (entry.actor, entry.action, entry.event_ids) == ("connector", "supersede", (refused,))
    assert store.dead_letter_summary()[0].cause == "mapping"


def test_complete_rejects_an_extension_listed_twice_and_changes_nothing(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    claim = claim_now(store)

    with pytest.raises(ValueError, match=r"\+15551230001"):
        store.complete(claim, [record("+15551230001"), record("+15551230001")], 7)

    assert state_of(store, event_id) is EventState.IN_FLIGHT
    assert store.pushed_extensions("scim", "alice") == []


# --- reading and audit ------------------------------------------------------------------------


def test_count_by_state_names_every_state(store: Store) -> None:
    assert store.count_by_state() == {state: 0 for state in EventState}

    store.enqueue([change("alice", 1), change("alice", 2), change("bob")])
    store.enqueue([change("carol")], state=EventState.HELD)
    claim_now(store)

    assert store.count_by_state() == {
        EventState.PENDING: 1,
        EventState.IN_FLIGHT: 2,
        EventState.DONE: 0,
        EventState.DEAD: 0,
        EventState.HELD: 1,
        EventState.DISCARDED: 0,
    }


def test_list_events_is_newest_first_and_filters_by_state_and_cause(store: Store) -> None:
    ids = store.enqueue([change(f"user{i}") for i in range(5)])
    store.dead_letter(claim_now(store), "mapping", "no phone number")
    store.dead_letter(claim_now(store), "illegal_argument", "bad eid")

    assert [e.id for e in store.list_events()] == ids[::-1]
    assert [e.id for e in store.list_events(limit=2)] == ids[:2:-1]
    assert [e.id for e in store.list_events(state=EventState.DEAD)] == [ids[1], ids[0]]
    assert [e.id for e in store.list_events(cause="mapping")] == [ids[0]]
    assert [e.id for e in store.list_events(state=EventState.PENDING, cause="mapping")] == []


def test_audit_entries_read_back_newest_first(store: Store) -> None:
    detail = {"filter": {"cause": "mapping"}, "count": 2}
    first = store.add_audit("alice", "replay", [3, 4], "fixed the mapping", detail)
    second = store.add_audit("bob", "discard", [], "test data", {})

    entries = store.list_audit()

    assert [e.id for e in entries] == [second, first]
    assert (entries[1].actor, entries[1].action, entries[1].event_ids, entries[1].reason) == (
        "alice",
        "replay",
        (3, 4),
        "fixed the mapping",
    )
    assert entries[1].detail == detail
    assert entries[0].at >= entries[1].at > 0
    assert [e.id for e in store.list_audit(limit=1)] == [second]


def test_the_audit_of_an_event_is_every_entry_that_names_it_oldest_first(store: Store) -> None:
    replayed = store.add_audit("alice", "replay", [3, 34], "fixed the mapping", {})
    left_alone = store.add_audit("connector", "left_alone", [34], "Verba shows it linked to Verba user 9", {})
    store.add_audit("bob", "discard", [4], "test data", {})

    assert [e.id for e in store.audit_of_event(34)] == [replayed, left_alone]
    assert [e.id for e in store.audit_of_event(3)] == [replayed]  # 3 is not 34's prefix
    assert store.audit_of_event(5) == []


def test_data_survives_close_and_reopen(store_opener: Opener) -> None:
    store = store_opener()
    done, pending = store.enqueue([change("alice", 1, idem_key="k1"), change("bob", 1)])
    store.complete(claim_now(store), [record("+15551230001")], 7)
    audit_id = store.add_audit("ops", "replay", [done], "test", {"n": 1})
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.count_by_state()

    reopened = store_opener()
    assert state_of(reopened, done) is EventState.DONE
    assert state_of(reopened, pending) is EventState.PENDING
    assert reopened.pushed_extensions("scim", "alice") == [record("+15551230001")]
    assert reopened.verba_user_id("scim", "alice") == 7
    assert [e.id for e in reopened.list_audit()] == [audit_id]
    assert reopened.enqueue([change("alice", 2, idem_key="k1")]) == []


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_workers_never_share_a_user_and_keep_each_users_order(store: Store) -> None:
    users = [f"user{i:02}" for i in range(20)]
    rng = random.Random(7)
    plan = [rng.choice(users) for _ in range(500)]
    enqueued: dict[str, list[int]] = collections.defaultdict(list)
    claimed: dict[str, list[tuple[int, ...]]] = collections.defaultdict(list)
    in_flight: set[str] = set()
    problems: list[str] = []
    lock = threading.Lock()
    producing = threading.Event()
    producing.set()

    def produce() -> None:
        try:
            for n, user in enumerate(plan):  # arriving while earlier changes are being pushed
                [event_id] = store.enqueue([change(user, n)])
                enqueued[user].append(event_id)
                time.sleep(0.0005)
        finally:
            producing.clear()

    def work(owner: str) -> None:
        try:
            while True:
                still_producing = producing.is_set()
                claim = store.claim(owner, NOW, LEASE)
                if claim is None:
                    if not still_producing:
                        return
                    time.sleep(0.0005)
                    continue
                with lock:
                    if claim.external_id in in_flight:
                        problems.append(f"{claim.external_id} claimed by {owner} while in flight elsewhere")
                    in_flight.add(claim.external_id)
                    claimed[claim.external_id].append(claim.event_ids)
                time.sleep(0.003)  # the push
                with lock:
                    in_flight.discard(claim.external_id)
                store.complete(claim, [], None)
        except Exception as error:  # surfaced below; a thread cannot fail the test itself
            problems.append(f"{owner}: {error!r}")

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    threads.append(threading.Thread(target=produce))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert problems == []
    assert not any(thread.is_alive() for thread in threads)
    for user in users:
        in_claim_order = [event_id for ids in claimed[user] for event_id in ids]
        assert in_claim_order == enqueued[user], f"{user}'s events were not pushed once each, in order"
    assert store.count_by_state()[EventState.DONE] == len(plan)
    assert sum(len(batches) for batches in claimed.values()) > len(users), "workers never overlapped the producer"


# --- SQLite specifics -------------------------------------------------------------------------


def test_sqlite_file_is_in_wal_mode_with_full_sync_by_default(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dir" / "connector.db"  # its directory is made: its parent exists
    full = SQLiteStore(str(path))
    normal = SQLiteStore(str(path), synchronous="normal")
    try:
        full.migrate()
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            versions = [(n,) for n in range(1, len(migrations("sqlite")) + 1)]
            assert raw.execute("SELECT version FROM schema_version").fetchall() == versions
            indexes = {
                tuple(column[2] for column in raw.execute(f"PRAGMA index_info({index[1]})"))
                for index in raw.execute("PRAGMA index_list(events)")
            }
        assert {("state", "next_attempt_at", "id"), ("source", "external_id", "state", "id")} <= indexes
        assert full._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert normal._connection().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert full._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert full._connection().execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        full.close()
        normal.close()


def test_sqlite_migrate_is_idempotent_and_required(tmp_path: pathlib.Path) -> None:
    store = SQLiteStore(str(tmp_path / "connector.db"))
    try:
        with pytest.raises(StoreError, match="db upgrade"):
            store.enqueue([change("alice")])
        store.migrate()
        [event_id] = store.enqueue([change("alice")])
        store.migrate()
        assert state_of(store, event_id) is EventState.PENDING
    finally:
        store.close()


def test_sqlite_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="FULL, NORMAL"):
        SQLiteStore("x.db", synchronous="OFF")
    with pytest.raises(ValueError, match="file path"):
        SQLiteStore(":memory:")


def test_sqlite_unwritable_location_names_the_file_and_the_fix(tmp_path: pathlib.Path) -> None:
    (tmp_path / "not-a-dir").write_text("a file where a directory should be")
    path = tmp_path / "not-a-dir" / "connector.db"

    with pytest.raises(StoreError, match="writable") as error:
        SQLiteStore(str(path))
    assert str(path) in str(error.value)


def test_sqlite_file_that_is_not_a_database_is_reported(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "connector.db"
    path.write_bytes(b"this is not sqlite" * 300)

    with pytest.raises(StoreError, match="not a usable SQLite store") as error:
        SQLiteStore(str(path))
    assert str(path) in str(error.value)


def test_sqlite_locked_database_says_what_to_do(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_backend, "BUSY_TIMEOUT_SECONDS", 0.2)
    path = tmp_path / "connector.db"
    store = SQLiteStore(str(path))
    store.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="one connector per SQLite file") as error:
            store.enqueue([change("alice")])
        assert str(path) in str(error.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(store.enqueue([change("alice")])) == 1, "the failed transaction must not be left open"
    store.close()


def test_events_are_counted_by_source_and_kind(store):
    from connector.events import UserChange

    store.enqueue(
        [
            UserChange("scim", "1", "upsert", {"userName": "a"}),
            UserChange("scim", "2", "upsert", {"userName": "b"}),
            UserChange("ldap", "3", "delete", {"userName": "c"}),
        ]
    )
    assert store.count_by_source_and_kind() == [("ldap", "delete", 1), ("scim", "upsert", 2)]


def test_held_events_are_summed_by_cause_and_source(store: Store) -> None:
    store.enqueue([change("alice"), change("bob")], state=EventState.HELD)  # held by the LDAP guard: no cause
    store.enqueue([change("carol")])
    store.hold(claim_now(store), "stop_recording_guard", "over the limit")
    assert store.held_summary() == [("ldap_mass_change", "scim", 2, None),
                                    ("stop_recording_guard", "scim", 1, "over the limit")]


def test_connections_of_ended_threads_are_closed(store: Store) -> None:
    """Threads come and go (a lease keeper per push, a drift check's pool): their connections must not pile up."""
    for _ in range(12):
        thread = threading.Thread(target=store.count_by_state)
        thread.start()
        thread.join()
    store.count_by_state()  # this thread's connection
    assert len(store._connections) <= 3, store._connections


def test_a_failed_drift_check_is_the_last_failure_until_a_check_is_recorded_after_it(store: Store) -> None:
    assert store.last_drift_failure() is None
    store.add_drift_run(DriftRun(100.0, 110.0, 1, 1, {"missing": 0}, 0, None, "schedule"))
    store.add_drift_failure(DriftFailure(200.0, 203.0, "Verba answered HTTP 500"))
    store.add_drift_failure(DriftFailure(300.0, 301.0, "database is locked"))
    assert store.last_drift_failure() == DriftFailure(300.0, 301.0, "database is locked")
    with store._read() as conn:  # only the newest is kept: a check failing every minute for weeks grows nothing
        assert conn.execute("SELECT count(*) AS n FROM drift_failures").fetchone()["n"] == 1
    store.add_drift_run(DriftRun(400.0, 410.0, 1, 1, {"missing": 0}, 0, None, "cli"))
    assert store.last_drift_failure() is None
