"""Durable enqueue rate of SQLiteStore against a raw INSERT + COMMIT loop on the same disk.

Both run with journal_mode=WAL and synchronous=FULL, one row per commit. The goal
(reference/delivery.md, R3) is enqueue >= 0.5x raw. The same comparison then runs for
PostgresStore on a private PostgreSQL cluster (fsync=on, synchronous_commit=on) when the
server binaries are installed. Run: python bench/bench_enqueue.py [--seconds N]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable

import psycopg

from connector.events import UserChange
from connector.store.postgres import PostgresStore
from connector.store.sqlite import SQLiteStore

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # for the tests' cluster helper
from tests.postgres_server import server_or_skipped  # noqa: E402

GOAL = 0.5
PAYLOAD = ("0123456789abcdef" * 32)[:500]


def realistic_change(n: int) -> UserChange:
    user = f"user{n % 1000:04}"
    return UserChange(
        source="entra",
        external_id=f"6f1c2a8e-{n % 1000:04}-4b1e-9a3c-5d2f7e8b9c0a",
        kind="upsert",
        state={
            "userName": f"{user}@corp.example.com",
            "active": True,
            "displayName": f"User {n % 1000}",
            "name": {"givenName": "User", "familyName": f"Number{n % 1000}"},
            "emails": [{"value": f"{user}@corp.example.com", "type": "work", "primary": True}],
            "phoneNumbers": [{"value": f"+1 555 01{n % 1000:04}", "type": "work"}],
            "groups": ["Recording - Full", "Sales EMEA"],
            "attributes": {"department": "Sales", "employeeNumber": str(100000 + n % 1000)},
        },
        cause="scim:PUT",
        idem_key=f"scim-request-{n}",
    )


def run_for(seconds: float, step: Callable[[int], None]) -> tuple[int, float]:
    """Call step(0), step(1), ... for `seconds`; return how many calls and the elapsed time."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        step(count)
        count += 1
    return count, time.perf_counter() - start


def raw_inserts(directory: str, seconds: float) -> tuple[int, float]:
    conn = sqlite3.connect(os.path.join(directory, "raw.db"))
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    conn.commit()

    def insert(_: int) -> None:
        conn.execute("INSERT INTO t (payload) VALUES (?)", (PAYLOAD,))
        conn.commit()

    try:
        return run_for(seconds, insert)
    finally:
        conn.close()


def store_enqueues(directory: str, seconds: float) -> tuple[int, float]:
    store = SQLiteStore(os.path.join(directory, "store.db"), synchronous="FULL")
    store.migrate()
    try:
        return run_for(seconds, lambda n: store.enqueue([realistic_change(n)]))
    finally:
        store.close()


def postgres_raw_inserts(dsn: str, seconds: float) -> tuple[int, float]:
    """INSERTs in autocommit: each commits in its one round trip, the fastest durable single-row write."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL)")
        return run_for(seconds, lambda _: conn.execute("INSERT INTO t (payload) VALUES (%s)", (PAYLOAD,)))


def postgres_store_enqueues(dsn: str, seconds: float) -> tuple[int, float]:
    store = PostgresStore(dsn, synchronous="FULL")
    store.migrate()
    try:
        return run_for(seconds, lambda n: store.enqueue([realistic_change(n)]))
    finally:
        store.close()


def report(raw: tuple[int, float], raw_label: str, store: tuple[int, float], store_label: str) -> None:
    raw_rows, raw_elapsed = raw
    store_rows, store_elapsed = store
    raw_rate = raw_rows / raw_elapsed
    store_rate = store_rows / store_elapsed
    ratio = store_rate / raw_rate
    state_bytes = len(json.dumps(realistic_change(0).state, separators=(",", ":")))
    print(f"{'loop':<52}{'rows':>10}{'rows/s':>12}")
    print(f"{f'{raw_label} ({len(PAYLOAD)} B payload)':<52}{raw_rows:>10,}{raw_rate:>12,.0f}")
    print(f"{f'{store_label}.enqueue (1 UserChange, {state_bytes} B state)':<52}{store_rows:>10,}{store_rate:>12,.0f}")
    verdict = "meets" if ratio >= GOAL else "BELOW"
    print(f"{'ratio enqueue / raw':<52}{'':>10}{ratio:>11.2f}x  ({verdict} the goal of >= {GOAL}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each loop runs (default 3)")
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-enqueue-") as directory:
        raw = raw_inserts(directory, args.seconds)
        store = store_enqueues(directory, args.seconds)
    print(
        f"SQLite durable enqueue: WAL + synchronous=FULL, 1 row per commit, {args.seconds:g} s each,"
        f" temp dir under {os.path.dirname(directory)}"
    )
    report(raw, "raw INSERT + COMMIT", store, "SQLiteStore")

    print()
    with server_or_skipped() as server:
        if server is None:
            return
        raw = postgres_raw_inserts(server.create_schema(), args.seconds)
        store = postgres_store_enqueues(server.create_schema(), args.seconds)
        print(
            f"PostgreSQL {server.bin_dir.parent.name} durable enqueue: fsync=on, synchronous_commit=on, 1 row per"
            f" commit over TCP, {args.seconds:g} s each, private cluster under {server.directory.parent}"
        )
    report(raw, "raw INSERT in autocommit", store, "PostgresStore")


if __name__ == "__main__":
    main()
