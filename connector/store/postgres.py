"""The PostgreSQL dialect: one connection per thread, autocommit reads, short write transactions.

Several connectors may share one database. Every change to a user's in-flight batch (claim,
lease expiry, settling) happens under that user's transaction-level advisory lock,
`pg_advisory_xact_lock(hashtext(source || chr(31) || external_id))`; claimers take it with
`pg_try_advisory_xact_lock` after picking a head event `FOR UPDATE SKIP LOCKED`, so they skip
each other's users instead of waiting, and one user never has two batches in flight. Those locks
come after the queue's lock (QUEUE_LOCK, taken shared), which a write of several users' events
takes exclusively instead of a lock per user (queue.py says why).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg.types.string import TextLoader

from connector.store.base import Store
from connector.store.database import user_key
from connector.store.queries import named

CONNECT_TIMEOUT_SECONDS = 10
# libpq's TCP settings (a URL's own win): an idle connection is probed after 10 s, and given up after 3 more
# unanswered probes 3 s apart or 20 s of unacknowledged data.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3,
              "tcp_user_timeout": 20_000}

Connection = psycopg.Connection[DictRow]

# The queue's advisory lock (`Database._lock_queue`): two keys, so that it is never a user's lock (one key).
QUEUE_LOCK = "hashtext('connector.queue'), 0"

# What an error means, first match wins: its SQLSTATE's prefix, or words of its message (errors while connecting carry
# no SQLSTATE, only libpq's message; one without is a connection's: "08"). {server} and {text} are filled in.
LOST = ("cannot reach the PostgreSQL server {server} or lost the connection ({text}): check that it is running and "
        "accepts connections from this host, and that [store] url names the right host, port and database; the store "
        "reconnects on the next call")
ADVICE = (
    ("28", r"authentication failed|pg_hba\.conf|no password supplied", "the PostgreSQL server {server} refused the "
     "login ({text}): check the user in [store] url and the password in {passfile} or PGPASSWORD, and the server's "
     "pg_hba.conf"),
    ("3D000", r'database ".*does not exist', "the database of {server} does not exist ({text}): create it (createdb) "
     "or fix [store] url"),
    ("42P01", "", "the store {server} has no schema yet ({text}): run `connector db upgrade --config <your config>`"),
    ("42501", "", "the store's user lacks a privilege on {server} ({text}): let it own the connector's schema, or "
     "grant it CREATE there for migrate() and SELECT, INSERT, UPDATE, DELETE on the tables"),
    ("25006", "", "{server} is read-only ({text}): point [store] url at the primary server, not a standby"),
    ("53100", "", "the PostgreSQL server {server} is out of disk space ({text}): free space on the server"),
    ("40", "", "a transaction on {server} conflicted with another one ({text}); it was rolled back and nothing "
     "changed: try again"),
    ("08", "", LOST),
    ("57P", "", LOST),
)


class PostgresStore(Store):
    """The store in a PostgreSQL database named by a libpq URL (`postgresql://user@host:5432/dbname`).

    Keep the password out of the URL (use ~/.pgpass or PGPASSWORD); it never appears in errors either way.
    `synchronous="NORMAL"` turns `synchronous_commit` off for the connector's sessions: the last
    commits may be lost if the server crashes. `"FULL"` keeps the server's setting (on by default).
    """

    dialect = "postgres"
    _q = named("postgres")
    _driver_error = psycopg.Error

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        try:  # a vanished server is noticed in seconds (KEEPALIVES), not at TCP's minutes; the URL's own settings win
            self._params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "connector",
                                            **KEEPALIVES, **conninfo_to_dict(url)}
        except psycopg.ProgrammingError:
            raise ValueError(
                "the store url is not a valid PostgreSQL URL; write it as postgresql://user@host:5432/dbname"
            ) from None
        super().__init__(synchronous)
        self.server = self.name = _describe(self._params)
        self._connection()  # fail now, not at the first event, if the server cannot be reached

    def _connect(self) -> Connection:
        return psycopg.connect(autocommit=True, row_factory=dict_row, **self._params)

    def _set_up(self, conn: Connection) -> None:
        for json_type in ("json", "jsonb"):  # read JSON as text, as SQLite gives it
            conn.adapters.register_loader(json_type, TextLoader)
        if self.synchronous == "NORMAL":
            conn.execute("SET synchronous_commit = off")

    def _explain(self, error: Exception) -> str:
        """Say what went wrong with the database and what to do about it, never repeating the password."""
        assert isinstance(error, psycopg.Error)
        text = " ".join(str(error).split()) or type(error).__name__
        if password := self._params.get("password"):
            text = text.replace(password, "***")
        code = error.sqlstate or ("08" if isinstance(error, psycopg.OperationalError) else "")
        advice = next((advice for prefix, words, advice in ADVICE
                       if (words and re.search(words, text)) or (code and code.startswith(prefix))),
                      "the PostgreSQL store {server} failed ({text})")
        passfile = os.environ.get("PGPASSFILE") or "~/.pgpass"  # where libpq looks for the password
        return advice.format(server=self.server, text=text, passfile=passfile)

    def _thread_connection(self) -> Connection | None:
        """This thread's connection, unless the server ended its session while it was idle (a restart, or an
        administrator's pg_terminate_backend): the server then says so, and closes the socket, before anything
        more is sent. Such a connection is closed here, so that no statement is lost on it and a new one is
        opened (see `Database._connection`). A connection lost during a statement still fails it."""
        conn: Connection | None = super()._thread_connection()
        if conn is not None and conn.pgconn.transaction_status == TransactionStatus.IDLE and _said_something(conn):
            conn.close()
            return None
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        conn = self._connection()
        with self._errors(), conn.transaction():
            yield conn

    def _lock(self, conn: Connection, key: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def _try_lock(self, conn: Connection, key: str) -> bool:
        row = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS locked", (key,)).fetchone()
        return row is not None and bool(row["locked"])

    def _lock_queue(self, conn: Connection, *, shared: bool = False) -> None:
        conn.execute(f"SELECT pg_advisory_xact_lock{'_shared' if shared else ''}({QUEUE_LOCK})")

    def _lock_user(self, conn: Connection, source: str, external_id: str) -> None:
        # One round trip; a select list is evaluated from left to right: the queue's lock first.
        conn.execute(f"SELECT pg_advisory_xact_lock_shared({QUEUE_LOCK}), pg_advisory_xact_lock(hashtext(%s))",
                     (user_key(source, external_id),))

    def _array(self, values: Iterable[Any]) -> list[Any]:
        return list(values)

    def _insert_events(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        ids: list[int] = []
        cursor = conn.cursor()
        try:
            if len(rows) < 2:  # executemany's pipeline costs more than it saves for one row
                return [row["id"] for params in rows for row in cursor.execute(self._q["insert_event"], params)]
            cursor.executemany(self._q["insert_event"], rows, returning=True)
        except psycopg.DataError as error:
            culprit = next((f"{row[1]}/{row[2]}" for row in rows if "\x00" in "".join(map(str, row))
                            or "\\u0000" in row[4]), "a change")
            raise ValueError(
                f"the change of {culprit} cannot be stored in PostgreSQL ({_first_line(error)}); the source must "
                "drop such values, NUL characters (\\u0000) most of all"
            ) from None
        while True:
            ids.extend(row["id"] for row in cursor.fetchall())
            if not cursor.nextset():
                return ids

    def start_instance(self) -> int:
        """Several connectors share the database: nothing to do here. Each registers as an instance
        (`Instances.register_instance`), which gives back its own earlier claims; a dead one's go back
        when the others' heartbeats count it dead."""
        return 0


def _describe(params: dict[str, Any]) -> str:
    """Name the server and database as libpq will reach them, without the password."""
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    user = params.get("user") or os.environ.get("PGUSER")
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user or "?"
    return f"postgresql://{f'{user}@' if user else ''}{host}:{port}/{dbname}"


def _said_something(conn: Connection) -> bool:
    """Whether the server sent an idle connection anything (its end: a FATAL message, then end of file); a
    connection in use is only ever sent answers to its own statements."""
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def _first_line(error: psycopg.Error) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
