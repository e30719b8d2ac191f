"""Drift check throughput: raw getExtension POSTs against DriftCheck.check(), same run, same simulator.

    python bench/bench_drift.py [--users M] [--concurrency C]

The simulator runs under uvicorn in a subprocess, seeded with M Verba users. Setup: each user gets one
work number, pushed through the real delivery path (Deliverer and C workers on a SQLite store,
mappings/default.toml), so the store and the simulator agree as they do after normal operation.
Phase (a) POSTs prebuilt getExtension envelopes (one token requested first) for the same M extensions
from C threads sharing one httpx.Client. Phase (b) runs DriftCheck(store, client, mapping, C).check()
with a VerbaClient of C connections; it must find all M users in step (no drift, nothing unchecked).
Phase (c) runs the same check with the simulator refusing a listUsers without criterion (the shape
where Verba does not list every user at once), so each user is asked on its own: not part of the goal,
printed to show what a check costs against such a Verba.
It prints extensions/s of each, the ratio (b)/(a) (goal >= 0.5x) and (c)/(a), the SOAP calls (b) and
(c) made (from the simulator's call log) and the time each implies for 100k extensions.
Exit status 1 when the ratio (b)/(a) misses the goal.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import pathlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import httpx
from lxml import etree

from connector.config import DeliveryConfig
from connector.delivery.worker import Deliverer, WorkerPool
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.ops.drift import DriftCheck
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening
from connector.store import EventState, Store, open_store
from connector.verba import VerbaClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "default.toml"
LOGIN, PASSWORD = "bench", "bench-password"
FIRST_ID = 100  # Verba user id of bench user 0
GOAL = 0.5
ENVELOPE = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:v2="http://v2.provisioning.ws.web.verba.com/"><soapenv:Header/><soapenv:Body>'
    "<v2:{operation}>{inner}</v2:{operation}></soapenv:Body></soapenv:Envelope>"
)
GET_EXTENSION = (
    "<token>{token}</token><environmentFilter><eid>0000</eid><eidExact>true</eidExact></environmentFilter>"
    "<extension>{number}</extension>"
)
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
OK = b"<statusCode>OK</statusCode>"


def number(i: int) -> str:
    return f"+1415{2000000 + i:07d}"


def seed_through_delivery(store: Store, url: str, users: int, concurrency: int) -> float:
    """Push one work number for each of the users through delivery; the seconds it took."""
    store.enqueue([
        UserChange("bench", f"u{i}", "upsert", {
            "userName": f"user{i}@bench.example", "phoneNumbers": [{"type": "work", "value": number(i)}]})
        for i in range(users)
    ])
    config = DeliveryConfig(workers=concurrency, idle_poll_seconds=0.005)
    with VerbaClient(url, eid="0000", login=LOGIN, password=PASSWORD, pool_size=concurrency) as client:
        pool = WorkerPool(Deliverer(store, client, load_mapping(str(MAPPING)), config),
                          concurrency, config.idle_poll_seconds)
        started = time.perf_counter()
        pool.start()
        while (counts := store.count_by_state())[EventState.PENDING] + counts[EventState.IN_FLIGHT]:
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        pool.stop()
    if counts[EventState.DONE] != users:
        raise RuntimeError(f"seeding delivered {counts[EventState.DONE]} of {users} users: "
                           f"{({s.value: n for s, n in counts.items()})}")
    return seconds


def run_threads(concurrency: int, items: int, work: Callable[[int], None]) -> float:
    """Seconds for `concurrency` threads to call `work(i)` for every i in range(items), each i once."""
    lock = threading.Lock()
    todo = iter(range(items))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                work(i)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"a call failed: {errors[0]!r}") from errors[0]
    return seconds


def raw_phase(url: str, users: int, concurrency: int) -> float:
    """Extensions/s of raw getExtension POSTs, prebuilt envelopes, C threads sharing one httpx.Client."""
    with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=concurrency)) as http:
        login = f"<eid>0000</eid><loginName>{LOGIN}</loginName><password>{PASSWORD}</password>"
        answer = http.post(url, content=ENVELOPE.format(operation="requestToken", inner=login), headers=HEADERS)
        token = etree.fromstring(answer.content).findtext(".//token")
        template = ENVELOPE.format(operation="getExtension", inner=GET_EXTENSION)
        bodies = [template.format(token=token, number=number(i)).encode() for i in range(users)]

        def get(i: int) -> None:
            response = http.post(url, content=bodies[i], headers=HEADERS)
            if response.status_code != 200 or OK not in response.content or number(i).encode() not in response.content:
                raise RuntimeError(f"raw getExtension answered {response.status_code}: {response.text[:200]}")

        return users / run_threads(concurrency, users, get)


def drift_phase(url: str, store: Store, users: int, concurrency: int) -> tuple[float, list[dict[str, object]]]:
    """Extensions/s of DriftCheck.check() over every user, and the simulator's log of the calls it made; it must
    find them all in step."""
    base = url.rsplit("/", 1)[0]
    httpx.delete(f"{base}/_sim/calls").raise_for_status()
    with VerbaClient(url, eid="0000", login=LOGIN, password=PASSWORD, pool_size=concurrency) as client:
        client.request_token()
        check = DriftCheck(store, client, load_mapping(str(MAPPING)), concurrency)
        started = time.perf_counter()
        report = check.check()
        seconds = time.perf_counter() - started
    if (report.users, report.extensions, report.drifts, report.unchecked) != (users, users, [], []):
        raise RuntimeError(f"the drift check should find {users} users in step; it found {report.users} users, "
                           f"{report.extensions} extensions, drift {report.counts}, unchecked {report.unchecked[:3]}")
    return report.extensions / seconds, httpx.get(f"{base}/_sim/calls", timeout=30).raise_for_status().json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000,
                        help="users with one extension each, all in step (default 2000)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="threads of phase (a), DriftCheck concurrency of (b), delivery workers of the setup "
                             "(default 4)")
    args = parser.parse_args()
    logging.getLogger("connector").setLevel(logging.ERROR)

    seed = {"api_users": [{"loginName": LOGIN, "password": PASSWORD}],
            "users": [{"id": FIRST_ID + i, "loginName": f"user{i}@bench.example", "eid": "0000"}
                      for i in range(args.users)]}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/provisioning"
    with tempfile.TemporaryDirectory() as tmp:
        seed_path = os.path.join(tmp, "seed.json")
        pathlib.Path(seed_path).write_text(json.dumps(seed))
        process = start_simulator_process(port, seed_path)
        store = open_store(f"sqlite:///{os.path.join(tmp, 'bench.db')}")
        store.migrate()
        try:
            wait_until_listening(port, process=process)
            seeding = seed_through_delivery(store, url, args.users, args.concurrency)
            raw = raw_phase(url, args.users, args.concurrency)
            drift, calls = drift_phase(url, store, args.users, args.concurrency)
            httpx.post(f"{base}/_sim/behaviour", json={"unfiltered_list_users": "refused"}).raise_for_status()
            one_by_one, one_by_one_calls = drift_phase(url, store, args.users, args.concurrency)
        finally:
            store.close()
            process.terminate()
            process.wait(timeout=10)

    ratio = drift / raw
    print(f"{args.users} extensions in step (one per user, pushed through delivery in {seeding:.1f} s), "
          f"concurrency {args.concurrency}, simulator in a subprocess")
    print(f"(a) raw httpx getExtension POSTs      {raw:8.0f} extensions/s")
    print(f"(b) DriftCheck.check()                {drift:8.0f} extensions/s   SOAP calls: {counted(calls)}")
    print(f"(c) the same, Verba refusing to list  {one_by_one:8.0f} extensions/s   SOAP calls: "
          f"{counted(one_by_one_calls)}")
    print(f"ratio (b)/(a) {ratio:.2f}x (goal >= {GOAL}x): {'PASS' if ratio >= GOAL else 'FAIL'}; "
          f"(c)/(a) {one_by_one / raw:.2f}x")
    print(f"100k extensions at (b)'s rate: {100_000 / drift / 60:.1f} min, at (c)'s: {100_000 / one_by_one / 60:.1f} "
          f"min (at (a)'s: {100_000 / raw / 60:.1f} min)")
    return 0 if ratio >= GOAL else 1


def counted(calls: list[dict[str, object]]) -> str:
    """The SOAP operations in a call log, counted, e.g. "listUsers 1, getExtension 3"."""
    ops = collections.Counter(c["operation"] for c in calls if c["operation"] not in ("requestToken", "releaseToken"))
    return ", ".join(f"{op} {n}" for op, n in sorted(ops.items())) or "none"


if __name__ == "__main__":
    sys.exit(main())
