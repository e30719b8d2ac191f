"""The watcher of one directory: read what changed, compare with what is known, commit events and cursor at once.

An incremental run reads the entries changed since the cursor (plus the members of changed
groups, and AD tombstones); a full run reads every entry and also deletes the ids that vanished.
Nothing is written until the whole read succeeded, and then events, entries and the new cursor
are written in one transaction (`Store.commit_poll`): a crash or an outage means the next run
starts again from the old cursor, never past a change.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Callable, Iterable

import ldap3
from ldap3.utils.conv import escape_filter_chars

from connector.config import LdapConfig
from connector.events import UserChange
from connector.ops.metrics import LDAP_POLL_SECONDS
from connector.sources.ldap import metrics
from connector.sources.ldap.connection import SHOW_DELETED, DirectoryError, close, open_connection, search
from connector.sources.ldap.dialects import Begin, dialect_for
from connector.sources.ldap.guard import judge
from connector.sources.ldap.snapshot import Snapshot, snapshot
from connector.store.base import LdapEntry, LdapPoll, Store

log = logging.getLogger("connector.ldap")

Progress = Callable[[int], None]
ID_BATCH = 50  # ids per (|(id=..)(id=..)) re-read


@dataclasses.dataclass(frozen=True)
class RunResult:
    directory: str
    full: bool
    counts: dict[str, int]
    event_ids: list[int]
    guard_message: str | None = None  # set when the guard held events


class Watcher:
    """Polls one `[ldap.NAME]` directory; runs of one watcher never overlap."""

    def __init__(self, store: Store, config: LdapConfig) -> None:
        self.store = store
        self.config = config
        self.dialect = dialect_for(config)
        self._conn: ldap3.Connection | None = None
        self._lock = threading.Lock()

    def run(self, *, full: bool = False, force: bool = False, progress: Progress | None = None) -> RunResult:
        """One run; `full` reconciles every entry, `force` lets the mass-change guard pass."""
        with self._lock, LDAP_POLL_SECONDS.labels(self.config.name).time():
            try:
                return self._run(full, force, progress)
            except DirectoryError as exc:
                self.close()
                metrics.FAILURES.labels(self.config.name).inc()
                self.store.note_poll_failure(self.config.name, str(exc), time.time())
                raise

    def close(self) -> None:
        if self._conn is not None:
            close(self._conn)
            self._conn = None

    def _connection(self) -> ldap3.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = open_connection(self.config)
        return self._conn

    def _run(self, full: bool, force: bool, progress: Progress | None) -> RunResult:
        name = self.config.name
        watermark = self.store.ldap_watermark(name)
        conn = self._connection()
        begin = self.dialect.begin(conn, watermark.cursor if watermark else {})
        if begin.since is None and not full:
            resync = watermark is not None and bool(watermark.cursor)  # a lost epoch, not a first run
            log.log(logging.WARNING if resync else logging.INFO, "ldap %s: full sync: %s", name, begin.full_reason)
        full = full or begin.since is None
        seen, gone = self._read_full(conn, progress) if full else self._read_changes(conn, begin, progress)
        known = self.store.ldap_entries(name, None if full else [*seen, *gone])
        if full:
            gone = {external_id: "ldap:vanished" for external_id in known if external_id not in seen}
        changes, entries, removed = self._compare(seen.values(), gone, known, full)
        drops = [c for c in changes if c.kind == "delete" or (c.kind == "deactivate" and _was_active(known, c))]
        verdict = judge(self.config, len(drops), watermark.known if watermark else 0)
        held: list[UserChange] = []
        guard_message = None
        if verdict.tripped and force:
            log.warning("ldap %s: %s; --force given, so they go through", name, verdict.describe(self.config))
        elif verdict.tripped:
            held, dropped = drops, {id(c) for c in drops}
            changes = [c for c in changes if id(c) not in dropped]
            guard_message = (f"ldap {name}: mass-change guard tripped: {verdict.describe(self.config)}. "
                             f"{len(held)} events are held: review them with `connector events list --state held`, "
                             "release them with `connector events approve`, or run "
                             f"`connector ldap sync {name} --full --force` if the change is intended")
            log.warning(guard_message)
            metrics.HELD.labels(name).inc(len(held))
        counts = _counts(seen, changes, held)
        cursor = self.dialect.advance(begin, [s.stamp for s in seen.values()])
        poll = LdapPoll(name, watermark.version if watermark else 0, cursor, time.time(), changes, held,
                        entries, removed, counts)
        ids = self.store.commit_poll(poll)
        metrics.LAST_SUCCESS.labels(name).set(poll.at)
        if changes or held:
            log.info("ldap %s: %s run: %s", name, "full" if full else "incremental", counts)
        return RunResult(name, full, counts, ids, guard_message)

    def _read_full(self, conn: ldap3.Connection, progress: Progress | None) -> tuple[dict[str, Snapshot], dict[str, str]]:
        return self._users(conn, self.dialect.filter, progress), {}

    def _read_changes(self, conn: ldap3.Connection, begin: Begin,
                      progress: Progress | None) -> tuple[dict[str, Snapshot], dict[str, str]]:
        config, dialect, since = self.config, self.dialect, begin.since
        seen = self._users(conn, f"(&{dialect.filter}{since})", progress)
        gone: dict[str, str] = {}
        # Changed entries that no longer match the filter have left the scope.
        for dn, values, raw in search(conn, config.base, str(since), dialect.id_attributes, config.page_size):
            external_id = dialect.external_id(dn, values, raw)
            if external_id not in seen:
                gone[external_id] = "ldap:out-of-scope"
        # A membership change touches the group, not its members: re-read old and new members.
        groups = [dn.lower() for dn, _, _ in search(conn, begin.tombstone_base or config.base,
                                                     f"(&{dialect.group_filter}{since})", ["1.1"], config.page_size)]
        if groups:
            members = "".join(f"(memberOf={escape_filter_chars(g)})" for g in groups)
            seen.update(self._users(conn, f"(&{dialect.filter}(|{members}))", progress))
            former = [i for i, e in self.store.ldap_entries(config.name).items()
                      if i not in seen and set(e.groups) & set(groups)]
            for start in range(0, len(former), ID_BATCH):
                ids = "".join(dialect.id_filter(i) for i in former[start:start + ID_BATCH])
                seen.update(self._users(conn, f"(&{dialect.filter}(|{ids}))", progress))
        if begin.tombstone_base and dialect.name == "ad":
            tombstones = search(conn, begin.tombstone_base, f"(&(isDeleted=TRUE){since})", ["objectGUID"],
                                config.page_size, controls=[(SHOW_DELETED, True, None)])
            gone.update({dialect.external_id(dn, v, raw): "ldap:tombstone" for dn, v, raw in tombstones})
        return seen, {i: cause for i, cause in gone.items() if i not in seen}

    def _users(self, conn: ldap3.Connection, search_filter: str, progress: Progress | None) -> dict[str, Snapshot]:
        found: dict[str, Snapshot] = {}
        for dn, values, raw in search(conn, self.config.base, search_filter, self.dialect.attributes,
                                      self.config.page_size):
            snap = snapshot(self.dialect, dn, values, raw)
            found[snap.external_id] = snap
            if progress is not None:
                progress(1)
        return found

    def _compare(self, seen: Iterable[Snapshot], gone: dict[str, str], known: dict[str, LdapEntry],
                 full: bool) -> tuple[list[UserChange], list[LdapEntry], list[str]]:
        name, changes, entries = self.config.name, [], []
        for snap in seen:
            old = known.get(snap.external_id)
            if old is not None and old.digest == snap.entry.digest:
                continue
            cause = ("ldap:reconcile-" if full else "ldap:") + ("create" if old is None else "change")
            changes.append(UserChange(name, snap.external_id, "upsert" if snap.entry.active else "deactivate",
                                      snap.entry.state, cause=cause))
            entries.append(snap.entry)
        removed = [i for i in gone if i in known]
        for external_id in removed:
            state = {**known[external_id].state, "active": False}
            changes.append(UserChange(name, external_id, "delete", state, cause=gone[external_id]))
        return changes, entries, removed


def _was_active(known: dict[str, LdapEntry], change: UserChange) -> bool:
    old = known.get(change.external_id)
    return old is not None and old.active


def _counts(seen: dict[str, Snapshot], changes: list[UserChange], held: list[UserChange]) -> dict[str, int]:
    counts = {"seen": len(seen), "upsert": 0, "deactivate": 0, "delete": 0, "held": len(held)}
    for change in [*changes, *held]:
        counts[change.kind] += 1
    return counts
