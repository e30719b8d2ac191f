"""The SCIM endpoint's start on many Users: the first start after the comparisons changed against a later one.

    python bench/bench_scim_start.py [--users N]

A SQLite store (WAL, synchronous=FULL) holds N Users (20,000 by default) of the client "entra", stored as an
earlier version stored them (no record of how they compare). The first start brings them up to today's comparisons
(connector/sources/scim/upgrade.py: it reads every resource); a second start finds the store's record of how they
compare and only looks for the Users kept without a key. It prints both times, the peak RSS of the process, and the
ratio of the second start to the first (the baseline, measured in the same run): before the record, every start
read every resource, a ratio of about 1.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connector.sources.scim.filters import caseless  # noqa: E402
from connector.sources.scim.index import index_values  # noqa: E402
from connector.sources.scim.schema import USERS  # noqa: E402
from connector.sources.scim.upgrade import upgrade_stored  # noqa: E402
from connector.store import ScimResource  # noqa: E402
from connector.store.sqlite import SQLiteStore  # noqa: E402

NOW = "2026-01-01T00:00:00.000000Z"
GOAL = 0.1  # a later start at most a tenth of the first


def seed(store: SQLiteStore, users: int) -> None:
    """`users` Users as Entra sends them, in transactions of 5,000."""
    for first in range(0, users, 5000):
        with store.scim_transaction("entra") as tx:
            for i in range(first, min(users, first + 5000)):
                body = {"userName": f"user{i}@example.com", "active": True,
                        "name": {"givenName": "Ada", "familyName": f"Lovelace{i}"},
                        "emails": [{"value": f"user{i}@example.com", "type": "work", "primary": True}],
                        "phoneNumbers": [{"value": f"+1555{i:07d}", "type": "work"}]}
                tx.put(ScimResource("entra", "User", f"u{i}", body, 1, NOW, NOW, caseless(body["userName"])),
                       index_values(USERS, body))


def timed_start(store: SQLiteStore) -> float:
    started = time.perf_counter()
    upgrade_stored(store)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="Users stored (default 20,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(os.path.join(folder, "c.db"))
        store.prepare()
        seed(store, args.users)
        first = timed_start(store)
        later = timed_start(store)
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"SCIM start on {args.users:,} Users (SQLite): first start after the comparisons changed {first:.2f} s, "
          f"a later start {later:.3f} s; ratio {later / first:.3f}x (goal <= {GOAL}x); peak RSS {peak:.0f} MB")
    return 0 if later / first <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
