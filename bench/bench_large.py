"""100k users end to end: a private slapd -> the real `connector run` -> the Verba simulator.

    python bench/bench_large.py [--users N] [--page-size P] [--poll-seconds S] [--overlap-seconds O]
                                [--polls K] [--profile SECONDS] [--workdir DIR]

Not part of `make test` or `make bench`: `make bench-large` runs it (Debian's slapd must be installed).

1. load: N users (default 100,000), `uid=uNNNNNN` with a unique work number (`telephoneNumber`),
   written as LDIF and put into a private slapd (tests/ldap/slapd_server.py) with `slapadd -q`
   while slapd is stopped (much faster than ldapadd; slapadd stamps entryUUID and modifyTimestamp).
2. The Verba simulator (`connector simulator`, its own process) is seeded with one Verba user per
   entry, loginName = the uid (mappings/default.toml: an OpenLDAP user's Verba login is its `uid`).
3. `connector run` (its own process) with one `[ldap.corp]` (openldap, the simulator as target, the
   default SQLite store, the shipped [delivery] defaults; no scheduled full sync or drift check):
   - read+store: from the process's start until the watermark shows the first (full) run done with
     N users known; the connector's own time for that run (`connector_ldap_poll_duration_seconds`,
     without process start-up) is printed too. The run commits its events page by page, and delivery
     pushes them from the first page on: how many were done by the end of this phase is printed too.
   - push: from then until the store counts all N events done (each: listUsers + createExtension),
     then the simulator is asked how many of its extensions are linked to a user (must be N).
   - no-change poll: the connector's own duration of scheduled incremental polls, from the
     `connector_ldap_poll_duration_seconds` histogram on /metrics (sum and count before and after each
     poll: Watcher.run inside the running process, i.e. its LDAP searches, the scope check of
     `scope_check_per_poll` known users and the commit of the new cursor; not the scheduler's tick),
     with how many entries it read (the watermark's counts). Each poll re-reads `overlap_seconds`
     before the later of the latest modifyTimestamp seen and the previous poll's start, so once
     `overlap_seconds` has passed since the load, with nothing written since, a poll reads no entry:
     the goal is on the median of K such polls, each of which must read none.
   The connector's peak RSS is VmHWM from /proc/PID/status (the whole run, all phases); CPU seconds
   of the connector, the simulator and slapd per phase come from /proc/PID/stat, and how busy the
   machine's cores were from /proc/stat (other work on the machine counts there).
The store is read only through a read-only SQLite connection of this process.

Goals (issue 17): push phase <= 10 minutes, peak RSS < 500 MB, no-change poll < 100 ms (median of
the K polls). Exit status 1 when a goal is missed or something went wrong.

`--profile SECONDS` runs `py-spy record` on the connector for that long from the start of the push
phase and prints the functions with the most samples (the raw profile stays in the work directory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # for the tests' slapd helper
from connector.simulator.process import free_port, wait_until_listening  # noqa: E402
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD, SlapdServer  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
SLAPADD = "/usr/sbin/slapadd"
LOGIN, PASSWORD = "bench", "bench-large-pa55"
DIRECTORY = "corp"
FIRST_VERBA_ID = 10
TICKS = os.sysconf("SC_CLK_TCK")
PUSH_GOAL_SECONDS = 600.0
RSS_GOAL_MB = 500.0
POLL_GOAL_MS = 100.0


def uid(n: int) -> str:
    return f"u{n:06d}"


def work_number(n: int) -> str:
    """A unique, valid NANP number per user: +1 212 200-0000 onwards (ten million of them)."""
    return f"+1 212 {200 + n // 10000:03d} {n % 10000:04d}"


def write_ldif(path: pathlib.Path, base: str, users: int) -> None:
    with path.open("w") as out:
        for n in range(users):
            name = uid(n)
            out.write(f"dn: uid={name},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: {name}\n"
                      f"cn: User {name}\nsn: {name}\ntelephoneNumber: {work_number(n)}\n"
                      f"mail: {name}@example.test\n\n")


def simulator_seed(users: int) -> dict[str, Any]:
    return {"environments": [{"eid": "0000", "shortName": "default"}],
            "api_users": [{"loginName": LOGIN, "password": PASSWORD}],
            "users": [{"id": FIRST_VERBA_ID + n, "loginName": uid(n), "eid": "0000"} for n in range(users)]}


# ---------------------------------------------------------------- /proc


def status_kb(pid: int, key: str) -> int:
    """A `VmHWM`/`VmRSS` line of /proc/PID/status in kB (0 once the process is gone)."""
    with contextlib.suppress(OSError):
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), 0 once it is gone."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Phase:
    """One measured phase: wall seconds, CPU seconds of each watched process, and how busy the cores were."""

    name: str
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0  # share of all cores' time that was busy, whoever used it


class Clock:
    """Times phases and the CPU the watched processes spent in them."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self.phases: list[Phase] = []

    def _sample(self) -> tuple[float, dict[str, tuple[int, float]], tuple[int, int]]:
        cpu = {name: (pid, cpu_seconds(pid)) for name, pid in self.pids.items()}
        return time.perf_counter(), cpu, machine_jiffies()

    @contextlib.contextmanager
    def phase(self, name: str) -> Any:
        started, cpu, jiffies = self._sample()
        phase = Phase(name)
        try:
            yield phase
        finally:
            ended, cpu_after, jiffies_after = self._sample()
            phase.seconds = ended - started
            # A process started during the phase (slapd restarted after slapadd) counts from 0.
            phase.cpu = {who: spent - (cpu[who][1] if cpu.get(who, (0, 0.0))[0] == pid else 0.0)
                         for who, (pid, spent) in cpu_after.items()}
            total = jiffies_after[1] - jiffies[1]
            phase.busy = (jiffies_after[0] - jiffies[0]) / total if total else 0.0
            self.phases.append(phase)


