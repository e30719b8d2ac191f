"""The SQLite store: one file in WAL mode, one connection per thread, `BEGIN IMMEDIATE` writes."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from typing import Any, Iterator, Sequence, TextIO

from connector.events import UserChange
from connector.mapping.records import ExtensionRecord
from connector.store.base import LdapEntry, LdapPoll, LdapWatermark, WatermarkMoved
from connector.store.base import Attempt, AuditEntry, Claim, EventState, Store, StoredEvent, StoreError
from connector.store.base import ScimQuery, ScimResource, ScimTransaction, ScimValue
from connector.store.ownership import PushFinish
from connector.store.queries import REQUEUABLE, event_filter

BUSY_TIMEOUT_SECONDS = 5.0
SYNCHRONOUS_MODES = ("FULL", "NORMAL")

# MIGRATIONS[n - 1] takes the schema from version n - 1 to version n; append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            idem_key TEXT UNIQUE,
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            state_json TEXT NOT NULL,
            cause TEXT NOT NULL,
            accepted_at REAL NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'dead', 'held', 'discarded')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            last_cause TEXT,
            last_error TEXT,
            discard_reason TEXT,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX events_due ON events (state, next_attempt_at, id)",
        "CREATE INDEX events_user ON events (source, external_id, state, id)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            event_ids TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        """CREATE TABLE attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            event_ids TEXT NOT NULL,
            at REAL NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('done', 'retry', 'dead')),
            cause TEXT,
            error TEXT,
            sent TEXT NOT NULL
        )""",
        "CREATE INDEX attempts_user ON attempts (source, external_id, id)",
        "CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL)",
        """CREATE TABLE pushed_extensions (
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            extension TEXT NOT NULL,
            record TEXT NOT NULL,
            pushed_at REAL NOT NULL,
            PRIMARY KEY (source, external_id, extension)
        )""",
        """CREATE TABLE verba_users (
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            user_id INTEGER NOT NULL,
            PRIMARY KEY (source, external_id)
        )""",
    ),
    (  # LDAP watermarks: one cursor per directory, and what was last seen of each entry
        """CREATE TABLE ldap_watermarks (
            directory TEXT PRIMARY KEY,
            cursor TEXT NOT NULL,
            version INTEGER NOT NULL,
            known INTEGER NOT NULL DEFAULT 0,
            last_run_at REAL,
            last_success_at REAL,
            last_error TEXT,
            counts TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE ldap_entries (
            directory TEXT NOT NULL,
            external_id TEXT NOT NULL,
            digest TEXT NOT NULL,
            active INTEGER NOT NULL,
            groups TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (directory, external_id)
        )""",
    ),
    (  # SCIM resources, and one row per searchable value for filters (connector/sources/scim/filter_sql.py)
        """CREATE TABLE scim_resources (
            pk INTEGER PRIMARY KEY AUTOINCREMENT,
            client TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            id TEXT NOT NULL,
            unique_key TEXT,
            display TEXT NOT NULL,
            body TEXT NOT NULL,
            version INTEGER NOT NULL,
            created TEXT NOT NULL,
            last_modified TEXT NOT NULL,
            UNIQUE (client, id),
            UNIQUE (client, resource_type, unique_key)
        )""",
        """CREATE TABLE scim_values (
            resource_pk INTEGER NOT NULL REFERENCES scim_resources (pk) ON DELETE CASCADE,
            attr TEXT NOT NULL,
            idx INTEGER NOT NULL,
            value TEXT NOT NULL,
            folded TEXT NOT NULL
        )""",
        "CREATE INDEX scim_values_lookup ON scim_values (attr, folded, resource_pk)",
        "CREATE INDEX scim_values_resource ON scim_values (resource_pk, attr)",
    ),
    (  # extension ownership (connector/store/ownership.py); claims backfilled from what was pushed recording
        """CREATE TABLE extension_claims (
            extension TEXT NOT NULL,
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            verba_user_id INTEGER,
            login_name TEXT,
            claimed_at REAL NOT NULL,
            PRIMARY KEY (extension, source, external_id)
        )""",
        "CREATE INDEX extension_claims_user ON extension_claims (source, external_id)",
        """CREATE TABLE extension_owners (
            extension TEXT PRIMARY KEY,
            verba_user_id INTEGER NOT NULL,
            source TEXT NOT NULL,
            external_id TEXT NOT NULL
        )""",
        """CREATE TABLE extension_locks (
            extension TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            lock_until REAL NOT NULL
        )""",
        "CREATE INDEX extension_locks_owner ON extension_locks (owner)",
        """CREATE TABLE extension_conflicts (
            extension TEXT NOT NULL,
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            event_id INTEGER NOT NULL,
            verba_user_id INTEGER,
            login_name TEXT,
            owner_user_id INTEGER,
            owner_login TEXT,
            owner_claimant TEXT,
            message TEXT NOT NULL,
            since REAL NOT NULL,
            PRIMARY KEY (extension, source, external_id)
        )""",
        "CREATE INDEX extension_conflicts_user ON extension_conflicts (source, external_id)",
        """CREATE TABLE stop_recordings (
            source TEXT NOT NULL,
            external_id TEXT NOT NULL,
            at REAL NOT NULL
        )""",
        "CREATE INDEX stop_recordings_window ON stop_recordings (source, at)",
        # One row per source, locked by each stop-recording decision: concurrent workers count in turn.
        "CREATE TABLE stop_recording_sources (source TEXT PRIMARY KEY)",
        "ALTER TABLE events ADD COLUMN approved integer NOT NULL DEFAULT 0",
        """INSERT INTO extension_claims (extension, source, external_id, verba_user_id, login_name, claimed_at)
           SELECT extension, source, external_id, json_extract(record, '$.user_id'), NULL, pushed_at FROM pushed_extensions
           WHERE json_extract(record, '$.voice') OR json_extract(record, '$.im') OR json_extract(record, '$.video')
                 OR json_extract(record, '$.screen_capture_enabled')""",
    ),
)

_EVENT_COLUMNS = (
    "id, idem_key, source, external_id, kind, state_json, cause, accepted_at,"
    " state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at"
)

_INSERT_EVENTS = (
    "INSERT INTO events (idem_key, source, external_id, kind, state_json, cause, accepted_at,"
    " state, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (idem_key) DO NOTHING"
)
_INSERT_EVENT = _INSERT_EVENTS + " RETURNING id"

# The oldest due event that is its user's oldest pending one, of a user with nothing in flight.
_PICK_USER = """
SELECT e.source, e.external_id FROM events AS e
WHERE e.state = 'pending' AND e.next_attempt_at <= ?
  AND NOT EXISTS (SELECT 1 FROM events AS o WHERE o.source = e.source AND o.external_id = e.external_id
                  AND o.state = 'pending' AND o.id < e.id)
  AND NOT EXISTS (SELECT 1 FROM events AS f WHERE f.source = e.source AND f.external_id = e.external_id
                  AND f.state = 'in_flight')
ORDER BY e.next_attempt_at, e.id
LIMIT 1
"""

_ANYTHING_TO_CLAIM = """
SELECT EXISTS (SELECT 1 FROM events WHERE state = 'pending' AND next_attempt_at <= ?)
    OR EXISTS (SELECT 1 FROM events WHERE state = 'in_flight' AND lease_until < ?)
"""

_CLAIM_USER = f"""
UPDATE events SET state = 'in_flight', attempts = attempts + 1, lease_owner = ?, lease_until = ?, updated_at = ?
WHERE source = ? AND external_id = ? AND state = 'pending'
RETURNING {_EVENT_COLUMNS}
"""

_IN_IDS = "id IN (SELECT value FROM json_each(?))"

# The i-th requeued event (by id, from 0) is due at now + i * spacing.
_REQUEUE = f"""
UPDATE events SET state = 'pending', attempts = 0, next_attempt_at = ? + chosen.i * ?, updated_at = ?,
    approved = CASE WHEN ? THEN 1 ELSE approved END
FROM (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM events WHERE {_IN_IDS} AND {REQUEUABLE}
) AS chosen
WHERE events.id = chosen.id AND events.state IN ('dead', 'held', 'done')
"""

_ATTEMPTS_OF_EVENT = """
SELECT a.at, a.event_ids, a.outcome, a.cause, a.error, a.sent FROM attempts AS a
JOIN events AS e ON e.source = a.source AND e.external_id = a.external_id
WHERE e.id = ? AND EXISTS (SELECT 1 FROM json_each(a.event_ids) WHERE value = e.id)
ORDER BY a.id
"""


class SQLiteStore(Store):
    """The store in one SQLite file; `synchronous="NORMAL"` may lose the last commits on power loss."""

    _placeholder = "?"

    def __init__(self, path: str, *, synchronous: str = "FULL") -> None:
        if path in ("", ":memory:"):
            raise ValueError("the SQLite store needs a file path; an in-memory database is not shared between threads")
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous={synchronous!r} is not supported; use one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = path
        self.synchronous = synchronous.upper()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._instance_lock: TextIO | None = None
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the directory {directory} for the store {path} ({error.strerror}); "
                "create it yourself or point [store] url at a writable place"
            ) from error
        self._connection()  # fail now, not at the first event, if the file cannot be opened

    # --- connections and transactions ---------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        with self._errors():
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        try:
            with self._errors():
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise StoreError(
                        f"the store {self.path} cannot use WAL mode (got {mode!r}); "
                        "put it on a local disk, not a network file system"
                    )
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
                conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if self._closed:
                conn.close()
                raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
            self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise StoreError(_explain(self.path, error)) from error

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: commit on success, roll back on any exception."""
        conn = self._connection()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._errors():
            yield conn

    def migrate(self) -> None:
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"the store {self.path} has schema version {current}, newer than this connector "
                    f"knows ({len(MIGRATIONS)}); upgrade the connector"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def close(self) -> None:
        """Close every thread's connection; call it once the worker threads have stopped."""
        with self._lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            if self._instance_lock is not None:
                self._instance_lock.close()
                self._instance_lock = None

    # --- intake -------------------------------------------------------
    def enqueue(self, changes: Sequence[UserChange], *, state: EventState = EventState.PENDING) -> list[int]:
        state = EventState(state)
        if state is EventState.IN_FLIGHT:
            raise ValueError("events cannot be enqueued in flight; enqueue them pending or held")
        if not changes:
            return []
        now = time.time()
        ids = []
        with self._write() as conn:
            for change in changes:
                row = conn.execute(
                    _INSERT_EVENT,
                    (
                        change.idem_key,
                        change.source,
                        change.external_id,
                        change.kind,
                        _state_json(change),
                        change.cause,
                        change.accepted_at,
                        state.value,
                        change.accepted_at,
                        now,
                    ),
                ).fetchone()
                if row is not None:
                    ids.append(row[0])
        return ids

    # --- delivery -----------------------------------------------------
    def claim(self, owner: str, now: float, lease_seconds: float) -> Claim | None:
        lease_until = float(now + lease_seconds)
        with self._read() as conn:  # idle workers polling should not take the write lock
            if not conn.execute(_ANYTHING_TO_CLAIM, (now, now)).fetchone()[0]:
                return None
        with self._write() as conn:
            conn.execute(
                "UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE state = 'in_flight' AND lease_until < ?",
                (time.time(), now),
            )
            user = conn.execute(_PICK_USER, (now,)).fetchone()
            if user is None:
                return None
            rows = conn.execute(_CLAIM_USER, (owner, lease_until, time.time(), *user)).fetchall()
        events = sorted((_event(row) for row in rows), key=lambda event: event.id)
        return Claim(
            source=user["source"],
            external_id=user["external_id"],
            event_ids=tuple(event.id for event in events),
            latest=events[-1],
            attempts=max(event.attempts for event in events),
            owner=owner,
            lease_until=lease_until,
        )

    def complete(
        self,
        claim: Claim,
        pushed: Sequence[ExtensionRecord],
        user_id: int | None,
        *,
        sent: Sequence[dict[str, Any]] = (),
        finish: PushFinish | None = None,
    ) -> list[tuple[str, str]]:
        repeated = sorted(ext for ext, n in collections.Counter(r.extension for r in pushed).items() if n > 1)
        if repeated:
            raise ValueError(f"pushed lists extension(s) {', '.join(repeated)} more than once; give each once")
        sent_json = _sent_json(sent)
        now = time.time()
        user = (claim.source, claim.external_id)
        with self._write() as conn:
            settled = _settle(conn, claim, "state = 'done'", ())
            # A lease lost to a newer push of the user: only unlock and wake, the newer push records the rest.
            waiting = [] if finish is None else self._finish_push(conn, finish, complete=bool(settled))
            if not settled:
                return waiting
            _add_attempt(conn, claim, "done", None, None, sent_json)
            conn.execute("DELETE FROM pushed_extensions WHERE source = ? AND external_id = ?", user)
            conn.executemany(
                "INSERT INTO pushed_extensions (source, external_id, extension, record, pushed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(*user, record.extension, json.dumps(record.to_dict()), now) for record in pushed],
            )
            if user_id is not None:
                conn.execute(
                    "INSERT INTO verba_users (source, external_id, user_id) VALUES (?, ?, ?)"
                    " ON CONFLICT (source, external_id) DO UPDATE SET user_id = excluded.user_id",
                    (*user, user_id),
                )
        return waiting

    def _note_pushing(self, conn: sqlite3.Connection, source: str, external_id: str,
                      records: Sequence[ExtensionRecord]) -> None:
        now = time.time()
        conn.executemany(
            "INSERT INTO pushed_extensions (source, external_id, extension, record, pushed_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, external_id, extension)"
            " DO UPDATE SET record = excluded.record, pushed_at = excluded.pushed_at",
            [(source, external_id, r.extension, json.dumps(r.to_dict()), now) for r in records],
        )

    def retry(
        self, claim: Claim, next_attempt_at: float, cause: str, error: str, *, sent: Sequence[dict[str, Any]] = ()
    ) -> None:
        sent_json = _sent_json(sent)
        with self._write() as conn:
            if _settle(
                conn,
                claim,
                "state = 'pending', next_attempt_at = ?, last_cause = ?, last_error = ?",
                (next_attempt_at, cause, error),
            ):
                _add_attempt(conn, claim, "retry", cause, error, sent_json)

    def dead_letter(self, claim: Claim, cause: str, error: str, *, sent: Sequence[dict[str, Any]] = ()) -> None:
        sent_json = _sent_json(sent)
        with self._write() as conn:
            if _settle(conn, claim, "state = 'dead', last_cause = ?, last_error = ?", (cause, error)):
                _add_attempt(conn, claim, "dead", cause, error, sent_json)

    def _settle_claim(self, conn: Any, claim: Claim, assignments: str, params: tuple[Any, ...]) -> int:
        return _settle(conn, claim, assignments, params)

    def _lock_claimed_user(self, conn: Any, claim: Claim) -> None:
        pass  # BEGIN IMMEDIATE already holds the only write lock

    def attempts(self, event_id: int) -> list[Attempt]:
        with self._read() as conn:
            rows = conn.execute(_ATTEMPTS_OF_EVENT, (event_id,)).fetchall()
        return [
            Attempt(
                at=row["at"],
                event_ids=tuple(json.loads(row["event_ids"])),
                outcome=row["outcome"],
                cause=row["cause"],
                error=row["error"],
                sent=tuple(json.loads(row["sent"])),
            )
            for row in rows
        ]

    def start_instance(self) -> int:
        lock_path = f"{self.path}.instance"
        lock = open(lock_path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            raise StoreError(
                f"another connector (pid {holder}) is running on the store {self.path}; run one connector per "
                "SQLite file, or put several on PostgreSQL ([store] url = \"postgresql://...\")"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        self._instance_lock = lock  # held until close(): the process's life
        return self.release_leases()

    def release_leases(self) -> int:
        with self._write() as conn:
            conn.execute("DELETE FROM extension_locks")
            return conn.execute(
                "UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE state = 'in_flight'",
                (time.time(),),
            ).rowcount

    # --- per-user projection ------------------------------------------
    def pushed_extensions(self, source: str, external_id: str) -> list[ExtensionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT record FROM pushed_extensions WHERE source = ? AND external_id = ? ORDER BY rowid",
                (source, external_id),
            ).fetchall()
        return [ExtensionRecord.from_dict(json.loads(row["record"])) for row in rows]

    def verba_user_id(self, source: str, external_id: str) -> int | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT user_id FROM verba_users WHERE source = ? AND external_id = ?", (source, external_id)
            ).fetchone()
        return None if row is None else int(row["user_id"])

    # --- reading and operator actions ---------------------------------
    def get_event(self, event_id: int) -> StoredEvent | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else _event(row)

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
        where, params = event_filter(
            "?", "json_extract(state_json, '$.userName')", state=state, cause=cause, user=user, source=source, since=since
        )
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [_event(row) for row in rows]

    def current_event(self, source: str, external_id: str) -> StoredEvent | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE source = ? AND external_id = ?"
                " AND state NOT IN ('held', 'discarded') ORDER BY id DESC LIMIT 1",
                (source, external_id),
            ).fetchone()
        return None if row is None else _event(row)

    def count_by_state(self) -> dict[EventState, int]:
        counts = {state: 0 for state in EventState}
        with self._read() as conn:
            for row in conn.execute("SELECT state, count(*) AS n FROM events GROUP BY state"):
                counts[EventState(row["state"])] = row["n"]
        return counts

    def dead_letter_summary(self) -> list[tuple[str, str, int]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT last_cause, last_error, count(*) AS n FROM events WHERE state = 'dead'"
                " GROUP BY last_cause, last_error ORDER BY n DESC, last_cause, last_error"
            ).fetchall()
        return [(row["last_cause"], row["last_error"], row["n"]) for row in rows]

    def oldest_pending_at(self) -> float | None:
        with self._read() as conn:
            oldest = conn.execute(
                "SELECT min(accepted_at) FROM events WHERE state IN ('pending', 'in_flight')"
            ).fetchone()[0]
        return None if oldest is None else float(oldest)

    def count_by_source_and_kind(self) -> list[tuple[str, str, int]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT source, kind, count(*) AS n FROM events GROUP BY source, kind ORDER BY source, kind"
            ).fetchall()
        return [(row["source"], row["kind"], row["n"]) for row in rows]

    def requeue(self, event_ids: Sequence[int], now: float, *, spacing: float = 0.0, approve: bool = False) -> int:
        with self._write() as conn:
            return conn.execute(_REQUEUE, (now, spacing, time.time(), approve, json.dumps(list(event_ids)))).rowcount

    def discard(self, event_ids: Sequence[int], reason: str) -> int:
        if not reason.strip():
            raise ValueError("discarding events needs a reason; say why they must not be delivered")
        with self._write() as conn:
            return conn.execute(
                "UPDATE events SET state = 'discarded', discard_reason = ?, updated_at = ?"
                f" WHERE {_IN_IDS} AND state IN ('dead', 'held')",
                (reason, time.time(), json.dumps(list(event_ids))),
            ).rowcount

    def add_audit(self, actor: str, action: str, event_ids: Sequence[int], reason: str, detail: dict[str, Any]) -> int:
        try:
            detail_json = json.dumps(detail, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"audit detail for {action!r} is not JSON ({error}); give plain values") from error
        with self._write() as conn:
            row = conn.execute(
                "INSERT INTO audit (at, actor, action, event_ids, reason, detail) VALUES (?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (time.time(), actor, action, json.dumps(list(event_ids)), reason, detail_json),
            ).fetchone()
        return int(row["id"])

    def list_audit(self, limit: int = 100, *, since: float | None = None) -> list[AuditEntry]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM audit WHERE at >= coalesce(?, at) ORDER BY id DESC LIMIT ?", (since, limit)
            ).fetchall()
        return [
            AuditEntry(
                id=row["id"],
                at=row["at"],
                actor=row["actor"],
                action=row["action"],
                event_ids=tuple(json.loads(row["event_ids"])),
                reason=row["reason"],
                detail=json.loads(row["detail"]),
            )
            for row in rows
        ]

    def ping(self) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (time.time(),),
            )

    # --- LDAP watermarks ----------------------------------------------
    def ldap_watermark(self, directory: str) -> LdapWatermark | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM ldap_watermarks WHERE directory = ?", (directory,)).fetchone()
        return None if row is None else _watermark(row)

    def ldap_watermarks(self) -> list[LdapWatermark]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM ldap_watermarks ORDER BY directory").fetchall()
        return [_watermark(row) for row in rows]

    def ldap_entries(self, directory: str, ids: Sequence[str] | None = None) -> dict[str, LdapEntry]:
        query = "SELECT * FROM ldap_entries WHERE directory = ?"
        params: tuple[Any, ...] = (directory,)
        if ids is not None:
            query += " AND external_id IN (SELECT value FROM json_each(?))"
            params += (json.dumps(list(ids)),)
        with self._read() as conn:
            rows = conn.execute(query, params).fetchall()
        return {row["external_id"]: _ldap_entry(row) for row in rows}

    def commit_poll(self, poll: LdapPoll) -> list[int]:
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT version FROM ldap_watermarks WHERE directory = ?", (poll.directory,)).fetchone()
            if (row["version"] if row else 0) != poll.version:
                raise WatermarkMoved(f"the watermark of {poll.directory} moved on while this poll ran; poll again")
            waiting = _held_users(conn, poll.changes)
            # An upsert and its entry share one state dict: serialize it once.
            states = {id(c.state): _state_json(c) for c in [*poll.changes, *poll.held]}
            rows = [(c.idem_key, c.source, c.external_id, c.kind, states[id(c.state)], c.cause, c.accepted_at,
                     "held" if held or (c.source, c.external_id) in waiting else "pending", c.accepted_at, now)
                    for c, held in [(c, False) for c in poll.changes] + [(c, True) for c in poll.held]]
            last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
            conn.executemany(_INSERT_EVENTS, rows)  # BEGIN IMMEDIATE: the new ids are the ones above `last`
            ids = [r[0] for r in conn.execute("SELECT id FROM events WHERE id > ? ORDER BY id", (last,))]
            conn.executemany(
                "INSERT OR REPLACE INTO ldap_entries (directory, external_id, digest, active, groups, state)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(poll.directory, e.external_id, e.digest, int(e.active), json.dumps(e.groups),
                  states.get(id(e.state)) or json.dumps(e.state)) for e in poll.entries],
            )
            conn.executemany("DELETE FROM ldap_entries WHERE directory = ? AND external_id = ?",
                             [(poll.directory, external_id) for external_id in poll.removed])
            conn.execute(
                "INSERT INTO ldap_watermarks (directory, cursor, version, last_run_at, last_success_at, counts)"
                " VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (directory) DO UPDATE SET cursor = excluded.cursor,"
                " version = version + 1, last_run_at = excluded.last_run_at, last_success_at = excluded.last_run_at,"
                " last_error = NULL, counts = excluded.counts",
                (poll.directory, json.dumps(poll.cursor), poll.at, poll.at, json.dumps(poll.counts)),
            )
            if poll.entries or poll.removed or not row:
                conn.execute(
                    "UPDATE ldap_watermarks SET known = (SELECT count(*) FROM ldap_entries WHERE directory = ?)"
                    " WHERE directory = ?",
                    (poll.directory, poll.directory),
                )
        return ids

    def note_poll_failure(self, directory: str, error: str, at: float) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO ldap_watermarks (directory, cursor, version, last_run_at, last_error)"
                " VALUES (?, '{}', 0, ?, ?) ON CONFLICT (directory) DO UPDATE SET"
                " last_run_at = excluded.last_run_at, last_error = excluded.last_error",
                (directory, at, error),
            )

    # --- SCIM resources -----------------------------------------------
    @contextlib.contextmanager
    def scim_transaction(self, client: str) -> Iterator[ScimTransaction]:
        with self._write() as conn:  # BEGIN IMMEDIATE: one writer at a time
            yield _SQLiteScimTransaction(conn, client)

    def scim_get(self, client: str, resource_type: str, resource_id: str) -> ScimResource | None:
        with self._read() as conn:
            return _SQLiteScimTransaction(conn, client).get(resource_type, resource_id)

    def scim_search(
        self, client: str, resource_type: str, where: ScimQuery | None, offset: int, limit: int
    ) -> tuple[int, list[ScimResource]]:
        condition = f"r.client = ? AND r.resource_type = ? AND ({where.sql if where else '1 = 1'})"
        params = (client, resource_type, *(where.params if where else ()))
        with self._read() as conn:
            total = conn.execute(f"SELECT count(*) FROM scim_resources r WHERE {condition}", params).fetchone()[0]
            rows = [] if limit <= 0 else conn.execute(
                f"SELECT {_SCIM_COLUMNS} FROM scim_resources r WHERE {condition} ORDER BY r.pk LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return total, [_scim_resource(row) for row in rows]

    def scim_groups_of(self, client: str, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        with self._read() as conn:
            return _SQLiteScimTransaction(conn, client).groups_of(user_ids)


def _watermark(row: sqlite3.Row) -> LdapWatermark:
    return LdapWatermark(
        directory=row["directory"],
        cursor=json.loads(row["cursor"]),
        version=row["version"],
        known=row["known"],
        last_run_at=row["last_run_at"],
        last_success_at=row["last_success_at"],
        last_error=row["last_error"],
        counts=json.loads(row["counts"]),
    )


def _ldap_entry(row: sqlite3.Row) -> LdapEntry:
    return LdapEntry(
        external_id=row["external_id"],
        digest=row["digest"],
        active=bool(row["active"]),
        groups=tuple(json.loads(row["groups"])),
        state=json.loads(row["state"]),
    )

def _settle(conn: sqlite3.Connection, claim: Claim, assignments: str, params: tuple[Any, ...]) -> int:
    """Apply `assignments` to the claim's events still held by its lease, end the lease; return how many."""
    return conn.execute(
        f"UPDATE events SET {assignments}, lease_owner = NULL, lease_until = NULL, updated_at = ?"
        f" WHERE {_IN_IDS} AND state = 'in_flight' AND lease_owner = ? AND lease_until = ?",
        (*params, time.time(), json.dumps(list(claim.event_ids)), claim.owner, claim.lease_until),
    ).rowcount


def _add_attempt(
    conn: sqlite3.Connection, claim: Claim, outcome: str, cause: str | None, error: str | None, sent_json: str
) -> None:
    conn.execute(
        "INSERT INTO attempts (source, external_id, event_ids, at, outcome, cause, error, sent)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            claim.source,
            claim.external_id,
            json.dumps(list(claim.event_ids)),
            time.time(),
            outcome,
            cause,
            error,
            sent_json,
        ),
    )


def _sent_json(sent: Sequence[dict[str, Any]]) -> str:
    try:
        return json.dumps(list(sent), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the SOAP requests sent are not JSON ({error}); give plain strings and numbers") from error


def _held_users(conn: sqlite3.Connection, changes: Sequence[UserChange]) -> set[tuple[str, str]]:
    """(source, external_id) of the changes whose user has a held event: their new events wait behind it."""
    waiting: set[tuple[str, str]] = set()
    for source in {c.source for c in changes}:
        ids = json.dumps([c.external_id for c in changes if c.source == source])
        waiting.update((source, r[0]) for r in conn.execute(
            "SELECT DISTINCT external_id FROM events WHERE source = ? AND state = 'held'"
            " AND external_id IN (SELECT value FROM json_each(?))", (source, ids)))
    return waiting


def _state_json(change: UserChange) -> str:
    try:
        return json.dumps(change.state, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"the state of {change.source}/{change.external_id} is not JSON ({error}); the source must "
            "normalize it to strings, numbers, booleans, null, lists and objects"
        ) from error


def _event(row: sqlite3.Row) -> StoredEvent:
    change = UserChange(
        source=row["source"],
        external_id=row["external_id"],
        kind=row["kind"],
        state=json.loads(row["state_json"]),
        accepted_at=float(row["accepted_at"]),  # RETURNING may give REAL as int
        cause=row["cause"],
        idem_key=row["idem_key"],
    )
    return StoredEvent(
        id=row["id"],
        change=change,
        state=EventState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=float(row["next_attempt_at"]),
        last_cause=row["last_cause"],
        last_error=row["last_error"],
        updated_at=float(row["updated_at"]),
        discard_reason=row["discard_reason"],
    )


def _explain(path: str, error: sqlite3.Error) -> str:
    """Say what went wrong with the store file and what to do about it."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return (
            f"the store {path} stayed locked for over {BUSY_TIMEOUT_SECONDS:g} s ({text}): another process is "
            "writing to it. Run one connector per SQLite file (use PostgreSQL for several) "
            "and close other programs using it"
        )
    if "readonly" in text or "unable to open" in text:
        return (
            f"cannot open or write the store {path} ({text}): make the file and its directory writable "
            "by this user, or point [store] url at a writable path"
        )
    if "no such table" in text:
        return f"the store {path} has no schema yet ({text}): call its migrate() before using it"
    if "not a database" in text or "malformed" in text:
        return (
            f"{path} is not a usable SQLite store ({text}): restore it from a backup "
            "or point [store] url at a new file"
        )
    if "disk I/O" in text or "full" in text:
        return (
            f"the store {path} could not be written ({text}): check free disk space and that "
            "the file is on a local disk, not a network share"
        )
    return f"the store {path} failed ({text})"


_SCIM_COLUMNS = "r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created, r.last_modified"


class _SQLiteScimTransaction(ScimTransaction):
    def __init__(self, conn: sqlite3.Connection, client: str) -> None:
        self.conn = conn
        self.client = client

    def get(self, resource_type: str, resource_id: str) -> ScimResource | None:
        row = self.conn.execute(
            f"SELECT {_SCIM_COLUMNS} FROM scim_resources r WHERE r.client = ? AND r.resource_type = ? AND r.id = ?",
            (self.client, resource_type, resource_id),
        ).fetchone()
        return None if row is None else _scim_resource(row)

    def get_many(self, resource_type: str, resource_ids: Sequence[str]) -> list[ScimResource]:
        rows = self.conn.execute(
            f"SELECT {_SCIM_COLUMNS} FROM scim_resources r WHERE r.client = ? AND r.resource_type = ?"
            " AND r.id IN (SELECT value FROM json_each(?)) ORDER BY r.pk",
            (self.client, resource_type, json.dumps(list(resource_ids))),
        ).fetchall()
        return [_scim_resource(row) for row in rows]

    def find_unique(self, resource_type: str, unique_key: str) -> str | None:
        row = self.conn.execute(
            "SELECT id FROM scim_resources WHERE client = ? AND resource_type = ? AND unique_key = ?",
            (self.client, resource_type, unique_key),
        ).fetchone()
        return None if row is None else str(row["id"])

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        wanted = set(user_ids)
        rows = self.conn.execute(
            "SELECT v.value AS member, g.id, g.display FROM scim_values v JOIN scim_resources g ON g.pk = v.resource_pk"
            " WHERE g.client = ? AND g.resource_type = 'Group' AND v.attr = 'members.value'"
            " AND v.folded IN (SELECT value FROM json_each(?)) ORDER BY g.pk, v.idx",
            (self.client, json.dumps(sorted({user_id.lower() for user_id in wanted}))),
        ).fetchall()
        groups: dict[str, list[tuple[str, str]]] = {user_id: [] for user_id in wanted}
        for row in rows:
            if row["member"] in wanted and (row["id"], row["display"]) not in groups[row["member"]]:
                groups[row["member"]].append((row["id"], row["display"]))
        return groups

    def put(self, resource: ScimResource, values: Sequence[ScimValue]) -> None:
        pk = self.conn.execute(
            "INSERT INTO scim_resources (client, resource_type, id, unique_key, display, body, version, created,"
            " last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client, id) DO UPDATE SET"
            " unique_key = excluded.unique_key, display = excluded.display, body = excluded.body,"
            " version = excluded.version, last_modified = excluded.last_modified RETURNING pk",
            (self.client, resource.resource_type, resource.id, resource.unique_key, resource.display,
             json.dumps(resource.body, separators=(",", ":")), resource.version, resource.created,
             resource.last_modified),
        ).fetchone()[0]
        # Rewrite only the values that changed: fewer pages to write and sync than all of them.
        stored = {(r[1], r[2], r[3]): r[0] for r in self.conn.execute(
            "SELECT rowid, attr, idx, value FROM scim_values WHERE resource_pk = ?", (pk,))}
        wanted = {(v.attr, v.idx, v.value): v for v in values}
        self.conn.executemany("DELETE FROM scim_values WHERE rowid = ?",
                              [(rowid,) for key, rowid in stored.items() if key not in wanted])
        self.conn.executemany(
            "INSERT INTO scim_values (resource_pk, attr, idx, value, folded) VALUES (?, ?, ?, ?, ?)",
            [(pk, v.attr, v.idx, v.value, v.folded) for key, v in wanted.items() if key not in stored],
        )

    def delete(self, resource_type: str, resource_id: str) -> None:
        self.conn.execute(
            "DELETE FROM scim_resources WHERE client = ? AND resource_type = ? AND id = ?",
            (self.client, resource_type, resource_id),
        )

    def enqueue(self, changes: Sequence[UserChange]) -> None:
        now = time.time()
        for change in changes:
            self.conn.execute(
                _INSERT_EVENT,
                (change.idem_key, change.source, change.external_id, change.kind, _state_json(change), change.cause,
                 change.accepted_at, "pending", change.accepted_at, now),
            ).fetchall()


def _scim_resource(row: sqlite3.Row) -> ScimResource:
    return ScimResource(
        client=row["client"],
        resource_type=row["resource_type"],
        id=row["id"],
        body=json.loads(row["body"]),
        version=row["version"],
        created=row["created"],
        last_modified=row["last_modified"],
        unique_key=row["unique_key"],
        display=row["display"],
    )
