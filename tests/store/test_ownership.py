"""The ownership part of the store contract (connector/store/ownership.py), checked on every backend.

Claim index, extension locks, recorded owners, open conflicts, and the stop-recording window,
as the delivery worker relies on them. Pushes run at NOW and lock until NOW + LEASE unless a test
says otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from connector.events import UserChange
from connector.store import Claim, EventState, Store, StoredEvent
from connector.store.ownership import (
    Claimant,
    Conflict,
    ExtensionsBusy,
    PushFinish,
    PushPlan,
    StopRecordingBurst,
    StopRecordingHeld,
    StopRecordingWindow,
)

T0 = 1_000.0
NOW = 2_000.0
LEASE = 60.0
WINDOW = 300.0


# --- helpers ----------------------------------------------------------------------------------


def claimant(external_id: str, verba_user_id: int | None = None, *, source: str = "scim",
             login: str | None = None, claimed_at: float = T0) -> Claimant:
    """A source user; by default Verba user 1000 + n for "u<n>", and login "<id>@example.com"."""
    if verba_user_id is None:
        digits = "".join(ch for ch in external_id if ch.isdigit())
        verba_user_id = 1000 + int(digits or 0)
    return Claimant(source, external_id, verba_user_id, login or f"{external_id}@example.com", claimed_at)


def begin(store: Store, owner: str, who: Claimant, wanted: Sequence[str], touched: Sequence[str] | None = None,
          *, now: float = NOW) -> PushPlan:
    """Lock and claim like a push does: `touched` defaults to `wanted`."""
    return store.begin_push(owner, now + LEASE, now, who, list(wanted),
                            list(wanted if touched is None else touched))


def push(store: Store, who: Claimant, wanted: Sequence[str], touched: Sequence[str] | None = None, *,
         owner: str = "w1", owners: dict[str, int | None] | None = None,
         conflicts: Sequence[Conflict] = (), now: float = NOW) -> PushPlan:
    """A whole push (begin, then finish releasing what the plan released); returns the plan."""
    plan = begin(store, owner, who, wanted, touched, now=now)
    store.finish_push(owner, who, owners or {}, conflicts, plan.released)
    return plan


def enqueue(store: Store, who: Claimant, *, state: EventState = EventState.PENDING) -> int:
    [event_id] = store.enqueue([UserChange(who.source, who.external_id, "upsert",
                                           {"userName": who.login_name}, accepted_at=T0, cause="test")],
                               state=state)
    return event_id


def conflict(who: Claimant, extension: str, event_id: int, *, since: float = NOW,
             holder: Claimant | None = None) -> Conflict:
    return Conflict(
        extension=extension,
        claimant=who,
        event_id=event_id,
        owner_user_id=holder.verba_user_id if holder else 4242,
        owner_login=holder.login_name if holder else "stranger@example.com",
        owner_claimant=holder.name if holder else None,
        message=f"{extension} is held by another Verba user",
        since=since,
    )


def event(store: Store, event_id: int) -> StoredEvent:
    stored = store.get_event(event_id)
    assert stored is not None
    return stored


def claim_of(store: Store, owner: str = "w1", now: float = NOW) -> Claim:
    claim = store.claim(owner, now, LEASE)
    assert claim is not None, "expected a claimable user"
    return claim


# --- locks ------------------------------------------------------------------------------------


def test_a_push_locks_its_extensions_and_a_busy_push_changes_nothing(store: Store) -> None:
    alice, bob = claimant("u1"), claimant("u2", claimed_at=T0 + 1)
    begin(store, "w1", alice, ["200"])

    with pytest.raises(ExtensionsBusy):
        begin(store, "w2", bob, ["100", "200", "300"])  # "100" sorts first: its lock must be rolled back too

    third = begin(store, "w3", claimant("u3"), ["100", "300"])  # the busy push left nothing locked
    assert third.rivals == {"100": [], "300": []}  # and claimed nothing
    again = begin(store, "w1", alice, ["200"])  # the same owner may lock again
    assert (again.rivals, again.released) == ({"200": []}, [])
    assert store.extension_clashes() == []


def test_finishing_a_push_unlocks_its_extensions(store: Store) -> None:
    alice, bob = claimant("u1"), claimant("u2", claimed_at=T0 + 1)
    begin(store, "w1", alice, ["100"])
    with pytest.raises(ExtensionsBusy):
        begin(store, "w2", bob, ["100"])

    store.finish_push("w1", alice, {}, [], [])

    plan = begin(store, "w2", bob, ["100"])
    assert plan.rivals == {"100": [alice]}


def test_completing_a_push_ends_it_in_the_same_transaction(store: Store) -> None:
    alice, bob = claimant("u1", 3), claimant("u2", 4, claimed_at=T0 + 1)
    enqueue(store, alice)
    claim = claim_of(store)
    begin(store, "w1", alice, ["100", "101"])
    own = conflict(alice, "101", claim.latest.id)
    waiting = store.complete(claim, [], 3, finish=PushFinish("w1", alice, {"100": 3}, [own], []))

    assert waiting == [] and event(store, claim.latest.id).state is EventState.DONE
    assert [c.extension for c in store.open_conflicts()] == ["101"]
    plan = begin(store, "w2", bob, ["100", "101"])  # unlocked
    assert plan.owners == {"100": 3}


def test_an_expired_lock_is_taken_over(store: Store) -> None:
    store.begin_push("w1", NOW + LEASE, NOW, claimant("u1"), ["100"], ["100"])
    with pytest.raises(ExtensionsBusy):
        store.begin_push("w2", NOW + 2 * LEASE, NOW + LEASE / 2, claimant("u2"), ["100"], ["100"])

    store.begin_push("w2", NOW + 3 * LEASE, NOW + LEASE + 1, claimant("u2"), ["100"], ["100"])

    with pytest.raises(ExtensionsBusy):  # now w2 holds it
        store.begin_push("w1", NOW + 3 * LEASE, NOW + LEASE + 2, claimant("u1"), ["100"], ["100"])


def test_release_leases_drops_every_extension_lock(store: Store) -> None:
    begin(store, "w1", claimant("u1"), ["100"])
    with pytest.raises(ExtensionsBusy):
        begin(store, "w2", claimant("u2"), ["100"])

    store.release_leases()

    begin(store, "w2", claimant("u2"), ["100"])


# --- claims -----------------------------------------------------------------------------------


def test_wanted_extensions_become_the_user_s_claims_and_dropped_ones_are_released(store: Store) -> None:
    alice, bob = claimant("u1"), claimant("u2", claimed_at=T0 + 5)
    first = push(store, alice, ["100", "101", "102"])
    assert first.released == []

    plan = push(store, alice, ["101"], ["100", "101", "102"])

    assert sorted(plan.released) == ["100", "102"]
    assert push(store, bob, ["100", "101", "102"]).rivals == {"100": [], "101": [alice], "102": []}


def test_a_kept_claim_keeps_its_time_but_refreshes_the_verba_user_and_login(store: Store) -> None:
    alice = claimant("u1", 7, login="alice", claimed_at=T0)
    push(store, alice, ["100"])

    renamed = claimant("u1", 8, login="alice.smith", claimed_at=T0 + 500)
    push(store, renamed, ["100"])

    plan = push(store, claimant("u2", claimed_at=T0 + 900), [], ["100"])
    assert plan.rivals == {"100": [claimant("u1", 8, login="alice.smith", claimed_at=T0)]}


def test_rivals_are_the_other_claimants_earliest_first(store: Store) -> None:
    late = claimant("u3", claimed_at=T0 + 30)
    early = claimant("u1", claimed_at=T0 + 10)
    ldap_twin = claimant("u2", source="ldap", claimed_at=T0 + 20)
    for who in (late, early, ldap_twin):
        push(store, who, ["100"])
    push(store, early, ["100", "200"])

    me = claimant("u9", claimed_at=T0 + 15)
    plan = push(store, me, ["100"], ["100", "200", "300"])

    assert plan.rivals == {"100": [early, ldap_twin, late], "200": [early], "300": []}
    assert push(store, early, ["100"]).rivals == {"100": [me, ldap_twin, late]}


def test_claimant_order_is_total() -> None:
    a, b = claimant("a", claimed_at=T0), claimant("b", claimed_at=T0)
    assert a.earlier_than(b) and not b.earlier_than(a)
    assert claimant("z", claimed_at=T0 - 1).earlier_than(a)


# --- owners -----------------------------------------------------------------------------------


def test_recorded_owners_are_in_the_next_plan_and_none_deletes_them(store: Store) -> None:
    alice = claimant("u1")
    push(store, alice, ["100", "101"], owners={"100": 1001, "101": 5555})

    assert push(store, alice, ["100", "101"], ["100", "101", "102"], owners={"101": None}).owners == {
        "100": 1001, "101": 5555}
    assert push(store, claimant("u2"), [], ["100", "101", "102"]).owners == {"100": 1001}


# --- conflicts --------------------------------------------------------------------------------


def test_open_conflicts_round_trip_and_list_their_events(store: Store) -> None:
    alice, bob = claimant("u1", 7, login="alice"), claimant("u2", 8, login="bob")
    other_event = enqueue(store, claimant("u3"))
    bob_event = enqueue(store, bob)
    recorded = conflict(bob, "100", bob_event, holder=alice)
    plan = begin(store, "w1", bob, ["100"])

    store.finish_push("w1", bob, {}, [recorded], plan.released)

    [found] = store.open_conflicts()
    assert (found.extension, found.event_id, found.owner_user_id, found.owner_login, found.owner_claimant,
            found.message, found.since) == ("100", bob_event, 7, "alice", "scim/u1 (alice)", recorded.message, NOW)
    assert (found.claimant.source, found.claimant.external_id, found.claimant.verba_user_id,
            found.claimant.login_name) == ("scim", "u2", 8, "bob")
    assert [e.id for e in store.list_events(cause="extension_conflict")] == [bob_event]
    assert other_event not in [e.id for e in store.list_events(cause="extension_conflict")]
    assert store.ownership_counts()[0] == 1


def test_a_push_replaces_the_user_s_conflicts_only(store: Store) -> None:
    alice, bob = claimant("u1"), claimant("u2")
    a_event, b_event = enqueue(store, alice), enqueue(store, bob)
    push(store, alice, ["100"], conflicts=[conflict(alice, "100", a_event, since=NOW)])
    push(store, bob, ["100", "101"], conflicts=[conflict(bob, "100", b_event, since=NOW + 1),
                                                conflict(bob, "101", b_event, since=NOW + 2)])
    assert [(c.claimant.external_id, c.extension) for c in store.open_conflicts()] == [
        ("u1", "100"), ("u2", "100"), ("u2", "101")]
    assert [(c.extension, c.event_id) for c in store.conflicts_of("scim", "u2")] == [("100", b_event),
                                                                                     ("101", b_event)]

    push(store, bob, ["101"], conflicts=[conflict(bob, "101", b_event, since=NOW + 3)])
    assert [(c.claimant.external_id, c.extension) for c in store.open_conflicts()] == [("u1", "100"), ("u2", "101")]

    push(store, bob, ["101"], conflicts=[])
    assert [(c.claimant.external_id, c.extension) for c in store.open_conflicts()] == [("u1", "100")]
    assert [e.id for e in store.list_events(cause="extension_conflict")] == [a_event]


def test_releasing_an_extension_wakes_the_other_users_waiting_on_it(store: Store) -> None:
    holder, ldap_waiter, scim_waiter, elsewhere = (
        claimant("u1"), claimant("u2", source="ldap"), claimant("u3"), claimant("u4"))
    push(store, ldap_waiter, ["100"], conflicts=[conflict(ldap_waiter, "100", enqueue(store, ldap_waiter))])
    push(store, scim_waiter, ["100"], conflicts=[conflict(scim_waiter, "100", enqueue(store, scim_waiter))])
    push(store, elsewhere, ["200"], conflicts=[conflict(elsewhere, "200", enqueue(store, elsewhere))])
    own = conflict(holder, "100", enqueue(store, holder))
    begin(store, "w1", holder, [], ["100"])

    before = {e.id for e in store.list_events()}
    waiting = store.finish_push("w1", holder, {"100": None}, [own], ["100"])

    assert waiting == [("ldap", "u2"), ("scim", "u3")]
    woken = [e for e in store.list_events() if e.id not in before]  # queued in the same transaction
    assert sorted((e.change.source, e.change.external_id, e.change.cause, e.state) for e in woken) == [
        ("ldap", "u2", "extension_released", EventState.PENDING),
        ("scim", "u3", "extension_released", EventState.PENDING)]


def test_a_waiting_user_whose_newest_change_is_held_is_not_woken_with_an_older_state(store: Store) -> None:
    """Its held change (a leaver's stop the guard holds) is an operator's to decide: a copy of its older state queued
    after it would be pushed with the approval instead of the change approved."""
    holder, waiter = claimant("u1"), claimant("u2")
    push(store, waiter, ["100"], conflicts=[conflict(waiter, "100", enqueue(store, waiter))])
    store.complete(claim_of(store), [], 1002)
    held = enqueue(store, waiter, state=EventState.HELD)
    begin(store, "w1", holder, [], ["100"])

    before = {e.id for e in store.list_events()}
    assert store.finish_push("w1", holder, {"100": None}, [], ["100"]) == []
    assert [e.id for e in store.list_events() if e.id not in before] == []
    assert store.requeue([held], NOW, approve=True) == 1
    assert claim_of(store, now=time.time() + 1).current.id == held  # the approved change is what is pushed


def test_a_push_that_overwrote_another_sources_settings_queues_that_user_again_forced(store: Store) -> None:
    first, second, held = claimant("u1", 7), claimant("u2", 7, source="ldap"), claimant("u3", 7, source="okta")
    enqueue(store, second)
    store.complete(claim_of(store), [], 7)  # done: its records equal Verba's, so only a forced push would run
    enqueue(store, held, state=EventState.HELD)  # its newest event is an operator's to decide: left alone
    enqueue(store, first)
    claim = claim_of(store)
    begin(store, "w1", first, ["100"])

    before = {e.id for e in store.list_events()}
    queued = store.complete(claim, [], 7, finish=PushFinish("w1", first, {"100": 7}, [], [],
                                                             rechecked=[("ldap", "u2"), ("okta", "u3")]))

    assert queued == [("ldap", "u2")]
    [again] = [e for e in store.list_events() if e.id not in before]  # in the push's own transaction
    assert (again.change.source, again.change.external_id, again.change.cause, again.state) == (
        "ldap", "u2", "extension_settings_changed", EventState.PENDING)
    assert claim_of(store, "w2", time.time() + 1).forced, "pushed even though its records did not change"


def test_a_conflict_opening_and_clearing_is_audited_once_each(store: Store) -> None:
    alice = claimant("u1", 3)
    waiting = enqueue(store, alice)
    push(store, alice, ["100"], conflicts=[conflict(alice, "100", waiting)])  # opens
    push(store, alice, ["100"], conflicts=[conflict(alice, "100", waiting)])  # still open: nothing new
    begin(store, "w1", alice, ["100"])
    store.finish_push("w1", alice, {}, [], [], failed=True)  # a failed push keeps it open: nothing cleared
    assert [c.extension for c in store.open_conflicts()] == ["100"]
    push(store, alice, ["100"])  # clears

    history = [(e.actor, e.action, e.event_ids, e.detail["extension"]) for e in reversed(store.list_audit())]
    assert history == [("connector", "conflict", (waiting,), "100"),
                       ("connector", "conflict_cleared", (waiting,), "100")]


# --- requeue ----------------------------------------------------------------------------------


def test_a_done_event_is_requeued_only_while_it_has_an_open_conflict(store: Store) -> None:
    alice, bob = claimant("u1"), claimant("u2")
    a_event, b_event = enqueue(store, alice), enqueue(store, bob)
    store.complete(claim_of(store), [], None)
    store.complete(claim_of(store), [], None)
    push(store, alice, ["100"], conflicts=[conflict(alice, "100", a_event)])

    assert store.requeue([a_event, b_event], NOW + 10) == 1

    requeued = event(store, a_event)
    assert (requeued.state, requeued.attempts, requeued.next_attempt_at) == (EventState.PENDING, 0, NOW + 10)
    assert event(store, b_event).state is EventState.DONE


def _stop(store: Store, who: Claimant, at: float, owner: str = "w1", *, max_count: int = 2,
          max_share: float = 0.1) -> StopRecordingBurst:
    """The guard's count of a push of `who` that stops recording (keeping the user's claims): the burst it
    was held with, or the admitted push's (the push then ends)."""
    kept = sorted(store.claimed(who.source, who.external_id))
    try:
        plan = store.begin_push(owner, at + LEASE, at, who, kept, kept,
                                stop_recording=StopRecordingWindow(at, WINDOW, max_count, max_share))
    except StopRecordingHeld as held:
        return held.burst
    store.finish_push(owner, who, {}, [], plan.released)
    assert plan.burst is not None
    return plan.burst


