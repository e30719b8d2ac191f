"""The watcher of one directory: read what changed, compare with what is known, commit the events, then the cursor.

An incremental run reads the users changed since the cursor, and also what changed without a
write to the user entry:

    left the scope    changed entries of the naming context that are no user under `base` any more
                      (moved to a leavers' OU, or out of the filter); former members of changed groups
                      who are no user in scope now (out of a filter on memberOf); AD tombstones;
                      where those cannot be seen, a bounded batch of known users checked still in
                      scope
    group changes     the members, now and before, of changed groups, deleted groups (tombstones)
                      and vanished groups the rules name, nested groups included
    expiries          accounts whose expiry date has come since, which no write announces
    the census        the ids of every user in scope, compared with the known ones, when the users
                      under a container may have come or gone with no write to them: a container
                      changed (moved or renamed: OpenLDAP and AD write nothing to the users under
                      it), the scope check found a user gone (the first of a deleted or moved subtree,
                      perhaps), or an operator discarded deletes of this directory (`census_due`, set
                      by the store's discard: restored users are known again). The users in scope it
                      does not know are read; the known ones no longer in scope are deleted, judged by
                      the mass-change guard with the rest of the run, as a full run would see them

A full run reads every entry and also deletes the ids that vanished, and the users the store still records for
this directory that it no longer knows (`LdapMarks.ldap_forgotten`: their delete discarded, say) and that are not
in scope.

A run reads its users (every one, or those changed since the cursor) a page at a time, and stores
each page's events with the entries they change in one transaction (`LdapMarks.commit_part`): it
holds one page, not the directory. What needs the whole read waits for it: the deletes of the
vanished, the changes the mass-change guard counts and the new cursor are stored in one last
transaction (`LdapMarks.commit_poll`) once every search succeeded. A crash or an outage means the
next run starts again from the old cursor, never past a change; the pages stored before make no
second event, since what is known of their entries was stored with them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from typing import Any

import ldap3

from connector.config import LdapConfig
from connector.dn import dn_key, is_dn
from connector.errors import ConnectorError
from connector.events import UserChange
from connector.mapping.rules import in_group
from connector.ops.metrics import LDAP_POLL_SECONDS
from connector.sources.ldap import metrics
from connector.sources.ldap.connection import (
    LIMITS,
    NO_SUCH_OBJECT,
    DirectoryError,
    close,
    open_connection,
    root_dse,
)
from connector.sources.ldap.dialects import Begin, dialect_for
from connector.sources.ldap.guard import judge
from connector.sources.ldap.reading import Reader
from connector.sources.ldap.scope import Scope, probe
from connector.sources.ldap.snapshot import Snapshot, expires_at
from connector.store import LdapEntry, LdapMarks, LdapPoll, LdapWatermark, StoreError, WatermarkMoved

log = logging.getLogger("connector.ldap")

Progress = Callable[[int], None]
# The [ldap.NAME] keys that decide which users are read and what is read of them.
READ_SETTINGS = ("base", "filter", "attributes", "username_attribute", "disabled_attribute", "id_attribute",
                 "group_base", "group_nesting_depth")
VANISHED_BATCH = 10_000  # known ids a full run compares with the ids it read, at a time
DN_IDENTITY_WARNING = ("users are keyed by DN (id_attribute = \"dn\"): a rename or a move becomes a delete and a "
                       "create, and recording stops until the create is pushed; prefer a stable id attribute")


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What one run did: its counts by kind, the ids of the events it stored, and the guard's message if it held
    some."""

    directory: str
    full: bool
    counts: dict[str, int]
    event_ids: list[int]
    guard_message: str | None = None  # set when the guard held events


