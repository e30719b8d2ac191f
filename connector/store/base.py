"""The store contract: every backend (SQLite now, PostgreSQL later) implements `Store`.

Event states:
    pending    waiting to be pushed (possibly after `next_attempt_at`)
    in_flight  claimed by a worker until `lease_until`
    done       Verba answered OK for the state it carried (or a later one)
    dead       a dead letter: `last_cause` and `last_error` say why
    held       held back by a guard until an operator approves it
    discarded  an operator decided not to deliver it (`discard_reason` says why); never
               claimed, blocks nobody, kept forever

One `Store` object may be used from several threads at once.
"""

from __future__ import annotations

import dataclasses
import enum
from contextlib import AbstractContextManager
from typing import Any, Sequence

from connector.errors import ConnectorError
from connector.events import UserChange
from connector.mapping.records import ExtensionRecord
from connector.store.ownership import OwnershipStore, PushFinish


class StoreError(ConnectorError):
    """The event store could not be read or written."""


class EventState(str, enum.Enum):
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


@dataclasses.dataclass(frozen=True)
class Claim:
    """All pending events of one user, claimed together; `latest` is the one to push.

    `owner` and `lease_until` identify the lease: `complete`, `retry` and `dead_letter`
    change the events only while this lease still holds them.
    """

    source: str
    external_id: str
    event_ids: tuple[int, ...]
    latest: StoredEvent
    attempts: int  # the highest attempt count in the batch, this attempt included
    owner: str = ""
    lease_until: float = 0.0


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
    outcome: str  # "done", "retry" or "dead"
    cause: str | None
    error: str | None
    sent: tuple[dict[str, Any], ...]  # e.g. {"operation": "createExtension", "status": "OK", "envelope": "<soap…>"}


