"""SOAP calls per change kind through the real delivery path (issue 16): writes, reads and calls per change.

    python bench/bench_writes.py [--users N] [--workers W] [--missing-extension SHAPE]

The simulator runs in a subprocess, seeded with N Verba users (and one warm-up user). Delivery is the
real one: Deliverer and WorkerPool on a SQLite store (WAL, synchronous=FULL), mappings/default.toml,
VerbaClient. Each phase enqueues one change for each of the N users, delivers them all and reads the
simulator's call log (GET /_sim/calls, cleared with DELETE /_sim/calls before the phase;
requestToken/releaseToken are left out):

    (a) new       a user the connector never saw, with one work number
    (b) number    that number replaced by another (the new one is created, the old one stopped)
    (c) no-op     displayName and title changed only: the records stay as Verba last confirmed them
    (d) settings  a mapping rule (default.toml plus displayName "Counsel" -> recordingMode ON_DEMAND,
                  the legal.toml of tests/ops/test_drift.py) changes a confirmed extension's settings

Writes are createExtension/updateExtension, reads getExtension/listUsers. The Verba user id lookup
(listUsers by login name) is cached per process for [delivery] user_cache_seconds (600 s): a warm-up user
is pushed first (token, connections), (a) pays the one lookup each new login costs, and (b)-(d) run
within the cache window, as a change arriving soon after the user's last push does. The lookups are
also shown in their own column, and a second, ungated pass repeats (b)-(d) with user_cache_seconds = 0
to show what each change costs once the cache has expired.

Goals (each change, not only on average): new 1 write; number change <= 2 writes; no-op 0 calls;
settings change 1 write; at most one read per write. Every phase is also checked in the simulator's
state (the numbers, links and settings the change asks for). Exit status 1 when a goal fails.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from connector.config import DeliveryConfig
from connector.delivery.worker import Deliverer, WorkerPool
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.ops.metrics import SKIPPED
from connector.simulator.operations import MISSING_EXTENSION_SHAPES
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening
from connector.store import EventState, Store, open_store
from connector.verba import VerbaClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "default.toml"
LEGAL_RULE = ('[[rules]]\nwhen = { attribute = "displayName", equals = "Counsel" }\n'
              'set = { recordingMode = "ON_DEMAND" }\n')
LOGIN, PASSWORD = "bench", "bench-password"
FIRST_ID = 100  # Verba user id of bench user 0
WARMUP = {"id": 99, "loginName": "warmup@bench.example", "eid": "0000"}
WRITES = frozenset({"createExtension", "updateExtension"})
READS = frozenset({"getExtension", "listUsers"})
TOKEN_CALLS = frozenset({"requestToken", "releaseToken"})


def login(i: int) -> str:
    return f"user{i}@bench.example"


def number(series: int, i: int) -> str:
    """User i's number of a series (2: first, 3: after the change, 4: the ungated pass's change)."""
    return f"+1415{series}{i:06d}"


def change(i: int, series: int, **state: Any) -> UserChange:
    return UserChange("bench", f"u{i}", "upsert", {
        "userName": login(i), "phoneNumbers": [{"type": "work", "value": number(series, i)}], **state})


@dataclasses.dataclass
class Phase:
    kind: str
    goal: str
    changes: int
    seconds: float
    ops: collections.Counter[str]  # operation -> calls (token calls left out)
    per_user: list[collections.Counter[str]]  # the calls that name one of the user's extensions
    check: Callable[[Phase], bool]
    lookup: str  # "cold" (first sight of the login), "warm" or "expired"

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.ops.items() if op in WRITES)

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.ops.items() if op in READS)

    @property
    def calls(self) -> int:
        return sum(self.ops.values())

    def per_change(self, n: int) -> float:
        return n / self.changes

    def max_user(self, ops: frozenset[str]) -> int:
        return max((sum(n for op, n in user.items() if op in ops) for user in self.per_user), default=0)

    def reads_within_writes(self) -> bool:
        """At most one read per write: over the phase, and for each user (getExtension names its extension)."""
        return self.reads <= self.writes and all(
            user["getExtension"] <= sum(user[op] for op in WRITES) for user in self.per_user)

    @property
    def passed(self) -> bool:
        return self.check(self)


GOALS: dict[str, tuple[str, Callable[[Phase], bool]]] = {
    "new": ("1 write, reads <= writes",
            lambda p: p.max_user(WRITES) == 1 and p.writes == p.changes and p.reads_within_writes()),
    "number": ("<= 2 writes, reads <= writes",
               lambda p: p.max_user(WRITES) <= 2 and p.reads_within_writes()),
    "no-op": ("0 calls", lambda p: p.calls == 0),
    "settings": ("1 write, reads <= writes",
                 lambda p: p.max_user(WRITES) == 1 and p.writes == p.changes and p.reads_within_writes()),
}


class Bench:
    def __init__(self, base: str, store: Store, client: VerbaClient, workers: int) -> None:
        self.sim = httpx.Client(base_url=base, timeout=30)
        self.store = store
        self.client = client
        self.workers = workers
        self.owner: dict[str, int] = {}  # extension -> bench user index

    def deliver(self, deliverer: Deliverer, changes: Sequence[UserChange]) -> float:
        """Enqueue `changes`, deliver them with the worker pool; the seconds it took."""
        done_before = self.store.count_by_state()[EventState.DONE]
        self.store.enqueue(list(changes))
        pool = WorkerPool(deliverer, self.workers, deliverer.config.idle_poll_seconds)
        started = time.perf_counter()
        pool.start()
        deadline = time.monotonic() + 120
        while True:
            counts = self.store.count_by_state()
            if counts[EventState.DONE] - done_before + counts[EventState.DEAD] + counts[EventState.HELD] \
                    >= len(changes) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        pool.stop()
        counts = self.store.count_by_state()
        if counts[EventState.DONE] - done_before != len(changes):
            raise RuntimeError(f"not every change was delivered: {({s.value: n for s, n in counts.items()})}")
        return seconds

    def phase(self, deliverer: Deliverer, kind: str, changes: Sequence[UserChange], lookup: str) -> Phase:
        self.sim.delete("/_sim/calls").raise_for_status()
        seconds = self.deliver(deliverer, changes)
        calls = [c for c in self.sim.get("/_sim/calls").raise_for_status().json() if c["operation"] not in TOKEN_CALLS]
        per_user = [collections.Counter[str]() for _ in changes]
        for call in calls:
            if call["extension"] in self.owner:
                per_user[self.owner[call["extension"]]][call["operation"]] += 1
        goal, check = GOALS[kind]
        return Phase(kind, goal, len(changes), seconds, collections.Counter(c["operation"] for c in calls),
                     per_user, check, lookup)

    def extensions(self) -> dict[str, dict[str, Any]]:
        state = self.sim.get("/_sim/state").raise_for_status().json()
        return {e["extension"]: e for e in state["extensions"]}


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"the simulator does not hold what the phase asked for: {what}")


def run(base: str, users: int, workers: int, tmp: str) -> tuple[list[Phase], list[Phase], float]:
    store = open_store(f"sqlite:///{os.path.join(tmp, 'bench.db')}")
    store.migrate()
    legal = pathlib.Path(tmp, "legal.toml")
    legal.write_text(MAPPING.read_text() + LEGAL_RULE)
    # The stop-recording guard would hold a mass number change (it stops N users' old numbers at once) until
    # an operator approves it; its limit is raised above N so that every change is delivered and counted.
    config = DeliveryConfig(workers=workers, idle_poll_seconds=0.005, guard_max_count=users + 1)
    url = f"{base}/provisioning"
    with VerbaClient(url, eid="0000", login=LOGIN, password=PASSWORD, pool_size=workers) as client:
        bench = Bench(base, store, client, workers)
        deliverer = Deliverer(store, client, load_mapping(str(MAPPING)), config)
        warmup = UserChange("bench", "warmup", "upsert", {
            "userName": WARMUP["loginName"], "phoneNumbers": [{"type": "work", "value": "+14155550100"}]})
        bench.deliver(deliverer, [warmup])
        everyone = range(users)
        for i in everyone:
            bench.owner.update({number(2, i): i, number(3, i): i, number(4, i): i})

        new = bench.phase(deliverer, "new", [change(i, 2) for i in everyone], "cold")
        held = bench.extensions()
        expect(all(held[number(2, i)]["user_id"] == FIRST_ID + i and held[number(2, i)]["voice"] for i in everyone),
               "(a) every new number linked to its user and recorded")

        moved = bench.phase(deliverer, "number", [change(i, 3) for i in everyone], "warm")
        held = bench.extensions()
        expect(all(held[number(3, i)]["user_id"] == FIRST_ID + i and held[number(3, i)]["voice"]
                   and held[number(2, i)]["user_id"] == FIRST_ID + i and not held[number(2, i)]["voice"]
                   for i in everyone), "(b) the new number recorded, the old one linked with recording stopped")

        skipped = SKIPPED._value.get()
        noop = bench.phase(deliverer, "no-op",
                           [change(i, 3, displayName=f"User {i}", title="Engineer") for i in everyone], "warm")
        expect(SKIPPED._value.get() - skipped == users, f"(c) {users} pushes counted skipped")
        expect(bench.extensions() == held, "(c) nothing changed in Verba")

        deliverer.mapping = load_mapping(str(legal))
        settings = bench.phase(deliverer, "settings", [change(i, 3, displayName="Counsel") for i in everyone], "warm")
        held = bench.extensions()
        expect(all(held[number(3, i)]["recordingMode"] == "ON_DEMAND" and held[number(3, i)]["voice"]
                   for i in everyone), "(d) every extension ON_DEMAND, still recorded")
        gated = [new, moved, noop, settings]

        # Ungated: the same kinds once the user id cache has expired (every push looks the user up again).
        expired = Deliverer(store, client, load_mapping(str(legal)), dataclasses.replace(config, user_cache_seconds=0))
        ungated = [
            bench.phase(expired, "number", [change(i, 4, displayName="Counsel") for i in everyone], "expired"),
            bench.phase(expired, "no-op", [change(i, 4, displayName="Counsel", title="Lawyer") for i in everyone],
                        "expired"),
            bench.phase(expired, "settings", [change(i, 4, displayName="Partner") for i in everyone], "expired"),
        ]
        held = bench.extensions()
        expect(all(held[number(4, i)]["recordingMode"] == "FULL" and held[number(4, i)]["voice"]
                   and not held[number(3, i)]["voice"] for i in everyone), "(ungated) the last changes applied")
        bench.sim.close()
    store.close()
    return gated, ungated, config.user_cache_seconds


def table(phases: Sequence[Phase], gated: bool) -> list[str]:
    head = f"{'kind':<9} {'lookup':<8} {'changes':>7} {'writes/ch':>9} {'reads/ch':>8} {'(listUsers)':>11} " \
           f"{'calls/ch':>8} {'max writes':>10} {'ms/ch':>6}  {'goal':<28} {'result' if gated else ''}"
    lines = [head, "-" * len(head)]
    for p in phases:
        result = ("PASS" if p.passed else "FAIL") if gated else ("(meets)" if p.passed else "(misses)")
        lines.append(
            f"{p.kind:<9} {p.lookup:<8} {p.changes:>7} {p.per_change(p.writes):>9.2f} {p.per_change(p.reads):>8.2f} "
            f"{p.per_change(p.ops['listUsers']):>11.2f} {p.per_change(p.calls):>8.2f} {p.max_user(WRITES):>10} "
            f"{1000 * p.seconds / p.changes:>6.1f}  {p.goal:<28} {result}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200, help="Verba users, one change each per phase (default 200)")
    parser.add_argument("--workers", type=int, default=4, help="delivery workers (default 4); counts do not depend "
                        "on it, only the ms/change column does")
    parser.add_argument("--missing-extension", choices=MISSING_EXTENSION_SHAPES, default="error_general",
                        help="how the simulator answers a missing extension (default error_general, the most "
                             "hostile shape, as tests/ops/test_drift.py uses)")
    args = parser.parse_args()
    logging.getLogger("connector").setLevel(logging.ERROR)  # one warning per stopped number otherwise

    seed = {
        "api_users": [{"loginName": LOGIN, "password": PASSWORD}],
        "users": [WARMUP, *({"id": FIRST_ID + i, "loginName": login(i), "eid": "0000"} for i in range(args.users))],
    }
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        seed_path = os.path.join(tmp, "seed.json")
        pathlib.Path(seed_path).write_text(json.dumps(seed))
        process = start_simulator_process(port, seed_path, missing_extension=args.missing_extension)
        try:
            wait_until_listening(port, process=process)
            gated, ungated, cache = run(f"http://127.0.0.1:{port}", args.users, args.workers, tmp)
        finally:
            process.terminate()
            process.wait(timeout=10)

    print(f"SOAP calls per change through delivery: {args.users} Verba users, {args.workers} workers, SQLite store, "
          f"mappings/default.toml, simulator in a subprocess (missing extension: {args.missing_extension})")
    print("writes = createExtension + updateExtension; reads = getExtension + listUsers; token calls left out")
    print(f"user id lookup: a warm-up user is pushed first; (a) pays one listUsers per new login (cold), (b)-(d) "
          f"run within the {cache:g} s cache (warm); the lookups are the (listUsers) column")
    print(f"stop-recording guard: guard_max_count raised to {args.users + 1}, so the mass number change is not held")
    print()
    print("\n".join(table(gated, gated=True)))
    print()
    print("not gated: the same kinds once the user id cache has expired (user_cache_seconds = 0)")
    print("\n".join(table(ungated, gated=False)))
    failed = [p.kind for p in gated if not p.passed]
    print()
    print(f"FAIL: {', '.join(failed)}" if failed else "all goals met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