def test_a_push_the_guard_holds_changes_nothing(store: Store) -> None:
    alice, bob = claimant("u1"), claimant("u2")
    push(store, alice, ["100"])
    push(store, bob, ["200"])

    with pytest.raises(StopRecordingHeld) as held:
        store.begin_push("w1", NOW + LEASE, NOW, alice, ["101"], ["100", "101"],
                         stop_recording=StopRecordingWindow(NOW, WINDOW, 0, 0.0))

    assert (held.value.burst.admitted, held.value.burst.stopping, held.value.burst.recorded) == (False, 1, 2)
    assert store.claimed(alice.source, alice.external_id) == {"100"}  # no claim made or dropped
    begin(store, "w2", bob, ["100", "101"])  # no extension left locked
    assert _stop(store, claimant("u3"), NOW, max_count=5).stopping == 1  # the held push was not counted


def test_a_stop_another_source_user_of_the_same_verba_user_keeps_is_not_counted_by_the_guard(store: Store) -> None:
    """Entra deletes an account and re-creates it with the same login name and number: the old account's push gives
    the number up, but the new one claims it for the same Verba user, so the push leaves it recording (delivery's
    ownership rules). The guard used to count it as a stop, and held real leavers after a few such re-creations."""
    old, new, bob = claimant("u1", 1001), claimant("u1-new", 1001), claimant("u2")
    push(store, old, ["100"])
    push(store, new, ["100"])
    push(store, bob, ["200"])

    plan = store.begin_push("w1", NOW + LEASE, NOW, old, [], ["100"],
                            stop_recording=StopRecordingWindow(NOW, WINDOW, 0, 0.0, ("100",)))
    store.finish_push("w1", old, {}, [], plan.released)

    assert plan.burst is None  # neither held nor counted
    assert _stop(store, bob, NOW + 1, max_count=5).stopping == 1  # bob's stop is the window's first
    with pytest.raises(StopRecordingHeld):  # a stop nobody else of the Verba user keeps still counts
        store.begin_push("w1", NOW + LEASE, NOW, claimant("u3"), [], ["300"],
                         stop_recording=StopRecordingWindow(NOW, WINDOW, 0, 0.0, ("300",)))


