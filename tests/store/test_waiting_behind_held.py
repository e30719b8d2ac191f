"""Events that wait behind a held event of their user cost a claim nothing, on every backend.

A guard holds a user's change for an operator (the LDAP mass-change guard may hold thousands) and the user's other
events wait behind it. Every write that makes events wait, or lets them go, must keep them out of (or put them back in)
what a claim reads, and show them as `events list/show` and `status` always did. A claim's reads are counted by the
database itself (SQLite: virtual machine steps; PostgreSQL: buffers touched), so the check is exact, not timed: reading
the waiting events would cost at least one read each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from connector.events import UserChange
from connector.store import EventState, LdapPoll, Store
from tests.store.test_conformance import LEASE, NOW, T0, change, claim_now
from tests.store.test_ownership import begin, claimant, conflict, push

USERS = [f"u{n}" for n in range(1, 41)]  # made to wait: reading their events would show many times over in a claim
ZED_DUE = NOW + 100  # the free user's change, due after every write below has run
LATER = NOW + 200  # when the claims and reads are made

Waiting = dict[str, tuple[int, list[int]]]  # user -> (the held event, the events that wait behind it)


def claim_reads(store: Store, now: float = LATER) -> int:
    """What finding a user to claim reads (anything_to_claim, then pick_user), as the database counts it. Each query
    runs once uncounted first: SQLite's first statement on a connection reads the schema, and PostgreSQL visits the
    index entries of rows the last writes changed until a read finds them gone."""
    params = {"now": now, "skipped": store._array([])}
    count = sqlite_steps if store.dialect == "sqlite" else postgres_buffers
    with store._read() as conn:
        for query in ("anything_to_claim", "pick_user"):
            conn.execute(store._q[query], params).fetchall()
        return sum(count(conn, store._q[query], params) for query in ("anything_to_claim", "pick_user"))


def sqlite_steps(conn: Any, sql: str, params: dict[str, Any]) -> int:
    """The virtual machine steps SQLite takes to run `sql`."""
    steps = 0

    def step() -> None:
        nonlocal steps
        steps += 1

    conn.set_progress_handler(step, 1)
    try:
        conn.execute(sql, params).fetchall()
    finally:
        conn.set_progress_handler(None, 1)
    return steps


def postgres_buffers(conn: Any, sql: str, params: dict[str, Any]) -> int:
    """The buffers PostgreSQL touches to run `sql`."""
    [row] = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params).fetchall()
    plan = json.loads(row["QUERY PLAN"])[0]["Plan"]
    return int(plan["Shared Hit Blocks"] + plan["Shared Read Blocks"])


def events_of(store: Store, user: str, state: EventState) -> list[int]:
    return sorted(e.id for e in store.list_events(user=f"scim/{user}", state=state))


# --- the writes that make a user's events wait behind a held one --------------------------------------------------


def later_changes(store: Store) -> Waiting:
    """A held change, then later changes of the same users (insert_event)."""
    held = store.enqueue([change(user, 1, active=False) for user in USERS], state=EventState.HELD)
    later = store.enqueue([change(user, 2) for user in USERS])
    return {user: (h, [w]) for user, h, w in zip(USERS, held, later, strict=True)}


def held_after_pending(store: Store) -> Waiting:
    """Pending changes, then a held one of each user (enqueued held)."""
    pending = store.enqueue([change(user, 1) for user in USERS])
    held = store.enqueue([change(user, 2, active=False) for user in USERS], state=EventState.HELD)
    return {user: (h, [w]) for user, h, w in zip(USERS, held, pending, strict=True)}


def ldap_guard(store: Store) -> Waiting:
    """A poll stores changes; the next one's deletes are held by the mass-change guard."""
    pending = store.commit_poll(LdapPoll("corp", 0, {"usn": 1}, T0, changes=[change(user, 1) for user in USERS]))
    held = store.commit_poll(LdapPoll("corp", 1, {"usn": 2}, T0, held=[
        UserChange("scim", user, "delete", {"userName": f"{user}@example.com"}, T0) for user in USERS],
        held_because="the mass-change guard held 40 deletes"))
    return {user: (h, [w]) for user, h, w in zip(USERS, held, pending, strict=True)}


def guard_holds_claims(store: Store) -> Waiting:
    """The stop-recording guard holds each user's claim; a change of the user came in while it was pushed."""
    waiting: Waiting = {}
    for user in USERS:
        [stop] = store.enqueue([change(user, 1, active=False)])
        claim = claim_now(store)
        [meanwhile] = store.enqueue([change(user, 2, active=False)])
        store.hold(claim, "stop_recording_guard", "would stop too many")
        waiting[user] = (stop, [meanwhile])
    return waiting


def replayed_dead_letters(store: Store) -> Waiting:
    """An older dead letter of each user is replayed while a later change of the user is held."""
    dead = []
    for user in USERS:
        dead += store.enqueue([change(user, 1)])
        store.dead_letter(claim_now(store), "illegal_argument", "bad eid")
    held = store.enqueue([change(user, 2, active=False) for user in USERS], state=EventState.HELD)
    assert store.requeue(dead, NOW) == len(USERS)
    return {user: (h, [d]) for user, h, d in zip(USERS, held, dead, strict=True)}


def drift_repairs(store: Store) -> Waiting:
    """A drift repair queues a copy of each user's current state, whose user has a held change before it."""
    waiting = later_changes(store)
    copies = store.queue_current([("scim", user) for user in USERS], "drift_repair")
    assert len(copies) == len(USERS)
    return {user: (h, [*w, c]) for (user, (h, w)), c in zip(waiting.items(), copies, strict=True)}


