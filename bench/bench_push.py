"""Push throughput: raw httpx POSTs against VerbaClient.create_extension, same run, same simulator.

    python bench/bench_push.py [--seconds N] [--concurrency C]

The simulator runs under uvicorn in a subprocess, so client and server do not share a GIL.
Phase (a) POSTs prebuilt createExtension envelopes from C threads sharing one httpx.Client;
phase (b) pushes the same records with VerbaClient.create_extension (simulator reset in
between, so each record is new: one createExtension) from C threads sharing one VerbaClient;
phase (c) runs the whole delivery path with C workers: durable events in a SQLite store
(WAL, synchronous=FULL), claim, mapping, createExtension through VerbaClient, completion.
It prints calls/s and the ratios to (a) (goal: >= 0.5x).
"""

from __future__ import annotations

import argparse
import json
import os
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
from connector.records import ExtensionRecord
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening
from connector.store import EventState, open_store
from connector.verba import VerbaClient

LOGIN, PASSWORD, USER_ID = "bench", "bench-password", 3
SEED = {
    "api_users": [{"loginName": LOGIN, "password": PASSWORD}],
    "users": [{"id": USER_ID, "loginName": "bench@example.com", "eid": "0000"}],
}
ENVELOPE = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:v2="http://v2.provisioning.ws.web.verba.com/"><soapenv:Header/><soapenv:Body>'
    "<v2:{operation}>{inner}</v2:{operation}></soapenv:Body></soapenv:Envelope>"
)
EXTENSION = (
    "<token>{token}</token><extension><eid>0000</eid><extension>{number}</extension>"
    "<recordingMode>FULL</recordingMode><im>0</im><video>0</video><voice>1</voice>"
    f"<screenCaptureEnabled>0</screenCaptureEnabled><user><id>{USER_ID}</id></user></extension>"
)
OK = b"<statusCode>OK</statusCode>"


def number(worker: int, n: int) -> str:
    return f"+1555{worker:02d}{n:07d}"


def measure(concurrency: int, seconds: float, push: Callable[[int, int], None]) -> float:
    """Calls/s of `push(worker, n)` run by `concurrency` threads for `seconds`."""
    counts = [0] * concurrency
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def run(worker: int) -> None:
        try:
            while time.perf_counter() < deadline:
                push(worker, counts[worker])
                counts[worker] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(worker,)) for worker in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a push failed: {errors[0]!r}") from errors[0]
    return sum(counts) / (time.perf_counter() - started)


def raw_phase(url: str, concurrency: int, seconds: float) -> float:
    with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=concurrency)) as http:
        login = f"<eid>0000</eid><loginName>{LOGIN}</loginName><password>{PASSWORD}</password>"
        answer = http.post(url, content=ENVELOPE.format(operation="requestToken", inner=login))
        token = etree.fromstring(answer.content).findtext(".//token")
        template = ENVELOPE.format(operation="createExtension", inner=EXTENSION)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}

        def push(worker: int, n: int) -> None:
            body = template.format(token=token, number=number(worker, n)).encode()
            response = http.post(url, content=body, headers=headers)
            if response.status_code != 200 or OK not in response.content:
                raise RuntimeError(f"raw createExtension answered {response.status_code}: {response.text[:200]}")

        return measure(concurrency, seconds, push)


def client_phase(url: str, concurrency: int, seconds: float) -> float:
    with VerbaClient(url, eid="0000", login=LOGIN, password=PASSWORD, pool_size=concurrency) as client:
        client.request_token()

        def push(worker: int, n: int) -> None:
            record = ExtensionRecord(number(worker, n), USER_ID, "FULL", True, False, False, False, eid="0000")
            if client.create_extension(record) is not True:
                raise RuntimeError("createExtension of a new extension did not create it")

        return measure(concurrency, seconds, push)


def pipeline_phase(url: str, concurrency: int, seconds: float, expected_rate: float) -> float:
    """Events/s delivered end to end by `concurrency` workers from a backlog sized to last about `seconds`."""
    backlog = max(200, int(expected_rate * seconds))
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{os.path.join(tmp, 'bench.db')}")
        store.migrate()
        store.enqueue([
            UserChange("bench", f"user{n}", "upsert",
                       {"userName": "bench@example.com",
                        "phoneNumbers": [{"type": "work", "value": f"+1415{2000000 + n:07d}"}]})
            for n in range(backlog)
        ])
        config = DeliveryConfig(workers=concurrency, idle_poll_seconds=0.005)
        with VerbaClient(url, eid="0000", login=LOGIN, password=PASSWORD, pool_size=concurrency) as client:
            pool = WorkerPool(Deliverer(store, client, load_mapping("mappings/default.toml"), config),
                              concurrency, config.idle_poll_seconds)
            started = time.perf_counter()
            pool.start()
            while (counts := store.count_by_state())[EventState.DONE] + counts[EventState.DEAD] < backlog:
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            pool.stop()
        store.close()
    if counts[EventState.DEAD]:
        raise RuntimeError(f"{counts[EventState.DEAD]} events dead-lettered during the benchmark")
    return backlog / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per phase (default 3)")
    parser.add_argument("--concurrency", type=int, default=4, help="threads per phase (default 4)")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w", suffix=".json") as seed:
        json.dump(SEED, seed)
        seed.flush()
        process = start_simulator_process(port, seed.name)
        try:
            wait_until_listening(port, process=process)
            raw = raw_phase(f"{base}/provisioning", args.concurrency, args.seconds)
            httpx.post(f"{base}/_sim/reset").raise_for_status()
            zeep = client_phase(f"{base}/provisioning", args.concurrency, args.seconds)
            httpx.post(f"{base}/_sim/reset").raise_for_status()
            pipeline = pipeline_phase(f"{base}/provisioning", args.concurrency, args.seconds, zeep)
        finally:
            process.terminate()
            process.wait(timeout=10)

    print(f"concurrency {args.concurrency}, {args.seconds:g} s per phase, simulator in a subprocess")
    print(f"(a) raw httpx createExtension POSTs   {raw:8.0f} calls/s")
    print(f"(b) VerbaClient.create_extension      {zeep:8.0f} calls/s")
    print(f"(c) delivery workers, store to Verba  {pipeline:8.0f} events/s")
    print(f"ratio (b)/(a) {zeep / raw:.2f}x (goal >= 0.5x)")
    print(f"ratio (c)/(a) {pipeline / raw:.2f}x")


if __name__ == "__main__":
    main()
