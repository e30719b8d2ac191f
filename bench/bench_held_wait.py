"""Claim time with events waiting behind held events against claim time with none, same run, both backends.

    python bench/bench_held_wait.py [--waiting N] [--claims C]

A guard holds a user's change for an operator's approval (the LDAP mass-change guard may hold thousands), and the
user's later changes wait behind it, pending but never claimed, until on-call approves or discards it. Those waiting
events must not slow the delivery of every other user. Each backend gets two fresh stores with the same C free users
(one pending change each, due): one with nothing else, one with N more users (default 10,000) whose held change has a
later change waiting behind it, accepted before the free users' (so they come first in due order, the worst case).
C claims in a row (`claim(busy=False)`, the idle check included, each under its own owner) each take one free user;
the table gives the mean ms per claim and the ratio waiting / none. Goal: <= 2x (a claim's cost independent of how
many events wait). Each claim commits (fsync), so a busy disk moves both figures; the ratio is what counts.
The same comparison runs on a private PostgreSQL cluster (tests/postgres_server.py) when its binaries are installed.
Exit status 1 when a ratio misses the goal.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # for the tests' cluster helper
from connector.events import UserChange  # noqa: E402
from connector.store import EventState, Store, open_store  # noqa: E402
from tests.postgres_server import server_or_skipped  # noqa: E402

GOAL = 2.0
T0 = 1_000_000.0  # when the waiting users' changes were accepted; the free users' come a second later
LEASE = 600.0


def change(user: str, accepted_at: float, **state: object) -> UserChange:
    return UserChange("bench", user, "upsert", {"userName": f"{user}@example.com", **state}, accepted_at=accepted_at)


def fill(store: Store, free: int, waiting: int) -> None:
    """`free` users with a due change each; `waiting` users with a held change and a later one waiting behind it."""
    store.migrate()
    if waiting:
        store.enqueue([change(f"held{n:06d}", T0, active=False) for n in range(waiting)], state=EventState.HELD)
        store.enqueue([change(f"held{n:06d}", T0, active=False, n=2) for n in range(waiting)])
    store.enqueue([change(f"free{n:06d}", T0 + 1) for n in range(free)])


def ms_per_claim(store: Store, claims: int) -> float:
    """Mean milliseconds of `claims` claims, each of a free user (left in flight, so the next takes another)."""
    started = time.perf_counter()
    for n in range(claims):
        claim = store.claim(f"bench/{n}", time.time(), LEASE)
        if claim is None or not claim.external_id.startswith("free"):
            raise RuntimeError(f"claim {n} took {claim and claim.external_id!r}, not a free user")
    return (time.perf_counter() - started) * 1000 / claims


def compare(label: str, open_fresh: Callable[[], Store], waiting: int, claims: int) -> float:
    """Print one backend's table; the ratio waiting / none."""
    results = []
    for count in (0, waiting):
        with open_fresh() as store:
            fill(store, claims, count)
            results.append(ms_per_claim(store, claims))
    none, with_waiting = results
    ratio = with_waiting / none
    print(label)
    print(f"{'claims of free users':<52}{'ms/claim':>10}")
    print(f"{'no event waits behind a held one':<52}{none:>10.2f}")
    print(f"{f'{waiting:,} events wait behind held ones':<52}{with_waiting:>10.2f}")
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"{'ratio waiting / none':<52}{ratio:>9.2f}x  ({verdict} the goal of <= {GOAL}x)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=10_000, help="events waiting behind held ones (default 10000)")
    parser.add_argument("--claims", type=int, default=200, help="claims timed per store (default 200)")
    args = parser.parse_args()

    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-held-wait-") as directory:
        paths = (os.path.join(directory, f"store{n}.db") for n in range(2))
        ratios.append(compare("SQLite (WAL, synchronous=FULL)", lambda: open_store(f"sqlite:///{next(paths)}"),
                              args.waiting, args.claims))
    print()
    with server_or_skipped() as server:
        if server is not None:
            ratios.append(compare(f"PostgreSQL {server.bin_dir.parent.name} (private cluster, fsync=on)",
                                  lambda: open_store(server.create_schema()), args.waiting, args.claims))
    return 0 if all(ratio <= GOAL for ratio in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
