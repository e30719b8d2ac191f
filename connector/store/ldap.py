"""LDAP watermarks: each directory's change cursor and what the connector last saw of each entry."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

from connector.events import UserChange
from connector.store.database import Database, StoreError, event_row, state_json


class WatermarkMoved(StoreError):
    """Another poller committed this directory's watermark first; poll again from the new one."""


@dataclasses.dataclass(frozen=True)
class LdapEntry:
    """What the connector last saw of one directory entry; `groups` are its effective groups as normalized
    DNs (connector/dn.py)."""

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
    """One successful poll: everything `commit_poll` writes at once."""

    directory: str
    version: int  # the watermark version the poll started from (0 before the first)
    cursor: dict[str, Any]
    at: float
    changes: Sequence[UserChange] = ()
    held: Sequence[UserChange] = ()
    entries: Sequence[LdapEntry] = ()  # seen now: inserted or replaced
    removed: Sequence[str] = ()  # external ids no longer in the directory
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    parts: int = 0  # parts of the same run stored before, by commit_part
    held_because: str | None = None  # why `held` are held (the mass-change guard's message), their last_error


class LdapMarks(Database):
    def ldap_watermark(self, directory: str) -> LdapWatermark | None:
        """The directory's cursor and last runs, or None before anything was recorded for it."""
        row = self._first("ldap_watermark", (directory,))
        return None if row is None else _watermark(row)

    def ldap_watermarks(self) -> list[LdapWatermark]:
        """Every directory's watermark, by name."""
        return [_watermark(row) for row in self._all("ldap_watermarks")]

    def ldap_entries(self, directory: str, ids: Sequence[str] | None = None) -> dict[str, LdapEntry]:
        """What the connector last saw of the directory's entries (only `ids` if given), by external id."""
        rows = (self._all("ldap_entries", (directory,)) if ids is None
                else self._all("ldap_entries_by_id", (directory, self._array(ids))))
        return {row["external_id"]: LdapEntry(row["external_id"], row["digest"], bool(row["active"]),
                                              tuple(json.loads(row["groups"])), json.loads(row["state"]))
                for row in rows}

    def ldap_digests(self, directory: str, ids: Sequence[str]) -> dict[str, str]:
        """The digest of what the connector last saw of each of `ids` it knows (no state is read), by external
        id."""
        return {row["external_id"]: row["digest"] for row in self._all("ldap_digests", (directory, self._array(ids)))}

    def ldap_ids_after(self, directory: str, after: str, limit: int) -> list[str]:
        """At most `limit` known external ids of the directory that sort after `after` ("": from the first), in
        the store's order."""
        return [row["external_id"] for row in self._all("ldap_ids_after", (directory, after, limit))]

    def ldap_ids_in_groups(self, directory: str, groups: Sequence[str]) -> list[str]:
        """The known external ids whose effective groups (`LdapEntry.groups`) hold any of `groups`."""
        return [row["external_id"] for row in self._all("ldap_ids_in_groups", (directory, self._array(groups)))]

    def ldap_expiries(self, directory: str) -> dict[str, str]:
        """The expiry (state `expiresAt`, ISO 8601) of each known active entry that has one, by external id."""
        return {row["external_id"]: row["expires"] for row in self._all("ldap_expiries", (directory,))}

    def ldap_forgotten(self, directory: str) -> dict[str, dict[str, Any]]:
        """The users of the directory the store still records but of whom it knows no entry, with the state last
        accepted for each (its current event's), by external id: their current event (the newest neither held nor
        discarded) is no delete, none of their events is held, and `ldap_entries` has none of them. An operator
        who discarded a user's delete leaves one; a full run deletes those no longer in scope (watcher.py).
        Reads every event of the directory: for a full run, not for each poll."""
        return {row["external_id"]: json.loads(row["state_json"]) for row in self._all("ldap_forgotten", (directory,))}

    def commit_poll(self, poll: LdapPoll) -> list[int]:
        """Store a poll's events, entries and new cursor in one transaction; return the event ids.

        `poll.held` events are stored held; a later event of a held user waits behind its held event (the queue
        claims no event after a held one of its user), so that a held delete is never overtaken. If the
        watermark's version is no longer `poll.version` (another poller committed first),
        nothing is stored and WatermarkMoved is raised. The version then goes up by one.
        """
        recount = bool(poll.entries or poll.removed or poll.parts or poll.version == 0)
        with self._write() as conn:
            ids = self._put(conn, poll.directory, poll.version, poll.changes, poll.held, poll.entries,
                            poll.held_because)
            if poll.removed:
                conn.cursor().executemany(self._q["remove_ldap_entry"], [(poll.directory, x) for x in poll.removed])
            conn.execute(self._q["advance_watermark"], {
                "directory": poll.directory, "cursor": json.dumps(poll.cursor), "at": poll.at,
                "counts": json.dumps(poll.counts), "recount": recount})
        return ids

    def commit_part(self, directory: str, version: int, changes: Sequence[UserChange],
                    entries: Sequence[LdapEntry]) -> list[int]:
        """Store part of a run (the changes of one page it read) as commit_poll stores a poll's, in one
        transaction, and leave the watermark as it is: the run moves it with its last part, by commit_poll.
        Return the event ids; WatermarkMoved if the version is no longer `version`."""
        with self._write() as conn:
            return self._put(conn, directory, version, changes, (), entries)

    def _put(self, conn: Any, directory: str, version: int, changes: Sequence[UserChange],
             held: Sequence[UserChange], entries: Sequence[LdapEntry], held_because: str | None = None) -> list[int]:
        """Check the watermark's version, then insert the events (`held` ones held, `held_because`) and put the
        entries."""
        q = self._q
        conn.execute(q["ensure_watermark"], (directory,))
        if conn.execute(q["lock_watermark"], (directory,)).fetchone()["version"] != version:
            raise WatermarkMoved(f"the watermark of {directory} moved on while this poll ran; poll again")
        if held:
            self._lock_queue(conn)  # it holds events of many users (queue.py)
        now = time.time()
        # An upsert and its entry share one state dict: serialize it once.
        states = {id(c.state): state_json(c) for c in [*changes, *held]}
        ids = self._insert_events(conn, [event_row(c, "pending", now, states[id(c.state)]) for c in changes])
        held_ids = self._insert_events(conn, [
            event_row(c, "held", now, states[id(c.state)], why=held_because or "held by the mass-change guard")
            for c in held])
        self._wait_behind_held(conn, held_ids)  # the held users' changes stored before, in this poll or earlier
        if entries:
            conn.cursor().executemany(q["put_ldap_entry"], [
                (directory, e.external_id, e.digest, e.active, json.dumps(e.groups),
                 states.get(id(e.state)) or json.dumps(e.state)) for e in entries])
        return ids + held_ids

    def note_poll_failure(self, directory: str, error: str, at: float) -> None:
        """Record a failed run for `connector ldap status`; the cursor stays where it was."""
        with self._statement() as conn:
            conn.execute(self._q["note_poll_failure"], (directory, at, error))



def _watermark(row: Any) -> LdapWatermark:
    return LdapWatermark(**{**row, "cursor": json.loads(row["cursor"]), "counts": json.loads(row["counts"])})
