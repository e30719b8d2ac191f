"""The PostgreSQL store: one connection per thread, autocommit reads, short write transactions.

Several connectors may share one database. Every change to a user's in-flight batch (claim,
lease expiry, complete, retry, dead letter) happens under that user's transaction-level advisory
lock, `pg_advisory_xact_lock(hashtext(source || chr(31) || external_id))`; claimers take it with
`pg_try_advisory_xact_lock` after picking a head event `FOR UPDATE SKIP LOCKED`, so they skip
each other's users instead of waiting, and one user never has two batches in flight.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
import time
from typing import Any, Iterator, Sequence

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from connector.events import UserChange
from connector.mapping.records import ExtensionRecord
from connector.store.base import LdapEntry, LdapPoll, LdapWatermark, WatermarkMoved
from connector.store.base import Attempt, AuditEntry, Claim, EventState, Store, StoredEvent, StoreError
from connector.store.base import ScimQuery, ScimResource, ScimTransaction, ScimValue
from connector.store.ownership import PushFinish
from connector.store.queries import REQUEUABLE, event_filter

CONNECT_TIMEOUT_SECONDS = 10
SYNCHRONOUS_MODES = ("FULL", "NORMAL")

Connection = psycopg.Connection[DictRow]

# MIGRATIONS[n - 1] takes the schema from version n - 1 to version n; append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # A queue table: keep autovacuum ahead of the dead tuples every claim and settle leave
        # behind (reference/delivery.md, 1.2), and leave room for HOT updates.
        """CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            idem_key text UNIQUE,
            source text NOT NULL,
            external_id text NOT NULL,
            kind text NOT NULL,
            state_json jsonb NOT NULL,
            cause text NOT NULL,
            accepted_at double precision NOT NULL,
            state text NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'dead', 'held', 'discarded')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at double precision NOT NULL,
            lease_owner text,
            lease_until double precision,
            last_cause text,
            last_error text,
            discard_reason text,
            updated_at double precision NOT NULL
        ) WITH (
            fillfactor = 70,
            autovacuum_vacuum_scale_factor = 0.01,
            autovacuum_vacuum_cost_limit = 10000,
            autovacuum_vacuum_cost_delay = 0
        )""",
        "CREATE INDEX events_due ON events (next_attempt_at, id) WHERE state = 'pending'",
        "CREATE INDEX events_user ON events (source, external_id, state, id)",
        "CREATE INDEX events_leases ON events (lease_until) WHERE state = 'in_flight'",
        """CREATE TABLE audit (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at double precision NOT NULL,
            actor text NOT NULL,
            action text NOT NULL,
            event_ids bigint[] NOT NULL,
            reason text NOT NULL,
            detail jsonb NOT NULL
        )""",
        # `sent` is json, not jsonb: it is only ever read back whole, and json keeps a \u0000
        # in an envelope that jsonb would refuse (failing the settle it belongs to).
        """CREATE TABLE attempts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source text NOT NULL,
            external_id text NOT NULL,
            event_ids bigint[] NOT NULL,
            at double precision NOT NULL,
            outcome text NOT NULL CHECK (outcome IN ('done', 'retry', 'dead')),
            cause text,
            error text,
            sent json NOT NULL
        )""",
        "CREATE INDEX attempts_user ON attempts (source, external_id, id)",
        "CREATE TABLE heartbeat (id integer PRIMARY KEY CHECK (id = 1), at double precision NOT NULL)",
        """CREATE TABLE pushed_extensions (
            source text NOT NULL,
            external_id text NOT NULL,
            extension text NOT NULL,
            position integer NOT NULL,
            record jsonb NOT NULL,
            pushed_at double precision NOT NULL,
            PRIMARY KEY (source, external_id, extension)
        )""",
        """CREATE TABLE verba_users (
            source text NOT NULL,
            external_id text NOT NULL,
            user_id bigint NOT NULL,
            PRIMARY KEY (source, external_id)
        )""",
    ),
    (  # LDAP watermarks: one cursor per directory, and what was last seen of each entry
        """CREATE TABLE ldap_watermarks (
            directory text PRIMARY KEY,
            cursor jsonb NOT NULL,
            version bigint NOT NULL,
            known bigint NOT NULL DEFAULT 0,
            last_run_at double precision,
            last_success_at double precision,
            last_error text,
            counts jsonb NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE ldap_entries (
            directory text NOT NULL,
            external_id text NOT NULL,
            digest text NOT NULL,
            active boolean NOT NULL,
            groups jsonb NOT NULL,
            state jsonb NOT NULL,
            PRIMARY KEY (directory, external_id)
        )""",
    ),
    (  # SCIM resources, and one row per searchable value for filters (connector/sources/scim/filter_sql.py).
        # COLLATE "C" compares code points, as SQLite does, so gt/lt filters agree on both backends.
        """CREATE TABLE scim_resources (
            pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            client text NOT NULL,
            resource_type text NOT NULL,
            id text COLLATE "C" NOT NULL,
            unique_key text,
            display text NOT NULL,
            body jsonb NOT NULL,
            version bigint NOT NULL,
            created text COLLATE "C" NOT NULL,
            last_modified text COLLATE "C" NOT NULL,
            UNIQUE (client, id),
            UNIQUE (client, resource_type, unique_key)
        )""",
        """CREATE TABLE scim_values (
            resource_pk bigint NOT NULL REFERENCES scim_resources (pk) ON DELETE CASCADE,
            attr text COLLATE "C" NOT NULL,
            idx integer NOT NULL,
            value text COLLATE "C" NOT NULL,
            folded text COLLATE "C" NOT NULL
        )""",
        "CREATE INDEX scim_values_lookup ON scim_values (attr, folded, resource_pk)",
        "CREATE INDEX scim_values_resource ON scim_values (resource_pk, attr)",
    ),
    (  # extension ownership (connector/store/ownership.py); claims backfilled from what was pushed recording
        """CREATE TABLE extension_claims (
            extension text NOT NULL,
            source text NOT NULL,
            external_id text NOT NULL,
            verba_user_id bigint,
            login_name text,
            claimed_at double precision NOT NULL,
            PRIMARY KEY (extension, source, external_id)
        )""",
        "CREATE INDEX extension_claims_user ON extension_claims (source, external_id)",
        """CREATE TABLE extension_owners (
            extension text PRIMARY KEY,
            verba_user_id bigint NOT NULL,
            source text NOT NULL,
            external_id text NOT NULL
        )""",
        """CREATE TABLE extension_locks (
            extension text PRIMARY KEY,
            owner text NOT NULL,
            lock_until double precision NOT NULL
        )""",
        "CREATE INDEX extension_locks_owner ON extension_locks (owner)",
        """CREATE TABLE extension_conflicts (
            extension text NOT NULL,
            source text NOT NULL,
            external_id text NOT NULL,
            event_id bigint NOT NULL,
            verba_user_id bigint,
            login_name text,
            owner_user_id bigint,
            owner_login text,
            owner_claimant text,
            message text NOT NULL,
            since double precision NOT NULL,
            PRIMARY KEY (extension, source, external_id)
        )""",
        "CREATE INDEX extension_conflicts_user ON extension_conflicts (source, external_id)",
        """CREATE TABLE stop_recordings (
            source text NOT NULL,
            external_id text NOT NULL,
            at double precision NOT NULL
        )""",
        "CREATE INDEX stop_recordings_window ON stop_recordings (source, at)",
        # One row per source, locked by each stop-recording decision: concurrent workers count in turn.
        "CREATE TABLE stop_recording_sources (source text PRIMARY KEY)",
        "ALTER TABLE events ADD COLUMN approved integer NOT NULL DEFAULT 0",
        """INSERT INTO extension_claims (extension, source, external_id, verba_user_id, login_name, claimed_at)
           SELECT extension, source, external_id, (record->>'user_id')::bigint, NULL, pushed_at FROM pushed_extensions
           WHERE (record->>'voice')::boolean OR (record->>'im')::boolean OR (record->>'video')::boolean
                 OR (record->>'screen_capture_enabled')::boolean""",
    ),
)

# Any constant works: it only keeps two connectors from migrating the same database at once.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('connector.store.migrate'))"

_USER_KEY = "hashtext(%(source)s || chr(31) || %(external_id)s)"
_LOCK_USER = f"SELECT pg_advisory_xact_lock({_USER_KEY})"
_TRY_LOCK_USER = f"SELECT pg_try_advisory_xact_lock({_USER_KEY}) AS locked"

_EVENT_COLUMNS = (
    "id, idem_key, source, external_id, kind, state_json, cause, accepted_at,"
    " state, attempts, next_attempt_at, last_cause, last_error, discard_reason, updated_at"
)

_INSERT_EVENT = (
    "INSERT INTO events (idem_key, source, external_id, kind, state_json, cause, accepted_at,"
    " state, next_attempt_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (idem_key) DO NOTHING RETURNING id"
)

_ANYTHING_TO_CLAIM = """
SELECT EXISTS (SELECT 1 FROM events WHERE state = 'pending' AND next_attempt_at <= %(now)s)
    OR EXISTS (SELECT 1 FROM events WHERE state = 'in_flight' AND lease_until < %(now)s) AS due
"""

# Users whose advisory lock is taken (a worker is settling them right now) keep their lease.
_EXPIRE_LEASES = """
WITH expired AS (
    SELECT DISTINCT source, external_id FROM events WHERE state = 'in_flight' AND lease_until < %(now)s
), unlocked AS (
    SELECT source, external_id FROM expired
    WHERE pg_try_advisory_xact_lock(hashtext(source || chr(31) || external_id))
)
UPDATE events AS e SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = %(at)s
FROM unlocked AS u
WHERE e.source = u.source AND e.external_id = u.external_id AND e.state = 'in_flight' AND e.lease_until < %(now)s
"""

# The oldest due event that is its user's oldest pending one, of a user with nothing in flight.
_PICK_HEAD = """
SELECT e.id, e.source, e.external_id FROM events AS e
WHERE e.state = 'pending' AND e.next_attempt_at <= %(now)s AND e.id <> ALL(%(skipped)s::bigint[])
  AND NOT EXISTS (SELECT 1 FROM events AS o WHERE o.source = e.source AND o.external_id = e.external_id
                  AND o.state = 'pending' AND o.id < e.id)
  AND NOT EXISTS (SELECT 1 FROM events AS f WHERE f.source = e.source AND f.external_id = e.external_id
                  AND f.state = 'in_flight')
ORDER BY e.next_attempt_at, e.id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED
"""

# Run under the user's advisory lock, so the in-flight check sees every earlier claim committed.
_CLAIM_USER = f"""
UPDATE events SET state = 'in_flight', attempts = attempts + 1, lease_owner = %(owner)s,
    lease_until = %(lease_until)s, updated_at = %(at)s
WHERE source = %(source)s AND external_id = %(external_id)s AND state = 'pending'
  AND NOT EXISTS (SELECT 1 FROM events AS f WHERE f.source = %(source)s AND f.external_id = %(external_id)s
                  AND f.state = 'in_flight')
RETURNING {_EVENT_COLUMNS}
"""


# A noted extension keeps its place among the pushed ones; a new one goes last.
_NOTE_PUSHING = """
INSERT INTO pushed_extensions (source, external_id, extension, position, record, pushed_at)
VALUES (%(source)s, %(external_id)s, %(extension)s,
        (SELECT coalesce(max(position) + 1, 0) FROM pushed_extensions
         WHERE source = %(source)s AND external_id = %(external_id)s),
        %(record)s, %(at)s)
ON CONFLICT (source, external_id, extension) DO UPDATE SET record = excluded.record, pushed_at = excluded.pushed_at
"""

# The i-th requeued event (by id, from 0) is due at now + i * spacing. A concurrent requeue that
# changed an event first makes the state check fail on the re-read row, so it is skipped here.
_REQUEUE = f"""
UPDATE events AS e SET state = 'pending', attempts = 0, next_attempt_at = %(now)s + chosen.i * %(spacing)s,
    updated_at = %(at)s, approved = CASE WHEN %(approve)s THEN 1 ELSE e.approved END
FROM (
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM events
    WHERE id = ANY(%(ids)s::bigint[]) AND {REQUEUABLE}
) AS chosen
WHERE e.id = chosen.id AND e.state IN ('dead', 'held', 'done')
"""

_ATTEMPTS_OF_EVENT = """
SELECT a.at, a.event_ids, a.outcome, a.cause, a.error, a.sent FROM attempts AS a
JOIN events AS e ON e.source = a.source AND e.external_id = a.external_id
WHERE e.id = %s AND e.id = ANY(a.event_ids)
ORDER BY a.id
"""

class PostgresStore(Store):
    """The store in a PostgreSQL database named by a libpq URL (`postgresql://user@host:5432/dbname`).

    Keep the password out of the URL (use ~/.pgpass or PGPASSWORD); it never appears in errors either way.
    `synchronous="NORMAL"` turns `synchronous_commit` off for the connector's sessions: the last
    commits may be lost if the server crashes. `"FULL"` keeps the server's setting (on by default).
    """

    _placeholder = "%s"

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous={synchronous!r} is not supported; use one of {', '.join(SYNCHRONOUS_MODES)}")
        try:
            self._params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise ValueError(
                "the store url is not a valid PostgreSQL URL; write it as postgresql://user@host:5432/dbname"
            ) from None
        self._params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        self._params.setdefault("application_name", "connector")
        self.server = _describe(self._params)
        self.synchronous = synchronous.upper()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._closed = False
        self._connection()  # fail now, not at the first event, if the server cannot be reached

    # --- connections and transactions ---------------------------------
    def _connection(self) -> Connection:
        if self._closed:
            raise StoreError(f"the store {self.server} is closed; open it again with open_store()")
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:  # a connection the server dropped is replaced on the next call
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> Connection:
        with self._errors():
            conn = psycopg.connect(autocommit=True, row_factory=dict_row, **self._params)
        try:
            with self._errors():
                if self.synchronous == "NORMAL":
                    conn.execute("SET synchronous_commit = off")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if self._closed:
                conn.close()
                raise StoreError(f"the store {self.server} is closed; open it again with open_store()")
            self._connections = [c for c in self._connections if not c.closed]
            self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as error:  # not chained: our message holds psycopg's, with the password masked
            raise StoreError(_explain(self.server, error, self._params.get("password"))) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction: commit on success, roll back on any exception."""
        conn = self._connection()
        with self._errors(), conn.transaction():
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        conn = self._connection()
        with self._errors():
            yield conn

    def migrate(self) -> None:
        with self._write() as conn:
            conn.execute(_MIGRATION_LOCK)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            current = conn.execute("SELECT coalesce(max(version), 0) AS v FROM schema_version").fetchone()["v"]
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"the store {self.server} has schema version {current}, newer than this connector "
                    f"knows ({len(MIGRATIONS)}); upgrade the connector"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    def close(self) -> None:
        """Close every thread's connection; call it once the worker threads have stopped."""
        with self._lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # --- intake -------------------------------------------------------
    def enqueue(self, changes: Sequence[UserChange], *, state: EventState = EventState.PENDING) -> list[int]:
        state = EventState(state)
        if state is EventState.IN_FLIGHT:
            raise ValueError("events cannot be enqueued in flight; enqueue them pending or held")
        if not changes:
            return []
        now = time.time()
        ids = []
        # One INSERT commits by itself; skipping BEGIN and COMMIT takes a single change from about
        # 1,200 to 2,100 per second (bench/bench_enqueue.py).
        with self._write() if len(changes) > 1 else self._read() as conn:
            for change in changes:
                values = (
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
                )
                try:
                    row = conn.execute(_INSERT_EVENT, values).fetchone()
                except psycopg.DataError as error:
                    raise ValueError(
                        f"the change of {change.source}/{change.external_id} cannot be stored in PostgreSQL "
                        f"({_first_line(error)}); the source must drop such values, NUL characters (\\u0000) "
                        "most of all"
                    ) from None
                if row is not None:
                    ids.append(row["id"])
        return ids

    # --- delivery -----------------------------------------------------
    def claim(self, owner: str, now: float, lease_seconds: float) -> Claim | None:
        lease_until = float(now + lease_seconds)
        with self._read() as conn:  # idle workers polling should not open write transactions
            if not conn.execute(_ANYTHING_TO_CLAIM, {"now": now}).fetchone()["due"]:
                return None
        with self._write() as conn:
            conn.execute(_EXPIRE_LEASES, {"now": now, "at": time.time()})
            rows = _claim_next_user(conn, owner, now, lease_until)
        if not rows:
            return None
        events = sorted((_event(row) for row in rows), key=lambda event: event.id)
        return Claim(
            source=events[0].change.source,
            external_id=events[0].change.external_id,
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
            conn.execute("DELETE FROM pushed_extensions WHERE source = %s AND external_id = %s", user)
            if pushed:
                conn.cursor().executemany(
                    "INSERT INTO pushed_extensions (source, external_id, extension, position, record, pushed_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (*user, record.extension, position, json.dumps(record.to_dict()), now)
                        for position, record in enumerate(pushed)
                    ],
                )
            if user_id is not None:
                conn.execute(
                    "INSERT INTO verba_users (source, external_id, user_id) VALUES (%s, %s, %s)"
                    " ON CONFLICT (source, external_id) DO UPDATE SET user_id = excluded.user_id",
                    (*user, user_id),
                )
        return waiting

    def _note_pushing(self, conn: Connection, source: str, external_id: str,
                      records: Sequence[ExtensionRecord]) -> None:
        now = time.time()
        conn.cursor().executemany(_NOTE_PUSHING, [
            {"source": source, "external_id": external_id, "extension": record.extension,
             "record": json.dumps(record.to_dict()), "at": now}
            for record in records
        ])

    def retry(
        self, claim: Claim, next_attempt_at: float, cause: str, error: str, *, sent: Sequence[dict[str, Any]] = ()
    ) -> None:
        sent_json = _sent_json(sent)
        with self._write() as conn:
            if _settle(
                conn,
                claim,
                "state = 'pending', next_attempt_at = %s, last_cause = %s, last_error = %s",
                (next_attempt_at, cause, error),
            ):
                _add_attempt(conn, claim, "retry", cause, error, sent_json)

    def dead_letter(self, claim: Claim, cause: str, error: str, *, sent: Sequence[dict[str, Any]] = ()) -> None:
        sent_json = _sent_json(sent)
        with self._write() as conn:
            if _settle(conn, claim, "state = 'dead', last_cause = %s, last_error = %s", (cause, error)):
                _add_attempt(conn, claim, "dead", cause, error, sent_json)

    def _settle_claim(self, conn: Any, claim: Claim, assignments: str, params: tuple[Any, ...]) -> int:
        return _settle(conn, claim, assignments, params)

    def _lock_claimed_user(self, conn: Any, claim: Claim) -> None:
        conn.execute(_LOCK_USER, {"source": claim.source, "external_id": claim.external_id})

    def attempts(self, event_id: int) -> list[Attempt]:
        with self._read() as conn:
            rows = conn.execute(_ATTEMPTS_OF_EVENT, (event_id,)).fetchall()
        return [
            Attempt(
                at=row["at"],
                event_ids=tuple(row["event_ids"]),
                outcome=row["outcome"],
                cause=row["cause"],
                error=row["error"],
                sent=tuple(row["sent"]),
            )
            for row in rows
        ]

    def start_instance(self) -> int:
        return 0

    def release_leases(self) -> int:
        with self._write() as conn:
            conn.execute("DELETE FROM extension_locks")
            return conn.execute(
                "UPDATE events SET state = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = %s"
                " WHERE state = 'in_flight'",
                (time.time(),),
            ).rowcount

    # --- per-user projection ------------------------------------------
    def pushed_extensions(self, source: str, external_id: str) -> list[ExtensionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT record FROM pushed_extensions WHERE source = %s AND external_id = %s ORDER BY position",
                (source, external_id),
            ).fetchall()
        return [ExtensionRecord.from_dict(row["record"]) for row in rows]

    def verba_user_id(self, source: str, external_id: str) -> int | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT user_id FROM verba_users WHERE source = %s AND external_id = %s", (source, external_id)
            ).fetchone()
        return None if row is None else int(row["user_id"])

    # --- reading and operator actions ---------------------------------
    def get_event(self, event_id: int) -> StoredEvent | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = %s", (event_id,)).fetchone()
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
            "%s", "state_json ->> 'userName'", state=state, cause=cause, user=user, source=source, since=since
        )
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT %s", (*params, limit)
            ).fetchall()
        return [_event(row) for row in rows]

    def current_event(self, source: str, external_id: str) -> StoredEvent | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE source = %s AND external_id = %s"
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
            row = conn.execute(
                "SELECT min(accepted_at) AS oldest FROM events WHERE state IN ('pending', 'in_flight')"
            ).fetchone()
        return row["oldest"]

    def count_by_source_and_kind(self) -> list[tuple[str, str, int]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT source, kind, count(*) AS n FROM events GROUP BY source, kind ORDER BY source, kind"
            ).fetchall()
        return [(row["source"], row["kind"], row["n"]) for row in rows]

    def requeue(self, event_ids: Sequence[int], now: float, *, spacing: float = 0.0, approve: bool = False) -> int:
        params = {"ids": list(event_ids), "now": now, "spacing": spacing, "at": time.time(), "approve": approve}
        with self._write() as conn:
            return conn.execute(_REQUEUE, params).rowcount

    def discard(self, event_ids: Sequence[int], reason: str) -> int:
        if not reason.strip():
            raise ValueError("discarding events needs a reason; say why they must not be delivered")
        with self._write() as conn:
            return conn.execute(
                "UPDATE events SET state = 'discarded', discard_reason = %s, updated_at = %s"
                " WHERE id = ANY(%s::bigint[]) AND state IN ('dead', 'held')",
                (reason, time.time(), list(event_ids)),
            ).rowcount

    def add_audit(self, actor: str, action: str, event_ids: Sequence[int], reason: str, detail: dict[str, Any]) -> int:
        try:
            detail_json = json.dumps(detail, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"audit detail for {action!r} is not JSON ({error}); give plain values") from error
        with self._write() as conn:
            row = conn.execute(
                "INSERT INTO audit (at, actor, action, event_ids, reason, detail)"
                " VALUES (%s, %s, %s, %s::bigint[], %s, %s) RETURNING id",
                (time.time(), actor, action, list(event_ids), reason, detail_json),
            ).fetchone()
        return int(row["id"])

    def list_audit(self, limit: int = 100, *, since: float | None = None) -> list[AuditEntry]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM audit WHERE at >= coalesce(%s::double precision, at) ORDER BY id DESC LIMIT %s",
                (since, limit),
            ).fetchall()
        return [
            AuditEntry(
                id=row["id"],
                at=row["at"],
                actor=row["actor"],
                action=row["action"],
                event_ids=tuple(row["event_ids"]),
                reason=row["reason"],
                detail=row["detail"],
            )
            for row in rows
        ]

    def ping(self) -> None:
        with self._read() as conn:  # one statement is one transaction
            conn.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (time.time(),),
            )

    # --- LDAP watermarks ----------------------------------------------
    def ldap_watermark(self, directory: str) -> LdapWatermark | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM ldap_watermarks WHERE directory = %s", (directory,)).fetchone()
        return None if row is None else LdapWatermark(**row)

    def ldap_watermarks(self) -> list[LdapWatermark]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM ldap_watermarks ORDER BY directory").fetchall()
        return [LdapWatermark(**row) for row in rows]

    def ldap_entries(self, directory: str, ids: Sequence[str] | None = None) -> dict[str, LdapEntry]:
        query = "SELECT external_id, digest, active, groups, state FROM ldap_entries WHERE directory = %s"
        params: tuple[Any, ...] = (directory,)
        if ids is not None:
            query += " AND external_id = ANY(%s::text[])"
            params += (list(ids),)
        with self._read() as conn:
            rows = conn.execute(query, params).fetchall()
        return {row["external_id"]: LdapEntry(**{**row, "groups": tuple(row["groups"])}) for row in rows}

    def commit_poll(self, poll: LdapPoll) -> list[int]:
        now = time.time()
        with self._write() as conn:
            # The row lock makes concurrent pollers of one directory take turns; the loser sees a new version.
            conn.execute("INSERT INTO ldap_watermarks (directory, cursor, version) VALUES (%s, '{}', 0)"
                         " ON CONFLICT (directory) DO NOTHING", (poll.directory,))
            row = conn.execute("SELECT version FROM ldap_watermarks WHERE directory = %s FOR UPDATE",
                               (poll.directory,)).fetchone()
            if row["version"] != poll.version:
                raise WatermarkMoved(f"the watermark of {poll.directory} moved on while this poll ran; poll again")
            waiting = _held_users(conn, poll.changes)
            # An upsert and its entry share one state dict: serialize it once.
            states = {id(c.state): _state_json(c) for c in [*poll.changes, *poll.held]}
            rows = [(c.idem_key, c.source, c.external_id, c.kind, states[id(c.state)], c.cause, c.accepted_at,
                     "held" if held or (c.source, c.external_id) in waiting else "pending", c.accepted_at, now)
                    for c, held in [(c, False) for c in poll.changes] + [(c, True) for c in poll.held]]
            ids = []
            if rows:
                cursor = conn.cursor()
                cursor.executemany(_INSERT_EVENT, rows, returning=True)
                while True:
                    ids.extend(r["id"] for r in cursor.fetchall())
                    if not cursor.nextset():
                        break
            if poll.entries:
                conn.cursor().executemany(
                    "INSERT INTO ldap_entries (directory, external_id, digest, active, groups, state)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (directory, external_id) DO UPDATE SET"
                    " digest = excluded.digest, active = excluded.active, groups = excluded.groups,"
                    " state = excluded.state",
                    [(poll.directory, e.external_id, e.digest, e.active, json.dumps(e.groups),
                      states.get(id(e.state)) or json.dumps(e.state)) for e in poll.entries],
                )
            if poll.removed:
                conn.execute("DELETE FROM ldap_entries WHERE directory = %s AND external_id = ANY(%s::text[])",
                             (poll.directory, list(poll.removed)))
            known = "(SELECT count(*) FROM ldap_entries WHERE directory = %(d)s)" if (
                poll.entries or poll.removed or poll.version == 0) else "known"
            conn.execute(
                f"UPDATE ldap_watermarks SET cursor = %(cursor)s, version = version + 1, known = {known},"
                " last_run_at = %(at)s, last_success_at = %(at)s, last_error = NULL, counts = %(counts)s"
                " WHERE directory = %(d)s",
                {"d": poll.directory, "cursor": json.dumps(poll.cursor), "at": poll.at,
                 "counts": json.dumps(poll.counts)},
            )
        return ids

    def note_poll_failure(self, directory: str, error: str, at: float) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO ldap_watermarks (directory, cursor, version, last_run_at, last_error)"
                " VALUES (%s, '{}', 0, %s, %s) ON CONFLICT (directory) DO UPDATE SET"
                " last_run_at = excluded.last_run_at, last_error = excluded.last_error",
                (directory, at, error),
            )
    # --- SCIM resources -----------------------------------------------
    @contextlib.contextmanager
    def scim_transaction(self, client: str) -> Iterator[ScimTransaction]:
        with self._write() as conn:
            # One writer per SCIM client across every connector sharing the database.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('scim' || chr(31) || %s))", (client,))
            yield _PostgresScimTransaction(conn, client)

    def scim_get(self, client: str, resource_type: str, resource_id: str) -> ScimResource | None:
        with self._read() as conn:
            return _PostgresScimTransaction(conn, client).get(resource_type, resource_id)

    def scim_search(
        self, client: str, resource_type: str, where: ScimQuery | None, offset: int, limit: int
    ) -> tuple[int, list[ScimResource]]:
        # The condition is shared with SQLite; its only placeholders are `?` and it holds no literal `%`.
        shared = where.sql.replace("?", "%s") if where else "TRUE"
        condition = f"r.client = %s AND r.resource_type = %s AND ({shared})"
        params = (client, resource_type, *(where.params if where else ()))
        with self._read() as conn:
            total = conn.execute(f"SELECT count(*) AS n FROM scim_resources r WHERE {condition}", params).fetchone()["n"]
            rows = [] if limit <= 0 else conn.execute(
                f"SELECT {_SCIM_COLUMNS} FROM scim_resources r WHERE {condition} ORDER BY r.pk LIMIT %s OFFSET %s",
                (*params, limit, offset),
            ).fetchall()
        return total, [_scim_resource(row) for row in rows]

    def scim_groups_of(self, client: str, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        with self._read() as conn:
            return _PostgresScimTransaction(conn, client).groups_of(user_ids)


def _claim_next_user(conn: Connection, owner: str, now: float, lease_until: float) -> list[DictRow]:
    """Claim the pending events of the first due user whose advisory lock is free; [] if there is none."""
    skipped: list[int] = []
    while (head := conn.execute(_PICK_HEAD, {"now": now, "skipped": skipped}).fetchone()) is not None:
        user = {"source": head["source"], "external_id": head["external_id"]}
        if conn.execute(_TRY_LOCK_USER, user).fetchone()["locked"]:
            params = {**user, "owner": owner, "lease_until": lease_until, "at": time.time()}
            claimed = conn.execute(_CLAIM_USER, params).fetchall()
            if claimed:
                return claimed
        skipped.append(head["id"])  # being settled or claimed elsewhere right now
    return []


def _settle(conn: Connection, claim: Claim, assignments: str, params: tuple[Any, ...]) -> int:
    """Apply `assignments` to the claim's events still held by its lease, end the lease; return how many."""
    conn.execute(_LOCK_USER, {"source": claim.source, "external_id": claim.external_id})
    return conn.execute(
        f"UPDATE events SET {assignments}, lease_owner = NULL, lease_until = NULL, updated_at = %s"
        " WHERE id = ANY(%s::bigint[]) AND state = 'in_flight' AND lease_owner = %s AND lease_until = %s",
        (*params, time.time(), list(claim.event_ids), claim.owner, claim.lease_until),
    ).rowcount


def _add_attempt(
    conn: Connection, claim: Claim, outcome: str, cause: str | None, error: str | None, sent_json: str
) -> None:
    conn.execute(
        "INSERT INTO attempts (source, external_id, event_ids, at, outcome, cause, error, sent)"
        " VALUES (%s, %s, %s::bigint[], %s, %s, %s, %s, %s)",
        (claim.source, claim.external_id, list(claim.event_ids), time.time(), outcome, cause, error, sent_json),
    )


def _sent_json(sent: Sequence[dict[str, Any]]) -> str:
    try:
        return json.dumps(list(sent), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the SOAP requests sent are not JSON ({error}); give plain strings and numbers") from error


def _held_users(conn: psycopg.Connection[DictRow], changes: Sequence[UserChange]) -> set[tuple[str, str]]:
    """(source, external_id) of the changes whose user has a held event: their new events wait behind it."""
    waiting: set[tuple[str, str]] = set()
    for source in {c.source for c in changes}:
        ids = [c.external_id for c in changes if c.source == source]
        waiting.update((source, r["external_id"]) for r in conn.execute(
            "SELECT DISTINCT external_id FROM events WHERE source = %s AND state = 'held'"
            " AND external_id = ANY(%s::text[])", (source, ids)))
    return waiting


def _state_json(change: UserChange) -> str:
    try:
        return json.dumps(change.state, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"the state of {change.source}/{change.external_id} is not JSON ({error}); the source must "
            "normalize it to strings, numbers, booleans, null, lists and objects"
        ) from error


def _event(row: DictRow) -> StoredEvent:
    change = UserChange(
        source=row["source"],
        external_id=row["external_id"],
        kind=row["kind"],
        state=row["state_json"],
        accepted_at=row["accepted_at"],
        cause=row["cause"],
        idem_key=row["idem_key"],
    )
    return StoredEvent(
        id=row["id"],
        change=change,
        state=EventState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_cause=row["last_cause"],
        last_error=row["last_error"],
        updated_at=row["updated_at"],
        discard_reason=row["discard_reason"],
    )


def _describe(params: dict[str, Any]) -> str:
    """Name the server and database as libpq will reach them, without the password."""
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER")
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user or "?"
    return f"postgresql://{f'{user}@' if user else ''}{host}:{port}/{dbname}"


def _first_line(error: psycopg.Error) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _explain(server: str, error: psycopg.Error, password: str | None) -> str:
    """Say what went wrong with the database and what to do about it, never repeating the password."""
    text = " ".join(str(error).split()) or type(error).__name__
    if password:
        text = text.replace(password, "***")
    # Errors while connecting carry no SQLSTATE, only libpq's message.
    if isinstance(error, (errors.InvalidPassword, errors.InvalidAuthorizationSpecification)) or (
        "authentication failed" in text or "pg_hba.conf" in text
    ):
        return (
            f"the PostgreSQL server {server} refused the login ({text}): check the user in [store] url "
            "and the password in ~/.pgpass or PGPASSWORD, and the server's pg_hba.conf"
        )
    if isinstance(error, errors.InvalidCatalogName) or ('database "' in text and "does not exist" in text):
        return f"the database of {server} does not exist ({text}): create it (createdb) or fix [store] url"
    if isinstance(error, errors.UndefinedTable):
        return f"the store {server} has no schema yet ({text}): call its migrate() before using it"
    if isinstance(error, errors.InsufficientPrivilege):
        return (
            f"the store's user lacks a privilege on {server} ({text}): let it own the connector's schema, "
            "or grant it CREATE there for migrate() and SELECT, INSERT, UPDATE, DELETE on the tables"
        )
    if isinstance(error, errors.ReadOnlySqlTransaction):
        return f"{server} is read-only ({text}): point [store] url at the primary server, not a standby"
    if isinstance(error, errors.DiskFull):
        return f"the PostgreSQL server {server} is out of disk space ({text}): free space on the server"
    if isinstance(error, errors.TransactionRollback):
        return (
            f"a transaction on {server} conflicted with another one ({text}); it was rolled back "
            "and nothing changed: try again"
        )
    if isinstance(error, psycopg.OperationalError) and (error.sqlstate or "08").startswith(("08", "57P")):
        return (
            f"cannot reach the PostgreSQL server {server} or lost the connection ({text}): check that it is "
            "running and accepts connections from this host, and that [store] url names the right host, "
            "port and database; the store reconnects on the next call"
        )
    return f"the PostgreSQL store {server} failed ({text})"


_SCIM_COLUMNS = "r.client, r.resource_type, r.id, r.unique_key, r.display, r.body, r.version, r.created, r.last_modified"


class _PostgresScimTransaction(ScimTransaction):
    def __init__(self, conn: Connection, client: str) -> None:
        self.conn = conn
        self.client = client

    def get(self, resource_type: str, resource_id: str) -> ScimResource | None:
        row = self.conn.execute(
            f"SELECT {_SCIM_COLUMNS} FROM scim_resources r WHERE r.client = %s AND r.resource_type = %s AND r.id = %s",
            (self.client, resource_type, resource_id),
        ).fetchone()
        return None if row is None else _scim_resource(row)

    def get_many(self, resource_type: str, resource_ids: Sequence[str]) -> list[ScimResource]:
        rows = self.conn.execute(
            f"SELECT {_SCIM_COLUMNS} FROM scim_resources r WHERE r.client = %s AND r.resource_type = %s"
            " AND r.id = ANY(%s::text[]) ORDER BY r.pk",
            (self.client, resource_type, list(resource_ids)),
        ).fetchall()
        return [_scim_resource(row) for row in rows]

    def find_unique(self, resource_type: str, unique_key: str) -> str | None:
        row = self.conn.execute(
            "SELECT id FROM scim_resources WHERE client = %s AND resource_type = %s AND unique_key = %s",
            (self.client, resource_type, unique_key),
        ).fetchone()
        return None if row is None else str(row["id"])

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        wanted = set(user_ids)
        rows = self.conn.execute(
            "SELECT v.value AS member, g.id, g.display FROM scim_values v JOIN scim_resources g ON g.pk = v.resource_pk"
            " WHERE g.client = %s AND g.resource_type = 'Group' AND v.attr = 'members.value'"
            " AND v.folded = ANY(%s::text[]) ORDER BY g.pk, v.idx",
            (self.client, sorted({user_id.lower() for user_id in wanted})),
        ).fetchall()
        groups: dict[str, list[tuple[str, str]]] = {user_id: [] for user_id in wanted}
        for row in rows:
            if row["member"] in wanted and (row["id"], row["display"]) not in groups[row["member"]]:
                groups[row["member"]].append((row["id"], row["display"]))
        return groups

    def put(self, resource: ScimResource, values: Sequence[ScimValue]) -> None:
        pk = self.conn.execute(
            "INSERT INTO scim_resources (client, resource_type, id, unique_key, display, body, version, created,"
            " last_modified) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (client, id) DO UPDATE SET"
            " unique_key = excluded.unique_key, display = excluded.display, body = excluded.body,"
            " version = excluded.version, last_modified = excluded.last_modified RETURNING pk",
            (self.client, resource.resource_type, resource.id, resource.unique_key, resource.display,
             json.dumps(resource.body, separators=(",", ":")), resource.version, resource.created,
             resource.last_modified),
        ).fetchone()["pk"]
        # Rewrite only the values that changed: fewer rows to write and vacuum than all of them.
        stored = {(r["attr"], r["idx"], r["value"]): r["ctid"] for r in self.conn.execute(
            "SELECT ctid::text AS ctid, attr, idx, value FROM scim_values WHERE resource_pk = %s", (pk,))}
        wanted = {(v.attr, v.idx, v.value): v for v in values}
        gone = [ctid for key, ctid in stored.items() if key not in wanted]
        if gone:
            self.conn.execute("DELETE FROM scim_values WHERE resource_pk = %s AND ctid = ANY(%s::tid[])", (pk, gone))
        added = [(pk, v.attr, v.idx, v.value, v.folded) for key, v in wanted.items() if key not in stored]
        if added:
            self.conn.cursor().executemany(
                "INSERT INTO scim_values (resource_pk, attr, idx, value, folded) VALUES (%s, %s, %s, %s, %s)", added
            )

    def delete(self, resource_type: str, resource_id: str) -> None:
        self.conn.execute(
            "DELETE FROM scim_resources WHERE client = %s AND resource_type = %s AND id = %s",
            (self.client, resource_type, resource_id),
        )

    def enqueue(self, changes: Sequence[UserChange]) -> None:
        now = time.time()
        for change in changes:
            self.conn.execute(
                _INSERT_EVENT,
                (change.idem_key, change.source, change.external_id, change.kind, _state_json(change), change.cause,
                 change.accepted_at, "pending", change.accepted_at, now),
            )


def _scim_resource(row: DictRow) -> ScimResource:
    return ScimResource(
        client=row["client"],
        resource_type=row["resource_type"],
        id=row["id"],
        body=row["body"],
        version=row["version"],
        created=row["created"],
        last_modified=row["last_modified"],
        unique_key=row["unique_key"],
        display=row["display"],
    )
