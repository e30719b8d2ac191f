"""Who claims and who holds each extension: the claim index, extension locks, conflicts, the stop-recording window.

Written once for both backends: the SQL below takes the backend's placeholder (`?` or `%s`)
and runs on the connections of `Store._write` / `Store._read`, whose rows are read by column name.

Tables (see each backend's migration 4):
    extension_claims      which source user claims which extension for recording, since when
    extension_owners      the Verba user the connector last wrote (or saw) each extension linked to
    extension_locks       one push at a time per extension, across workers and instances
    extension_conflicts   open conflicts: an extension this user claims but another user holds
    stop_recordings       recent stop-recording pushes, for the mass stop-recording guard
    stop_recording_sources  one row per source, locked while the guard counts its window
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from typing import Any, Sequence

from connector.errors import ConnectorError
from connector.mapping.records import ExtensionRecord


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
    released: Sequence[str]  # extensions the user let go: users waiting on them are returned


@dataclasses.dataclass(frozen=True)
class StopRecordingBurst:
    """The guard's view of one source's stop-recording pushes within the window."""

    admitted: bool
    stopping: int  # users whose recording this source stops in the window, this one included
    recorded: int  # users of this source recorded at the window's start (about)
    approved: bool  # an operator approved this user's events


class ExtensionsBusy(ConnectorError):
    """Another push holds one of the extensions; try this user again shortly."""


class OwnershipStore:
    """The ownership part of the store contract, implemented here once for every backend."""

    _placeholder: str

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _note_pushing(self, conn: Any, source: str, external_id: str, records: Sequence[ExtensionRecord]) -> None:
        """Add `records` to the user's pushed extensions (per backend: their order is kept differently)."""
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text.replace("{p}", self._placeholder)

    def begin_push(self, lock_owner: str, lock_until: float, now: float, claimant: Claimant, wanted: Sequence[str],
                   extensions: Sequence[str], first_pushes: Sequence[ExtensionRecord] = ()) -> PushPlan:
        """Lock `extensions` (all the push touches) for `lock_owner` until `lock_until`, make `wanted`
        the user's claims (new ones accepted at `claimant.claimed_at`), read the plan.

        `first_pushes` are records about to be pushed for the first time: they join the user's pushed
        extensions now (until `complete` replaces them), so that a crash mid-push leaves them known
        and a later push can deprovision them. Raises ExtensionsBusy (and changes nothing) when
        another push holds one of the extensions.
        """
        q = self._sql
        me = (claimant.source, claimant.external_id)
        with self._write() as conn:
            for extension in sorted(set(extensions)):  # one order everywhere: no deadlocks
                if conn.execute(q(_LOCK), (extension, lock_owner, lock_until, now)).fetchone() is None:
                    raise ExtensionsBusy(f"extension {extension} is being pushed for another user")
            before = {row["extension"]: float(row["claimed_at"]) for row in conn.execute(q(_CLAIMED_AT), me)}
            released = sorted(set(before) - set(wanted))
            conn.cursor().executemany(q(_UNCLAIM), [(*me, extension) for extension in released])
            conn.cursor().executemany(q(_CLAIM), [
                (extension, *me, claimant.verba_user_id, claimant.login_name, claimant.claimed_at)
                for extension in dict.fromkeys(wanted)
            ])
            # A kept claim keeps the time it was first accepted (_CLAIM leaves it); a new one is accepted now.
            claimed_at = {extension: before.get(extension, claimant.claimed_at) for extension in wanted}
            if first_pushes:
                self._note_pushing(conn, *me, first_pushes)
            rivals: dict[str, list[Claimant]] = {}
            owners: dict[str, int] = {}
            for extension in dict.fromkeys(extensions):
                rivals[extension] = [_claimant(row) for row in conn.execute(q(_RIVALS), (extension, *me))]
                row = conn.execute(q(_OWNER), (extension,)).fetchone()
                if row is not None:
                    owners[extension] = int(row["verba_user_id"])
        return PushPlan(rivals, owners, released, claimed_at)

    def finish_push(self, lock_owner: str, claimant: Claimant, owners: dict[str, int | None],
                    conflicts: Sequence[Conflict], released: Sequence[str], *,
                    failed: bool = False) -> list[tuple[str, str]]:
        """End a push begun by `begin_push`: record the owners it saw or wrote (None: absent or
        unlinked), make `conflicts` the user's open conflicts, unlock its extensions; return the
        (source, external_id) of other users waiting on a released extension.

        A push that `failed` part way only adds the conflicts it found (the user's others stay open)
        and unlocks. Delivery ends a successful push in its completion's transaction instead:
        `complete(finish=...)`.
        """
        with self._write() as conn:
            return self._finish_push(conn, PushFinish(lock_owner, claimant, owners, conflicts, released),
                                     complete=not failed)

    def _finish_push(self, conn: Any, finish: PushFinish, *, complete: bool = True) -> list[tuple[str, str]]:
        """`finish_push` in the caller's transaction. `complete` False (a failed push, or a lease lost
        to a newer push of the user) keeps the user's other open conflicts and records no owners."""
        q = self._sql
        me = (finish.claimant.source, finish.claimant.external_id)
        if complete:
            for extension, owner in finish.owners.items():
                if owner is None:
                    conn.execute(q("DELETE FROM extension_owners WHERE extension = {p}"), (extension,))
                else:
                    conn.execute(q(_SET_OWNER), (extension, owner, *me))
        since = {row["extension"]: float(row["since"]) for row in conn.execute(q(_CONFLICT_SINCE), me)}
        if complete:
            conn.execute(q("DELETE FROM extension_conflicts WHERE source = {p} AND external_id = {p}"), me)
        conn.cursor().executemany(q(_PUT_CONFLICT), [  # a conflict open since before keeps its first time
            (c.extension, *me, c.event_id, c.claimant.verba_user_id, c.claimant.login_name, c.owner_user_id,
             c.owner_login, c.owner_claimant, c.message, since.get(c.extension, c.since))
            for c in finish.conflicts
        ])
        conn.execute(q("DELETE FROM extension_locks WHERE owner = {p}"), (finish.lock_owner,))
        waiting: set[tuple[str, str]] = set()
        for extension in finish.released:
            waiting.update((row["source"], row["external_id"]) for row in conn.execute(
                q("SELECT source, external_id FROM extension_conflicts WHERE extension = {p}"), (extension,)))
        waiting.discard(me)
        return sorted(waiting)

    def source_users_of(self, verba_user_id: int) -> list[tuple[str, str]]:
        """The (source, external_id) of the connector's users linked to this Verba user id."""
        with self._read() as conn:
            rows = conn.execute(
                self._sql("SELECT source, external_id FROM verba_users WHERE user_id = {p}"
                          " ORDER BY source, external_id"), (verba_user_id,)).fetchall()
        return [(row["source"], row["external_id"]) for row in rows]

    def open_conflicts(self, limit: int = 1000) -> list[Conflict]:
        """Open extension conflicts, oldest first."""
        with self._read() as conn:
            rows = conn.execute(self._sql(_CONFLICTS), (limit,)).fetchall()
        return [_conflict(row) for row in rows]

    def extension_clashes(self, limit: int = 1000) -> list[tuple[str, list[Claimant]]]:
        """Extensions that users of two or more Verba users claim at once, with their claimants (earliest first)."""
        with self._read() as conn:
            extensions = [row["extension"] for row in conn.execute(self._sql(_CLASHES), (limit,))]
            return [(extension, [_claimant(row) for row in conn.execute(
                self._sql(_CLAIMANTS), (extension,))]) for extension in extensions]

    def ownership_counts(self) -> tuple[int, int]:
        """(open extension conflicts, clashing extensions), for the metrics."""
        with self._read() as conn:
            conflicts = conn.execute("SELECT count(*) AS n FROM extension_conflicts").fetchone()["n"]
            clashes = conn.execute(f"SELECT count(*) AS n FROM ({_CLASHING}) AS c").fetchone()["n"]
        return conflicts, clashes

    def admit_stop_recording(self, source: str, external_id: str, lease_owner: str, at: float, *,
                             window_seconds: float, max_count: int, max_share: float) -> StopRecordingBurst:
        """Count this user's stop-recording push in its source's window unless it makes the burst exceed
        both `max_count` users and `max_share` of the source's recorded users; an operator's approval
        (`requeue(..., approve=True)`) admits it whatever the burst."""
        q = self._sql
        since = at - window_seconds
        with self._write() as conn:
            conn.execute(q(_LOCK_SOURCE), (source,))  # until commit: the count below is not stale
            conn.execute(q("DELETE FROM stop_recordings WHERE at < {p}"), (since,))
            approved = conn.execute(q(_APPROVED), (source, external_id, lease_owner)).fetchone() is not None
            stopped = conn.execute(q(_STOPPED), (source, since, external_id)).fetchone()["n"]
            recorded = conn.execute(q(_RECORDED), (source,)).fetchone()["n"]
            stopping, total = stopped + 1, recorded + stopped
            admitted = approved or not (stopping > max_count and stopping > max_share * total)
            if admitted:
                conn.execute(q("INSERT INTO stop_recordings (source, external_id, at) VALUES ({p}, {p}, {p})"),
                             (source, external_id, at))
        return StopRecordingBurst(admitted, stopping, total, approved)


