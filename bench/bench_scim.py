"""SCIM intake: throughput and latency through uvicorn against a bare endpoint, and PATCH-to-SOAP latency.

    python bench/bench_scim.py [--seconds N] [--concurrency C] [--changes K]

Phase 1 runs two servers in turn, each under uvicorn in its own subprocess on a SQLite store
(WAL, synchronous=FULL): the SCIM app, and a bare starlette endpoint that parses the JSON body
and durably enqueues one user-change event in the same store. C client threads POST new users,
then PATCH existing ones (replace title), for N seconds each; it prints requests/s, p50 and p99,
and SCIM's share of the bare throughput (goal: >= 0.5x).

Phase 2 runs the SCIM app and the delivery workers in this process (idle_poll_seconds = 0.01)
against the Verba simulator in a subprocess. K times, at idle, one PATCH moves a user's work
phone number; it prints the time from sending the PATCH to the simulator receiving the
createExtension for the new number, p50/p99/max (goal: p99 < 250 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connector.config import DeliveryConfig, ScimClient, ScimConfig  # noqa: E402
from connector.delivery.worker import Deliverer, WorkerPool  # noqa: E402
from connector.events import UserChange  # noqa: E402
from connector.mapping import load_mapping  # noqa: E402
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening  # noqa: E402
from connector.sources.scim import create_scim_app  # noqa: E402
from connector.store import Store  # noqa: E402
from connector.store.sqlite import SQLiteStore  # noqa: E402
from connector.verba import VerbaClient  # noqa: E402
from tests.scim.live import serve  # noqa: E402

TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
CONFIG = ScimConfig(clients=(ScimClient("bench", (TOKEN,)),))
LOGIN, PASSWORD = "bench", "bench-password"
SEED = {"api_users": [{"loginName": LOGIN, "password": PASSWORD}],
        "users": [{"id": 3, "loginName": "bench@example.com", "eid": "0000"}]}


def bare_app(store: Store) -> Starlette:
    """The baseline: parse the body, enqueue one durable event, answer JSON."""

    async def write(request: Request) -> Response:
        data = json.loads(await request.body())
        user_id = request.path_params.get("id", data.get("userName", ""))
        change = UserChange("bench", user_id, "upsert", {"userName": str(user_id), "attributes": data})
        await run_in_threadpool(store.enqueue, [change])
        return Response(json.dumps({"id": user_id, **data}), 201 if request.method == "POST" else 200,
                        media_type="application/scim+json")

    return Starlette(routes=[Route("/scim/v2/Users", write, methods=["POST"]),
                             Route("/scim/v2/Users/{id}", write, methods=["PATCH"])])


def serve_forever(kind: str, port: int, path: str) -> None:
    store = SQLiteStore(path)
    store.migrate()
    app = create_scim_app(store, CONFIG) if kind == "scim" else bare_app(store)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def measure(
    concurrency: int, seconds: float, call: Callable[[httpx.Client, int, int], None]
) -> tuple[float, list[float]]:
    """Requests/s and every latency (s) of `call(http, worker, n)` run by `concurrency` threads."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def run(worker: int) -> None:
        with httpx.Client(headers=HEADERS, timeout=10) as http:
            try:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    call(http, worker, len(latencies[worker]))
                    latencies[worker].append(time.perf_counter() - started)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(w,)) for w in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a request failed: {errors[0]!r}") from errors[0]
    flat = [t for ts in latencies for t in ts]
    return len(flat) / (time.perf_counter() - started), flat


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def run_server(kind: str, tmp: str, concurrency: int, seconds: float) -> dict[str, tuple[float, list[float]]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port),
                                "--db", os.path.join(tmp, f"{kind}.db")])
    try:
        wait_until_listening(port, process=process)
        url = f"http://127.0.0.1:{port}/scim/v2/Users"
        ids: list[list[str]] = [[] for _ in range(concurrency)]

        def post(http: httpx.Client, worker: int, n: int) -> None:
            response = http.post(url, json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                            "userName": f"{kind}-{worker}-{n}@example.com", "active": True,
                                            "emails": [{"type": "work", "value": f"u{worker}.{n}@example.com"}],
                                            "phoneNumbers": [{"type": "work", "value": f"+1415{worker:02d}{n:05d}"}]})
            if response.status_code != 201:
                raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")
            ids[worker].append(response.json()["id"])

        def patch(http: httpx.Client, worker: int, n: int) -> None:
            user_id = ids[worker][n % len(ids[worker])]
            response = http.patch(f"{url}/{user_id}", json={
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "title", "value": f"title {n}"}]})
            if response.status_code != 200:
                raise RuntimeError(f"PATCH answered {response.status_code}: {response.text[:200]}")

        return {"POST": measure(concurrency, seconds, post), "PATCH": measure(concurrency, seconds, patch)}
    finally:
        process.terminate()
        process.wait(10)


