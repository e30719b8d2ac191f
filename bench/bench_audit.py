"""Reading one event's audit when the audit is large: by the audit_events index against reading every entry.

    python bench/bench_audit.py [--entries N] [--events K]

A SQLite store (WAL, synchronous=FULL) holds N audit entries (100,000 by default), each naming two events, as years
of conflicts, stopped recordings and operator actions leave them. It reads the audit of K events (200 by default)
as `connector events show`, replay's check of events already replayed and a push's drift-repair reason do
(`audit_of_event`, through the audit_events table of migration 0022), then the same K with the query used before
0022 (it reads every entry's event_ids: the baseline, measured in the same run). It prints both times per event
and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sized

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connector.store.sqlite import SQLiteStore  # noqa: E402

GOAL = 0.05  # an event's audit read in at most a twentieth of the time of a full read
BEFORE_0022 = ("SELECT id, at, actor, action, event_ids, reason, detail FROM audit "
               "WHERE EXISTS (SELECT 1 FROM json_each(event_ids) WHERE value = ?) ORDER BY id")


def seed(store: SQLiteStore, entries: int) -> None:
    """`entries` audit entries naming events (2i, 2i + 1), in transactions of 10,000."""
    for first in range(0, entries, 10_000):
        with store._write() as conn:
            conn.cursor().executemany(store._q["add_audit"], [
                (time.time(), "connector", "conflict", store._array([2 * i, 2 * i + 1]),
                 f"+1555{i:07d} is held by Verba user {i}", "{}") for i in range(first, min(entries, first + 10_000))])


def per_event(read: Callable[[int], Sized], events: list[int]) -> float:
    started = time.perf_counter()
    for event_id in events:
        assert len(read(event_id)) == 1, event_id
    return (time.perf_counter() - started) / len(events)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="audit entries stored (default 100,000)")
    parser.add_argument("--events", type=int, default=200, help="events whose audit is read (default 200)")
    args = parser.parse_args()
    events = [(args.entries * 2 * n) // args.events for n in range(args.events)]
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(os.path.join(folder, "c.db"))
        store.prepare()
        seed(store, args.entries)
        indexed = per_event(store.audit_of_event, events)
        with store._read() as conn:
            scanned = per_event(lambda event_id: conn.execute(BEFORE_0022, (event_id,)).fetchall(), events)
        store.close()
    print(f"audit of one event among {args.entries:,} audit entries (SQLite): {indexed * 1000:.3f} ms by the "
          f"audit_events index, {scanned * 1000:.1f} ms reading every entry (before migration 0022); ratio "
          f"{indexed / scanned:.4f}x (goal <= {GOAL}x)")
    return 0 if indexed / scanned <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
