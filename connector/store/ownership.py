"""Who claims and who holds each extension: the claim index, extension locks, conflicts, the stop-recording window.

Tables (see each dialect's migration 0004, and 0012; SQLite's 0013 keeps those a push writes WITHOUT ROWID):
    extension_claims      which source user claims which extension for recording, since when
    extension_owners      the Verba user the connector last wrote (or saw) each extension linked to
    extension_locks       one push at a time per extension, across workers and instances
    extension_conflicts   open conflicts: an extension this user claims but another user holds
    stop_recordings       each user's latest stop-recording push, for the mass stop-recording guard
    stop_recording_sources  one row per source, locked while the guard counts its window (PostgreSQL; SQLite
                            has BEGIN IMMEDIATE)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

from connector.errors import ConnectorError
from connector.records import ExtensionRecord
from connector.store.database import CONNECTOR, Database

RELEASED_CAUSE = "extension_released"  # the cause of a waiting user's event queued as its extension was let go
SETTINGS_CHANGED_CAUSE = "extension_settings_changed"  # ... as another source of its Verba user wrote the extension


@dataclasses.dataclass(frozen=True)
class Claimant:
    """A source user who claims an extension: it is in the records their current state maps to."""

    source: str
    external_id: str
    verba_user_id: int | None
    login_name: str | None
    claimed_at: float  # when the event that first claimed it was accepted

    @property
    def name(self) -> str:
        """How messages name the user: "source/external_id (login name)"."""
        return f"{self.source}/{self.external_id}" + (f" ({self.login_name})" if self.login_name else "")

    def earlier_than(self, other: Claimant) -> bool:
        """Accepted first (ties broken by source and id, so every worker orders claims alike)."""
        return (self.claimed_at, self.source, self.external_id) < (other.claimed_at, other.source, other.external_id)


@dataclasses.dataclass(frozen=True)
class PushPlan:
    """What a push of one user needs to know, read under the locks of the extensions it touches."""

    rivals: dict[str, list[Claimant]]  # extension -> other users who claim it
    owners: dict[str, int]  # extension -> the Verba user id the connector last saw holding it
    released: list[str]  # extensions this user claimed before and no longer does
    claimed_at: dict[str, float]  # extension -> when this user's claim on it was first accepted
    burst: StopRecordingBurst | None = None  # the stop-recording guard's count; None: the push stops no recording


@dataclasses.dataclass(frozen=True)
class Conflict:
    """An extension `claimant` wants recorded but another Verba user holds."""

    extension: str
    claimant: Claimant
    event_id: int
    owner_user_id: int | None
    owner_login: str | None
    owner_claimant: str | None  # our source user who holds it, e.g. "ldap/7f3a… (bob)"; None if not ours
    message: str
    since: float


@dataclasses.dataclass(frozen=True)
class PushFinish:
    """What a push learnt, for `finish_push` or `complete(finish=...)`."""

    lock_owner: str
    claimant: Claimant
    owners: dict[str, int | None]  # extension -> the Verba user it was written for or seen linked to; None: absent
    conflicts: Sequence[Conflict]  # the user's open conflicts now (they replace the previous ones)
    released: Sequence[str]  # extensions the user let go: their waiting users are woken (cause extension_released)
    # Other sources' users of the same Verba user whose settings on an extension the push overwrote: each gets a fresh
    # event pushed even if nothing changed, which then waits in a conflict (or finds the settings agree again).
    rechecked: Sequence[tuple[str, str]] = ()
    # Extensions the push wrote that another source's user of the same Verba user waits for: woken (cause
    # extension_settings_changed), as the settings it waited for may be the ones written.
    rewritten: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class StopRecordingBurst:
    """The guard's view of one source's stop-recording pushes within the window."""

    admitted: bool
    stopping: int  # users whose recording this source stops in the window, this one included
    recorded: int | None  # users of this source recorded at the window's start (about); None within max_count
    approved: bool  # an operator approved this user's events


@dataclasses.dataclass(frozen=True)
class StopRecordingWindow:
    """A push that stops recording, for the guard to count in its source's window (connector/delivery/guard.py)."""

    at: float  # when (Unix time)
    window_seconds: float
    max_count: int
    max_share: float
    # The extensions last pushed recording that the push gives up; () counts the push whatever they are.
    extensions: tuple[str, ...] = ()


