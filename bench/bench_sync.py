"""End to end against a raw client making the same calls (issue 17): a first sync, then number changes.

    python bench/bench_sync.py [--users N] [--concurrency C]

The simulator runs under uvicorn in a subprocess, seeded with 2N Verba users: N for the raw client and
N for the connector, so that neither phase finds what the other wrote. Each phase serves N users with
C threads (raw) or C delivery workers (connector), and prints users/s:

    (a) raw first sync     per user: listUsers (loginName exact) for its id, then createExtension;
                           prebuilt envelopes POSTed by C threads sharing one httpx.Client
    (b) connector          N new users through the whole delivery path: durable events in a SQLite store
                           (WAL, synchronous=FULL), claim, mapping (mappings/default.toml), the user id
                           looked up (cold cache), ownership checks, VerbaClient, completion
    (c) connector number   each of those users' work number replaced by another
    (d) raw number         the calls (c) made for each user, in (c)'s order (read from the simulator's
                           call log: the writes of the drift issue's benchmark and the read the
                           ownership checks need), as prebuilt envelopes

Goals: (b)/(a) >= 0.5x and (c)/(d) >= 0.5x. Both are checked in the simulator's state too (every user's
new number linked to it and recorded, the old one stopped). Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from bench_push import ENVELOPE, LOGIN, PASSWORD
from lxml import etree

from connector.config import DeliveryConfig
from connector.delivery.worker import Deliverer, WorkerPool
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening
from connector.store import EventState, Store, open_store
from connector.verba import VerbaClient

FIRST_ID = 1000
TOKEN_CALLS = frozenset({"requestToken", "releaseToken"})
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
LIST_USERS = ("<token>{token}</token><filter><environmentFilter><eid>0000</eid><eidExact>1</eidExact>"
              "</environmentFilter><loginName>{login}</loginName><loginNameExact>1</loginNameExact>"
              "<skipExtensions>1</skipExtensions><skipGroups>1</skipGroups><skipRoles>1</skipRoles></filter>")
GET_EXTENSION = ("<token>{token}</token><environmentFilter><eid>0000</eid><eidExact>1</eidExact></environmentFilter>"
                 "<extension>{number}</extension>")
EXTENSION = ("<token>{token}</token><extension><eid>0000</eid><extension>{number}</extension>"
             "<recordingMode>FULL</recordingMode><im>0</im><video>0</video><voice>{voice}</voice>"
             "<screenCaptureEnabled>0</screenCaptureEnabled><user><id>{user_id}</id></user></extension>")
OK = b"<statusCode>OK</statusCode>"


def login(side: str, i: int) -> str:
    return f"{side}{i}@bench.example"


def user_id(side: str, i: int) -> int:
    return FIRST_ID + i + (0 if side == "raw" else 1_000_000)


def number(side: str, series: int, i: int) -> str:
    """User i's number of a series (1: first, 2: after the change) on a side ("raw" or "conn")."""
    return f"+1415{5 if side == 'raw' else 6}{series}{i:05d}"


def measure_all(concurrency: int, users: int, serve: Callable[[int], None]) -> float:
    """Seconds for `concurrency` threads to run `serve(i)` for every user i (thread t takes i = t, t + C, ...)."""
    errors: list[BaseException] = []

    def run(first: int) -> None:
        try:
            for i in range(first, users, concurrency):
                serve(i)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a raw call failed: {errors[0]!r}") from errors[0]
    return time.perf_counter() - started


class Raw:
    """Prebuilt envelopes POSTed over one httpx.Client shared by the threads."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=concurrency))
        inner = f"<eid>0000</eid><loginName>{LOGIN}</loginName><password>{PASSWORD}</password>"
        answer = self.http.post(url, content=ENVELOPE.format(operation="requestToken", inner=inner))
        self.token = etree.fromstring(answer.content).findtext(".//token")

    def call(self, operation: str, inner: str, **values: Any) -> bytes:
        body = ENVELOPE.format(operation=operation, inner=inner).format(token=self.token, **values).encode()
        response = self.http.post(self.url, content=body, headers=HEADERS)
        if response.status_code != 200 or OK not in response.content:
            raise RuntimeError(f"raw {operation} answered {response.status_code}: {response.text[:300]}")
        return response.content

    def first_sync(self, i: int) -> None:
        answer = self.call("listUsers", LIST_USERS, login=login("raw", i))
        found = int(etree.fromstring(answer).findtext(".//users/id") or 0)
        self.call("createExtension", EXTENSION, number=number("raw", 1, i), voice=1, user_id=found)

    def number_change(self, i: int, operations: Sequence[tuple[str, int]]) -> None:
        """The connector's calls for one number change: (operation, series of the number it names)."""
        for operation, series in operations:
            if operation == "getExtension":
                self.call(operation, GET_EXTENSION, number=number("raw", series, i))
            else:  # the old number (series 1) is stopped, the new one recorded
                self.call(operation, EXTENSION, number=number("raw", series, i), voice=int(series == 2),
                          user_id=user_id("raw", i))

    def close(self) -> None:
        self.http.close()


def change(i: int, series: int) -> UserChange:
    return UserChange("bench", f"u{i}", "upsert", {
        "userName": login("conn", i), "phoneNumbers": [{"type": "work", "value": number("conn", series, i)}]})


