"""Delivery throughput of 1, 2 and 3 `connector run` instances sharing one PostgreSQL, total workers fixed.

    python bench/bench_scale.py [--users M] [--workers W] [--instances 1,2,3] [--latency-ms L] [--repeat R]

A private PostgreSQL cluster (tests/postgres_server.py, fsync=on) holds the store; the Verba
simulator runs in its own process, seeded with the M Verba users the events name, and a fault
rule delays every SOAP call by L ms (the simulator sleeps without holding a thread, so it is a
target of fixed latency, not a bottleneck of its own). For each instance count N, and each
repeat: a fresh schema, N real `connector run` processes, each with its own `[instance] name`,
W/N delivery workers and SCIM and admin on free ports; once all of them listen (their workers
run), M events, one per user and shaped as the SCIM source stores them, are enqueued in one
transaction, and the clock runs from that commit until the store counts all M done. Each event
is a new user: one listUsers and one createExtension, so at least 2 x L ms per push.

The table gives the best run of each N (and the spread of the runs when repeated), pushes/s, the
ratio to 1 instance, and where the CPU went during the best run: CPU seconds per wall second of
the connectors (all instances), the simulator, PostgreSQL (postmaster and backends) and
everything else on the machine ("others": this script and whatever else runs), and how busy all
cores were. With W workers the latency alone allows about W / (2 x L ms) pushes/s. More instances
help only where one process is the limit (its GIL: about one core); once the machine's cores are
busy, the instances share them and cannot go faster. So the default W (24: a ceiling of 400
pushes/s at 30 ms) is large enough that the latency is not the limit: with 12, each push's own
serial work (PostgreSQL round trips, CPU) on top of 2 x 30 ms held every instance count to about
the same rate. On 2 cores shared with PostgreSQL and the simulator, the most more instances can
gain is what the cores left idle by one GIL allow (the last line computes it from the measured CPU).

Goal (issue 15): throughput grows with instances: the best run with more than one instance at least
1.1x the best with one. Exit status 1 when it does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # for the tests' cluster helper
from connector.events import UserChange  # noqa: E402
from connector.simulator.process import free_port, wait_until_listening  # noqa: E402
from connector.store import EventState, open_store  # noqa: E402
from tests.postgres_server import PostgresServer, ServerUnavailable  # noqa: E402

LOGIN, PASSWORD = "bench", "bench-password"
CLIENT = "idp"  # the SCIM client name: the events' source
FIRST_USER_ID = 1000
TICKS = os.sysconf("SC_CLK_TCK")
REPO = pathlib.Path(__file__).resolve().parent.parent


def user_name(n: int) -> str:
    return f"user{n:05d}@bench.example.com"


def seed(users: int) -> dict[str, object]:
    return {
        "environments": [{"eid": "0000", "shortName": "default"}],
        "api_users": [{"loginName": LOGIN, "password": PASSWORD}],
        "users": [{"id": FIRST_USER_ID + n, "loginName": user_name(n), "eid": "0000"} for n in range(users)],
    }


def scim_change(n: int) -> UserChange:
    """One user as the SCIM source stores it after a POST /Users (source: the client's name)."""
    resource_id = f"2819c223-7f76-453a-919d-{n:012d}"
    state = {
        "userName": user_name(n),
        "active": True,
        "displayName": f"User {n}",
        "name": {"givenName": "User", "familyName": f"Number{n}"},
        "emails": [{"value": user_name(n), "type": "work", "primary": True}],
        "phoneNumbers": [{"value": f"+1 415 2{n:06d}", "type": "work"}],
        "groups": [],
        "attributes": {},
    }
    return UserChange(CLIENT, resource_id, "upsert", state, cause=f"scim POST User/{resource_id}")


# ---------------------------------------------------------------- CPU accounting from /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), 0 once it is gone."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def children(pid: int) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    values = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSample:
    connectors: float
    simulator: float
    postgres: float
    machine: tuple[float, float]


def sample_cpu(connectors: list[int], simulator: int, postmaster: int) -> CpuSample:
    return CpuSample(
        sum(cpu_seconds(pid) for pid in connectors),
        cpu_seconds(simulator),
        cpu_seconds(postmaster) + sum(cpu_seconds(pid) for pid in children(postmaster)),
        machine_busy(),
    )


# ---------------------------------------------------------------- processes


class Simulator:
    """`connector simulator` in a child process, with every call delayed by a fault rule."""

    def __init__(self, workdir: pathlib.Path, users: int, latency_ms: float) -> None:
        self.port = free_port()
        self.latency_ms = latency_ms
        path = workdir / "sim-seed.json"
        path.write_text(json.dumps(seed(users)))
        with (workdir / "simulator.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "simulator", "--port", str(self.port), "--seed", str(path)],
                stdout=log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        wait_until_listening(self.port, process=self.process, timeout=30)
        self.url = f"http://127.0.0.1:{self.port}/provisioning"

    def reset(self) -> None:
        """Back to the seed (no extensions, no call log), then the latency rule again."""
        self.http.post("/_sim/reset").raise_for_status()
        if self.latency_ms:
            self.http.post("/_sim/faults", json={"latency_ms": self.latency_ms}).raise_for_status()

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(10)


class Instance:
    """One `python -m connector.cli run` with its own config, instance name and ports."""

    def __init__(self, workdir: pathlib.Path, name: str, store_url: str, target_url: str, workers: int) -> None:
        self.workdir = workdir
        self.name = name
        self.scim_port = free_port()
        self.admin_port = free_port()
        (workdir / "sim-password").write_text(PASSWORD)
        (workdir / "scim-token").write_text("bench-scim-token-0123456789abcdef")
        lines = [
            "[instance]", f"name = {json.dumps(name)}",
            "[store]", f"url = {json.dumps(store_url)}",
            "[target]", f"url = {json.dumps(target_url)}", f"login = {json.dumps(LOGIN)}",
            f"password_file = {json.dumps(str(workdir / 'sim-password'))}",
            "[mapping]", f"file = {json.dumps(str(REPO / 'mappings' / 'default.toml'))}",
            "[delivery]", f"workers = {workers}",
            "[admin]", f'listen = "127.0.0.1:{self.admin_port}"',
            "[scim]", f'listen = "127.0.0.1:{self.scim_port}"',
            "[[scim.clients]]", f"name = {json.dumps(CLIENT)}",
            f"token_file = {json.dumps(str(workdir / 'scim-token'))}",
            "[logging]", 'format = "json"',
        ]
        self.config = workdir / "connector.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = workdir / "connector.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "run", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def wait_listening(self) -> None:
        """SCIM listens once the delivery workers run."""
        try:
            wait_until_listening(self.scim_port, process=self.process, timeout=60)
        except RuntimeError:
            raise RuntimeError(f"connector {self.workdir.name} exited with status {self.process.returncode}:\n"
                               + self.log.read_text(errors="replace")[-3000:]) from None

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


@contextlib.contextmanager
def instances(workdir: pathlib.Path, count: int, store_url: str, target_url: str,
              workers: int) -> Iterator[list[Instance]]:
    started: list[Instance] = []
    try:
        for n in range(count):
            directory = workdir / f"instance-{n + 1}"
            directory.mkdir()
            started.append(Instance(directory, f"bench-{n + 1}", store_url, target_url, workers))
        for instance in started:
            instance.wait_listening()
        yield started
    finally:
        for instance in started:
            instance.terminate()
        for instance in started:
            instance.wait()


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    instances: int
    workers: int
    events: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds per wall second, by component, and the machine's busy share

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def one_run(server: PostgresServer, simulator: Simulator, work: pathlib.Path, count: int, workers: int,
            users: int, timeout: float) -> Run:
    simulator.reset()
    dsn = server.create_schema()
    store = open_store(dsn)
    try:
        store.migrate()
        changes = [scim_change(n) for n in range(users)]
        with instances(work, count, dsn, simulator.url, workers) as running:
            pids = [instance.process.pid for instance in running]
            names = sorted(instance.name for instance in store.live_instances()[1])
            if names != sorted(instance.name for instance in running):
                raise RuntimeError(f"the store lists instances {names}, expected {[i.name for i in running]}")
            postmaster = int((server.directory / "data" / "postmaster.pid").read_text().split()[0])
            store.enqueue(changes)  # one transaction: every worker sees the whole backlog at once
            started = time.perf_counter()
            before = sample_cpu(pids, simulator.process.pid, postmaster)
            deadline = time.monotonic() + timeout
            while (counts := store.count_by_state())[EventState.DONE] < users:
                if counts[EventState.DEAD] or time.monotonic() > deadline:
                    raise RuntimeError(f"delivery did not finish ({count} instances): {dict(counts)}; "
                                       f"see the logs under {work}")
                for instance in running:
                    if instance.process.poll() is not None:
                        raise RuntimeError(f"connector {instance.workdir.name} exited during the run:\n"
                                           + instance.log.read_text(errors="replace")[-3000:])
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            after = sample_cpu(pids, simulator.process.pid, postmaster)
    finally:
        store.close()
    busy = (after.machine[0] - before.machine[0]) / max(1.0, after.machine[1] - before.machine[1])
    cpu = {
        "connectors": (after.connectors - before.connectors) / seconds,
        "simulator": (after.simulator - before.simulator) / seconds,
        "postgres": (after.postgres - before.postgres) / seconds,
        "machine": busy,
    }
    cpu["others"] = max(0.0, busy * (os.cpu_count() or 1) - cpu["connectors"] - cpu["simulator"] - cpu["postgres"])
    return Run(count, workers, users, seconds, cpu)


# ---------------------------------------------------------------- the table


GROWTH_GOAL = 1.1


def report(runs: dict[int, list[Run]], args: argparse.Namespace) -> bool:
    """Print the table; whether throughput grew with instances (GROWTH_GOAL)."""
    ceiling = args.workers / (2 * args.latency_ms / 1000) if args.latency_ms else float("inf")
    print(f"{args.users} events (one new user each: listUsers + createExtension), {args.workers} workers in total, "
          f"simulator latency {args.latency_ms:g} ms per call, {os.cpu_count()} CPUs, best of {args.repeat}")
    print(f"latency-bound ceiling: {args.workers} workers / (2 x {args.latency_ms:g} ms) = {ceiling:,.0f} pushes/s")
    print()
    print(f"{'instances':>9} {'workers each':>12} {'events':>7} {'seconds':>8} {'pushes/s':>9} {'spread':>7} "
          f"{'vs 1':>6}  | CPU/s: {'connectors':>10} {'simulator':>9} {'postgres':>8} {'others':>6}  "
          f"{'machine busy':>12}")
    baseline = max(r.rate for r in runs[min(runs)])
    for count, results in runs.items():
        best = max(results, key=lambda r: r.rate)
        rates = [r.rate for r in results]
        spread = f"±{(max(rates) - min(rates)) / 2 / statistics.mean(rates) * 100:.0f}%" if len(rates) > 1 else "-"
        cpu = best.cpu
        print(f"{count:>9} {best.workers:>12} {best.events:>7} {best.seconds:>8.2f} {best.rate:>9.1f} {spread:>7} "
              f"{best.rate / baseline:>5.2f}x  |        {cpu['connectors']:>10.2f} {cpu['simulator']:>9.2f} "
              f"{cpu['postgres']:>8.2f} {cpu['others']:>6.2f}  {cpu['machine'] * 100:>11.0f}%")
    one = max(runs[min(runs)], key=lambda r: r.rate)
    per_push = {key: one.cpu[key] / one.rate * 1000 for key in ("connectors", "simulator", "postgres")}
    total = sum(per_push.values())
    cores = os.cpu_count() or 1
    print()
    print(f"CPU per push ({min(runs)} instance(s)): connector {per_push['connectors']:.1f} ms, simulator "
          f"{per_push['simulator']:.1f} ms, PostgreSQL {per_push['postgres']:.1f} ms = {total:.1f} ms: "
          f"{cores} idle cores would allow {cores / total * 1000:,.0f} pushes/s; one instance (one GIL, at most one "
          f"core) {1000 / per_push['connectors']:,.0f} pushes/s")
    more = [r.rate for count, results in runs.items() if count > min(runs) for r in results]
    if not more:
        return True
    growth = max(more) / baseline
    passed = growth >= GROWTH_GOAL
    print(f"growth with instances: {growth:.2f}x (goal >= {GROWTH_GOAL:g}x) {'PASS' if passed else 'FAIL'}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The total number of workers stays fixed: --workers 24 runs 24, 12+12 and 8+8+8.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--users", type=int, default=1200, help="events per run, one per user")
    parser.add_argument("--workers", type=int, default=24,
                        help="delivery workers in total, split evenly over the instances")
    parser.add_argument("--instances", default="1,2,3", help="instance counts to run, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="delay the simulator adds to every SOAP call")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each instance count, interleaved; the table shows the best")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take before it fails")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs and logs)")
    args = parser.parse_args()
    counts = [int(n) for n in args.instances.split(",")]
    for count in counts:
        if count < 1 or args.workers % count:
            parser.error(f"--workers {args.workers} does not split evenly over {count} instances")

    try:
        server = PostgresServer.start()
    except ServerUnavailable as error:
        raise SystemExit(f"PostgreSQL is needed: {error}") from None
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-scale-"))
    runs: dict[int, list[Run]] = {count: [] for count in counts}
    try:
        simulator = Simulator(work, args.users, args.latency_ms)
        try:
            for attempt in range(args.repeat):
                for count in counts:  # interleaved, so a slow spell of the machine hits every count alike
                    run_dir = work / f"run-{attempt + 1}-{count}"
                    run_dir.mkdir()
                    run = one_run(server, simulator, run_dir, count, args.workers // count, args.users,
                                  args.timeout)
                    runs[count].append(run)
                    print(f"run {attempt + 1}: {count} instance(s) x {run.workers} workers: {run.seconds:.2f} s, "
                          f"{run.rate:.1f} pushes/s, machine {run.cpu['machine'] * 100:.0f}% busy", file=sys.stderr)
        finally:
            simulator.close()
    finally:
        server.stop()
        if args.keep:
            print(f"configs and logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if report(runs, args) else 1


if __name__ == "__main__":
    sys.exit(main())