def test_an_approved_event_passes_the_stop_recording_guard_while_in_flight(store: Store) -> None:
    alice = claimant("u1")
    push(store, alice, ["100"])
    held = enqueue(store, alice, state=EventState.HELD)
    assert store.requeue([held], NOW, approve=True) == 1
    claim = claim_of(store, owner="w1")

    burst = _stop(store, alice, NOW, owner="w1", max_count=0, max_share=0.0)

    assert (burst.admitted, burst.approved) == (True, True)
    assert _stop(store, alice, NOW, owner="w2", max_count=0, max_share=0.0).approved is False  # not its lease
    store.complete(claim, [], None)
    assert _stop(store, alice, NOW, max_count=0, max_share=0.0) == StopRecordingBurst(False, 1, 1, False)


def test_a_requeue_without_approval_does_not_pass_the_guard(store: Store) -> None:
    alice = claimant("u1")
    push(store, alice, ["100"])
    held = enqueue(store, alice, state=EventState.HELD)
    store.requeue([held], NOW)
    claim_of(store)

    assert _stop(store, alice, NOW, max_count=0, max_share=0.0).admitted is False


# --- the stop-recording window ----------------------------------------------------------------


def _recorded_users(store: Store, n: int, source: str = "scim") -> list[Claimant]:
    users = [claimant(f"u{i}", source=source, claimed_at=T0 + i) for i in range(n)]
    for i, who in enumerate(users):
        push(store, who, [f"{100 + i}"])
    return users


