"""SQLite's group commit (connector/store/sqlite.py): threads share one write transaction, each block in a
savepoint; every block is durable when it returns, a failed block changes nothing, and the write lock is free
once the blocks are done."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from connector.store import EventState, StoreError
from connector.store.sqlite import SQLiteStore
from tests.store.test_conformance import change


@pytest.fixture
def sqlite_store(tmp_path):
    with SQLiteStore(str(tmp_path / "c.db")) as store:
        store.migrate()
        yield store


def test_concurrent_writers_each_see_their_writes_committed(sqlite_store, tmp_path) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def write(thread: int) -> None:
        for n in range(40):
            got = sqlite_store.enqueue([change(f"t{thread}-{n}")])
            with lock:
                ids.extend(got)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == len(set(ids)) == 320
    with SQLiteStore(str(tmp_path / "c.db")) as other:  # another connection sees them all: committed
        assert other.count_by_state()[EventState.PENDING] == 320
    assert sqlite_store._opened <= 320  # never more transactions than blocks


def test_a_failed_block_changes_nothing_and_leaves_the_file_writable(sqlite_store, tmp_path) -> None:
    sqlite_store.enqueue([change("kept")])
    with pytest.raises(ValueError, match="boom"), sqlite_store._write() as conn:
        conn.execute(sqlite_store._q["insert_event"], (
            "k", "scim", "lost", "upsert", "{}", "", 1.0, "pending", 1.0, 1.0, 0, None))
        raise ValueError("boom")
    assert sqlite_store.list_events(user="lost") == []
    with SQLiteStore(str(tmp_path / "c.db")) as other:  # the write lock was released: no "database is locked"
        other.enqueue([change("other")])
        assert {e.change.external_id for e in other.list_events()} == {"kept", "other"}


def test_a_commit_that_fails_is_reported_to_the_block(sqlite_store, monkeypatch) -> None:
    class FailingCommit:
        """The writer connection, except that COMMIT fails as on a failing disk."""

        def __init__(self, conn):
            self.conn = conn

        @property
        def in_transaction(self):
            return self.conn.in_transaction

        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error")
            return self.conn.execute(sql, *args)

        def executemany(self, sql, rows):
            return self.conn.executemany(sql, rows)

    sqlite_store.enqueue([change("first")])  # opens the shared writer
    real = sqlite_store._writer
    monkeypatch.setattr(sqlite_store, "_writer", FailingCommit(real))
    with pytest.raises(StoreError, match="could not be written"):  # two changes: one transaction, one COMMIT
        sqlite_store.enqueue([change("second"), change("third")])
    monkeypatch.setattr(sqlite_store, "_writer", real)
    assert [e.change.external_id for e in sqlite_store.list_events()] == ["first"]