class Store(OwnershipStore):
    """Durable state of the connector. Every write is one transaction.

    The extension-ownership part (claims, locks, conflicts, the stop-recording window) is
    written once in `OwnershipStore`; a backend gives it `_placeholder`, `_write` and `_read`.
    """

    def migrate(self) -> None:
        """Create or upgrade the schema; safe to call on every start."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- intake -------------------------------------------------------
    def enqueue(self, changes: Sequence[UserChange], *, state: EventState = EventState.PENDING) -> list[int]:
        """Store all changes in one transaction (all or nothing) and return their ids.

        A change whose `idem_key` is already stored is skipped (its id is not returned).
        A new event is due at its `accepted_at`. A state that is not JSON raises
        ValueError and nothing of the batch is stored.
        """
        raise NotImplementedError

    # --- delivery -----------------------------------------------------
    def claim(self, owner: str, now: float, lease_seconds: float) -> Claim | None:
        """Claim the pending events of one user whose oldest pending event is due.

        Never claims a user who has an event in flight (per-user order). In-flight
        events whose lease expired before `now` count as pending again. All pending
        events of the chosen user move to in_flight and their attempts go up by one.
        Users are served in the order their oldest pending event became due, then by id.
        Held, dead, discarded and done events are never claimed and block nobody.
        """
        raise NotImplementedError

    def complete(
        self,
        claim: Claim,
        pushed: Sequence[ExtensionRecord],
        user_id: int | None,
        *,
        sent: Sequence[dict[str, Any]] = (),
        finish: PushFinish | None = None,
    ) -> list[tuple[str, str]]:
        """Mark the claim done and record `pushed` as the user's current extensions.

        `finish` ends the push begun by `begin_push` in the same transaction (as `finish_push`
        would, even if the lease was lost); the users waiting on an extension it released are
        returned ([] without `finish`).

        `pushed` replaces the user's previous set: extensions missing from it were
        deprovisioned. `user_id` is remembered as the user's Verba id (None keeps it).
        An `Attempt` with outcome "done" and the SOAP requests `sent` is recorded.
        If the lease was lost (expired and released or claimed again), nothing changes
        and no attempt is recorded. `sent` that is not JSON raises ValueError.
        """
        raise NotImplementedError

    def retry(
        self, claim: Claim, next_attempt_at: float, cause: str, error: str, *, sent: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Put the claim back to pending, due at `next_attempt_at`, keeping cause and error.

        Like `complete`, this records an attempt ("retry") and changes nothing if the lease was lost.
        """
        raise NotImplementedError

    def dead_letter(self, claim: Claim, cause: str, error: str, *, sent: Sequence[dict[str, Any]] = ()) -> None:
        """Move the claim to dead with its cause class and message. Never trimmed.

        Like `complete`, this records an attempt ("dead") and changes nothing if the lease was lost.
        """
        raise NotImplementedError

    def postpone(self, claim: Claim, until: float) -> None:
        """Put the claim back to pending, due at `until`, as if it had not been claimed (attempts unchanged).

        Changes nothing if the lease was lost.
        """
        with self._write() as conn:
            self._settle_claim(conn, claim, self._sql("state = 'pending', attempts = attempts - 1, next_attempt_at = {p}"),
                               (until,))

    def hold(self, claim: Claim, cause: str, error: str) -> None:
        """Move the claim to held (a guard stopped it) with its cause and message, for `requeue(approve=True)`.

        Changes nothing if the lease was lost.
        """
        with self._write() as conn:
            self._settle_claim(conn, claim, self._sql("state = 'held', last_cause = {p}, last_error = {p}"),
                               (cause, error))

    def renew_lease(self, claim: Claim, lease_until: float) -> Claim | None:
        """Extend the claim's lease (and its extension locks) to `lease_until` while its push runs;
        the claim with the new lease, or None if the lease was already lost."""
        q = self._sql
        with self._write() as conn:
            self._lock_claimed_user(conn, claim)
            renewed = conn.execute(q(
                "UPDATE events SET lease_until = {p} WHERE source = {p} AND external_id = {p}"
                " AND state = 'in_flight' AND lease_owner = {p} AND lease_until = {p}"),
                (lease_until, claim.source, claim.external_id, claim.owner, claim.lease_until)).rowcount
            if not renewed:
                return None
            conn.execute(q("UPDATE extension_locks SET lock_until = {p} WHERE owner = {p}"), (lease_until, claim.owner))
        return dataclasses.replace(claim, lease_until=lease_until)

    def _lock_claimed_user(self, conn: Any, claim: Claim) -> None:
        """Take the backend's lock on the claim's user for this transaction, as settling does."""
        raise NotImplementedError

    def _settle_claim(self, conn: Any, claim: Claim, assignments: str, params: tuple[Any, ...]) -> int:
        """Apply `assignments` to the claim's events its lease still holds and end the lease (the
        backend's locking); return how many events changed."""
        raise NotImplementedError

    def attempts(self, event_id: int) -> list[Attempt]:
        """The recorded attempts of every claim that held this event, oldest first."""
        raise NotImplementedError

    def start_instance(self) -> int:
        """Prepare the store for this process's `connector run`; return how many in-flight events of an
        earlier run went back to the queue.

        SQLite: one connector per file; a second one is refused with StoreError, and the first's
        leases are released (whatever is in flight was this file's only connector's). PostgreSQL:
        several connectors share it; nothing to do (other instances' leases expire).
        """
        raise NotImplementedError

    def release_leases(self) -> int:
        """Return every in-flight event to pending and drop every extension lock (single-instance
        start-up); return how many events."""
        raise NotImplementedError

    # --- per-user projection ------------------------------------------
    def pushed_extensions(self, source: str, external_id: str) -> list[ExtensionRecord]:
        """The extensions last pushed for this user, as they were pushed."""
        raise NotImplementedError

    def verba_user_id(self, source: str, external_id: str) -> int | None:
        raise NotImplementedError

    # --- reading and operator actions ---------------------------------
    def get_event(self, event_id: int) -> StoredEvent | None:
        raise NotImplementedError

    def list_events(
        self,
        *,
        state: EventState | None = None,
        cause: str | None = None,
        user: str | None = None,
        source: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Events, newest first, matching every filter given.

        `cause` is the last cause, or "extension_conflict" for the events of open conflicts; `user` is an external id (exact) or a `userName` in the
        state (ASCII case-insensitive); `since` is a Unix time the event was last updated at or after.
        """
        raise NotImplementedError

    def current_event(self, source: str, external_id: str) -> StoredEvent | None:
        """The user's newest event that is not held or discarded: the state a replay should push."""
        raise NotImplementedError

    def count_by_state(self) -> dict[EventState, int]:
        raise NotImplementedError

    def dead_letter_summary(self) -> list[tuple[str, str, int]]:
        """(last cause, last error, count) of the dead events, largest count first."""
        raise NotImplementedError

    def held_summary(self) -> list[tuple[str, str, int]]:
        """(cause, source, count) of the held events, largest group first; the LDAP mass-change guard's
        (which leave no cause) are "ldap_mass_change"."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT coalesce(last_cause, 'ldap_mass_change') AS cause, source, count(*) AS n FROM events"
                " WHERE state = 'held' GROUP BY coalesce(last_cause, 'ldap_mass_change'), source"
                " ORDER BY n DESC, cause, source").fetchall()
        return [(row["cause"], row["source"], int(row["n"])) for row in rows]

    def oldest_pending_at(self) -> float | None:
        """The earliest `accepted_at` of the pending and in-flight events; None when there are none."""
        raise NotImplementedError

    def count_by_source_and_kind(self) -> list[tuple[str, str, int]]:
        """(source, kind, count) of every event ever accepted (events are never deleted)."""
        raise NotImplementedError

    def requeue(self, event_ids: Sequence[int], now: float, *, spacing: float = 0.0, approve: bool = False) -> int:
        """Make dead or held events, and done events with an open extension conflict, pending again
        with attempts reset; return how many.

        The i-th of them in id order (from 0) is due at `now + i * spacing`, to pace a replay.
        `approve` marks them approved by an operator, so the stop-recording guard lets them pass.
        Other states are left alone, so concurrent requeues change each event once.
        """
        raise NotImplementedError

    def discard(self, event_ids: Sequence[int], reason: str) -> int:
        """Make dead or held events discarded for `reason`, keeping their last cause and error; return how many.

        Other states are left alone. A blank reason raises ValueError.
        """
        raise NotImplementedError

    def add_audit(self, actor: str, action: str, event_ids: Sequence[int], reason: str, detail: dict[str, Any]) -> int:
        raise NotImplementedError

    def list_audit(self, limit: int = 100, *, since: float | None = None) -> list[AuditEntry]:
        """Audit entries, newest first; with `since`, only those written at or after it."""
        raise NotImplementedError

    def ping(self) -> None:
        """Commit a tiny write (the readiness probe); raise StoreError if the store cannot be written."""
        raise NotImplementedError

    # --- LDAP watermarks ----------------------------------------------
    def ldap_watermark(self, directory: str) -> LdapWatermark | None:
        """The directory's cursor and last runs, or None before anything was recorded for it."""
        raise NotImplementedError

    def ldap_watermarks(self) -> list[LdapWatermark]:
        """Every directory's watermark, by name."""
        raise NotImplementedError

    def ldap_entries(self, directory: str, ids: Sequence[str] | None = None) -> dict[str, LdapEntry]:
        """What the connector last saw of the directory's entries (only `ids` if given), by external id."""
        raise NotImplementedError

    def commit_poll(self, poll: LdapPoll) -> list[int]:
        """Store a poll's events, entries and new cursor in one transaction; return the event ids.

        `poll.held` events are stored held, and so is any event of a user who already has a
        held event from this directory, so that a held delete is never overtaken. If the
        watermark's version is no longer `poll.version` (another poller committed first),
        nothing is stored and WatermarkMoved is raised. The version then goes up by one.
        """
        raise NotImplementedError

    def note_poll_failure(self, directory: str, error: str, at: float) -> None:
        """Record a failed run for `connector ldap status`; the cursor stays where it was."""
        raise NotImplementedError

    # --- SCIM resources -----------------------------------------------
    def scim_transaction(self, client: str) -> AbstractContextManager[ScimTransaction]:
        """One write transaction over the SCIM client's resources: what it puts, deletes and
        enqueues commits together when the block exits cleanly and is rolled back entirely
        when it raises. Reads inside see its own writes; transactions of one client run
        one at a time, so a read-modify-write inside one cannot lose an update.
        """
        raise NotImplementedError

    def scim_get(self, client: str, resource_type: str, resource_id: str) -> ScimResource | None:
        raise NotImplementedError

    def scim_search(
        self, client: str, resource_type: str, where: ScimQuery | None, offset: int, limit: int
    ) -> tuple[int, list[ScimResource]]:
        """How many resources match `where` (all if None), and `limit` of them from `offset`, oldest first."""
        raise NotImplementedError

    def scim_groups_of(self, client: str, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """For each user id, the (id, display name) of the Groups listing it as a member, oldest group first."""
        raise NotImplementedError


class WatermarkMoved(StoreError):
    """Another poller committed this directory's watermark first; poll again from the new one."""


@dataclasses.dataclass(frozen=True)
class LdapEntry:
    """What the connector last saw of one directory entry; `groups` are its effective groups as normalized DNs (connector/dn.py)."""

    external_id: str
    digest: str
    active: bool
    groups: tuple[str, ...]
    state: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class LdapWatermark:
    directory: str
    cursor: dict[str, Any]  # the dialect's, e.g. {"usn": 4711, "invocation_id": "..."}; {} before the first sync
    version: int
    known: int  # entries the connector knows
    last_run_at: float | None
    last_success_at: float | None
    last_error: str | None  # of the last run; None if it succeeded
    counts: dict[str, int]  # of the last successful run


@dataclasses.dataclass(frozen=True)
class LdapPoll:
    """One successful poll: everything `Store.commit_poll` writes at once."""

    directory: str
    version: int  # the watermark version the poll started from (0 before the first)
    cursor: dict[str, Any]
    at: float
    changes: Sequence[UserChange] = ()
    held: Sequence[UserChange] = ()
    entries: Sequence[LdapEntry] = ()  # seen now: inserted or replaced
    removed: Sequence[str] = ()  # external ids no longer in the directory
    counts: dict[str, int] = dataclasses.field(default_factory=dict)


# --- SCIM resources ---------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScimResource:
    """A SCIM User or Group as the SCIM source keeps it; `body` never holds id, meta or a password."""

    client: str
    resource_type: str  # "User" or "Group"
    id: str
    body: dict[str, Any]
    version: int
    created: str  # RFC 3339 in UTC, fixed width: orders like the instants it names
    last_modified: str
    unique_key: str | None = None  # a User's lower-cased userName: unique per client and type
    display: str = ""  # a Group's displayName, as its members' events list it


@dataclasses.dataclass(frozen=True)
class ScimValue:
    """One searchable value of a resource: `attr` is its key (`emails.value`), `idx` its element's position."""

    attr: str
    idx: int
    value: str

    @property
    def folded(self) -> str:
        return self.value.lower()


@dataclasses.dataclass(frozen=True)
class ScimQuery:
    """A condition on `r` (a scim_resources row) that may read scim_values, with `?` placeholders only."""

    sql: str
    params: tuple[Any, ...]


class ScimTransaction:
    """What a SCIM write may do inside `Store.scim_transaction`; all of it commits or none."""

    def get(self, resource_type: str, resource_id: str) -> ScimResource | None:
        raise NotImplementedError

    def get_many(self, resource_type: str, resource_ids: Sequence[str]) -> list[ScimResource]:
        raise NotImplementedError

    def find_unique(self, resource_type: str, unique_key: str) -> str | None:
        """The id of the resource holding `unique_key`, if any."""
        raise NotImplementedError

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """As `Store.scim_groups_of`, seeing this transaction's writes."""
        raise NotImplementedError

    def put(self, resource: ScimResource, values: Sequence[ScimValue]) -> None:
        """Insert or replace the resource (by client and id) and its searchable values."""
        raise NotImplementedError

    def delete(self, resource_type: str, resource_id: str) -> None:
        raise NotImplementedError

    def enqueue(self, changes: Sequence[UserChange]) -> None:
        """Store the events pending, as `Store.enqueue` would, in this transaction."""
        raise NotImplementedError