def _stop_and_release(store: Store, who: Claimant, at: float, *, max_share: float = 0.1) -> StopRecordingBurst:
    """The guard's check, then (when admitted) the push that drops the user's claims."""
    burst = _stop(store, who, at, max_share=max_share)
    if burst.admitted:
        push(store, who, [], now=at)
    return burst


def test_the_third_user_stopping_in_a_window_is_held(store: Store) -> None:
    users = _recorded_users(store, 10)

    bursts = [_stop_and_release(store, who, NOW + i) for i, who in enumerate(users[:4])]

    assert [(b.admitted, b.stopping, b.recorded, b.approved) for b in bursts] == [
        (True, 1, None, False), (True, 2, None, False), (False, 3, 10, False), (False, 3, 10, False)]


def test_approved_stops_do_not_count_toward_the_next_burst(store: Store) -> None:
    """An operator approved a mass change: a leaver right after it is judged on its own, not as one more of it."""
    users = _recorded_users(store, 10)
    for i, who in enumerate(users[:4]):
        store.requeue([enqueue(store, who, state=EventState.HELD)], NOW, approve=True)
        claim = claim_of(store, owner="w1")
        assert _stop(store, who, NOW + i, owner="w1").approved
        store.complete(claim, [], None)

    assert [(b.admitted, b.stopping) for b in [_stop(store, who, NOW + 5) for who in users[4:7]]] == [
        (True, 1), (True, 2), (False, 3)]


