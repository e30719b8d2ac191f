"""The SQLite dialect: one file in WAL mode, a connection per thread for reads, one shared for writes.

One connector per file: `BEGIN IMMEDIATE` is the only lock, so every lock hook is free.

Group commit: SQLite has one writer at a time and every COMMIT waits for the disk (synchronous =
FULL). So the threads share one write connection: each `_write` block runs in a savepoint of the
transaction open on it, and one COMMIT makes every block that ran meanwhile durable together. A
block returns only once its COMMIT did (or raises if it failed), as if it had committed alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shlex
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from connector.store.base import MISSING, Store
from connector.store.database import StoreError, StoreMissing
from connector.store.queries import named

BUSY_TIMEOUT_SECONDS = 5.0
# What a driver message containing any of the words means, first match wins ({path}, {text}, {seconds} filled in).
ADVICE = (
    (("locked", "busy"), "the store {path} stayed locked for over {seconds:g} s ({text}): another process is writing "
                         "to it. Run one connector per SQLite file (use PostgreSQL for several) and close other "
                         "programs using it"),
    (("readonly", "unable to open"), "cannot open or write the store {path} ({text}): make the file and its directory "
                                     "writable by this user, or point [store] url at a writable path"),
    (("no such table",), "the store {path} has no schema yet ({text}): run `connector db upgrade --config "
                         "<your config>`"),
    (("not a database", "malformed"), "{path} is not a usable SQLite store ({text}): restore it from a backup or point "
                                      "[store] url at a new file"),
    (("disk I/O", "full"), "the store {path} could not be written ({text}): check free disk space and that the file is "
                           "on a local disk, not a network share"),
)


class SQLiteStore(Store):
    """The store in one SQLite file; `synchronous="NORMAL"` may lose the last commits on power loss."""

    dialect = "sqlite"
    _q = named("sqlite")
    _driver_error = sqlite3.Error

    def __init__(self, path: str, *, synchronous: str = "FULL", create: bool = True) -> None:
        if path in ("", ":memory:"):
            raise ValueError("the SQLite store needs a file path; an in-memory database is not shared between threads")
        if not create and not os.path.exists(path):
            check_directory(path)  # a store `connector run` could not create either is no missing store
            raise StoreMissing(f"there is no store at {_placed(path)}: {MISSING}")
        if not create and os.path.getsize(path) == 0:  # left as it is: opening it would make it a database
            raise StoreMissing(f"the store {_placed(path)} is empty: {MISSING}")
        super().__init__(synchronous)
        self.path = self.name = path
        self._instance_lock: TextIO | None = None
        self._writer: sqlite3.Connection | None = None  # shared by every thread's writes, under _writing
        self._writing = threading.Lock()
        self._committing = threading.Lock()  # one COMMIT at a time
        self._opened = self._committed = 0  # numbers of the transaction opened last and committed last
        self._failed: dict[int, str] = {}  # transaction number -> why its COMMIT failed
        _make_directory(path)
        self._connection()  # fail now, not at the first event, if the file cannot be opened

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)

    def _set_up(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"the store {self.path} cannot use WAL mode (got {mode!r}); "
                             "put it on a local disk, not a network file system")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        number = 0
        try:
            with self._writing, self._errors():
                conn = self._shared_writer()
                if not conn.in_transaction:
                    conn.execute("BEGIN IMMEDIATE")
                    self._opened += 1
                number = self._opened
                conn.execute("SAVEPOINT block")
                try:
                    yield conn
                except BaseException as error:
                    if not conn.in_transaction:  # SQLite rolled the whole transaction back (disk full, I/O error)
                        self._rolled_back(number, error)
                        raise
                    conn.execute("ROLLBACK TO block")
                    conn.execute("RELEASE block")
                    raise
                conn.execute("RELEASE block")
        except BaseException:
            if number:  # end the transaction all the same: other threads' blocks may be in it
                with contextlib.suppress(StoreError):
                    self._commit(number)
            raise
        self._commit(number)

    def _shared_writer(self) -> sqlite3.Connection:
        """The write connection all threads share; call it holding `_writing`."""
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    def _commit(self, number: int) -> None:
        """Make transaction `number` durable, unless another thread's COMMIT already did; StoreError if it failed."""
        with self._committing:
            if self._committed < number:
                with self._writing:
                    if self._committed < number:  # else it was rolled back meanwhile, and the open one is newer
                        assert self._writer is not None
                        try:
                            with self._errors():
                                self._writer.execute("COMMIT")
                        except StoreError as error:
                            with contextlib.suppress(sqlite3.Error):
                                self._writer.execute("ROLLBACK")
                            self._fail(number, str(error))
                        self._committed = number
            if number in self._failed:
                raise StoreError(self._failed[number])

    def _rolled_back(self, number: int, error: BaseException) -> None:
        """SQLite rolled transaction `number` back under a failed block (disk full, an I/O error): every block that
        ran in it failed with `error`, those waiting to commit it too. Call it holding `_writing`, before another
        transaction opens."""
        why = self._explain(error) if isinstance(error, sqlite3.Error) else str(error)
        self._fail(number, f"{why}; the transaction was rolled back, nothing written in it is stored")
        self._committed = number

    def _fail(self, number: int, why: str) -> None:
        """Remember why transaction `number` failed, for every block that ran in it (the last 1,000 failures)."""
        self._failed = {n: reason for n, reason in self._failed.items() if n > number - 1000}
        self._failed[number] = why

    @contextlib.contextmanager
    def _statement(self) -> Iterator[sqlite3.Connection]:
        with self._writing, self._errors():
            conn = self._shared_writer()
            if not conn.in_transaction:  # no transaction to join: the statement commits by itself
                yield conn
                return
        with self._write() as conn:
            yield conn

    def _lock(self, conn: Any, key: str) -> None:
        pass  # BEGIN IMMEDIATE already holds the only write lock

    def _try_lock(self, conn: Any, key: str) -> bool:
        return True

    def _lock_queue(self, conn: Any, *, shared: bool = False) -> None:
        pass

    def _lock_user(self, conn: Any, source: str, external_id: str) -> None:
        pass

    def _array(self, values: Iterable[Any]) -> str:
        return json.dumps(list(values))

    def _insert_events(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> list[int]:
        if len(rows) < 2:  # fetchall: a statement not stepped to its end keeps its autocommit transaction open
            return [row[0] for params in rows for row in conn.execute(self._q["insert_event"], params).fetchall()]
        # Several rows are inserted in a write transaction (BEGIN IMMEDIATE): the new ids are those above `last`.
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        conn.executemany(self._q["insert_event"], rows)
        return [row[0] for row in conn.execute("SELECT id FROM events WHERE id > ? ORDER BY id", (last,))]

    def close(self) -> None:
        super().close()
        if self._instance_lock is not None:
            self._instance_lock.close()
            self._instance_lock = None

    def start_instance(self) -> int:
        """One connector per file: a second one is refused with StoreError, and the first's leases are
        released (whatever is in flight was this file's only connector's)."""
        if holder := self._lock_instance():
            raise StoreError(
                f"another connector (pid {holder}) is running on the store {self.path}, or upgrading it; run one "
                "connector per SQLite file, or put several on PostgreSQL ([store] url = \"postgresql://...\")")
        return self.release_leases()

    def _running_pid(self) -> str | None:
        existed = os.path.exists(f"{self.path}.instance")
        holder = self._lock_instance()
        if holder is None and self._instance_lock is not None:  # nobody runs: let go, and leave no file made here
            self._instance_lock.close()
            self._instance_lock = None
            if not existed:
                os.unlink(f"{self.path}.instance")
        return holder

    def _lock_instance(self) -> str | None:
        """Hold the file's instance lock until close(); the pid written in it instead, if another process holds it."""
        lock = self._open_instance_lock()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            return holder
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        self._instance_lock = lock
        return None

    def _open_instance_lock(self) -> TextIO:
        """The file `start_instance` locks, next to the store; StoreError with the fix if it cannot be opened."""
        path = f"{self.path}.instance"
        try:
            return open(path, "a+")
        except OSError as error:
            user = _user_name()
            raise StoreError(
                f"cannot open {path}, the lock file that keeps a second connector off the store {self.path} "
                f"({error.strerror}): it was likely left by a connector run as another user (sudo connector run?). "
                f"Give it to the user that runs the connector (sudo chown {user} {shlex.quote(path)}), or, when no "
                "connector runs on this store, delete it"
            ) from None

    def _explain(self, error: Exception) -> str:
        """Say what went wrong with the store file and what to do about it."""
        text = str(error)
        advice = next((advice for needles, advice in ADVICE if any(needle in text for needle in needles)),
                      "the store {path} failed ({text})")
        return advice.format(path=self.path, text=text, seconds=BUSY_TIMEOUT_SECONDS)


def _placed(path: str) -> str:
    """`path`, and where a relative one is: it is read from the working directory, not from the config's."""
    if os.path.isabs(path):
        return path
    return f"{path} ({os.path.abspath(path)}: a relative path is read from the working directory, {os.getcwd()})"


def check_directory(path: str) -> None:
    """StoreError unless the directory of the store `path`, or its parent, exists: a deeper missing path is more
    likely a mistyped [store] url than a place for a new, empty store. The config's check of store.url too."""
    directory = os.path.dirname(os.path.abspath(path))
    parent = os.path.dirname(directory)
    if not os.path.isdir(directory) and not os.path.isdir(parent):
        raise StoreError(
            f"the directory {directory} for the store {_placed(path)} does not exist, nor does {parent}: check "
            f"[store] url for a typo, or create the directory (mkdir -p {shlex.quote(directory)}) writable by the "
            "user that runs the connector"
        )


def _make_directory(path: str) -> None:
    """Create the directory of the store `path` when its own parent exists (`var/` in a fresh clone); StoreError
    when that is missing too (see `check_directory`)."""
    check_directory(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(directory):
        return
    try:
        os.mkdir(directory)
    except OSError as error:
        if os.path.isdir(directory):  # another process made it meanwhile
            return
        raise StoreError(
            f"cannot create the directory {directory} for the store {path} ({error.strerror}); "
            "create it yourself or point [store] url at a writable place"
        ) from None


def _user_name() -> str:
    """This process's user, for a `chown` to print."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a user id without a name (a container)
        return str(os.geteuid())
