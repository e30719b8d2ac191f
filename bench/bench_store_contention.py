"""Every kind of store write at once on a few users, on SQLite and PostgreSQL: failures counted, invariants checked.

    python bench/bench_store_contention.py [--seconds S] [--threads T] [--users U]

During a mass-change incident SCIM, LDAP, on-call and the delivery workers write the same users' events at once. T
threads (default 6) do so on one store for S seconds (default 20), on U users (default 3), at random: a change of one
user, a batch of every user's (an `events ingest`) and a SCIM group change's, held changes, LDAP polls storing changes
and held ones, approvals and discards of held events, replays of dead letters, drift repairs (queue_current), claims
settled every way (done, retried, dead-lettered, held by the stop-recording guard, postponed, renewed first), claims
of expired leases, a breaker's expedite and releases of every lease. The table gives how many of each ran and how many
failed, deadlocks first; the goal is that none fails. Then the store is checked, with nothing running:

- no pending event waits behind an event that is not held (its user would never be delivered);
- claiming until nothing is due claims no user with a held event;
- once every held event is discarded, claiming and completing until nothing is due leaves nothing undelivered.

The same run is made on a private PostgreSQL cluster (tests/postgres_server.py) when its binaries are installed.
Exit status 1 when a write failed or a check did not hold.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # for the tests' cluster helper
from connector.events import UserChange  # noqa: E402
from connector.store import EventState, LdapPoll, Store, open_store  # noqa: E402
from tests.postgres_server import server_or_skipped  # noqa: E402

SOURCE = "bench"
LEASE = 30.0
DRAIN_AFTER = 10**6  # the drain claims this many seconds after the run: every lease and backoff of it ended


class Run:
    """One store under `threads` writers on `users` users; `failures` by (write, first words of the error)."""

    def __init__(self, store: Store, users: int) -> None:
        self.store = store
        self.users = [f"u{n}" for n in range(1, users + 1)]
        self.done: collections.Counter[str] = collections.Counter()
        self.failures: collections.Counter[tuple[str, str]] = collections.Counter()
        self.polling = threading.Lock()  # one poller per directory, as the LDAP leader is
        self.writes: dict[str, Callable[[random.Random, int, str], object]] = {
            "change": lambda rnd, n, owner: store.enqueue([self.change(rnd.choice(self.users), n)]),
            "batch": lambda rnd, n, owner: store.enqueue([self.change(u, n) for u in rnd.sample(self.users, 2)]),
            "scim_group": self.scim_group,
            "held": lambda rnd, n, owner: store.enqueue([self.change(rnd.choice(self.users), n)],
                                                        state=EventState.HELD),
            "ldap_poll": self.ldap_poll,
            "approve": lambda rnd, n, owner: store.requeue(self.some(rnd, EventState.HELD), time.time(),
                                                           approve=True),
            "discard": lambda rnd, n, owner: store.discard(self.some(rnd, EventState.HELD), "bench"),
            "replay": lambda rnd, n, owner: store.requeue(self.some(rnd, EventState.DEAD), time.time()),
            "drift_repair": lambda rnd, n, owner: store.queue_current([(SOURCE, rnd.choice(self.users))],
                                                                      "drift_repair"),
            "claim": self.claim_and_settle,
            "claim_expired": lambda rnd, n, owner: self.claim_and_settle(rnd, n, owner, now=time.time() + 2 * LEASE),
            "expedite": lambda rnd, n, owner: store.expedite(["transport"], time.time()),
            "release_leases": lambda rnd, n, owner: store.release_leases(),
        }
        # How often each is drawn: intake and claims most, a release of every lease seldom.
        self.weights = {"change": 4, "batch": 2, "scim_group": 2, "held": 2, "ldap_poll": 2, "approve": 2,
                        "discard": 2, "replay": 1, "drift_repair": 1, "claim": 6, "claim_expired": 1, "expedite": 1,
                        "release_leases": 0.2}

    def change(self, user: str, n: int) -> UserChange:
        return UserChange(SOURCE, user, "upsert", {"userName": f"{user}@example.com", "n": n}, time.time() - 1)

    def some(self, rnd: random.Random, state: EventState) -> list[int]:
        """One or two events in `state`, at random (none if there are none)."""
        ids = [e.id for e in self.store.list_events(state=state, limit=100)]
        return rnd.sample(ids, min(len(ids), rnd.randint(1, 2)))

    def scim_group(self, rnd: random.Random, n: int, owner: str) -> None:
        """A group change: the member users' changes in the SCIM client's transaction."""
        with self.store.scim_transaction("entra") as scim:
            scim.enqueue([self.change(user, n) for user in rnd.sample(self.users, len(self.users))])

    def ldap_poll(self, rnd: random.Random, n: int, owner: str) -> None:
        """A poll storing a change of one user and a held one (the mass-change guard's) of another."""
        with self.polling:
            mark = self.store.ldap_watermark("corp")
            first, second = rnd.sample(self.users, 2)
            self.store.commit_poll(LdapPoll("corp", 0 if mark is None else mark.version, {"usn": n}, time.time(),
                                            changes=[self.change(first, n)], held=[self.change(second, n)],
                                            held_because="the mass-change guard held it"))

    def claim_and_settle(self, rnd: random.Random, n: int, owner: str, *, now: float | None = None) -> None:
        claim = self.store.claim(owner, time.time() if now is None else now, LEASE, busy=True)
        if claim is None:
            return
        if rnd.random() < 0.3:
            claim = self.store.renew_lease(claim, claim.lease_until + LEASE) or claim
        settle = rnd.choice(["complete", "complete", "retry", "dead_letter", "hold", "postpone"])
        if settle == "complete":
            self.store.complete(claim, [], None)
        elif settle == "retry":
            self.store.retry(claim, time.time(), "transport", "the bench's retry")
        elif settle == "dead_letter":
            self.store.dead_letter(claim, "illegal_argument", "the bench's dead letter")
        elif settle == "hold":
            self.store.hold(claim, "stop_recording_guard", "the bench's hold")
        else:
            self.store.postpone(claim, time.time())

    def writer(self, seed: int, stop: threading.Event) -> None:
        rnd = random.Random(seed)
        names, weights = list(self.weights), list(self.weights.values())
        n = 0
        while not stop.is_set():
            n += 1
            name = rnd.choices(names, weights)[0]
            try:
                self.writes[name](rnd, n, f"w{seed}")
            except Exception as error:  # counted: any failure misses the goal
                self.failures[(name, " ".join(str(error).split())[:110])] += 1
            else:
                self.done[name] += 1

    def run(self, threads: int, seconds: float) -> float:
        """Run the writers; the writes per second."""
        stop = threading.Event()
        workers = [threading.Thread(target=self.writer, args=(seed, stop)) for seed in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        time.sleep(seconds)
        stop.set()
        for worker in workers:
            worker.join()
        return (sum(self.done.values()) + sum(self.failures.values())) / (time.perf_counter() - started)

    def check(self) -> list[str]:
        """What does not hold once the writers stopped (see the module's docstring); [] if all does."""
        store, broken, later = self.store, [], time.time() + DRAIN_AFTER
        held = {e.id: e.change.external_id for e in store.list_events(state=EventState.HELD, limit=10**6)}
        for event in store.list_events(state=EventState.PENDING, limit=10**6):
            if event.waits_behind is not None and held.get(event.waits_behind) != event.change.external_id:
                broken.append(f"event {event.id} of {event.change.external_id} waits behind event "
                              f"{event.waits_behind}, not a held event of its user")
        while (claim := store.claim("drain", later, LEASE)) is not None:
            if claim.external_id in held.values():
                broken.append(f"{claim.external_id} was claimed with a held event")
            store.complete(claim, [], None)
        store.discard(list(held), "the bench's drain")
        while (claim := store.claim("drain", later, LEASE)) is not None:
            store.complete(claim, [], None)
        left = [e.id for state in (EventState.PENDING, EventState.IN_FLIGHT)
                for e in store.list_events(state=state, limit=10**6)]
        if left:
            broken.append(f"events {left[:10]} are left undelivered after the drain")
        return broken


def bench(label: str, store: Store, threads: int, seconds: float, users: int) -> bool:
    """Print one backend's table and checks; whether nothing failed and every check held."""
    store.migrate()
    run = Run(store, users)
    rate = run.run(threads, seconds)
    broken = run.check()
    deadlocks = sum(n for (_, error), n in run.failures.items() if "deadlock" in error)
    print(f"{label}: {threads} threads, {users} users, {seconds:g} s, {rate:,.0f} writes/s")
    print(f"{'write':<16}{'done':>8}{'failed':>8}")
    for name in run.writes:
        failed = sum(n for (write, _), n in run.failures.items() if write == name)
        print(f"{name:<16}{run.done[name]:>8}{failed:>8}")
    for (name, error), n in run.failures.most_common():
        print(f"  {n} x {name}: {error}")
    print(f"deadlocks: {deadlocks}; failed writes: {sum(run.failures.values())}")
    for line in broken or ["checks: every one held"]:
        print(line)
    return not run.failures and not broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the writers run (default 20)")
    parser.add_argument("--threads", type=int, default=6, help="writer threads (default 6)")
    parser.add_argument("--users", type=int, default=3, help="users they write (default 3)")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-contention-") as directory:
        with open_store(f"sqlite:///{os.path.join(directory, 'store.db')}") as store:
            results.append(bench("SQLite", store, args.threads, args.seconds, args.users))
    print()
    with server_or_skipped() as server:
        if server is not None:
            with open_store(server.create_schema()) as store:
                results.append(bench(f"PostgreSQL {server.bin_dir.parent.name} (private cluster)", store,
                                     args.threads, args.seconds, args.users))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