def test_a_user_stopping_twice_counts_once(store: Store) -> None:
    u0, u1, u2 = _recorded_users(store, 10)[:3]

    assert _stop(store, u0, NOW).stopping == 1
    assert _stop(store, u0, NOW + 1).stopping == 1
    assert (_stop(store, u1, NOW + 2).admitted, _stop(store, u1, NOW + 3).stopping) == (True, 2)
    assert (_stop(store, u2, NOW + 4).admitted, _stop(store, u2, NOW + 4).stopping) == (False, 3)


def test_stops_older_than_the_window_no_longer_count(store: Store) -> None:
    u0, u1, u2 = _recorded_users(store, 10)[:3]
    _stop_and_release(store, u0, NOW)
    _stop_and_release(store, u1, NOW + 10)

    burst = _stop(store, u2, NOW + WINDOW + 1)

    assert (burst.admitted, burst.stopping) == (True, 2)


def test_another_source_s_burst_does_not_count(store: Store) -> None:
    users = _recorded_users(store, 10)
    ldap_users = _recorded_users(store, 10, source="ldap")
    for i, who in enumerate(ldap_users[:2]):
        assert _stop_and_release(store, who, NOW + i).admitted
    assert not _stop(store, ldap_users[2], NOW + 2).admitted

    burst = _stop(store, users[0], NOW + 3, max_count=0)  # 0: the source's recorded users are counted

    assert (burst.admitted, burst.stopping, burst.recorded) == (True, 1, 10)