@dataclasses.dataclass(frozen=True)
class Preview:
    """What a full run would find now, read without storing anything (`connector ldap sync --dry-run`)."""

    directory: str
    users: list[UserChange]  # every user in scope as it is now (upsert or deactivate), then deletes of vanished ones
    would_store: int  # events a full run would store now: users changed since the last run, and the vanished
    held: int  # of those, what the mass-change guard would hold
    guard_message: str | None = None
    # By (directory, external id), as DryRun.preview takes them: the attribute each user's login name was read from,
    # and why a user has none (its userName is None: a run would stop at the first such user).
    login_from: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    without_login: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Drop:
    """A change the mass-change guard counts, read page by page: it is stored with the run's last part."""

    change: UserChange
    entry: LdapEntry  # what is known of the user from now on
    old: LdapEntry | None  # what was known before


@dataclasses.dataclass
class _Run:
    """What one run found so far. The users it reads page by page (`Watcher._read_pages`) leave only their ids,
    the cursor past their stamps, their next expiry and, until the run ends, the changes the guard counts."""

    begin: Begin  # its cursor moves past the stamps of the users read page by page
    full: bool
    version: int  # of the watermark it started from
    ids: set[str] = dataclasses.field(default_factory=set)  # of the users read page by page
    due: float | None = None  # the earliest expiry still to come of an active user among them
    kinds: Counter[str] = dataclasses.field(default_factory=Counter)  # of the events stored page by page
    event_ids: list[int] = dataclasses.field(default_factory=list)  # of the events stored page by page
    parts: int = 0  # pages whose events were stored
    drops: dict[str, _Drop] = dataclasses.field(default_factory=dict)  # held back until the guard has seen them all
    expiries: dict[str, float] | None = None  # Unix time, of each known active user that expires, once needed
    tracked: set[str] | None = None  # the groups the rules name, and the groups nested in them
    scope_after: str | None = None  # the last known id the scope check looked at
    stamps: list[Any] = dataclasses.field(default_factory=list)  # of changed users outside `base` too
    containers: list[str] = dataclasses.field(default_factory=list)  # changed since the cursor, "DN stamp"
    forgotten: dict[str, LdapEntry] = dataclasses.field(default_factory=dict)  # recorded, unknown: `ldap_forgotten`
    census_skipped: bool = False  # a census was due and the bind account's limits stopped it


