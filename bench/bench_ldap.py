"""LDAP watcher benchmarks against a private slapd (Debian's slapd must be installed).

    python bench/bench_ldap.py [--entries N]

(a) A full sync of N entries (default 10,000) against a raw ldap3 paged search of the same
    entries and attributes: the first sync (every entry new: N events) and a repeated one
    (nothing changed). Goal: <= 2x the raw search.
(b) An incremental poll with no changes on 1,000 and on N entries: median of 20 polls.
    Goal: each < 100 ms, ratio N / 1,000 <= 1.5 (the time must not grow with the directory).
(c) 1,000 changed phone numbers -> one poll -> events stored -> pushed to the simulator by
    4 delivery workers: elapsed time and rate.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

import ldap3

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # for the tests' slapd helper
from connector.config import DeliveryConfig, parse_config  # noqa: E402
from connector.delivery.worker import Deliverer, WorkerPool  # noqa: E402
from connector.mapping import load_mapping  # noqa: E402
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening  # noqa: E402
from connector.sources.ldap.watcher import Watcher  # noqa: E402
from connector.store import EventState  # noqa: E402
from connector.store.sqlite import SQLiteStore  # noqa: E402
from connector.verba import VerbaClient  # noqa: E402
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD, SlapdServer  # noqa: E402

PAGE_SIZE = 500


def load(server: SlapdServer, conn: ldap3.Connection, name: str, count: int) -> str:
    base = server.add_ou(conn, name)
    for n in range(count):
        server.add_user(conn, base, f"{name}u{n:06d}", telephoneNumber=f"+1415{n:07d}", mail=f"{name}{n}@example.test")
    time.sleep(1.1)  # one entry in a later second, so the cursor's boundary second holds one entry
    server.add_user(conn, base, f"{name}last")
    return base


def watcher_for(server: SlapdServer, base: str, store: SQLiteStore, secret: pathlib.Path) -> Watcher:
    section = {"url": server.url, "dialect": "openldap", "base": base, "bind_dn": ADMIN_DN,
               "password_file": str(secret), "page_size": PAGE_SIZE, "overlap_seconds": 0, "guard_max_share": 1.0}
    return Watcher(store, parse_config({"ldap": {"bench": section}}, "bench.toml").ldap["bench"])


def raw_search(server: SlapdServer, base: str, watcher: Watcher) -> tuple[float, int]:
    conn = server.admin()
    started = time.perf_counter()
    entries = conn.extend.standard.paged_search(
        base, watcher.dialect.filter, attributes=list(watcher.dialect.attributes), paged_size=PAGE_SIZE, generator=True
    )
    count = sum(1 for entry in entries if entry["type"] == "searchResEntry")
    elapsed = time.perf_counter() - started
    conn.unbind()
    return elapsed, count


def timed(run: object) -> float:
    started = time.perf_counter()
    run()  # type: ignore[operator]
    return time.perf_counter() - started


def bench_full_and_polls(server: SlapdServer, conn: ldap3.Connection, entries: int, work: pathlib.Path) -> None:
    secret = work / "pw"
    secret.write_text(ADMIN_PASSWORD)
    started = time.perf_counter()
    small, large = load(server, conn, "b1k", 1000), load(server, conn, "bbig", entries)
    print(f"loaded {1000 + entries + 2} entries into slapd in {time.perf_counter() - started:.1f} s")

    store = SQLiteStore(str(work / "full.db"))
    store.migrate()
    watcher = watcher_for(server, large, store, secret)
    raw, count = raw_search(server, large, watcher)
    first = timed(lambda: watcher.run(full=True))
    again = timed(lambda: watcher.run(full=True))
    raw_again, _ = raw_search(server, large, watcher)
    raw = min(raw, raw_again)
    print(f"(a) full sync of {count} entries: raw ldap3 paged search {raw:.2f} s; "
          f"first sync ({count} events) {first:.2f} s = {first / raw:.2f}x; "
          f"repeated sync (no changes) {again:.2f} s = {again / raw:.2f}x   (goal <= 2x)")

    medians = {}
    for label, base in (("1k", small), (f"{entries // 1000}k", large)):
        poll_store = SQLiteStore(str(work / f"poll-{label}.db"))
        poll_store.migrate()
        poller = watcher_for(server, base, poll_store, secret)
        poller.run()
        samples = [timed(poller.run) for _ in range(20)]
        medians[label] = statistics.median(samples)
        poller.close()
        poll_store.close()
    (l1, t1), (l2, t2) = medians.items()
    print(f"(b) incremental poll, no changes: {l1} {t1 * 1000:.1f} ms, {l2} {t2 * 1000:.1f} ms, "
          f"ratio {t2 / t1:.2f}   (goal: each < 100 ms, ratio <= 1.5)")
    watcher.close()
    store.close()


def bench_changes_to_verba(server: SlapdServer, conn: ldap3.Connection, work: pathlib.Path) -> None:
    count = 1000
    base = server.add_ou(conn, "chg")
    seed = {"api_users": [{"loginName": "bench", "password": "bench-pw"}],
            "users": [{"id": n + 10, "loginName": f"chg{n:04d}", "eid": "0000"} for n in range(count)]}
    (work / "seed.json").write_text(json.dumps(seed))
    dns = [server.add_user(conn, base, f"chg{n:04d}", telephoneNumber=f"+1212555{n:04d}") for n in range(count)]
    port = free_port()
    simulator = start_simulator_process(port, str(work / "seed.json"))
    try:
        wait_until_listening(port)
        store = SQLiteStore(str(work / "verba.db"))
        store.migrate()
        (work / "pw").write_text(ADMIN_PASSWORD)
        watcher = watcher_for(server, base, store, work / "pw")
        # Every user's number changes at once: intended here, so the stop-recording guard must not hold it.
        config = DeliveryConfig(workers=4, idle_poll_seconds=0.005, guard_max_count=10 * count)
        url = f"http://127.0.0.1:{port}/provisioning"
        with VerbaClient(url, eid="0000", login="bench", password="bench-pw", pool_size=4) as client:
            pool = WorkerPool(Deliverer(store, client, load_mapping("mappings/default.toml"), config), 4, 0.005)
            pool.start()
            watcher.run()
            wait_delivered(store, count)  # the initial sync, not measured
            for n, dn in enumerate(dns):
                server.modify(conn, dn, telephoneNumber=f"+1646555{n:04d}")
            started = time.perf_counter()
            result = watcher.run()
            polled = time.perf_counter() - started
            wait_delivered(store, 2 * count)
            elapsed = time.perf_counter() - started
            pool.stop()
        print(f"(c) {count} directory changes: poll + store {polled:.2f} s ({result.counts['upsert']} events), "
              f"pushed to the simulator after {elapsed:.2f} s = {count / elapsed:.0f} changes/s end to end")
        watcher.close()
        store.close()
    finally:
        simulator.terminate()
        simulator.wait(10)


def wait_delivered(store: SQLiteStore, done: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (counts := store.count_by_state())[EventState.DONE] < done:
        if counts[EventState.DEAD] or time.monotonic() > deadline:
            raise SystemExit(f"delivery did not finish: {counts}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    with SlapdServer.start() as server, tempfile.TemporaryDirectory(prefix="bench-ldap-") as work:
        conn = server.admin()
        bench_full_and_polls(server, conn, args.entries, pathlib.Path(work))
        bench_changes_to_verba(server, conn, pathlib.Path(work))
        conn.unbind()


if __name__ == "__main__":
    main()