def test_a_burst_within_max_share_is_admitted(store: Store) -> None:
    users = _recorded_users(store, 10)

    bursts = [_stop_and_release(store, who, NOW + i, max_share=0.9) for i, who in enumerate(users)]

    assert [b.admitted for b in bursts] == [True] * 9 + [False]  # 9 of 10 is 0.9, 10 of 10 exceeds it
    assert [b.stopping for b in bursts] == list(range(1, 11))
    assert [b.recorded for b in bursts] == [None] * 2 + [10] * 8  # counted once over max_count (2)


def test_a_user_whose_number_moved_in_the_window_is_one_recorded_user(store: Store) -> None:
    """A stop that moved a user's number leaves them both claiming (the new number) and stopped in the window:
    the source's recorded users count them once, as they count one who left (stopped, claiming nothing)."""
    users = _recorded_users(store, 10)
    for i, who in enumerate(users[:2]):  # u0 and u1 move to a new number: the old one stops recording
        moved = store.begin_push("w1", NOW + i + LEASE, NOW + i, who, [f"9{i}"], [f"{100 + i}", f"9{i}"],
                                 stop_recording=StopRecordingWindow(NOW + i, WINDOW, 10, 0.1))
        store.finish_push("w1", who, {}, [], moved.released)
    assert _stop_and_release(store, users[2], NOW + 2, max_share=0.9).admitted  # u2 leaves

    burst = _stop(store, users[3], NOW + 3, max_count=0)  # 0: the source's recorded users are counted

    assert (burst.stopping, burst.recorded) == (4, 10)


# --- clashes ----------------------------------------------------------------------------------