def wake_ups(store: Store) -> Waiting:
    """Users waiting in a conflict on an extension are woken when its holder lets it go; each has a held change."""
    for user in USERS:
        who = claimant(user)
        [event_id] = store.enqueue([change(user, 0)])
        push(store, who, ["100"], conflicts=[conflict(who, "100", event_id)])
        store.complete(claim_now(store), [], who.verba_user_id)
    waiting = later_changes(store)
    holder = claimant("u99")
    begin(store, "w1", holder, [], ["100"])
    before = {e.id for e in store.list_events(limit=1000)}
    assert len(store.finish_push("w1", holder, {"100": None}, [], ["100"])) == len(USERS)
    woken = {e.change.external_id: e.id for e in store.list_events(limit=1000) if e.id not in before}
    return {user: (h, [*w, woken[user]]) for user, (h, w) in waiting.items()}


def held_while_pushing(store: Store) -> Waiting:
    """Each user's push is under way when the LDAP guard holds a later change of the user: the pushed event waits
    behind the held one once its lease ends."""
    pushed = []
    for user in USERS:
        pushed += store.enqueue([change(user, 1)])
        claim_now(store)
    held = store.enqueue([change(user, 2, active=False) for user in USERS], state=EventState.HELD)
    return {user: (h, [p]) for user, h, p in zip(USERS, held, pushed, strict=True)}


def expired_leases(store: Store) -> Waiting:
    """`held_while_pushing`, and the pushes' leases end."""
    waiting = held_while_pushing(store)
    assert store.claim("w1", NOW + LEASE + 1, LEASE) is None  # the leases expire; what they held waits
    return waiting


def crash_recovery(store: Store) -> Waiting:
    """As `expired_leases`, but the connector died and its leases go back at the next start."""
    waiting = held_while_pushing(store)
    assert store.release_leases() == len(USERS)
    return waiting


WRITES: list[Callable[[Store], Waiting]] = [later_changes, held_after_pending, ldap_guard, guard_holds_claims,
                                            replayed_dead_letters, drift_repairs, wake_ups, expired_leases,
                                            crash_recovery]


@pytest.mark.parametrize("make_wait", WRITES, ids=[write.__name__ for write in WRITES])
def test_events_made_to_wait_behind_a_held_one_are_shown_waiting_and_cost_a_claim_nothing(
        store: Store, make_wait: Callable[[Store], Waiting]) -> None:
    [zed] = store.enqueue([change("zed", accepted_at=ZED_DUE)])
    reads_before = claim_reads(store)

    waiting = make_wait(store)

    more = claim_reads(store) - reads_before
    assert more < len(USERS) // 2, f"a claim reads {more} more with {len(USERS)} users waiting: it reads their events"
    for user, (held, behind) in waiting.items():
        assert events_of(store, user, EventState.PENDING) == sorted(behind)
        assert [store.get_event(event_id).waits_behind for event_id in behind] == [held] * len(behind)
        assert {e.waits_behind for e in store.list_events(user=f"scim/{user}", state=EventState.PENDING)} == {held}
    assert store.waiting_behind_held() == (sum(len(behind) for _, behind in waiting.values()), len(USERS))
    assert store.oldest_pending_at() == ZED_DUE  # they wait for an operator, as their held events do
    assert claim_now(store, LATER).event_ids == (zed,)
    assert store.claim("w1", LATER + LEASE, LEASE) is None


# --- the writes that let them go ----------------------------------------------------------------------------------


@pytest.mark.parametrize("decide", ["approve", "discard"])
def test_deciding_held_events_lets_their_users_go_and_leaves_the_others_waiting(store: Store, decide: str) -> None:
    """Half the users' held events are decided; some of those users have a second change held, behind which they
    go on waiting (the approved change too). The users still waiting cost a claim nothing either."""
    [zed] = store.enqueue([change("zed", accepted_at=ZED_DUE)])
    reads_before = claim_reads(store)
    waiting = later_changes(store)
    decided, twice = USERS[:20], USERS[10:20]
    second = dict(zip(twice, store.enqueue([change(user, 3, active=False) for user in twice], state=EventState.HELD),
                      strict=True))

    held = [waiting[user][0] for user in decided]
    if decide == "approve":  # the approved change is pushed with the later ones, once
        assert store.requeue(held, NOW, approve=True) == len(decided)
        freed = {user: (waiting[user][0], *waiting[user][1]) for user in decided}
    else:  # the later changes go on their own
        assert store.discard(held, "not leavers: HR's mistake") == len(decided)
        freed = {user: tuple(waiting[user][1]) for user in decided}

    going = {user: ids for user, ids in freed.items() if user not in second}
    assert all(store.get_event(event_id).waits_behind is None for ids in going.values() for event_id in ids)
    for user in twice:
        assert [store.get_event(event_id).waits_behind for event_id in freed[user]] == [second[user]] * len(freed[user])
    still = len(USERS) - len(decided)
    assert store.waiting_behind_held() == (still + sum(len(freed[user]) for user in twice), still + len(twice))
    claims = [claim_now(store, LATER) for _ in range(len(going) + 1)]
    assert {claim.external_id: claim.event_ids for claim in claims} == {**going, "zed": (zed,)}
    assert store.claim("w1", LATER + LEASE, LEASE) is None
    for claim in claims:
        store.complete(claim, [], None)
    assert claim_reads(store) - reads_before < len(USERS) // 4  # the users still waiting cost nothing either