def deliver(store: Store, deliverer: Deliverer, changes: Sequence[UserChange], workers: int) -> float:
    """Enqueue `changes` and deliver them with `workers` workers; the seconds from the pool's start to the last."""
    done_before = store.count_by_state()[EventState.DONE]
    store.enqueue(list(changes))
    pool = WorkerPool(deliverer, workers, deliverer.config.idle_poll_seconds)
    started = time.perf_counter()
    pool.start()
    deadline = time.monotonic() + 600
    while (counts := store.count_by_state())[EventState.DONE] - done_before + counts[EventState.DEAD] \
            + counts[EventState.HELD] < len(changes) and time.monotonic() < deadline:
        time.sleep(0.05)  # a coarse watch: the count costs the workers GIL time
    seconds = time.perf_counter() - started
    pool.stop()
    if counts[EventState.DONE] - done_before != len(changes):
        raise RuntimeError(f"not every change was delivered: {({s.value: n for s, n in counts.items()})}")
    return seconds


def calls_per_user(sim: httpx.Client, users: int) -> list[tuple[str, int]]:
    """The connector's calls for its user 0 in the last phase: (operation, series of the number it names);
    RuntimeError unless the phase made `users` times each of those operations (every user the same calls)."""
    series = {number("conn", s, 0): s for s in (1, 2)}
    calls = [c for c in sim.get("/_sim/calls").raise_for_status().json() if c["operation"] not in TOKEN_CALLS]
    mine = [(c["operation"], series[c["extension"]]) for c in calls if c["extension"] in series]
    counts = collections.Counter(c["operation"] for c in calls)
    if counts != collections.Counter({op: n * users for op, n in collections.Counter(op for op, _ in mine).items()}):
        raise RuntimeError(f"the users' number changes did not all make the same calls: {dict(counts)}")
    return mine


def check_state(sim: httpx.Client, side: str, users: int) -> None:
    """Every user's second number linked to it and recorded, its first one linked and stopped."""
    held = {e["extension"]: e for e in sim.get("/_sim/state").raise_for_status().json()["extensions"]}
    for i in range(users):
        new, old = held.get(number(side, 2, i)), held.get(number(side, 1, i))
        if not (new and old and new["user_id"] == old["user_id"] == user_id(side, i) and new["voice"]
                and not old["voice"]):
            raise RuntimeError(f"{side} user {i}: the simulator holds {new} and {old}")


def run(base: str, users: int, concurrency: int, tmp: str) -> dict[str, float]:
    url = f"{base}/provisioning"
    sim = httpx.Client(base_url=base, timeout=60)
    rates: dict[str, float] = {}
    raw = Raw(url, concurrency)
    rates["a"] = users / measure_all(concurrency, users, raw.first_sync)

    store = open_store(f"sqlite:///{os.path.join(tmp, 'bench.db')}")
    store.migrate()
    config = DeliveryConfig(workers=concurrency, idle_poll_seconds=0.005, guard_max_count=users + 1)
    with VerbaClient(url, eid="0000", login=LOGIN, password=PASSWORD, pool_size=concurrency) as client:
        deliverer = Deliverer(store, client, load_mapping("mappings/default.toml"), config)
        rates["b"] = users / deliver(store, deliverer, [change(i, 1) for i in range(users)], concurrency)
        sim.delete("/_sim/calls").raise_for_status()
        rates["c"] = users / deliver(store, deliverer, [change(i, 2) for i in range(users)], concurrency)
    store.close()
    operations = calls_per_user(sim, users)
    rates["d"] = users / measure_all(concurrency, users, lambda i: raw.number_change(i, operations))
    raw.close()
    check_state(sim, "conn", users)
    check_state(sim, "raw", users)
    named = [f"{operation} ({'new' if series == 2 else 'old'})" for operation, series in operations]
    print(f"a number change makes: {', '.join(named)}")
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="users per phase (default 1000)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads or workers per phase (default 4)")
    args = parser.parse_args()
    seed = {"api_users": [{"loginName": LOGIN, "password": PASSWORD}],
            "users": [{"id": user_id(side, i), "loginName": login(side, i), "eid": "0000"}
                      for side in ("raw", "conn") for i in range(args.users)]}
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        seed_path = os.path.join(tmp, "seed.json")
        with open(seed_path, "w") as file:
            json.dump(seed, file)
        process = start_simulator_process(port, seed_path)
        try:
            wait_until_listening(port, process=process, timeout=60)
            rates = run(f"http://127.0.0.1:{port}", args.users, args.concurrency, tmp)
        finally:
            process.terminate()
            process.wait(timeout=10)
    first, change_ratio = rates["b"] / rates["a"], rates["c"] / rates["d"]
    print(f"{args.users} users per phase, concurrency {args.concurrency}, simulator in a subprocess")
    print(f"(a) raw first sync (listUsers + createExtension)  {rates['a']:7.0f} users/s")
    print(f"(b) connector first sync                           {rates['b']:7.0f} users/s")
    print(f"(c) connector number change                        {rates['c']:7.0f} users/s")
    print(f"(d) raw number change, the same calls              {rates['d']:7.0f} users/s")
    print(f"first sync    (b)/(a) {first:.2f}x (goal >= 0.5x) {'PASS' if first >= 0.5 else 'FAIL'}")
    print(f"number change (c)/(d) {change_ratio:.2f}x (goal >= 0.5x) {'PASS' if change_ratio >= 0.5 else 'FAIL'}")
    return 0 if first >= 0.5 and change_ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