def test_two_verba_users_claiming_one_extension_clash(store: Store) -> None:
    alice, bob = claimant("u1", 7, claimed_at=T0 + 2), claimant("u2", 8, claimed_at=T0 + 1)
    push(store, alice, ["100", "101"])
    push(store, bob, ["100"])

    assert store.extension_clashes() == [("100", [bob, alice])]
    assert store.ownership_counts() == (0, 1)


def test_two_sources_of_one_verba_user_do_not_clash(store: Store) -> None:
    push(store, claimant("u1", 7), ["100"])
    push(store, claimant("u1", 7, source="ldap"), ["100"])

    assert store.extension_clashes() == []
    assert store.ownership_counts() == (0, 0)


# --- postpone and hold ------------------------------------------------------------------------


def test_postpone_puts_the_claim_back_as_if_it_was_not_claimed(store: Store) -> None:
    alice = claimant("u1")
    first, second = enqueue(store, alice), enqueue(store, alice)
    store.retry(claim_of(store), NOW, "transient", "timeout")  # attempts 1 before the claim
    claim = claim_of(store)
    assert claim.attempts == 2

    store.postpone(claim, NOW + 30)

    for event_id in (first, second):
        postponed = event(store, event_id)
        assert (postponed.state, postponed.attempts, postponed.next_attempt_at) == (EventState.PENDING, 1, NOW + 30)
    assert store.claim("w1", NOW + 29, LEASE) is None
    assert claim_of(store, now=NOW + 30).event_ids == (first, second)


def test_hold_keeps_the_claim_for_an_operator(store: Store) -> None:
    event_id = enqueue(store, claimant("u1"))

    store.hold(claim_of(store), "stop_recording_guard", "would stop 3 of 10")

    held = event(store, event_id)
    assert (held.state, held.last_cause, held.last_error, held.attempts) == (
        EventState.HELD, "stop_recording_guard", "would stop 3 of 10", 0)  # nothing was sent: no attempt spent
    assert store.claim("w1", NOW + 1_000, LEASE) is None


def test_postpone_and_hold_do_nothing_once_the_lease_is_lost(store: Store) -> None:
    event_id = enqueue(store, claimant("u1"))
    claim = claim_of(store)
    store.release_leases()

    store.postpone(claim, NOW + 30)
    store.hold(claim, "stop_recording_guard", "too many")

    lost = event(store, event_id)
    assert (lost.state, lost.attempts, lost.next_attempt_at, lost.last_cause) == (EventState.PENDING, 1, T0, None)
    assert claim_of(store, owner="w2").event_ids == (event_id,)


def test_concurrent_stop_recording_decisions_never_admit_more_than_the_count(store: Store) -> None:
    """Twenty workers deciding at the same instant: exactly guard_max_count pass (counts are not stale)."""
    import threading

    barrier = threading.Barrier(20)
    admitted: list[bool] = []

    def decide(n: int) -> None:
        barrier.wait()
        admitted.append(_stop(store, claimant(f"u{n}", source="s"), NOW, f"w{n}", max_count=10).admitted)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 10


def test_a_failed_push_adds_its_conflicts_and_keeps_the_user_s_others(store: Store) -> None:
    bob = claimant("u2", claimed_at=T0 + 5)
    event_id = enqueue(store, bob)
    push(store, bob, ["100", "101"], conflicts=[conflict(bob, "100", event_id, since=NOW)])
    begin(store, "w1", bob, ["100", "101"])
    store.finish_push("w1", bob, {"101": 9}, [conflict(bob, "101", event_id, since=NOW + 5)], [], failed=True)

    assert [(c.extension, c.since) for c in store.open_conflicts()] == [("100", NOW), ("101", NOW + 5)]
    assert begin(store, "w2", bob, ["100", "101"]).owners == {}, "a failed push records no owners"


def test_a_conflict_keeps_the_time_it_opened_and_shows_when_it_was_claimed(store: Store) -> None:
    bob = claimant("u2", claimed_at=T0 + 5)
    event_id = enqueue(store, bob)
    push(store, bob, ["100"], conflicts=[conflict(bob, "100", event_id, since=NOW)])
    push(store, bob, ["100"], conflicts=[conflict(bob, "100", event_id, since=NOW + 60)])

    [open_] = store.open_conflicts()
    assert (open_.since, open_.claimant.claimed_at) == (NOW, T0 + 5)
