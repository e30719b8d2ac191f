"""SQLite's group commit (connector/store/sqlite.py): threads share one write transaction, each block in a
savepoint; every block is durable when it returns, a failed block changes nothing, and the write lock is free
once the blocks are done."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from connector.store import EventState, StoreError
from connector.store.database import event_row
from connector.store.sqlite import SQLiteStore
from tests.store.test_conformance import NOW, change


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
        sqlite_store._insert_events(conn, [event_row(change("lost", idem_key="k"), "pending", NOW)])
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


def test_a_block_whose_failure_rolls_the_transaction_back_fails_every_block_in_it_and_no_later_one(
        sqlite_store, tmp_path) -> None:
    """SQLite rolls a whole transaction back when a statement fails on a full disk or an I/O error: the blocks of
    other threads that ran in it are lost, and must be told so; the next transaction's blocks must not be."""
    results: dict[str, object] = {}

    def run(name: str, write) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = write()
            except Exception as error:  # noqa: BLE001 - what each writer is told is the result
                results[name] = error
        thread = threading.Thread(target=target)
        thread.start()
        return thread

    def disk_full() -> None:
        with sqlite_store._write() as conn:
            conn.execute("ROLLBACK")  # what SQLite does to the transaction on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")

    def until(condition) -> None:
        for _ in range(3000):  # 30 s: a step that never comes is a failure, not a hang
            if condition():
                return
            threading.Event().wait(0.01)
        raise AssertionError("the writers never got there")

    sqlite_store.enqueue([change("first")])
    opened = sqlite_store._opened
    with sqlite_store._committing:  # another thread's COMMIT is under way: the blocks below wait to commit
        # Two changes each: a write of one statement commits by itself, outside the shared transaction.
        bob = run("bob", lambda: sqlite_store.enqueue([change("bob", 1), change("bob", 2)]))
        until(lambda: sqlite_store._opened == opened + 1 and not sqlite_store._writing.locked())
        failing = run("failing", disk_full)
        until(lambda: sqlite_store._committed == opened + 1)
        carol = run("carol", lambda: sqlite_store.enqueue([change("carol", 1), change("carol", 2)]))
        until(lambda: sqlite_store._opened == opened + 2 and not sqlite_store._writing.locked())
    for thread in (bob, failing, carol):
        thread.join()
    assert isinstance(results["failing"], StoreError) and "disk is full" in str(results["failing"])
    assert isinstance(results["bob"], StoreError) and "nothing written in it is stored" in str(results["bob"])
    assert isinstance(results["carol"], list) and len(results["carol"]) == 2
    with SQLiteStore(str(tmp_path / "c.db")) as other:
        assert sorted(e.change.external_id for e in other.list_events()) == ["carol", "carol", "first"]