_LOCK = """
INSERT INTO extension_locks (extension, owner, lock_until) VALUES ({p}, {p}, {p})
ON CONFLICT (extension) DO UPDATE SET owner = excluded.owner, lock_until = excluded.lock_until
WHERE extension_locks.lock_until < {p} OR extension_locks.owner = excluded.owner
RETURNING extension
"""
_CLAIMED_AT = "SELECT extension, claimed_at FROM extension_claims WHERE source = {p} AND external_id = {p}"
_UNCLAIM = "DELETE FROM extension_claims WHERE source = {p} AND external_id = {p} AND extension = {p}"
# A claim keeps the time it was first accepted; the user's Verba id and login name are refreshed.
_CLAIM = """
INSERT INTO extension_claims (extension, source, external_id, verba_user_id, login_name, claimed_at)
VALUES ({p}, {p}, {p}, {p}, {p}, {p})
ON CONFLICT (extension, source, external_id)
DO UPDATE SET verba_user_id = excluded.verba_user_id, login_name = excluded.login_name
"""
_CLAIMANT_COLUMNS = "source, external_id, verba_user_id, login_name, claimed_at"
_RIVALS = f"""
SELECT {_CLAIMANT_COLUMNS} FROM extension_claims
WHERE extension = {{p}} AND NOT (source = {{p}} AND external_id = {{p}})
ORDER BY claimed_at, source, external_id
"""
_CLAIMANTS = f"SELECT {_CLAIMANT_COLUMNS} FROM extension_claims WHERE extension = {{p}} ORDER BY claimed_at, source, external_id"
_OWNER = "SELECT verba_user_id FROM extension_owners WHERE extension = {p}"
_SET_OWNER = """
INSERT INTO extension_owners (extension, verba_user_id, source, external_id) VALUES ({p}, {p}, {p}, {p})
ON CONFLICT (extension) DO UPDATE SET verba_user_id = excluded.verba_user_id, source = excluded.source,
    external_id = excluded.external_id
"""
_PUT_CONFLICT = """
INSERT INTO extension_conflicts (extension, source, external_id, event_id, verba_user_id, login_name,
    owner_user_id, owner_login, owner_claimant, message, since)
VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})
ON CONFLICT (extension, source, external_id) DO UPDATE SET event_id = excluded.event_id,
    verba_user_id = excluded.verba_user_id, login_name = excluded.login_name, owner_user_id = excluded.owner_user_id,
    owner_login = excluded.owner_login, owner_claimant = excluded.owner_claimant, message = excluded.message
"""
_CONFLICT_SINCE = "SELECT extension, since FROM extension_conflicts WHERE source = {p} AND external_id = {p}"
_CONFLICTS = """
SELECT c.extension, c.source, c.external_id, c.event_id, c.verba_user_id, c.login_name, c.owner_user_id,
    c.owner_login, c.owner_claimant, c.message, c.since, coalesce(k.claimed_at, c.since) AS claimed_at
FROM extension_conflicts AS c LEFT JOIN extension_claims AS k
    ON k.extension = c.extension AND k.source = c.source AND k.external_id = c.external_id
ORDER BY c.since, c.extension, c.source, c.external_id LIMIT {p}
"""
_CLASHING = "SELECT extension FROM extension_claims GROUP BY extension HAVING count(DISTINCT verba_user_id) > 1"
_CLASHES = _CLASHING + " ORDER BY extension LIMIT {p}"
_LOCK_SOURCE = """
INSERT INTO stop_recording_sources (source) VALUES ({p})
ON CONFLICT (source) DO UPDATE SET source = excluded.source
"""
_APPROVED = """
SELECT 1 FROM events WHERE source = {p} AND external_id = {p} AND state = 'in_flight' AND lease_owner = {p}
AND approved = 1
"""
_STOPPED = """
SELECT count(DISTINCT external_id) AS n FROM stop_recordings WHERE source = {p} AND at >= {p} AND external_id <> {p}
"""
_RECORDED = "SELECT count(DISTINCT external_id) AS n FROM extension_claims WHERE source = {p}"


def _claimant(row: Any) -> Claimant:
    return Claimant(row["source"], row["external_id"], row["verba_user_id"], row["login_name"],
                    float(row["claimed_at"]))


def _conflict(row: Any) -> Conflict:
    claimant = Claimant(row["source"], row["external_id"], row["verba_user_id"], row["login_name"],
                        float(row["claimed_at"]))
    return Conflict(row["extension"], claimant, int(row["event_id"]), row["owner_user_id"], row["owner_login"],
                    row["owner_claimant"], row["message"], float(row["since"]))
