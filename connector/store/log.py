"""The event log as on-call staff and reports read it: events, attempts, summaries, operator
actions, the audit trail, and each user's last pushed extensions (the per-user projection)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from connector.events import unstorable
from connector.records import ExtensionRecord
from connector.store.database import Audit, Database, repeatable, to_json
from connector.store.queue import EventState, StoredEvent, pushed_record, stored_event

CONFLICT_CAUSE = "extension_conflict"  # not an event's last cause: the events of open conflicts
MASS_CHANGE_CAUSE = "ldap_mass_change"  # not a last cause either: events the LDAP mass-change guard holds leave none
REPAIR_CAUSE = "drift_repair"  # the cause of the events a drift repair queues (connector/ops/drift.py), and its audit


class CauseGroup(NamedTuple):
    """Dead letters of one cause: how many, and the message of the newest of them as a sample."""

    cause: str
    sample: str
    size: int  # how many events (`count` would hide tuple.count)


class HeldGroup(NamedTuple):
    """Held events of one cause and source: how many, and the message of the newest of them (None for the
    LDAP mass-change guard's, which leave none)."""

    cause: str
    source: str
    size: int  # how many events (`count` would hide tuple.count)
    sample: str | None


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    event_ids: tuple[int, ...]
    reason: str
    detail: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One delivery attempt of a claim: when, how it ended, and the SOAP requests it sent (secrets redacted)."""

    at: float
    event_ids: tuple[int, ...]
    outcome: str  # "done", "retry", "dead", or POSTPONED: cut short and queued again, not counted as an attempt
    cause: str | None
    error: str | None
    sent: tuple[dict[str, Any], ...]  # e.g. {"operation": "createExtension", "status": "OK", "envelope": "<soap…>"}


@dataclasses.dataclass(frozen=True)
class DriftRun:
    """One drift check (connector/ops/drift.py): what it checked and found. Times are Unix seconds."""

    started_at: float
    finished_at: float
    users: int
    extensions: int  # extension records compared with Verba
    counts: dict[str, int]  # drift found, by kind ("missing", "unlinked", "other_user", "settings", "extra")
    unchecked: int  # users not checked (a change waits to be pushed or is pushed now, no Verba user, ...)
    repaired: int | None  # users queued for repair; None: a check without repair
    trigger: str  # "cli" or "schedule"


@dataclasses.dataclass(frozen=True)
class DriftFailure:
    """A scheduled drift check that failed (connector/ops/drift.py DriftSchedule). Times are Unix seconds."""

    started_at: float
    failed_at: float
    error: str  # why, one line, no secret


@dataclasses.dataclass(frozen=True)
class StoredUser:
    """What the store holds of one user: `current_event`, `verba_user_id` and `pushed_extensions`."""

    source: str
    external_id: str
    current: StoredEvent | None
    verba_user_id: int | None
    pushed: list[ExtensionRecord]


@dataclasses.dataclass(frozen=True)
class OpenBreaker:
    """A connector instance whose circuit breaker on the target is open (connector/delivery/breaker.py)."""

    instance: str
    opened_at: float
    probed_at: float | None
    error: str | None
    updated_at: float


@dataclasses.dataclass(frozen=True)
class RecorderState:
    """What a recording server answered the last applyExtensionConfiguration that named it."""

    location: str  # the server's name
    eid: str | None
    status: str  # its statusCode: OK when it took the extension table
    message: str | None
    applied_at: float  # Unix time of the call
    instance: str  # the connector instance that made it

    @property
    def took_table(self) -> bool:
        return self.status == "OK"

    @property
    def answer(self) -> str:
        """Its status as it answered it: "ERROR_GENERAL: disk full", "OK"."""
        return f"{self.status}: {self.message}" if self.message else self.status


@dataclasses.dataclass(frozen=True)
class TargetProbe:
    """The last health probe of the target a connector instance took (connector/ops/health.py)."""

    instance: str
    url: str
    probed_at: float  # Unix time the probe started
    seconds: float  # how long it took
    cause: str | None  # None: Verba answered; else the failure's cause class ("transport", "http_5xx", "auth", ...)
    error: str | None  # what failed, one line, no secret

    @property
    def answered(self) -> bool:
        return self.cause is None


class EventLog(Database):
    def pushed_extensions(self, source: str, external_id: str) -> list[ExtensionRecord]:
        """The extensions last pushed for this user, as and in the order they were pushed."""
        return [pushed_record(row) for row in self._all("pushed_extensions", (source, external_id))]

    def verba_user_id(self, source: str, external_id: str) -> int | None:
        """The Verba user id last pushed for this user, if any."""
        row = self._first("verba_user_id", (source, external_id))
        return None if row is None else int(row["user_id"])

    def get_event(self, event_id: int) -> StoredEvent | None:
        row = self._first("get_event", (event_id,))
        return None if row is None else stored_event(row)

    def current_event(self, source: str, external_id: str) -> StoredEvent | None:
        """The user's newest event that is not held or discarded: the state a replay should push."""
        row = self._first("current_event", (source, external_id))
        return None if row is None else stored_event(row)

    def newest_event(self, source: str, external_id: str) -> StoredEvent | None:
        """The user's newest event, whatever its state."""
        row = self._first("newest_event", (source, external_id))
        return None if row is None else stored_event(row)

    def stored_users(self, keys: Sequence[tuple[str, str]]) -> list[StoredUser]:
        """What the store holds of each of these (source, external_id) users, in their order: three queries
        per source, not three per user (a drift check reads thousands)."""
        by_source: dict[str, list[str]] = {}
        for source, external_id in keys:
            by_source.setdefault(source, []).append(external_id)
        current: dict[tuple[str, str], StoredEvent] = {}
        user_ids: dict[tuple[str, str], int] = {}
        pushed: dict[tuple[str, str], list[ExtensionRecord]] = {}
        for source, external_ids in by_source.items():
            params = (source, self._array(external_ids))
            for row in self._all("current_events", params):
                current[(source, row["external_id"])] = stored_event(row)
            for row in self._all("verba_user_ids", params):
                user_ids[(source, row["external_id"])] = int(row["user_id"])
            for row in self._all("pushed_extensions_of", params):
                pushed.setdefault((source, row["external_id"]), []).append(pushed_record(row))
        return [StoredUser(*key, current.get(key), user_ids.get(key), pushed.get(key, [])) for key in keys]

    def list_events(self, *, state: EventState | None = None, cause: str | None = None, user: str | None = None,
                    source: str | None = None, since: float | None = None, limit: int = 100) -> list[StoredEvent]:
        """Events, newest first, matching every filter given.

        `cause` is the last cause, "extension_conflict" for the events of open conflicts, or
        "ldap_mass_change" for those the LDAP mass-change guard holds (which have none); `user` is
        an external id or source/external_id (exact), or a `userName` in the state (ASCII
        case-insensitive), whichever matches (a userName with a "/" in it still does); `since` is a
        Unix time the event was last updated at or after.
        """
        rows = self._filtered("list_events", state=state, cause=cause, user=user, source=source, since=since,
                              limit=limit)
        return [stored_event(row) for row in rows]

    def attempts(self, event_id: int) -> list[Attempt]:
        """The recorded attempts of every claim that held this event, oldest first."""
        return [Attempt(row["at"], tuple(json.loads(row["event_ids"])), row["outcome"], row["cause"], row["error"],
                        tuple(json.loads(row["sent"]))) for row in self._all("attempts_of_event", (event_id,))]

    def count_by_state(self, *, cause: str | None = None, user: str | None = None, source: str | None = None,
                       since: float | None = None) -> dict[EventState, int]:
        """How many events are in each state; with filters (as `list_events`'), of those they select."""
        counts = {state: 0 for state in EventState}
        rows = self._filtered("count_by_state", cause=cause, user=user, source=source, since=since)
        counts.update({EventState(row["state"]): row["n"] for row in rows})
        return counts

    def dead_letter_summary(self, *, cause: str | None = None, user: str | None = None, source: str | None = None,
                            since: float | None = None) -> list[CauseGroup]:
        """The dead events grouped by last cause, largest group first: one group per cause however many
        users or messages it has, with the newest one's message as a sample. Filters as `list_events`'."""
        rows = self._filtered("dead_letter_summary", cause=cause, user=user, source=source, since=since)
        return [CauseGroup(**row) for row in rows]

    def retrying_summary(self) -> list[CauseGroup]:
        """The pending and in-flight events retrying after a failure (an attempt of theirs ended with a cause), grouped
        by that cause as `dead_letter_summary` groups dead letters."""
        return [CauseGroup(**row) for row in self._filtered("retrying_summary")]

    def held_summary(self, *, cause: str | None = None, user: str | None = None, source: str | None = None,
                     since: float | None = None) -> list[HeldGroup]:
        """The held events grouped by cause and source, largest group first, with the newest one's message
        as a sample; the LDAP mass-change guard's (which leave no cause) are "ldap_mass_change". Filters as
        `list_events`'."""
        return [HeldGroup(**row) for row in self._filtered("held_summary", cause=cause, user=user, source=source,
                                                           since=since)]

    def oldest_pending_at(self) -> float | None:
        """When the oldest pending or in-flight event was queued (accepted, or queued again by a replay or an
        approval: `requeue`); None when there are none. Pending events that wait behind a held event of their
        user wait for an operator, as held ones do, and are not counted (`waiting_behind_held` counts them)."""
        oldest = self._first("oldest_pending_at")["oldest"]
        return None if oldest is None else float(oldest)

    def waiting_behind_held(self) -> tuple[int, int]:
        """(events, users): the pending events that wait behind a held event of their user (never claimed until
        an operator approves or discards it), and how many users they are."""
        row = self._first("waiting_behind_held")
        return int(row["events"]), int(row["users"])

    def count_by_source_and_kind(self) -> list[tuple[str, str, int]]:
        """(source, kind, count) of every event ever accepted (events are never deleted)."""
        return [(row["source"], row["kind"], row["n"]) for row in self._all("count_by_source_and_kind")]

    def requeue(self, event_ids: Sequence[int], now: float, *, spacing: float = 0.0, approve: bool = False,
                audit: Audit | None = None) -> int:
        """Make dead, held or discarded events, and done events with an open extension conflict, pending again
        with attempts reset and forced (pushed even if nothing changed); return how many. A discarded one loses its
        discard reason (an operator undid the discard; the audit keeps both). `audit` is written with it, naming the
        events, with "requeued": how many.

        The i-th of them in id order (from 0) is due at `now + i * spacing`, to pace a replay.
        `approve` marks them approved by an operator, so the stop-recording guard lets them pass.
        Other states are left alone, so concurrent requeues change each event once. A requeued event of a user with
        a held event waits behind it (a replayed old one too); an approval lets the user's events go unless another
        of its events is still held.
        """
        params = {"ids": self._array(event_ids), "now": now, "spacing": spacing, "at": time.time(),
                  "approve": approve}
        with self._write() as conn:
            self._lock_queue(conn)  # it may end holds of many users (queue.py)
            count = int(conn.execute(self._q["requeue"], params).rowcount)
            self._wait_behind_held(conn, event_ids)
            if audit is not None:
                self._audit(conn, audit, event_ids, requeued=count)
            return count

    def queue_current(self, users: Sequence[tuple[str, str]], cause: str, *, audit: Audit | None = None) -> list[int]:
        """Queue a forced copy (pushed even if nothing changed) of each (source, external_id) user's current event
        (its newest neither held nor discarded), with `cause`, in one transaction, `audit` too (naming the new events,
        with "users": how many); the new events' ids. The current one when it is written: a change accepted meanwhile
        is what is copied, never an older state over it. A user with a held change after it gets none: an operator
        decides that change first (one with a held change before it gets a copy that waits behind it)."""
        now = time.time()
        with self._write() as conn:
            ids = [row["id"] for source, external_id in users for row in conn.execute(
                self._q["recheck"], {"source": source, "external_id": external_id, "now": now, "cause": cause})]
            self._queued_behind_held(conn, ids)
            if audit is not None:
                self._audit(conn, audit, ids, users=len(ids))
            return ids

    def discard(self, event_ids: Sequence[int], reason: str, *, audit: Audit | None = None) -> int:
        """Make dead or held events discarded for `reason`, keeping their last cause and error; return
        how many. Other states are left alone. The events that waited behind a discarded held event go on (or wait
        behind the user's next held one). `audit` is written with it, naming the events, with "discarded": how many.
        Discarding the delete of an LDAP directory's user (the watcher forgot the user when it stored the delete)
        makes the directory's next run take a census, which knows the user again if still in scope
        (`ldap_census_due`); the watcher's entry of a user whose event is discarded loses its digest, so that the
        user's next read makes an event (`ldap_forget_digests`). ValueError, changing nothing, for a blank reason or
        one no store can hold (`unstorable`)."""
        if not reason.strip():
            raise ValueError("discarding events needs a reason; say why they must not be delivered")
        if problem := unstorable(reason):
            raise ValueError(f"the discard reason {reason!a} {problem}; nothing was changed")
        with self._write() as conn:
            # Before the queue's lock: a poll locks its watermark, then the queue (LdapMarks._put).
            conn.execute(self._q["ldap_census_due"], (self._array(event_ids),))
            self._lock_queue(conn)  # it may end holds of many users (queue.py)
            conn.execute(self._q["ldap_forget_digests"], (self._array(event_ids),))  # after the queue, as a poll
            count = int(conn.execute(self._q["discard"], (reason, time.time(), self._array(event_ids))).rowcount)
            self._wait_behind_held(conn, event_ids)
            if audit is not None:
                self._audit(conn, audit, event_ids, discarded=count)
            return count

    def add_audit(self, actor: str, action: str, event_ids: Sequence[int], reason: str, detail: dict[str, Any]) -> int:
        """Write an audit entry by itself; its id. ValueError as `Audit` raises it. An action on the store is
        audited in its own transaction instead (`Audit`)."""
        audit = Audit(actor, action, reason, detail)
        with self._write() as conn:
            return self._audit(conn, audit, event_ids)

    def list_audit(self, limit: int = 100, *, since: float | None = None) -> list[AuditEntry]:
        """Audit entries, newest first; with `since`, only those written at or after it."""
        return [_audit_entry(row) for row in self._all("list_audit", (since, limit))]

    def audit_of_event(self, event_id: int) -> list[AuditEntry]:
        """The audit entries that name this event, oldest first: operators' replays, approvals and discards, and the
        connector's own decisions about its extensions (left alone, handed over, taken over) with why."""
        return [_audit_entry(row) for row in self._all("audit_of_event", (event_id,))]

    @repeatable
    def ping(self) -> None:
        """Commit a tiny write (the readiness probe); raise StoreError if the store cannot be written."""
        with self._statement() as conn:  # one statement is one transaction
            conn.execute(self._q["ping"], (time.time(),))

    def note_breaker(self, instance: str, opened_at: float | None, probed_at: float | None = None,
                     error: str | None = None) -> None:
        """Record `instance`'s breaker on the target: open since `opened_at`, or closed (None)."""
        with self._statement() as conn:
            if opened_at is None:
                conn.execute(self._q["close_breaker"], (instance,))
            else:
                conn.execute(self._q["note_breaker"], (instance, opened_at, probed_at, error, time.time()))

    def open_breakers(self) -> list[OpenBreaker]:
        """The instances whose breaker is open, first opened first."""
        return [OpenBreaker(**row) for row in self._all("open_breakers")]

    def note_target_probe(self, probe: TargetProbe) -> None:
        """Record `probe.instance`'s last probe of the target, replacing the one before."""
        with self._statement() as conn:
            conn.execute(self._q["note_target_probe"], vars(probe))

    def target_probes(self) -> list[TargetProbe]:
        """Each instance's last probe of the target, newest first."""
        return [TargetProbe(**row) for row in self._all("target_probes")]

    def note_recorders(self, recorders: Sequence[RecorderState]) -> None:
        """Record what each recording server answered the last applyExtensionConfiguration, replacing what it
        answered before; a server the answer does not name keeps its row."""
        with self._write() as conn:
            conn.cursor().executemany(self._q["note_recorder"], [vars(recorder) for recorder in recorders])

    def recorders(self) -> list[RecorderState]:
        """Each recording server's last answer to applyExtensionConfiguration, by location name."""
        return [RecorderState(**row) for row in self._all("recorders")]

    def user_keys(self) -> list[tuple[str, str]]:
        """The (source, external_id) of every user an event was ever accepted for, in order."""
        return [(row["source"], row["external_id"]) for row in self._all("user_keys")]

    def add_drift_run(self, run: DriftRun) -> None:
        with self._statement() as conn:
            conn.execute(self._q["add_drift_run"], {**vars(run), "counts": to_json(run.counts, "drift counts")})

    def last_drift_run(self) -> DriftRun | None:
        row = self._first("last_drift_run")
        return None if row is None else DriftRun(**{**row, "counts": json.loads(row["counts"])})

    def add_drift_failure(self, failure: DriftFailure) -> None:
        """Record `failure` as the newest failed scheduled check; older ones are forgotten (only the newest is read)."""
        with self._write() as conn:
            conn.execute(self._q["forget_drift_failures"], vars(failure))
            conn.execute(self._q["add_drift_failure"], vars(failure))

    def last_drift_failure(self) -> DriftFailure | None:
        """The newest failed scheduled check, unless a check was recorded (add_drift_run) after it failed."""
        row = self._first("last_drift_failure")
        return None if row is None else DriftFailure(**row)

    def _filtered(self, query: str, *, limit: int | None = None, **given: Any) -> list[Any]:
        """The rows of `query`, whose `{filters}` stands for the conditions on `events` (" AND ...") that select
        what `list_events` documents for the filters `given` (state, cause, user, source, since: None for any); a
        `limit` fills the query's %(limit)s."""
        cause = {CONFLICT_CAUSE: "id IN (SELECT event_id FROM extension_conflicts)",
                 MASS_CHANGE_CAUSE: "(state = 'held' AND last_cause IS NULL)"}.get(given.get("cause") or "")
        conditions = {"state": "state = %(state)s", "cause": cause or "last_cause = %(cause)s",
                      "user": f"(external_id = %(user)s OR source || '/' || external_id = %(user)s "
                              f"OR lower({self._q['user_name']}) = lower(%(user)s))",
                      "source": "source = %(source)s", "since": "updated_at >= %(since)s"}
        filters = "".join(f" AND {conditions[name]}" for name, value in given.items() if value is not None)
        if given.get("state") is not None:
            given["state"] = EventState(given["state"]).value
        sql = self._q[query].replace("{filters}", self._sql(filters))
        with self._read() as conn:
            return list(conn.execute(sql, {**given, "limit": limit}))


def _audit_entry(row: Any) -> AuditEntry:
    return AuditEntry(**{**row, "event_ids": tuple(json.loads(row["event_ids"])), "detail": json.loads(row["detail"])})