def intake_phase(concurrency: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bare = run_server("bare", tmp, concurrency, seconds)
        scim = run_server("scim", tmp, concurrency, seconds)
    print(f"intake, {concurrency} client threads, {seconds:g} s per run, SQLite synchronous=FULL:")
    for method in ("POST", "PATCH"):
        for name, results in (("bare endpoint", bare), ("SCIM", scim)):
            rate, latencies = results[method]
            print(f"  {method:5} {name:13} {rate:8.0f} req/s   p50 {percentile(latencies, 50) * 1000:6.1f} ms"
                  f"   p99 {percentile(latencies, 99) * 1000:6.1f} ms")
        print(f"  {method:5} SCIM / bare: {scim[method][0] / bare[method][0]:.2f}x  (goal >= 0.5x)")


def push_latency_phase(changes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seed = os.path.join(tmp, "seed.json")
        with open(seed, "w") as f:
            json.dump(SEED, f)
        port = free_port()
        simulator = start_simulator_process(port, seed)
        store = SQLiteStore(os.path.join(tmp, "connector.db"))
        store.migrate()
        client = VerbaClient(f"http://127.0.0.1:{port}/provisioning", eid="0000", login=LOGIN, password=PASSWORD)
        delivery = DeliveryConfig(workers=2, idle_poll_seconds=0.01)
        pool = WorkerPool(Deliverer(store, client, load_mapping("mappings/entra.toml"), delivery), 2, 0.01)
        try:
            wait_until_listening(port, process=simulator)
            pool.start()
            with serve(create_scim_app(store, CONFIG)) as url, httpx.Client(base_url=url + "/scim/v2",
                                                                             headers=HEADERS, timeout=10) as http:
                sim = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
                user = http.post("/Users", json={"userName": "bench@example.com"}).json()["id"]
                delays = [one_push(http, sim, user, n) for n in range(changes)]
        finally:
            pool.stop()
            client.close()
            store.close()
            simulator.terminate()
            simulator.wait(10)
    print(f"SCIM PATCH accepted -> createExtension at the simulator, {changes} changes at idle "
          "(workers poll every 10 ms):")
    print(f"  p50 {percentile(delays, 50) * 1000:.1f} ms   p99 {percentile(delays, 99) * 1000:.1f} ms"
          f"   max {max(delays) * 1000:.1f} ms  (goal p99 < 250 ms)")


def one_push(http: httpx.Client, sim: httpx.Client, user: str, n: int) -> float:
    number = f"+1415555{n:04d}"
    sent = time.time()
    response = http.patch(f"/Users/{user}", json={"Operations": [
        {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": number}]})
    if response.status_code != 200:
        raise RuntimeError(f"PATCH answered {response.status_code}: {response.text[:200]}")
    deadline = time.time() + 10
    while time.time() < deadline:
        calls = sim.get("/_sim/calls").json()
        hits = [c["at"] for c in calls if c["operation"] == "createExtension" and c.get("extension") == number]
        if hits:
            time.sleep(0.05)  # idle again before the next change
            return hits[0] - sent
        time.sleep(0.002)
    raise RuntimeError(f"no createExtension for {number} within 10 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--serve", choices=["scim", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.serve, args.port, args.db)
        return
    intake_phase(args.concurrency, args.seconds)
    push_latency_phase(args.changes)


if __name__ == "__main__":
    main()