class Watcher:
    """Polls one `[ldap.NAME]` directory; runs of one watcher never overlap."""

    def __init__(self, store: LdapMarks, config: LdapConfig) -> None:
        self.store = store
        self.config = config
        self.dialect = dialect_for(config)
        self.rule_groups = _rule_groups(config)
        self._conn: ldap3.Connection | None = None
        self._paging: ldap3.Connection | None = None  # pages through a run's users while _conn looks up the rest
        self._lock = threading.Lock()
        if self.dialect.by_dn:
            log.warning("ldap %s: %s", config.name, DN_IDENTITY_WARNING)

    def run(self, *, full: bool = False, force: bool = False, progress: Progress | None = None) -> RunResult:
        """One run; `full` reconciles every entry, `force` lets the mass-change guard pass."""
        with self._lock, LDAP_POLL_SECONDS.labels(self.config.name).time():
            try:
                return self._run(full, force, progress)
            except DirectoryError as exc:
                self.close()
                self._explain(exc)
                self._failed(str(exc))
                raise
            except WatermarkMoved:  # another poller committed first: no failure of this directory
                raise
            except Exception as exc:  # a bug, or the store's outage: recorded as the directory's failure all the same
                self.close()
                self._failed(_unexpected(exc))
                raise  # its caller shows the traceback, once (the scheduler logs it, the command prints it)

    def _failed(self, error: str) -> None:
        """Record a failed run, for `connector ldap status`, `connector status` and the metrics; the cursor stays."""
        metrics.FAILURES.labels(self.config.name).inc()
        try:
            self.store.note_poll_failure(self.config.name, error, time.time())
        except StoreError as exc:  # the error being raised says more than this one
            log.warning("ldap %s: the failed run could not be recorded in the store: %s", self.config.name, exc)

    def preview(self, progress: Progress | None = None) -> Preview:
        """Read every user in scope as a full run would, and store nothing: no events, entries or watermark, not
        even a failure (a DirectoryError is raised). A user with no login name, at which a run stops, is read too
        (`Preview.without_login`), so that the dry run lists them all."""
        name = self.config.name
        with self._lock:
            try:
                seen = self._reader(progress, without_login=True).users("")
            except DirectoryError as exc:
                self.close()
                self._explain(exc)
                raise
        known = {**self._forgotten(seen), **self.store.ldap_entries(name)}
        gone = {external_id: "ldap:vanished" for external_id in known if external_id not in seen}
        changes, _, _ = self._compare(seen.values(), gone, known, True)
        drops = self._drops(changes, known)
        watermark = self.store.ldap_watermark(name)
        verdict = judge(self.config, len(drops), watermark.known if watermark else 0)
        message = None if not verdict.tripped else (
            f"the mass-change guard would hold {len(drops)} events: {verdict.describe(self.config)}")
        users = [UserChange(name, snap.external_id, "upsert" if snap.entry.active else "deactivate", snap.entry.state,
                            cause="ldap:dry-run") for snap in seen.values()]
        users += [change for change in changes if change.kind == "delete"]
        login_from = {(name, snap.external_id): snap.login_from for snap in seen.values() if snap.login_from}
        without_login = {(name, snap.external_id): snap.no_login for snap in seen.values() if snap.no_login}
        return Preview(name, users, len(changes), len(drops) if verdict.tripped else 0, message, login_from,
                       without_login)

    def read_user(self, wanted: str) -> UserChange | None:
        """The user `wanted` as the directory holds it now, or None if no user in scope matches: `wanted` is its
        DN, its stable id (id_attribute) or its login name (username_attribute, else uid/mail/cn or
        userPrincipalName/sAMAccountName). Stores nothing. DirectoryError when several users match a login name."""
        with self._lock:
            try:
                reader = self._reader(None)
                found = reader.by_dn(wanted) if is_dn(wanted) else reader.by_ids([wanted])
                if not found and not is_dn(wanted):
                    found = reader.by_login(wanted)
            except DirectoryError as exc:
                self.close()
                self._explain(exc)
                raise
        if len(found) > 1:
            dns = ", ".join(sorted(snap.entry.state["attributes"]["dn"] for snap in found.values()))
            raise DirectoryError(f"directory {self.config.name}: {len(found)} users match {wanted!r} ({dns}); "
                                 "give the DN or the stable id of one")
        for snap in found.values():
            return UserChange(self.config.name, snap.external_id, "upsert" if snap.entry.active else "deactivate",
                              snap.entry.state, cause="ldap:read")
        return None

    def _explain(self, exc: DirectoryError) -> None:
        """Name the directory and the key to fix in the message of `exc` (in place: its class and fields stay) when
        a search found no entry at this directory's `base` or `group_base` (noSuchObject)."""
        config = self.config
        if exc.code != NO_SUCH_OBJECT or exc.base is None:
            return
        key = next((key for key in ("base", "group_base") if (value := getattr(config, key)) is not None
                    and dn_key(value) == dn_key(exc.base)), None)
        if key is None:
            return
        closest = f"; the closest entry above it that exists is {exc.matched!r}" if exc.matched else ""
        exc.args = (f"directory {config.name} ({config.url}): {key} {exc.base!r} does not exist, or the bind account "
                    f"may not see it (noSuchObject){closest}: check the {key} in [ldap.{config.name}] "
                    f"(`ldapsearch -x -H {config.url} -s base -b \"\" namingContexts` lists the directory's naming "
                    "contexts)",)

    def _reader(self, progress: Progress | None, without_login: bool = False) -> Reader:
        """A Reader on a bound connection, for reads that store nothing (`without_login`: see Reader)."""
        conn = self._connection()
        scope = probe(conn, self.config, self.dialect, root_dse(conn, self.dialect.root_dse_attributes))
        return Reader(conn, self.config, self.dialect, scope, time.time(), progress, without_login)

    def close(self) -> None:
        """Unbind from the directory (the next run binds again)."""
        for conn in (self._conn, self._paging):
            if conn is not None:
                close(conn)
        self._conn = self._paging = None

    def _connection(self) -> ldap3.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = open_connection(self.config)
        return self._conn

    def _pager(self) -> ldap3.Connection:
        """The connection for the paged search of a run's users: a second one, unless the dialect's servers keep
        several paged searches per connection (slapd answers "paged results cookie is invalid" to the next
        page when the run has searched for groups on the same connection in between)."""
        if self.dialect.interleaved_paging:
            return self._connection()
        if self._paging is None or self._paging.closed:
            self._paging = open_connection(self.config)
        return self._paging

    def _run(self, full: bool, force: bool, progress: Progress | None) -> RunResult:
        name = self.config.name
        watermark = self.store.ldap_watermark(name)
        cursor = watermark.cursor if watermark else {}
        conn = self._connection()
        dse = root_dse(conn, self.dialect.root_dse_attributes)
        begin = self.dialect.begin(conn, cursor, dse)  # before any search: the cursor must not pass a change
        scope = probe(conn, self.config, self.dialect, dse)
        changed = _changed(cursor.get("settings"), self._settings())
        if begin.since is not None and changed:  # users now in scope may not have changed since the cursor
            begin = dataclasses.replace(begin, since=None, full_reason=f"{', '.join(changed)} changed since the last "
                                                                       "run: every user is read again")
        if begin.since is None and not full:
            resync = watermark is not None and bool(watermark.cursor) and not changed  # a lost epoch
            log.log(logging.WARNING if resync else logging.INFO, "ldap %s: full sync: %s", name, begin.full_reason)
        full = full or begin.since is None
        reader = Reader(conn, self.config, self.dialect, scope, time.time(), progress)
        found = _Run(begin, full, watermark.version if watermark else 0)
        self._read_pages(reader, "" if full else str(begin.since), found)
        seen: dict[str, Snapshot] = {}
        if full:
            gone = self._vanished(found)
        else:
            seen, gone = self._read_changes(reader, begin, scope, cursor, found)
        if scope.track_rule_groups and found.tracked is None and self.rule_groups:
            found.tracked = reader.rule_groups(self.rule_groups)
        return self._finish(reader, found, seen, gone, watermark, force)

    def _finish(self, reader: Reader, found: _Run, seen: dict[str, Snapshot], gone: dict[str, str],
                watermark: LdapWatermark | None, force: bool) -> RunResult:
        """Compare the users read last (`seen`) and the vanished (`gone`), let the guard judge them with the changes
        held back from the pages, and store them with the new cursor: the run's last part."""
        name, full = self.config.name, found.full
        known = {**found.forgotten, **self.store.ldap_entries(name, [*seen, *gone])}
        changes, entries, removed = self._compare(seen.values(), gone, known, full)
        drops = [drop for i, drop in found.drops.items() if i not in seen]  # one read again is compared again
        changes, held, guard_message = self._guard([*(d.change for d in drops), *changes],
                                                   {**{d.change.external_id: d.old for d in drops if d.old}, **known},
                                                   watermark, force)
        counts = _counts(len(found.ids) + sum(1 for i in seen if i not in found.ids),
                         found.kinds + Counter(c.kind for c in [*changes, *held]), len(held))
        before = watermark.cursor if watermark else {}
        cursor = {**self.dialect.advance(found.begin, [*(s.stamp for s in seen.values()), *found.stamps]),
                  **self._bookkeeping([*reader.scope.notes, *reader.notes], found, seen, reader.now, before)}
        poll = LdapPoll(name, found.version, cursor, time.time(), changes, held, [*(d.entry for d in drops), *entries],
                        removed, counts, found.parts, guard_message)
        ids = [*found.event_ids, *self.store.commit_poll(poll)]
        metrics.LAST_SUCCESS.labels(name).set(poll.at)
        if ids:
            kind = "full" if full else "incremental"
            log.info("ldap %s: %s run: %s", name, kind, " ".join(f"{key}={value}" for key, value in counts.items()),
                     extra={"directory": name, "run": kind, "counts": counts})
        return RunResult(name, full, counts, ids, guard_message)

    def _read_pages(self, reader: Reader, search_filter: str, found: _Run) -> None:
        """Read the users of `search_filter` a page at a time, and store the changes of each page at once
        (commit_part: the watermark stays) but those the mass-change guard counts, which wait for the run's
        end. A run holds one page of users, not the whole directory; a crash leaves the old cursor, and the
        run after it reads the stored pages again without a second event."""
        for page in reader.pages(self._pager(), search_filter):
            self._take_page(page, found, reader.now)

    def _take_page(self, page: dict[str, Snapshot], found: _Run, now: float) -> None:
        """Store one page of users read (`_store_page`) and note them in `found`: their ids, stamps and expiries."""
        self._store_page(page, found)
        found.ids.update(page)
        found.begin = dataclasses.replace(found.begin, cursor=self.dialect.advance(
            found.begin, [s.stamp for s in page.values()]))
        found.due = _earliest([found.due, *_expiries(page.values())], now)

    def _store_page(self, page: dict[str, Snapshot], found: _Run) -> None:
        """Compare one page with what is known, and store its changes but those the guard counts (`found.drops`
        keeps them for the run's end)."""
        name = self.config.name
        digests = self.store.ldap_digests(name, list(page))  # most users read again are unchanged
        changed = [s for s in page.values() if digests.get(s.external_id) != s.entry.digest]
        before = [s.external_id for s in changed if s.external_id in digests]
        known = self.store.ldap_entries(name, before) if before else {}
        changes, entries, _ = self._compare(changed, {}, known, found.full)
        counted = {id(c) for c in self._drops(changes, known)}
        passing = [(c, e) for c, e in zip(changes, entries, strict=True) if id(c) not in counted]
        if passing:
            found.event_ids += self.store.commit_part(name, found.version, [c for c, _ in passing],
                                                      [e for _, e in passing])
            found.kinds.update(c.kind for c, _ in passing)
            found.parts += 1
        found.drops.update((c.external_id, _Drop(c, e, known.get(c.external_id)))
                           for c, e in zip(changes, entries, strict=True) if id(c) in counted)

    def _vanished(self, found: _Run) -> dict[str, str]:
        """The known users a full run did not read, gone from the directory or out of scope, and the users the
        store still records for this directory that it does not know (`found.forgotten`) and that the run did not
        read either."""
        found.forgotten = self._forgotten(found.ids)
        return {i: "ldap:vanished" for i in [*self._known_ids(), *found.forgotten] if i not in found.ids}

    def _known_ids(self) -> Iterator[str]:
        """Every known id of the directory, read VANISHED_BATCH at a time."""
        after = ""
        while batch := self.store.ldap_ids_after(self.config.name, after, VANISHED_BATCH):
            yield from batch
            after = batch[-1]

    def _forgotten(self, read: Container[str]) -> dict[str, LdapEntry]:
        """The users the store still records for this directory (`LdapMarks.ldap_forgotten`) but does not know,
        and that are not among `read` (the users in scope), each as an entry made of the state last accepted for
        them, from which `_compare` makes their delete."""
        return {i: LdapEntry(i, "", bool(state.get("active")), (), state)
                for i, state in self.store.ldap_forgotten(self.config.name).items() if i not in read}

    def _read_changes(self, reader: Reader, begin: Begin, scope: Scope, cursor: dict[str, Any],
                      found: _Run) -> tuple[dict[str, Snapshot], dict[str, str]]:
        """What changed besides the users changed since the cursor (read page by page into `found`): the users
        read here, and those gone with the cause."""
        seen: dict[str, Snapshot] = {}

        def unseen(external_id: str) -> bool:
            return external_id not in seen and external_id not in found.ids

        # Changed users of the naming context that are no user in scope have left it (moved, or out of the filter).
        left, found.stamps, found.containers = reader.left(begin, found.ids)
        candidates = list(self.store.ldap_entries(self.config.name, sorted(left)))
        present = reader.present(candidates) if candidates else set()
        gone = {i: "ldap:out-of-scope" for i in candidates if i not in present}
        # Still in scope but not seen: changed between the two searches; read them, the cursor passes them.
        seen.update(reader.by_ids(sorted(present)))
        # A membership change touches the group, not its members: re-read its members now and before.
        affected, group_stamps = reader.changed_groups(begin)
        found.stamps.extend(group_stamps)
        deleted: list[str] = []
        if scope.tombstones and begin.tombstone_base:
            tombstones, deleted = reader.tombstones(begin)
            gone.update({i: "ldap:tombstone" for i in tombstones})
        if scope.track_rule_groups and self.rule_groups:
            found.tracked = reader.rule_groups(self.rule_groups)
            deleted += sorted(set(cursor.get("rule_groups") or ()) - found.tracked)
        if affected or deleted:
            seen.update(reader.members(affected))
            keys = sorted({dn_key(g) for g in [*affected, *deleted]})
            former = [i for i in self.store.ldap_ids_in_groups(self.config.name, keys) if unseen(i)]
            still = reader.by_ids(former)
            seen.update(still)
            # One no longer in scope left it with the group: out of a filter on memberOf (the memberof overlay
            # writes no modifyTimestamp, AD's memberOf is a back-link), or gone since.
            for external_id in former:
                if external_id not in still:
                    gone.setdefault(external_id, "ldap:out-of-scope")
        due = cursor.get("expiry_due")
        if isinstance(due, (int, float)) and due <= reader.now:  # expiry passes with no write to the directory
            found.expiries = {i: t for i, text in self.store.ldap_expiries(self.config.name).items()
                              if (t := expires_at(text)) is not None}
            seen.update(reader.by_ids([i for i, t in found.expiries.items() if unseen(i) and t <= reader.now]))
        vanished = self._check_in_scope(reader, cursor, found, [*seen, *gone]) if scope.check_known else {}
        gone.update(vanished)
        why = self._census_due(cursor, found, vanished)
        if why:
            for external_id in self._census(reader, found, why):
                gone.setdefault(external_id, "ldap:vanished")
        return seen, {i: cause for i, cause in gone.items() if unseen(i)}

    def _census_due(self, cursor: dict[str, Any], found: _Run, vanished: dict[str, str]) -> str | None:
        """Why this incremental run takes a census, or None.

        The trigger is any user the scope check found gone: on OpenLDAP it is the only sign of a deleted user (no
        tombstone) or of a subtree moved where the naming context is not read, and the first user found of a
        deleted subtree is no different from a leaver. A census then finds all the users gone at once, and the
        guard judges them together against every known user, as a full run would: a batch finds a few of a
        subtree, below any limit, poll after poll. It costs one search of ids, and about one per leaver: once one
        has run, the next user found gone was deleted since.
        """
        moved = sorted(set(found.containers) - set(cursor.get("containers") or ()))  # once, not in each overlap
        if moved:
            more = f" and {len(moved) - 1} more" if len(moved) > 1 else ""
            return f"container {moved[0].rsplit(' ', 1)[0]}{more} changed"
        if vanished:
            return f"the scope check found {len(vanished)} known users gone"
        if cursor.get("census_due"):
            return "deletes of this directory were discarded"
        return None

    def _census(self, reader: Reader, found: _Run, why: str) -> set[str]:
        """Compare the ids of every user in scope (`Reader.census`) with the known ids: read the users in scope
        that are not known (and not read by this run), storing them page by page as the run's own; return the
        known ids no longer in scope."""
        name, size = self.config.name, self.config.page_size
        started = time.monotonic()
        try:
            in_scope = reader.census()
        except DirectoryError as exc:
            if exc.code not in LIMITS:
                raise
            # The poll goes on without it (as `Reader.left` does): a limit must not stop the changes from being read.
            reader.notes.append(f"a census ({why}) exceeds the bind account's size or time limit: users gone are "
                                "judged as the scope check finds them, and users moved into the base wait for the "
                                "full sync; raise the limit for the account (OpenLDAP: limits dn.exact=... "
                                f"size=unlimited): {exc}")
            found.census_skipped = True
            return set()
        known = set(self._known_ids())
        unknown = sorted(in_scope - known - found.ids)
        for start in range(0, len(unknown), size):
            self._take_page(reader.by_ids(unknown[start:start + size]), found, reader.now)
        gone = known - in_scope
        log.info("ldap %s: census (%s): %d users in scope, %d unknown read, %d known no longer in scope, %.2f s",
                 name, why, len(in_scope), len(unknown), len(gone), time.monotonic() - started,
                 extra={"directory": name, "census": why})
        return gone

    def _check_in_scope(self, reader: Reader, cursor: dict[str, Any], found: _Run,
                        settled: list[str]) -> dict[str, str]:
        """Check the next `scope_check_per_poll` known users, in turn, still in scope; the others have vanished."""
        name, limit = self.config.name, self.config.scope_check_per_poll
        # Resume after the last id checked (not at a position: deletes shorten the list in between), and go on
        # from the first after the last.
        batch = self.store.ldap_ids_after(name, str(cursor.get("scope_after") or ""), limit)
        if len(batch) < limit:
            batch += [i for i in self.store.ldap_ids_after(name, "", limit - len(batch)) if i not in batch]
        if not batch:
            return {}
        found.scope_after = batch[-1]
        done = set(settled)  # seen now, or already known to have left
        batch = [i for i in batch if i not in done and i not in found.ids]
        present = reader.present(batch)
        return {i: "ldap:vanished" for i in batch if i not in present}

    def _bookkeeping(self, notes: list[str], found: _Run, seen: dict[str, Snapshot], now: float,
                     cursor: dict[str, Any]) -> dict[str, Any]:
        """The watcher's own part of the cursor: notes for `connector ldap status`, when the next expiry is due,
        where the scope check goes on, which rule groups exist."""
        kept: dict[str, Any] = {"settings": self._settings()}
        if notes:
            kept["notes"] = notes
        due = _next_expiry(found, seen, cursor.get("expiry_due"), now)
        if due is not None:
            kept["expiry_due"] = due
        if found.scope_after is not None:
            kept["scope_after"] = found.scope_after
        if found.containers:
            kept["containers"] = sorted(found.containers)
        if found.tracked is not None:
            kept["rule_groups"] = sorted(found.tracked)
        if found.census_skipped and cursor.get("census_due"):
            kept["census_due"] = True  # asked for by a discard: tried again at the next poll
        return kept

    def _settings(self) -> dict[str, Any]:
        """The [ldap.NAME] keys that decide which users are read and what is read of them, as the cursor keeps them
        (JSON): a run after one of them changed reads every user, not only those changed since the cursor."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key in READ_SETTINGS if (value := getattr(self.config, key)) is not None}

    def _compare(self, seen: Iterable[Snapshot], gone: dict[str, str], known: dict[str, LdapEntry],
                 full: bool) -> tuple[list[UserChange], list[LdapEntry], list[str]]:
        name, changes, entries = self.config.name, [], []
        for snap in seen:
            old = known.get(snap.external_id)
            if old is not None and old.digest == snap.entry.digest:
                continue
            what = "create" if old is None else "expired" if snap.expired and old.active else "change"
            cause = ("ldap:reconcile-" if full else "ldap:") + what
            changes.append(UserChange(name, snap.external_id, "upsert" if snap.entry.active else "deactivate",
                                      snap.entry.state, cause=cause))
            entries.append(snap.entry)
        removed = [i for i in gone if i in known]
        for external_id in removed:
            state = {**known[external_id].state, "active": False}
            changes.append(UserChange(name, external_id, "delete", state, cause=gone[external_id]))
        return changes, entries, removed

    def _leaves_rule_group(self, known: dict[str, LdapEntry], change: UserChange) -> bool:
        """An active user who was in a group the rules name and is no longer (e.g. its nested group was taken out)."""
        old = known.get(change.external_id)
        if change.kind != "upsert" or old is None or not old.active:
            return False
        return any(in_group(old.state, g) and not in_group(change.state, g) for g in self.rule_groups)

    def _drops(self, changes: list[UserChange], known: dict[str, LdapEntry]) -> list[UserChange]:
        """The changes the mass-change guard counts: deletes, deactivations of active users, rule groups left."""
        return [c for c in changes if c.kind == "delete" or (c.kind == "deactivate" and _was_active(known, c))
                or self._leaves_rule_group(known, c)]

    def _guard(self, changes: list[UserChange], known: dict[str, LdapEntry], watermark: LdapWatermark | None,
               force: bool) -> tuple[list[UserChange], list[UserChange], str | None]:
        """Hold the deactivations and deletes of a run that would drop too many users (the mass-change guard)."""
        name = self.config.name
        drops = self._drops(changes, known)
        verdict = judge(self.config, len(drops), watermark.known if watermark else 0)
        if verdict.tripped and force:
            log.warning("ldap %s: %s; --force given, so they go through", name, verdict.describe(self.config))
        if not verdict.tripped or force:
            return changes, [], None
        dropped = {id(c) for c in drops}
        message = (f"ldap {name}: mass-change guard tripped: {verdict.describe(self.config)}. "
                   f"{len(drops)} events are held: review them with `connector events list --state held --source "
                   f"{name}`, then release them with `connector events approve --source {name} --reason \"...\"` (or "
                   "their ids) if the change is intended, or discard them with `connector events discard`")
        log.warning(message)
        metrics.HELD.labels(name).inc(len(drops))
        return [c for c in changes if id(c) not in dropped], drops, message


def _next_expiry(found: _Run, seen: dict[str, Snapshot], due: Any, now: float) -> float | None:
    """The earliest expiry still to come of an active user; a stale (early) answer only costs one more look."""
    times = [found.due, *_expiries(seen.values())]
    if found.expiries is not None:
        times += [t for i, t in found.expiries.items() if i not in seen and i not in found.ids]
    elif isinstance(due, (int, float)):
        times.append(float(due))
    return _earliest(times, now)


def _expiries(snaps: Iterable[Snapshot]) -> list[float | None]:
    """When the active users of `snaps` expire (Unix time; None: never)."""
    return [expires_at(s.entry.state.get("expiresAt")) for s in snaps if s.entry.active]


def _earliest(times: Iterable[float | None], now: float) -> float | None:
    upcoming = [t for t in times if t is not None and t > now]
    return min(upcoming) if upcoming else None


def _rule_groups(config: LdapConfig) -> tuple[str, ...]:
    """The groups the mapping's rules name; they are re-read each poll where deleted groups leave no tombstone."""
    if not config.mapping_file:
        return ()
    from connector.mapping import MappingError, load_mapping  # the mapping is optional for the watcher

    try:
        mapping = load_mapping(config.mapping_file)
    except MappingError as exc:
        log.warning("ldap %s: the groups the rules name are not re-read: %s", config.name, exc)
        return ()
    return tuple(dict.fromkeys(rule.when.group for rule in mapping.rules if rule.when.group))


