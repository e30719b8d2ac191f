"""What each dialect gives the store (sqlite.py, postgres.py): connections, locks, lists and its SQL.

Everything else is written once, in the concern modules (queue.py, log.py, ldap.py, scim.py,
ownership.py), against this class. Rows are read by column name; JSON columns come back as text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Concatenate, ParamSpec, TypeVar

from connector.errors import ConnectorError
from connector.events import UserChange, check_accepted_at, unstorable
from connector.store.queries import placeholders

SYNCHRONOUS_MODES = ("FULL", "NORMAL")
CONNECTOR = "connector"  # the audit's actor for what the connector decides itself

D = TypeVar("D", bound="Database")
P = ParamSpec("P")
T = TypeVar("T")


class StoreError(ConnectorError):
    """The event store could not be read or written."""


class StoreMissing(StoreError):
    """The configured store does not exist, or holds no schema, and the command does not create one."""


def repeatable(method: Callable[Concatenate[D, P], T]) -> Callable[Concatenate[D, P], T]:
    """Mark a store method as safe to repeat (reads, and writes that change nothing more when run again): if it fails
    because the server dropped the connection it ran on (a PostgreSQL restart, pg_terminate_backend: noticed only
    at that use), it runs once more on a new connection, instead of failing once per thread after every restart.
    Never for other writes: a connection lost at COMMIT may have committed, and a second run would apply it twice."""

    @functools.wraps(method)
    def again_if_lost(self: D, /, *args: P.args, **kwargs: P.kwargs) -> T:
        used = self._thread_connection()
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            if used is None or not getattr(used, "closed", False):
                raise  # not a connection lost on the way: the store said no, or no connection could be opened
            return method(self, *args, **kwargs)

    return again_if_lost


@dataclasses.dataclass(frozen=True)
class Audit:
    """An action to audit, written in the transaction of the write that does it (`requeue`, `discard`,
    `queue_current`), so that the action and its audit entry are stored together or not at all; the write adds what
    it did to `detail` ("requeued": 3). ValueError, before anything is written, when a text holds what no store can
    hold (`unstorable`) or `detail` is not JSON."""

    actor: str
    action: str
    reason: str
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("actor", "action", "reason"):
            if problem := unstorable(getattr(self, name)):
                raise ValueError(f"the audit's {name} {getattr(self, name)!a} {problem}; nothing was changed")
        to_json(self.detail, f"audit detail for {self.action!r}")


class Database:
    """The dialect's part of the store: one connection per thread, opened on first use.

    One object may be used from several threads at once; `close()` closes every thread's connection.
    The connection of a thread that ended is closed when another is opened (threads come and go: a
    drift check's pool, short-lived helpers), so they never pile up on the server.
    """

    dialect: str  # "sqlite" or "postgres": names its SQL (connector/store/sql/) and migrations
    name: str  # how messages name the store: a path, or a URL without its password
    _q: dict[str, str]  # the dialect's queries by name (connector/store/queries.py)
    _driver_error: type[Exception]  # what the driver raises; `_errors` turns it into StoreError

    def __init__(self, synchronous: str) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous={synchronous!r} is not supported; use one of {', '.join(SYNCHRONOUS_MODES)}")
        self.synchronous = synchronous.upper()  # how durable a commit is: see each dialect
        self._local = threading.local()
        self._guard = threading.Lock()
        self._connections: list[tuple[threading.Thread | None, Any]] = []  # (owner thread, connection)
        self._closed = False

    def _connect(self) -> Any:
        """A new connection (raises the driver's error)."""
        raise NotImplementedError

    def _set_up(self, conn: Any) -> None:
        """Make a new connection ready for the store; on any error the connection is closed."""
        raise NotImplementedError

    def _explain(self, error: Exception) -> str:
        """What went wrong with the store, and what to do about it."""
        raise NotImplementedError

    def _connection(self) -> Any:
        """This thread's connection; one the server dropped is replaced. The driver notices a drop only when the
        connection is next used (after a server restart, or an administrator ending its session): that use fails,
        the connection is closed from then on, and the next one opens a new connection (see `repeatable`). A
        dialect may notice it before the use instead (PostgreSQL: `_thread_connection`)."""
        conn = self._thread_connection()
        if conn is None:
            conn = self._local.conn = self._open(threading.current_thread())
        return conn

    def _thread_connection(self) -> Any:
        """This thread's connection if it has one the driver counts open, else None (opens none)."""
        conn = getattr(self._local, "conn", None)
        return None if conn is None or getattr(conn, "closed", False) else conn

    def _open(self, owner: threading.Thread | None = None) -> Any:
        """A new connection, ready for the store and closed by `close()`, or once `owner` has ended."""
        if self._closed:
            raise StoreError(f"the store {self.name} is closed; open it again with open_store()")
        with self._errors():
            conn = self._connect()
            try:
                self._set_up(conn)
            except BaseException:
                conn.close()
                raise
        with self._guard:
            if self._closed:
                conn.close()
                raise StoreError(f"the store {self.name} is closed; open it again with open_store()")
            ended = [c for thread, c in self._connections if thread is not None and not thread.is_alive()]
            self._connections = [(thread, c) for thread, c in self._connections
                                 if c not in ended and not getattr(c, "closed", False)] + [(owner, conn)]
        for old in ended:
            with contextlib.suppress(Exception):  # whatever state it was left in, it is gone
                old.close()
        return conn

    def close(self) -> None:
        """Close every thread's connection; call it once the worker threads have stopped."""
        with self._guard:
            self._closed = True
            for _, conn in self._connections:
                conn.close()
            self._connections.clear()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._driver_error as error:  # not chained: the message holds the driver's, secrets masked
            raise StoreError(self._explain(error)) from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[Any]:
        """This thread's connection outside a transaction: each statement commits by itself."""
        conn = self._connection()
        with self._errors():
            yield conn

    @repeatable
    def _all(self, query: str, params: Any = ()) -> list[Any]:
        """Every row of the named query, read outside a transaction."""
        with self._read() as conn:
            return list(conn.execute(self._q[query], params))

    @repeatable
    def _first(self, query: str, params: Any = ()) -> Any:
        """The first row of the named query, or None."""
        with self._read() as conn:
            return conn.execute(self._q[query], params).fetchone()

    def _audit(self, conn: Any, audit: Audit, event_ids: Sequence[int], **done: int) -> int:
        """Write `audit` in the transaction of `conn`, naming `event_ids`, with `done` added to its detail; its id."""
        detail = to_json({**audit.detail, **done}, f"audit detail for {audit.action!r}")
        row = conn.execute(self._q["add_audit"], (time.time(), audit.actor, audit.action, self._array(event_ids),
                                                  audit.reason, detail)).fetchone()
        return int(row["id"])

    def _running_pid(self) -> str | None:
        """The pid of a connector running on the store, where the dialect can tell (a SQLite file's instance lock,
        which `connector run` holds for its life); None otherwise."""
        return None

    def _write(self) -> AbstractContextManager[Any]:
        """One transaction: committed (durably) when the block ends, rolled back on any exception."""
        raise NotImplementedError

    def _statement(self) -> AbstractContextManager[Any]:
        """A connection for one writing statement, committed when the block ends (autocommit by default)."""
        return self._read()

    def _lock(self, conn: Any, key: str) -> None:
        """Hold the lock named `key` until the transaction ends (waiting for it)."""
        raise NotImplementedError

    def _lock_queue(self, conn: Any, *, shared: bool = False) -> None:
        """Hold the queue's lock until the transaction ends (waiting for it), exclusively: for a write that changes
        the held, pending or in-flight events of several users at once (see queue.py); `shared`: for a claim, and
        (by `_lock_user`) for a write of one user's events. Take it before the transaction locks or writes an event."""
        raise NotImplementedError

    def _lock_user(self, conn: Any, source: str, external_id: str) -> None:
        """Hold the queue's lock shared and the user's lock until the transaction ends (waiting for both), to write
        the user's held, pending and in-flight events (see queue.py)."""
        raise NotImplementedError

    def _try_lock(self, conn: Any, key: str) -> bool:
        """Take the lock named `key` until the transaction ends if nobody holds it; whether it was taken."""
        raise NotImplementedError

    def _array(self, values: Iterable[Any]) -> Any:
        """`values` as the parameter the dialect's list queries take."""
        raise NotImplementedError

    def _insert_events(self, conn: Any, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        """Run `insert_event` for each row (see `event_row`); the ids of the rows inserted."""
        raise NotImplementedError

    def _wait_behind_held(self, conn: Any, event_ids: Sequence[int]) -> None:
        """Make the pending and in-flight events of these events' users wait behind the first held event of their user
        (`waits_behind`), or behind nothing when it has none; in the transaction of the write that held an event or
        ended a hold, under the queue's lock (exclusive; or shared with the user's lock: see queue.py)."""
        if event_ids:
            conn.execute(self._q["wait_behind_held"], {"ids": self._array(event_ids)})

    def _queued_behind_held(self, conn: Any, event_ids: Sequence[int]) -> None:
        """Make these events, queued by this transaction by other means than `insert_event` (a wake-up, a recheck),
        wait behind the first held event of their user, as `insert_event` does (see queue.py); no lock needed."""
        if event_ids:
            conn.execute(self._q["queued_behind_held"], {"ids": self._array(event_ids)})

    def _sql(self, text: str) -> str:
        """Dynamic SQL written with psycopg's placeholders, in the dialect's."""
        return placeholders(self.dialect, text)


def user_key(source: str, external_id: str) -> str:
    """The name of a user's lock (PostgreSQL's expire_leases hashes the same text)."""
    return f"{source}\x1f{external_id}"


def to_json(value: Any, what: str) -> str:
    """`value` as compact JSON; ValueError naming `what` if it is not JSON."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} is not JSON ({error}); give strings, numbers, booleans, null, lists and objects") \
            from error


def state_json(change: UserChange) -> str:
    """The change's state as JSON; ValueError naming the user if it is not JSON."""
    return to_json(change.state, f"the state of {change.source}/{change.external_id}")


def event_row(change: UserChange, state: str, now: float, state_text: str | None = None, *,
              forced: bool = False, why: str | None = None) -> tuple[Any, ...]:
    """The parameters of `insert_event` for `change`, due at its `accepted_at` (`state_text`: its
    `state_json`, when the caller has it already; `forced`: pushed even if nothing changed; `why`: why it is
    stored held, its `last_error`). ValueError naming the user if its `accepted_at` is not a time or is more than
    MAX_CLOCK_SKEW_SECONDS after `now` (`check_accepted_at`): it would hold the user back until then, unseen."""
    try:
        check_accepted_at(change.accepted_at, now)
    except ValueError as error:
        raise ValueError(f"the change of {change.source}/{change.external_id}: {error}") from None
    return (change.idem_key, change.source, change.external_id, change.kind, state_text or state_json(change),
            change.cause, change.accepted_at, state, change.accepted_at, now, int(forced), why,
            change.source, change.external_id)  # whose held event it waits behind