# ---------------------------------------------------------------- processes


def child_env() -> dict[str, str]:
    """The children import the code this script runs (a worktree's, with PYTHONPATH)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


def start(command: list[str], log: pathlib.Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=child_env())


def stop(process: subprocess.Popen[bytes] | None) -> int | None:
    if process is None or process.poll() is not None:
        return None if process is None else process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)


def tail(log: pathlib.Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


class Failed(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def wait_for(what: str, check: Callable[[], Any], timeout: float, alive: Callable[[], None],
             interval: float = 0.1, progress: Callable[[], None] | None = None, every: float = 60.0) -> Any:
    """Call `check` until it returns something true; `alive` raises if a process died; `progress` reports."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + every
    while True:
        alive()
        result = check()
        if result:
            return result
        now = time.monotonic()
        if now > deadline:
            raise Failed(f"{what}: not within {timeout:g} s")
        if progress is not None and now >= next_report:
            progress()
            next_report = now + every
        time.sleep(interval)


# ---------------------------------------------------------------- the connector as the benchmark sees it


def connector_config(work: pathlib.Path, *, store: pathlib.Path, target: str, admin_port: int, scim_port: int,
                     ldap_url: str, base: str, args: argparse.Namespace) -> pathlib.Path:
    (work / "verba-password").write_text(PASSWORD)
    (work / "ldap-password").write_text(ADMIN_PASSWORD)
    text = f"""\
# bench/bench_large.py: one directory, the simulator as target, the default (SQLite) store and delivery settings.
[store]
url = "sqlite:///{store}"

[target]
url = "{target}"
eid = "0000"
login = "{LOGIN}"
password_file = "{work / 'verba-password'}"

[mapping]
file = "{REPO / 'mappings' / 'default.toml'}"

[admin]
listen = "127.0.0.1:{admin_port}"

[scim]
listen = "127.0.0.1:{scim_port}"

[drift]
schedule = ""

[logging]
format = "json"

[ldap.{DIRECTORY}]
url = "{ldap_url}"
dialect = "openldap"
base = "{base}"
bind_dn = "{ADMIN_DN}"
password_file = "{work / 'ldap-password'}"
page_size = {args.page_size}
poll_seconds = {args.poll_seconds}
overlap_seconds = {args.overlap_seconds}
full_sync_cron = ""
"""
    path = work / "connector.toml"
    path.write_text(text)
    return path