def _unexpected(exc: Exception) -> str:
    """What `connector ldap status` says of a run that an exception other than a DirectoryError ended."""
    if isinstance(exc, ConnectorError):  # the store's outage, or another error that says what to do
        return str(exc)
    return (f"the run stopped at an unexpected {type(exc).__name__}: {exc} (a bug in the connector: its traceback "
            "is in the log; the cursor stays, so no change is skipped once it is fixed)")


def _was_active(known: dict[str, LdapEntry], change: UserChange) -> bool:
    old = known.get(change.external_id)
    return old is not None and old.active


def _counts(seen: int, kinds: Counter[str], held: int) -> dict[str, int]:
    """What a run did: the users it read, its events by kind (held ones too), and how many are held."""
    return {"seen": seen, "upsert": kinds["upsert"], "deactivate": kinds["deactivate"], "delete": kinds["delete"],
            "held": held}


def _changed(recorded: dict[str, Any] | None, settings: dict[str, Any]) -> list[str]:
    """The keys of `settings` (see `Watcher._settings`) whose value is not the one the cursor `recorded`; none
    when it recorded none (a watermark of an older connector: they are recorded from this run on)."""
    if recorded is None:
        return []
    return sorted(key for key in {*recorded, *settings} if recorded.get(key) != settings.get(key))
