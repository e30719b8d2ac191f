"""The event queue: durable user changes, claimed per user under a lease, settled once.

Event states:
    pending    waiting to be pushed (possibly after `next_attempt_at`)
    in_flight  claimed by a worker until `lease_until`
    done       Verba answered OK for the state it carried (or a later one)
    dead       a dead letter: `last_cause` and `last_error` say why
    held       held back by a guard until an operator approves it; the user's later events wait behind it
               (pending, never claimed) until an operator approves or discards it
    discarded  an operator decided not to deliver it (`discard_reason` says why); never
               claimed, blocks nobody, kept forever

A pending or in-flight event names the held event it waits behind (`waits_behind`: its user's first held event, NULL
when it has none), so that a claim reads only the due events that wait for nothing, however many wait. `insert_event`
sets it for a new event and `queued_behind_held` for one queued by other means (a wake-up, `queue_current`); the writes
that change a user's held events (enqueuing or LDAP-storing held events, `hold`, `requeue`: an approval, a replay, and
`discard`) run `wait_behind_held` for all the pending and in-flight events of the users they touch, in their
transaction. Leases that end (expiry, crash recovery, retries) leave it as their in-flight events had it.

Locks (PostgreSQL; SQLite has one writer at a time). A user's held events change only under the queue's lock
(`_lock_queue`), taken exclusively by a write of several users (enqueuing or LDAP-storing held events, `requeue`,
`discard`; and `expedite` and the release of leases, which write many users' pending or in-flight events), or shared
with the user's lock (`_lock_user`) by a write of one user's claim (settling it, `hold`); a claim takes it shared too.
So `wait_behind_held` reads held events that nobody changes meanwhile, and no two transactions write one user's events
in two orders: no deadlock. One lock for all users, not one each, which would be taken in bulk: PostgreSQL's lock
table holds about 10,000 by default, and an approval may name 100,000 users. While such a write runs (milliseconds;
seconds for 100,000 events) claims and settlements wait. An insert takes neither: it locks the held event it reads
FOR SHARE SKIP LOCKED (postgres.sql's insert_event), so an approval or a discard waits for the inserts that saw the
event held and then sees their events, and an insert never waits. Never an event left waiting behind an event no
longer held. A NULL may be stale: a change stored while its user's event is held in another transaction sees neither
that hold nor is seen by it; the claim that picks the change finds the user held (claim_user checks under the user's
lock) and makes its events wait.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import time
from collections.abc import Sequence
from typing import Any

from connector.events import UserChange
from connector.records import ExtensionRecord
from connector.store.database import CONNECTOR, Database, event_row, to_json, user_key
from connector.store.ownership import ExtensionOwnership, PushFinish

POSTPONED = "postponed"  # an Attempt's outcome: a push cut short that sent something, queued again, not counted


class EventState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    DEAD = "dead"
    HELD = "held"
    DISCARDED = "discarded"


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    id: int
    change: UserChange
    state: EventState
    attempts: int
    next_attempt_at: float
    last_cause: str | None
    last_error: str | None
    updated_at: float
    discard_reason: str | None = None
    waits_behind: int | None = None  # pending behind this held event of its user (read by get_event, list_events)


@dataclasses.dataclass(frozen=True)
class Claim:
    """All pending events of one user, claimed together; `latest` is the one to push.

    `owner` and `lease_until` identify the lease: `complete`, `retry` and `dead_letter`
    change the events only while this lease still holds them. `current`, `verba_user_id` and
    `pushed` are what the push reads of the user, read in the claim's transaction.
    """

    source: str
    external_id: str
    event_ids: tuple[int, ...]
    latest: StoredEvent
    attempts: int  # the highest attempt count in the batch, this attempt included
    owner: str = ""
    lease_until: float = 0.0
    forced: bool = False  # an operator's replay or a drift repair: pushed even if nothing changed
    current: StoredEvent | None = None  # the user's newest event that is not held or discarded, nor after a held one
    verba_user_id: int | None = None  # the Verba user id last pushed for the user
    pushed: tuple[ExtensionRecord, ...] = ()  # the extensions last pushed for the user, in their order


class EventQueue(ExtensionOwnership, Database):
    """Intake and delivery. Every write is one transaction; one user never has two batches in flight."""

    def enqueue(self, changes: Sequence[UserChange], *, state: EventState = EventState.PENDING,
                forced: bool = False) -> list[int]:
        """Store all changes in one transaction (all or nothing) and return their ids.

        A change whose `idem_key` is already stored is skipped (its id is not returned). A new
        event is due at its `accepted_at`. A state that is not JSON (or that the database cannot
        hold, such as a NUL on PostgreSQL) raises ValueError and nothing of the batch is stored; so does an
        `accepted_at` more than MAX_CLOCK_SKEW_SECONDS in the future (connector/events.py), which would hold
        its user back until then. `forced` events are pushed even if the user's records equal those Verba
        last confirmed.
        """
        state = EventState(state)
        if state is EventState.IN_FLIGHT:
            raise ValueError("events cannot be enqueued in flight; enqueue them pending or held")
        now = time.time()
        rows = [event_row(change, state.value, now, forced=forced) for change in changes]
        if not rows:
            return []
        # One INSERT commits by itself: no BEGIN and COMMIT round trips for a single pending change.
        with self._write() if len(rows) > 1 or state is EventState.HELD else self._statement() as conn:
            if state is EventState.HELD:
                self._lock_queue(conn)
            ids = self._insert_events(conn, rows)
            if state is EventState.HELD:
                self._wait_behind_held(conn, ids)
            return ids

    def claim(self, owner: str, now: float, lease_seconds: float, *, busy: bool = False) -> Claim | None:
        """Claim the pending events of one user whose oldest pending event is due.

        Never claims a user who has an event in flight (per-user order). In-flight events whose
        lease expired before `now` count as pending again. All pending events of the chosen user
        move to in_flight and their attempts go up by one. Users are served in the order their
        oldest pending event became due, then by id. Held, dead, discarded and done events are
        never claimed; dead, discarded and done ones block nobody, but a held event blocks the
        user's later events: they are neither claimed nor pushed (nor read as `current`) until an
        operator approves it (then they are claimed with it, and the user's newest state is pushed
        once) or discards it. A read first spares an idle worker the write transaction;
        `busy` (the worker's last claim found a user) skips it.
        """
        lease_until = float(now + lease_seconds)
        if not busy:
            with self._read() as conn:
                if not conn.execute(self._q["anything_to_claim"], {"now": now}).fetchone()["due"]:
                    return None
        with self._write() as conn:
            self._lock_queue(conn, shared=True)
            conn.execute(self._q["expire_leases"], {"now": now, "at": time.time()})
            rows = self._claim_next_user(conn, owner, now, lease_until)
            if not rows:
                return None
            user = (rows[0]["source"], rows[0]["external_id"])
            current = conn.execute(self._q["claim_current"], user).fetchone()
            known = conn.execute(self._q["verba_user_id"], user).fetchone()
            pushed = tuple(pushed_record(row) for row in conn.execute(self._q["pushed_extensions"], user))
        events = sorted((stored_event(row) for row in rows), key=lambda event: event.id)
        return Claim(*user, tuple(event.id for event in events), events[-1], max(event.attempts for event in events),
                     owner, lease_until, any(row["forced"] for row in rows),
                     current=stored_event(current) if current else None,
                     verba_user_id=int(known["user_id"]) if known else None, pushed=pushed)

    def _claim_next_user(self, conn: Any, owner: str, now: float, lease_until: float) -> list[Any]:
        """Claim the pending events of the first due user whose lock is free; [] if there is none."""
        skipped: list[int] = []
        while (head := conn.execute(self._q["pick_user"], {"now": now, "skipped": self._array(skipped)}).fetchone()):
            user = {"source": head["source"], "external_id": head["external_id"]}
            if self._try_lock(conn, user_key(**user)):
                claimed = conn.execute(self._q["claim_user"], {
                    **user, "owner": owner, "lease_until": lease_until, "at": time.time()}).fetchall()
                if claimed:
                    return list(claimed)
                self._wait_behind_held(conn, [head["id"]])  # held after all: its events are not picked again
            skipped.append(head["id"])  # being settled or claimed elsewhere right now
        return []

    def complete(self, claim: Claim, pushed: Sequence[ExtensionRecord], user_id: int | None, *,
                 sent: Sequence[dict[str, Any]] = (), finish: PushFinish | None = None,
                 note: str | None = None) -> list[tuple[str, str]]:
        """Mark the claim done and record `pushed` as the user's current extensions, in their order.

        `finish` ends the push begun by `begin_push` in the same transaction (as `finish_push`
        would, even if the lease was lost); the users waiting on an extension it released are
        woken in it and returned ([] without `finish`). `pushed` replaces the user's previous set: extensions
        missing from it were deprovisioned. `user_id` is remembered as the user's Verba id (None
        keeps it). An `Attempt` with outcome "done", the SOAP requests `sent` and `note` as its error (why a push wrote
        nothing) is recorded. The user's older
        dead letters are discarded as superseded (audited): the user's current state is delivered, which is all a
        replay of them would send.
        If the lease was lost, nothing else changes. ValueError if `sent` is not JSON or
        `pushed` names an extension twice.
        """
        repeated = sorted(ext for ext, n in collections.Counter(r.extension for r in pushed).items() if n > 1)
        if repeated:
            raise ValueError(f"pushed lists extension(s) {', '.join(repeated)} more than once; give each once")
        sent_json = to_json(list(sent), "the SOAP requests sent")
        user, now = (claim.source, claim.external_id), time.time()
        with self._write() as conn:
            settled = self._settle(conn, claim, EventState.DONE)
            # A lease lost to a newer push of the user: only unlock and wake, the newer push records the rest.
            waiting = [] if finish is None else self._finish_push(conn, finish, complete=bool(settled))
            if not settled:
                return waiting
            self._add_attempt(conn, claim, "done", None, note, sent_json)
            self._supersede(conn, claim, now)
            conn.execute(self._q["forget_pushed"], user)
            conn.cursor().executemany(self._q["add_pushed"], [
                (*user, record.extension, position, json.dumps(record.to_dict()), now)
                for position, record in enumerate(pushed)])
            if user_id is not None and user_id != claim.verba_user_id:
                conn.execute(self._q["set_verba_user"], (*user, user_id))
        return waiting

    def retry(self, claim: Claim, next_attempt_at: float, cause: str, error: str, *,
              sent: Sequence[dict[str, Any]] = ()) -> None:
        """Put the claim back to pending, due at `next_attempt_at`, keeping cause and error.
        Records an attempt ("retry"); changes nothing if the lease was lost."""
        self._end(claim, "retry", cause, error, sent, EventState.PENDING, next_attempt_at=next_attempt_at)

    def dead_letter(self, claim: Claim, cause: str, error: str, *, sent: Sequence[dict[str, Any]] = ()) -> None:
        """Move the claim to dead with its cause class and message; never trimmed.
        Records an attempt ("dead"); changes nothing if the lease was lost."""
        self._end(claim, "dead", cause, error, sent, EventState.DEAD)

    def postpone(self, claim: Claim, until: float, *, cause: str | None = None, error: str | None = None,
                 sent: Sequence[dict[str, Any]] = ()) -> None:
        """Put the claim back to pending, due at `until`, as if it had not been claimed (attempts
        unchanged), and drop the extension locks its push took. A push that `sent` requests before it was cut
        short records an attempt ("postponed", with `cause` and `error`), which the retry budget does not count,
        so that on-call sees what reached Verba. Changes no event if the lease was lost."""
        sent_json = to_json(list(sent), "the SOAP requests sent")
        with self._write() as conn:
            if self._settle(conn, claim, EventState.PENDING, unclaim=1, next_attempt_at=until) and sent:
                self._add_attempt(conn, claim, POSTPONED, cause, error, sent_json)
            conn.execute(self._q["unlock_extensions"], (claim.owner,))

    def hold(self, claim: Claim, cause: str, error: str) -> None:
        """Move the claim to held (a guard stopped it before anything was written) with its cause and message,
        for `requeue(approve=True)`; its attempts stay as they were before the claim. Changes nothing if the
        lease was lost."""
        with self._write() as conn:
            if self._settle(conn, claim, EventState.HELD, unclaim=1, cause=cause, error=error):
                self._wait_behind_held(conn, claim.event_ids)  # the user's changes accepted meanwhile

    def renew_lease(self, claim: Claim, lease_until: float) -> Claim | None:
        """Extend the claim's lease (and its extension locks) to `lease_until` while its push runs;
        the claim with the new lease, or None if the lease was already lost."""
        with self._write() as conn:
            self._lock_user(conn, claim.source, claim.external_id)
            if not conn.execute(self._q["renew_lease"], {
                    "new": lease_until, "source": claim.source, "external_id": claim.external_id,
                    "owner": claim.owner, "lease_until": claim.lease_until}).rowcount:
                return None
            conn.execute(self._q["renew_locks"], (lease_until, claim.owner))
        return dataclasses.replace(claim, lease_until=lease_until)

    def expedite(self, causes: Sequence[str], now: float) -> int:
        """Make the pending events that backed off after a failure of one of `causes` due at `now` (the
        target is back: they need not wait out their backoff); return how many."""
        with self._write() as conn:
            self._lock_queue(conn)
            return int(conn.execute(self._q["expedite"], (now, time.time(), now, self._array(causes))).rowcount)

    def release_leases(self) -> int:
        """Return every in-flight event to pending and drop every extension lock, breaker, instance and
        directory leader of an earlier run (single-instance start-up); return how many events."""
        with self._write() as conn:
            self._lock_queue(conn)
            for forget in ("release_locks", "forget_breakers", "forget_instances", "forget_leaders"):
                conn.execute(self._q[forget])
            return int(conn.execute(self._q["release_leases"], (time.time(),)).rowcount)

    def start_instance(self) -> int:
        """Prepare the store for this process's `connector run`; return how many in-flight events of
        an earlier run went back to the queue (see each dialect)."""
        raise NotImplementedError

    def _end(self, claim: Claim, outcome: str, cause: str, error: str, sent: Sequence[dict[str, Any]],
             state: EventState, *, next_attempt_at: float | None = None) -> None:
        sent_json = to_json(list(sent), "the SOAP requests sent")
        with self._write() as conn:
            if self._settle(conn, claim, state, cause=cause, error=error, next_attempt_at=next_attempt_at):
                self._add_attempt(conn, claim, outcome, cause, error, sent_json)

    def _settle(self, conn: Any, claim: Claim, state: EventState, *, unclaim: int = 0,
                next_attempt_at: float | None = None, cause: str | None = None, error: str | None = None) -> int:
        """Move the claim's events its lease still holds to `state` and end the lease; how many moved."""
        self._lock_user(conn, claim.source, claim.external_id)
        return int(conn.execute(self._q["settle"], {
            "state": state.value, "unclaim": unclaim, "next_attempt_at": next_attempt_at, "cause": cause,
            "error": error, "at": time.time(), "source": claim.source, "external_id": claim.external_id,
            "owner": claim.owner, "lease_until": claim.lease_until}).rowcount)

    def _supersede(self, conn: Any, claim: Claim, now: float) -> None:
        """Discard the user's dead letters up to the event whose state the claim settled (the user's current one,
        written, already in Verba, or with nothing to write): nothing is left to deliver for them."""
        pushed = (claim.current or claim.latest).id
        reason = (f"superseded: event {claim.latest.id} is done, Verba in step with the user's current state (event "
                  f"{pushed}'s), all a replay of this one would send")
        ids = [row["id"] for row in conn.execute(self._q["supersede_dead"], {
            "reason": reason, "at": now, "source": claim.source, "external_id": claim.external_id, "upto": pushed})]
        if ids:
            conn.execute(self._q["add_audit"], (now, CONNECTOR, "supersede", self._array(ids), reason, "{}"))

    def _add_attempt(self, conn: Any, claim: Claim, outcome: str, cause: str | None, error: str | None,
                     sent_json: str) -> None:
        conn.execute(self._q["add_attempt"], (claim.source, claim.external_id, self._array(claim.event_ids),
                                              time.time(), outcome, cause, error, sent_json))


def pushed_record(row: Any) -> ExtensionRecord:
    """The record a `pushed_extensions` row holds."""
    return ExtensionRecord.from_dict(json.loads(row["record"]))


def stored_event(row: Any) -> StoredEvent:
    """An `events` row as read by get_event, current_event or claim_user (`waits_behind`: get_event, list_events)."""
    change = UserChange(source=row["source"], external_id=row["external_id"], kind=row["kind"],
                        state=json.loads(row["state_json"]), accepted_at=float(row["accepted_at"]),
                        cause=row["cause"], idem_key=row["idem_key"])
    return StoredEvent(id=row["id"], change=change, state=EventState(row["state"]), attempts=row["attempts"],
                       next_attempt_at=float(row["next_attempt_at"]), last_cause=row["last_cause"],
                       last_error=row["last_error"], updated_at=float(row["updated_at"]),
                       discard_reason=row["discard_reason"],
                       waits_behind=row["waits_behind"] if "waits_behind" in row.keys() else None)