class StoreView:
    """The connector's SQLite store, read-only."""

    def __init__(self, path: pathlib.Path) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM events GROUP BY state").fetchall())

    def watermark(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT last_success_at, known, counts, last_error, version FROM ldap_watermarks "
                              "WHERE directory = ?", (DIRECTORY,)).fetchone()
        if row is None:
            return None
        return {"last_success_at": row[0], "known": row[1], "counts": json.loads(row[2] or "{}"),
                "last_error": row[3], "version": row[4]}

    def close(self) -> None:
        self.db.close()


def poll_histogram(http: httpx.Client) -> tuple[float, int]:
    """(sum of seconds, count) of connector_ldap_poll_duration_seconds for the directory."""
    total, count = 0.0, 0
    for line in http.get("/metrics").raise_for_status().text.splitlines():
        if f'directory="{DIRECTORY}"' not in line:
            continue
        if line.startswith("connector_ldap_poll_duration_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("connector_ldap_poll_duration_seconds_count"):
            count = int(float(line.rsplit(" ", 1)[1]))
    return total, count


# ---------------------------------------------------------------- py-spy


def start_profile(pid: int, seconds: float, out: pathlib.Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")
    if not os.access(spy, os.X_OK):
        print("profile: no py-spy found; skipped", flush=True)
        return None
    command = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
               "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarize_profile(path: pathlib.Path, top: int = 12) -> list[str]:
    """Where the connector's threads were when sampled (py-spy counts running threads, not idle ones): by
    activity, the functions with the most samples of their own, and the connector's functions by the share of
    samples with them on the stack."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        area = next((label for marker, label in PROFILE_AREAS if any(f.startswith(marker) for f in frames)),
                    "other threads (admin server, heartbeat, scheduler)")
        areas[area] += n
        own[frames[-1]] += n
        for function in {f.split(":")[0] + ")" for f in frames if "(connector/" in f}:
            inclusive[function] += n
    if not total:
        return ["profile: no samples"]
    lines = [f"profile of the push phase: {total} samples of running threads, by activity:"]
    lines += [f"  {100 * n / total:5.1f}%  {area}" for area, n in areas.most_common()]
    lines.append("own time (where the sample was):")
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("connector functions on the stack (inclusive):")
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return lines


PROFILE_AREAS = (("Watcher.run ", "LDAP polls (Watcher.run)"),
                 ("WorkerPool._run ", "delivery workers (WorkerPool._run)"))


# ---------------------------------------------------------------- the run


@dataclass
class Results:
    users: int
    load: float = 0.0
    ldif: float = 0.0
    startup: float = 0.0
    read_store: float = 0.0
    done_early: int = 0  # events pushed before the first run ended
    first_run: float = 0.0
    push: float = 0.0
    rss_kb: dict[str, int] = field(default_factory=dict)
    polls_ms: list[float] = field(default_factory=list)
    push_polls: tuple[float, int] = (0.0, 0)
    scrape_ms: float = 0.0
    linked: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)


def run(args: argparse.Namespace, work: pathlib.Path, clock: Clock) -> Results:
    results = Results(args.users)
    with SlapdServer.start() as server:
        clock.pids["slapd"] = server.process.pid if server.process else 0
        conn = server.admin()
        base = server.add_ou(conn, "large")
        conn.unbind()
        ldif = work / "users.ldif"
        started = time.perf_counter()
        write_ldif(ldif, base, args.users)
        results.ldif = time.perf_counter() - started
        print(f"LDIF of {args.users} users written in {results.ldif:.1f} s; loading with slapadd", flush=True)
        with clock.phase("load") as load:
            server.pause()
            done = subprocess.run([SLAPADD, "-q", "-f", str(server.directory / "slapd.conf"), "-l", str(ldif)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise Failed(f"slapadd failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
            server.resume()
            clock.pids["slapd"] = server.process.pid if server.process else 0
        loaded_at = time.time()
        results.load = load.seconds
        print(f"load: {args.users} users in {load.seconds:.1f} s", flush=True)

        (work / "seed.json").write_text(json.dumps(simulator_seed(args.users)))
        sim_port, admin_port = free_port(), free_port()
        simulator = start([sys.executable, "-m", "connector.cli", "simulator", "--port", str(sim_port),
                           "--seed", str(work / "seed.json")], work / "simulator.log")
        connector: subprocess.Popen[bytes] | None = None
        view: StoreView | None = None
        try:
            wait_until_listening(sim_port, process=simulator, timeout=120)
            clock.pids["simulator"] = simulator.pid
            store_path = work / "connector.db"
            config = connector_config(work, store=store_path, target=f"http://127.0.0.1:{sim_port}/provisioning",
                                      admin_port=admin_port, scim_port=free_port(), ldap_url=server.url,
                                      base=f"ou=people,{base}", args=args)
            log = work / "connector.log"

            def alive() -> None:
                for what, process, its_log in (("the connector", connector, log),
                                               ("the simulator", simulator, work / "simulator.log")):
                    if process is not None and process.poll() is not None:
                        raise Failed(f"{what} exited with status {process.returncode}; its log ends:\n{tail(its_log)}")

            with clock.phase("read+store") as read_store:
                launched = time.perf_counter()
                connector = start([sys.executable, "-m", "connector.cli", "run", "--config", str(config)], log)
                clock.pids["connector"] = connector.pid
                wait_until_listening(admin_port, process=connector, timeout=120)
                results.startup = time.perf_counter() - launched
                view = StoreView(store_path)
                stored = wait_for("the first full sync", lambda: _synced(view), args.timeout, alive)
            results.read_store = read_store.seconds
            results.done_early = view.counts().get("done", 0)
            if stored["last_error"] or stored["known"] != args.users:
                raise Failed(f"the first sync knows {stored['known']} users of {args.users}: {stored}")
            http = httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=30)
            # The histogram counts the run just after its commit.
            results.first_run, runs = wait_for("the first run's histogram",
                                               lambda: (h := poll_histogram(http))[1] and h, 30, alive)
            results.rss_kb["read+store"] = status_kb(connector.pid, "VmHWM")
            print(f"read+store: {stored['counts']} in {read_store.seconds:.1f} s from the process's start "
                  f"(the connector's own time for the run: {results.first_run:.1f} s{'' if runs == 1 else ' *'})",
                  flush=True)

            profiler = None
            if args.profile:
                profiler = start_profile(connector.pid, args.profile, work / "push-profile.txt")
            polls_before = poll_histogram(http)
            with clock.phase("push") as push:
                pushed_from = time.perf_counter()

                def progress() -> None:
                    counts = view.counts() if view else {}
                    rate = counts.get("done", 0) / (time.perf_counter() - pushed_from)
                    rss = status_kb(connector.pid, "VmRSS") if connector else 0
                    print(f"  push: {counts} ({rate:.0f} done/s), connector RSS {rss / 1024:.0f} MB", flush=True)

                def finished() -> dict[str, int] | None:
                    counts = view.counts() if view else {}
                    return counts if counts.get("done", 0) + counts.get("dead", 0) >= args.users else None

                counts = wait_for("the push of every event", finished, args.timeout, alive, interval=1.0,
                                  progress=progress)
            results.push = push.seconds
            polls_after = poll_histogram(http)
            results.push_polls = (polls_after[0] - polls_before[0], polls_after[1] - polls_before[1])
            results.rss_kb["push"] = status_kb(connector.pid, "VmHWM")
            if profiler is not None:
                _, errors = profiler.communicate(timeout=args.profile + 120)
                if profiler.returncode == 0 and (work / "push-profile.txt").exists():
                    results.profile = summarize_profile(work / "push-profile.txt")
                else:
                    results.profile = [f"profile: py-spy failed ({profiler.returncode}): {errors.decode()[-500:]}"]
            print(f"push: {counts} in {push.seconds:.1f} s", flush=True)
            if counts.get("dead"):
                raise Failed(f"{counts['dead']} events dead-lettered; see `connector events list --state dead "
                             f"--config {config}`")
            sim = httpx.Client(base_url=f"http://127.0.0.1:{sim_port}", timeout=300)
            state = sim.get("/_sim/state").raise_for_status().json()
            results.linked = sum(1 for ext in state["extensions"] if ext.get("user_id") is not None)
            calls = sim.get("/_sim/calls").raise_for_status().json()
            results.calls = dict(Counter(call["operation"] for call in calls))
            del state, calls
            started = time.perf_counter()
            poll_histogram(http)
            results.scrape_ms = 1000 * (time.perf_counter() - started)
            if results.linked != args.users:
                raise Failed(f"the simulator holds {results.linked} linked extensions, not {args.users}")

            with clock.phase("no-change polls"):
                quiet_from = loaded_at + args.overlap_seconds + 2
                if time.time() < quiet_from:
                    print(f"waiting {quiet_from - time.time():.0f} s until overlap_seconds "
                          f"({args.overlap_seconds:g}) has passed since the load", flush=True)
                    time.sleep(max(0.0, quiet_from - time.time()))
                polls = Polls(http, view, alive, args.poll_seconds * 3 + args.timeout)
                # Nothing written since the load, which is more than overlap_seconds before the previous
                # poll's start: the window is past the load, and a poll reads no entry.
                polls.skip_begun()
                for _ in range(args.polls):
                    ms, seen = polls.measure()
                    if seen != 0:
                        raise Failed(f"a no-change poll read {seen} entries, not 0: {view.watermark()}")
                    results.polls_ms.append(ms)
            results.rss_kb["end"] = status_kb(connector.pid, "VmHWM")
        finally:
            if view is not None:
                view.close()
            status = stop(connector)
            stop(simulator)
            if status not in (None, 0):
                print(f"the connector stopped with status {status}; its log ends:\n{tail(log)}", flush=True)
    return results


def _synced(view: StoreView) -> dict[str, Any] | None:
    mark = view.watermark()
    return mark if mark and (mark["last_success_at"] or mark["last_error"]) else None


class Polls:
    """The connector's scheduled polls: each commits the watermark (its version goes up), then the histogram
    on /metrics counts it. Polls are noticed from the store (read-only, in this process) and /metrics is
    read once per poll, because each scrape costs the connector queries over the whole store."""

    def __init__(self, http: httpx.Client, view: StoreView, alive: Callable[[], None], timeout: float) -> None:
        self.http, self.view, self.alive, self.timeout = http, view, alive, timeout

    def _version(self) -> int:
        return int((self.view.watermark() or {}).get("version") or 0)

    def _after(self, version: int) -> int:
        """Wait for a poll committed after `version`; its version."""
        def committed() -> int | None:
            now = self._version()
            return now if now > version else None

        return int(wait_for("a poll", committed, self.timeout, self.alive, interval=0.05))

    def skip_begun(self) -> None:
        """Let the poll that may be running end, and the next one, which begins after now: the polls after
        these two start from a cursor that has seen everything written before now."""
        self._after(self._after(self._version()))

    def measure(self) -> tuple[float, int]:
        """The next poll: its duration in ms (the connector's own), and how many entries it read."""
        version = self._version()
        before = poll_histogram(self.http)
        self._after(version)
        seen = int((self.view.watermark() or {}).get("counts", {}).get("seen", -1))

        def observed() -> tuple[float, int] | None:  # the histogram counts the poll just after its commit
            now = poll_histogram(self.http)
            return now if now[1] > before[1] else None

        after = wait_for("the poll's histogram", observed, 30, self.alive, interval=0.05)
        return 1000 * (after[0] - before[0]) / (after[1] - before[1]), seen


def report(args: argparse.Namespace, results: Results, clock: Clock) -> bool:
    n = results.users
    print()
    print(f"bench-large: {n} users, page_size {args.page_size}, poll_seconds {args.poll_seconds:g}, "
          f"overlap_seconds {args.overlap_seconds:g}, {os.cpu_count()} cores "
          f"(load average before the run {args.load_before})")
    print(f"{'phase':<16}{'seconds':>9}{'users/s':>9}   CPU seconds (connector, simulator, slapd); cores busy")
    for phase in clock.phases:
        cpu = ", ".join(f"{who} {phase.cpu.get(who, 0.0):.1f}" for who in ("connector", "simulator", "slapd"))
        rate = f"{n / phase.seconds:9.0f}" if phase.name != "no-change polls" and phase.seconds else f"{'':>9}"
        print(f"{phase.name:<16}{phase.seconds:9.1f}{rate}   {cpu}; {100 * phase.busy:.0f}%")
    print(f"  read+store includes the connector's start-up ({results.startup:.1f} s to listen); "
          f"its own time for the full run: {results.first_run:.1f} s; {results.done_early} events were pushed "
          "by its end (they are stored page by page)")
    print(f"  simulator calls: {results.calls}; extensions linked to a user: {results.linked}")
    hwm = {when: f"{kb / 1024:.0f} MB" for when, kb in results.rss_kb.items()}
    print(f"  connector peak RSS (VmHWM) after read+store {hwm.get('read+store')}, after push {hwm.get('push')}, "
          f"at the end {hwm.get('end')}")
    print(f"  one GET /metrics of the connector after the push: {results.scrape_ms:.0f} ms")
    print(f"  LDAP polls during the push: {results.push_polls[1]} taking {results.push_polls[0]:.1f} s "
          "(each re-reads the loaded entries stamped within overlap_seconds of the previous poll's start)")
    polls = ", ".join(f"{ms:.1f}" for ms in results.polls_ms)
    print(f"  no-change polls at {n} users, nothing written since the load (no entry read), "
          f"the connector's own duration: {polls} ms")
    for line in results.profile:
        print(line)
    peak = max(results.rss_kb.values(), default=0) / 1024
    median = statistics.median(results.polls_ms) if results.polls_ms else float("inf")
    goals = [
        (f"push phase {results.push:.0f} s <= {PUSH_GOAL_SECONDS:.0f} s", results.push <= PUSH_GOAL_SECONDS),
        (f"connector peak RSS {peak:.0f} MB < {RSS_GOAL_MB:.0f} MB", peak < RSS_GOAL_MB),
        (f"no-change poll (median of {len(results.polls_ms)}) {median:.1f} ms < {POLL_GOAL_MS:.0f} ms",
         median < POLL_GOAL_MS),
    ]
    for text, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for _, ok in goals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="users in the directory (default 100000)")
    parser.add_argument("--page-size", type=int, default=500, help="[ldap] page_size (default 500, the default)")
    parser.add_argument("--poll-seconds", type=float, default=30.0,
                        help="[ldap] poll_seconds (default 30, the default)")
    parser.add_argument("--overlap-seconds", type=float, default=300.0,
                        help="[ldap] overlap_seconds (default 300, the default); the no-change polls wait for it")
    parser.add_argument("--polls", type=int, default=3, help="no-change polls timed (default 3)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds each phase may take at most")
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                        help="py-spy the connector for SECONDS from the start of the push phase")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep the LDIF, config, logs and store here")
    args = parser.parse_args()
    if not os.access(SLAPADD, os.X_OK):
        raise SystemExit(f"no {SLAPADD}: apt-get install slapd ldap-utils")
    args.load_before = " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
    work = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="bench-large-"))
    work.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    try:
        results = run(args, work, clock)
    except Failed as exc:
        print(f"FAIL  {exc}\n(logs, config and store kept in {work})", flush=True)
        raise SystemExit(1) from None
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if report(args, results, clock) else 1)


if __name__ == "__main__":
    main()