class ExtensionsBusy(ConnectorError):
    """Another push holds one of the extensions; try this user again shortly."""


class LeaseLost(ConnectorError):
    """The push's lease no longer holds (it ended, or another worker or instance took the user over): nothing was
    changed; the user is tried again by whoever holds it."""


class StopRecordingHeld(ConnectorError):
    """The push would make its source's burst of stop-recording pushes too large: an operator decides."""

    def __init__(self, burst: StopRecordingBurst) -> None:
        super().__init__(f"stop-recording burst: {burst.stopping} users of about {burst.recorded} recorded")
        self.burst = burst


class ExtensionOwnership(Database):
    """The ownership part of the store contract."""

    def _note_pushing(self, conn: Any, source: str, external_id: str, records: Sequence[ExtensionRecord]) -> None:
        """Add `records` to the user's pushed extensions, after the ones already there."""
        now = time.time()
        conn.cursor().executemany(self._q["note_pushing"], [
            {"source": source, "external_id": external_id, "extension": record.extension,
             "record": json.dumps(record.to_dict()), "at": now} for record in records])

    def remember_pushed(self, source: str, external_id: str, records: Sequence[ExtensionRecord]) -> None:
        """Add `records` to the user's last pushed extensions (after the others), so that the user's next
        push deprovisions those its state no longer maps to."""
        with self._write() as conn:
            self._note_pushing(conn, source, external_id, records)

    def begin_push(self, lock_owner: str, lock_until: float, now: float, claimant: Claimant, wanted: Sequence[str],
                   extensions: Sequence[str], first_pushes: Sequence[ExtensionRecord] = (),
                   stop_recording: StopRecordingWindow | None = None, *, under_lease: bool = False) -> PushPlan:
        """Lock `extensions` (all the push touches, and the claims it drops) for `lock_owner` until
        `lock_until`, make `wanted` the user's claims (new ones accepted at `claimant.claimed_at`), read the plan.

        A push that stops recording (`stop_recording`) is first counted in its source's window (not when another
        source user of the same Verba user claims every extension it gives up: it then stops nothing) unless it
        makes the burst exceed both `max_count` users and `max_share` of the source's recorded users: then
        StopRecordingHeld is raised and nothing changes. An operator's approval (`requeue(...,
        approve=True)`) admits it whatever the burst, and is not counted in the window. The source's recorded
        users (those who claim an extension, and those whose recording stopped in the window: each once) are
        counted only once the burst exceeds `max_count` (a count over all of them). A push that makes claims for a
        user who had none (re-enabled) forgets its stop: it is recorded again, so the guard no longer counts it.

        `first_pushes` are records about to be pushed for the first time: they join the user's pushed
        extensions now (until `complete` replaces them), so that a crash mid-push leaves them known
        and a later push can deprovision them. Raises ExtensionsBusy (and changes nothing) when
        another push holds one of the extensions.

        `under_lease`: (`lock_owner`, `lock_until`) is the lease of the claim of the user being pushed (delivery's
        pushes); LeaseLost (and nothing changes) once it no longer holds: a stale push never rewrites the claims of a
        user that a newer push may have recorded.
        """
        q = self._q
        me = (claimant.source, claimant.external_id)
        with self._write() as conn:
            if under_lease and not self._holds_lease(conn, *me, lock_owner, lock_until):
                raise LeaseLost(f"the lease of {'/'.join(me)} ended or was taken over before its push began; "
                                "nothing was changed")
            if stop_recording is not None and self._kept_by_twin(conn, claimant, stop_recording.extensions):
                stop_recording = None  # another source user of the same Verba user keeps them: nothing stops
            burst = None if stop_recording is None else self._admit(conn, *me, lock_owner, stop_recording)
            before = {row["extension"]: float(row["claimed_at"]) for row in conn.execute(q["claims_of_user"], me)}
            if not before and wanted and stop_recording is None:  # recorded again: no longer one the guard counts
                conn.execute(q["forget_stop"], me)
            released = sorted(set(before) - set(wanted))
            # The claims it drops are locked too: a push of another claimant waiting on one of them must have
            # stored its conflict before this push ends and wakes the users waiting on it.
            for extension in sorted({*extensions, *released}):  # one order everywhere: no deadlocks
                if conn.execute(q["lock_extension"], (extension, lock_owner, lock_until, now)).fetchone() is None:
                    raise ExtensionsBusy(f"extension {extension} is being pushed for another user")
            conn.cursor().executemany(q["unclaim"], [(*me, extension) for extension in released])
            conn.cursor().executemany(q["claim_extension"], [
                (extension, *me, claimant.verba_user_id, claimant.login_name, claimant.claimed_at)
                for extension in dict.fromkeys(wanted)
            ])
            # A kept claim keeps the time it was first accepted (claim_extension leaves it); a new one is accepted now.
            claimed_at = {extension: before.get(extension, claimant.claimed_at) for extension in wanted}
            if first_pushes:
                self._note_pushing(conn, *me, first_pushes)
            rivals: dict[str, list[Claimant]] = {}
            for extension in dict.fromkeys(extensions):
                rivals[extension] = [Claimant(**row) for row in conn.execute(q["rivals"], (extension, *me))]
            found = conn.execute(q["owners"], (self._array(extensions),))
            owners = {row["extension"]: row["verba_user_id"] for row in found}
        return PushPlan(rivals, owners, released, claimed_at, burst)

    def finish_push(self, lock_owner: str, claimant: Claimant, owners: dict[str, int | None],
                    conflicts: Sequence[Conflict], released: Sequence[str], *, failed: bool = False,
                    under_lease: bool = False, unsent: Sequence[str] = ()) -> list[tuple[str, str]]:
        """End a push begun by `begin_push`: record the owners it saw or wrote (None: absent or
        unlinked), make `conflicts` the user's open conflicts, unlock its extensions, and queue a fresh
        event of every other user waiting on a released extension (in the same transaction: a crash
        cannot lose the wake-up); return their (source, external_id).

        A push that `failed` part way only adds the conflicts it found (the user's others stay open)
        and unlocks. Delivery ends a successful push in its completion's transaction instead:
        `complete(finish=...)`. `under_lease`: `lock_owner` is the owner of the claim of the user being pushed
        (delivery's pushes); once it holds the user's claim no more, only the extension locks go (see `_finish_push`).

        `unsent`: extensions of the push's `first_pushes` that no write went out for (the push failed before, or its
        request could not be built): their note in the user's pushed extensions is taken back, so that no later push
        deprovisions an extension Verba never received.
        """
        with self._write() as conn:
            lost = under_lease and not self._holds_lease(conn, claimant.source, claimant.external_id, lock_owner)
            if not lost:
                conn.cursor().executemany(self._q["forget_pushing"], [
                    (claimant.source, claimant.external_id, extension) for extension in unsent])
            return self._finish_push(conn, PushFinish(lock_owner, claimant, owners, conflicts, released),
                                     complete=not failed, lost=lost)

    def _finish_push(self, conn: Any, finish: PushFinish, *, complete: bool = True,
                     lost: bool | None = None) -> list[tuple[str, str]]:
        """`finish_push` in the caller's transaction. `complete` False (a failed push) keeps the user's other open
        conflicts and records no owners. A conflict that opens or clears is audited (actor "connector", action
        "conflict" or "conflict_cleared"), so its history outlives it.

        A push whose lease was `lost` (another worker or instance may push the user now) only unlocks its
        extensions: what it found is the newer push's to record, not conflicts, audits or users woken by a push
        that no longer holds the user. None: lost if not `complete` and the lock owner holds the user's claim no
        more (a completion whose lease was lost: `EventQueue.complete`)."""
        q = self._q
        me = (finish.claimant.source, finish.claimant.external_id)
        if lost is None:
            lost = not complete and not self._holds_lease(conn, *me, finish.lock_owner)
        if lost:
            conn.execute(q["unlock_extensions"], (finish.lock_owner,))
            return []
        if complete:
            for extension, owner in finish.owners.items():
                if owner is None:
                    conn.execute(q["forget_owner"], (extension,))
                else:
                    conn.execute(q["set_owner"], (extension, owner, *me))
        open_before = list(conn.execute(q["clear_conflicts" if complete else "conflicts_since"], me))
        since = {row["extension"]: float(row["since"]) for row in open_before}
        now, user = time.time(), "/".join(me)
        wanted = {c.extension for c in finish.conflicts}
        conn.cursor().executemany(q["add_audit"], [
            *((now, CONNECTOR, "conflict", self._array([c.event_id]), c.message,
               json.dumps({"extension": c.extension, "user": user, "holder": c.owner_user_id}))
              for c in finish.conflicts if c.extension not in since),
            *((now, CONNECTOR, "conflict_cleared", self._array([row["event_id"]]),
               f"{user} no longer waits for {row['extension']} (in conflict for {now - float(row['since']):.0f} s)",
               json.dumps({"extension": row["extension"], "user": user, "waited_seconds": round(now - row["since"])}))
              for row in open_before if complete and row["extension"] not in wanted)])
        conn.cursor().executemany(q["put_conflict"], [  # a conflict open since before keeps its first time
            (c.extension, *me, c.event_id, c.claimant.verba_user_id, c.claimant.login_name, c.owner_user_id,
             c.owner_login, c.owner_claimant, c.message, since.get(c.extension, c.since))
            for c in finish.conflicts
        ])
        conn.execute(q["unlock_extensions"], (finish.lock_owner,))
        now = time.time()
        queued = [row for user in finish.rechecked
                  for row in conn.execute(q["recheck"], {"source": user[0], "external_id": user[1], "now": now,
                                                         "cause": SETTINGS_CHANGED_CAUSE})]
        for cause, extensions in ((RELEASED_CAUSE, finish.released), (SETTINGS_CHANGED_CAUSE, finish.rewritten)):
            if extensions:
                queued += conn.execute(q["wake"].replace("{released}", q["released"]), {
                    "released": self._array(extensions), "source": me[0], "external_id": me[1], "now": now,
                    "cause": cause}).fetchall()
        self._queued_behind_held(conn, [row["id"] for row in queued])
        return sorted({(row["source"], row["external_id"]) for row in queued})

    def claimed(self, source: str, external_id: str) -> set[str]:
        """The extensions this user claims now: those it holds, and those it waits for in a conflict."""
        return {row["extension"] for row in self._all("claims_of_user", (source, external_id))}

    def owners(self, extensions: Sequence[str]) -> dict[str, int]:
        """The Verba user the connector last wrote (or saw) each of `extensions` linked to; unknown ones left out."""
        return {row["extension"]: row["verba_user_id"] for row in self._all("owners", (self._array(extensions),))}

    def forget_owners(self, extensions: Sequence[str]) -> None:
        """Forget who holds `extensions` (a drift check saw them gone or linked elsewhere): their next push tries
        createExtension first, as for an extension it never wrote."""
        with self._write() as conn:
            conn.cursor().executemany(self._q["forget_owner"], [(extension,) for extension in extensions])

    def source_users_of(self, verba_user_id: int) -> list[tuple[str, str]]:
        """The (source, external_id) of the connector's users linked to this Verba user id."""
        return [(row["source"], row["external_id"]) for row in self._all("source_users_of", (verba_user_id,))]

    def let_go_by_holder(self, extension: str, verba_user_id: int) -> bool:
        """Whether the connector's own records show that `verba_user_id`, who holds `extension` in Verba, let it go:
        the connector last wrote (or saw) it linked to that Verba user in a push of one of that Verba user's own
        source users (a leaver's stop, a number change's), not in another user's push (which found it linked by hand
        in Verba, say). Only then is it handed over to another claimant without the ownership policy."""
        return self._first("let_go_by_holder", (extension, verba_user_id)) is not None

    def claimants(self, extensions: Sequence[str]) -> dict[str, list[Claimant]]:
        """Who claims each of `extensions` now, earliest first; extensions nobody claims are left out. Reads only
        (for previews: `begin_push` is what a push reads them with, under the extensions' locks)."""
        found = {ext: [Claimant(**row) for row in self._all("claimants", (ext,))] for ext in dict.fromkeys(extensions)}
        return {extension: claimants for extension, claimants in found.items() if claimants}

    def open_conflicts(self, limit: int = 1000) -> list[Conflict]:
        """Open extension conflicts, oldest first."""
        return [_conflict(row) for row in self._all("open_conflicts", (limit,))]

    def conflicts_of(self, source: str, external_id: str) -> list[Conflict]:
        """This user's open extension conflicts (extensions it claims that another Verba user holds), oldest first."""
        return [_conflict(row) for row in self._all("conflicts_of", (source, external_id))]

    def extension_clashes(self, limit: int = 1000) -> list[tuple[str, list[Claimant]]]:
        """Extensions that users of two or more Verba users claim at once, with their claimants (earliest first)."""
        return [(row["extension"], [Claimant(**claim) for claim in self._all("claimants", (row["extension"],))])
                for row in self._all("clashes", (limit,))]

    def ownership_counts(self) -> tuple[int, int]:
        """(open extension conflicts, clashing extensions), for the metrics."""
        row = self._first("ownership_counts")
        return int(row["conflicts"]), int(row["clashes"])

    def _holds_lease(self, conn: Any, source: str, external_id: str, owner: str,
                     until: float | None = None) -> bool:
        """Whether the user's claim under the lease of `owner` (ending at `until`; None: whenever, renewed or not)
        still holds; under the user's lock, so that no claim or settlement of the user runs meanwhile."""
        self._lock_user(conn, source, external_id)
        if until is None:
            return conn.execute(self._q["claim_held"], (source, external_id, owner)).fetchone() is not None
        return conn.execute(self._q["lease_holds"], (source, external_id, owner, until)).fetchone() is not None

    def _kept_by_twin(self, conn: Any, claimant: Claimant, extensions: Sequence[str]) -> bool:
        """Whether another source user of `claimant`'s Verba user claims each of `extensions` (a deleted account
        re-created with the same login name and number, the same person in two sources): the push leaves them
        alone (connector/delivery/ownership.py), so it stops no recording and the guard does not count it."""
        return bool(extensions) and all(
            any(row["verba_user_id"] == claimant.verba_user_id
                for row in conn.execute(self._q["rivals"], (extension, claimant.source, claimant.external_id)))
            for extension in extensions)

    def _admit(self, conn: Any, source: str, external_id: str, lease_owner: str,
               stop: StopRecordingWindow) -> StopRecordingBurst:
        """Count this push in its source's stop-recording window (see `begin_push`); StopRecordingHeld if not."""
        q = self._q
        since = stop.at - stop.window_seconds
        conn.execute(q["lock_source"], (source,))  # until commit: the count below is not stale
        conn.execute(q["forget_stops"], (source, since))
        approved = conn.execute(q["approved"], (source, external_id, lease_owner)).fetchone() is not None
        stopped = conn.execute(q["stopped"], (source, since, external_id)).fetchone()["n"]
        stopping, total = stopped + 1, None
        if stopping > stop.max_count:
            total = conn.execute(q["recorded"], {"source": source, "since": since}).fetchone()["n"]
        burst = StopRecordingBurst(approved or total is None or stopping <= stop.max_share * total, stopping, total,
                                   approved)
        if not burst.admitted:
            raise StopRecordingHeld(burst)
        if not approved:  # an operator vouched for it: it does not count toward the next burst of the window
            conn.execute(q["add_stop"], (source, external_id, stop.at))
        return burst


def _conflict(row: Any) -> Conflict:
    claimant = Claimant(row["source"], row["external_id"], row["verba_user_id"], row["login_name"], row["claimed_at"])
    return Conflict(row["extension"], claimant, row["event_id"], row["owner_user_id"], row["owner_login"],
                    row["owner_claimant"], row["message"], row["since"])
