"""One campaign on one store: the phases in order, then the measurements.

1. writers: `Plan.writers` threads send SCIM writes (workload.py) for the whole campaign;
2. kills: the connector is SIGKILLed `Plan.kills` times at random points and restarted; meanwhile
   numbers change in the watched directory, which is stopped between polls and restarted
   `Plan.ldap_pauses` times (directory.py);
3. Verba outage: 503s, then connection refused (the simulator process is gone), then slow
   answers with every token expired half-way, then Verba is back; the writers stop then;
4. store trouble (SQLite): the filesystem under the store fills up (disk.py) while the writes go
   on; SCIM must answer 503 with Retry-After and acknowledge nothing it did not store;
5. malformed input: hypothesis's SCIM bodies from a second client (malformed.py): never a 5xx;
6. drain: wait until nothing is pending, then compare the store (SCIM read-back), Verba's
   state (the oracle) and the simulator's call log.
"""

from __future__ import annotations

import dataclasses
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from chaos import oracle
from chaos.directory import Directory, slapd_available
from chaos.disk import SmallDisk
from chaos.malformed import Fuzzer
from chaos.processes import SCIM_TOKEN, Connector, Simulator
from chaos.report import Report
from chaos.workload import Counters, Model, ScimClient, Workload, read_back


@dataclasses.dataclass
class Plan:
    """How hard and how long. Durations are seconds."""

    users: int = 40
    writers: int = 3
    write_pause: float = 0.02  # each writer's pause between two writes
    kills: int = 20
    kill_gap: tuple[float, float] = (0.3, 1.5)  # connector uptime before a kill (after it listens again)
    down: tuple[float, float] = (0.0, 0.5)  # how long it stays dead before the restart
    outage_503: float = 3.0
    outage_refused: float = 3.0
    outage_slow: float = 4.0
    slow_ms: int = 1500
    disk_full: float = 3.0  # seconds of a full disk under the SQLite store (0: none)
    ldap_users: int = 20  # users in the watched OpenLDAP directory (0: no directory)
    ldap_pauses: int = 3  # times slapd is stopped between polls and restarted
    malformed_examples: int = 60  # hypothesis examples per kind of malformed request (4 kinds; 0: none)
    drain_timeout: float = 180.0
    delivery: dict[str, Any] = dataclasses.field(default_factory=dict)  # [delivery] keys beyond the shipped ones


SHORT = Plan()
FULL = Plan(users=200, writers=4, kills=200, kill_gap=(0.3, 4.0), down=(0.0, 2.0), outage_503=200.0,
            outage_refused=200.0, outage_slow=200.0, slow_ms=3000, disk_full=20.0, malformed_examples=500,
            ldap_users=100, ldap_pauses=20, drain_timeout=900.0)


# The shipped [delivery] defaults (config/connector.toml), and the stop-recording guard opened wide:
# the workload deactivates and deletes users on purpose, many within the guard's window.
DELIVERY = {"workers": 4, "max_attempts": 12, "backoff_base_seconds": 5, "backoff_max_seconds": 600,
            "guard_max_count": 1_000_000}


class Campaign:
    def __init__(self, plan: Plan, store_kind: str, store_url: str, seed: int, workdir: Path,
                 say: Callable[[str], None] = print, disk: SmallDisk | None = None) -> None:
        self.plan = plan
        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.say = say
        self.report = Report(store=store_kind, seed=seed)
        self.store_url = store_url
        self.disk = disk
        self.model = Model(plan.users, seed, plan.ldap_users)
        self.directory: Directory | None = None
        ldap = None
        if plan.ldap_users:
            why = slapd_available()
            if why:
                self.report.problems.append(f"directory outage: skipped ({why})")
                self.model.ldap_users = []
            else:
                self.directory = Directory(self.model, seed)
                ldap = self.directory.config(workdir / "ldap-password")
        self.counters = Counters()
        self.sim = Simulator(workdir, self.model.verba_users(), seed)
        self.connector = Connector(workdir, store_url, self.sim.url, {**DELIVERY, **plan.delivery}, ldap)
        self.stop_writers = threading.Event()
        self.kills_done = threading.Event()
        self.last_directory_change = 0.0
        self.writers: list[threading.Thread] = []
        self.workloads: list[Workload] = []
        self.admin = httpx.Client(base_url=f"http://127.0.0.1:{self.connector.admin_port}", timeout=10)

    # phases

    def run(self) -> Report:
        started = time.monotonic()
        try:
            self.sim.start()
            self.connector.start()
            self.start_writers()
            churn = threading.Thread(target=self._churn_directory, name="directory", daemon=True)
            if self.directory is not None:
                churn.start()
            self.kills()
            self.kills_done.set()
            if self.directory is not None:
                churn.join()
            if self.plan.outage_503 or self.plan.outage_refused or self.plan.outage_slow:
                self.outage()
            if self.plan.disk_full and self.disk is not None:
                self.disk_full()
            self.stop_all_writers()
            if self.plan.malformed_examples:
                self.malformed()
            self.measure()
        finally:
            self.stop_all_writers()
            status = self.connector.stop()
            if status != 0:
                self.report.harness_errors += 1
                self.report.problems.append(f"connector run exited with status {status} on SIGTERM")
            store_full, others = self.connector.log_errors()
            self.report.tracebacks = len(others)
            self.report.store_full_tracebacks = len(store_full)
            self.report.problems += [f"log: {line[:600]}" for line in others[:10]]
            self.sim.close()
            self.admin.close()
            if self.directory is not None:
                self.directory.close()
            self.report.duration_seconds = time.monotonic() - started
        return self.report

    def start_writers(self) -> None:
        for i in range(self.plan.writers):
            client = ScimClient(self.connector.scim_url, SCIM_TOKEN, self.counters, abandon=self.stop_writers)
            workload = Workload(self.model, client, self.seed * 1000 + i)
            self.workloads.append(workload)
            thread = threading.Thread(target=self._write, args=(workload,), name=f"writer-{i}", daemon=True)
            self.writers.append(thread)
            thread.start()

    def _write(self, workload: Workload) -> None:
        try:
            while not self.stop_writers.is_set():
                workload.step()
                time.sleep(self.plan.write_pause)
        except Exception as exc:  # noqa: BLE001 - reported, never swallowed
            self.report.harness_errors += 1
            self.report.problems.append(f"writer stopped: {type(exc).__name__}: {exc}")
        finally:
            workload.client.close()

    def stop_all_writers(self) -> None:
        self.stop_writers.set()
        for thread in self.writers:
            thread.join(330)

    def kills(self) -> None:
        self.say(f"[{self.report.store}] {self.plan.kills} kills")
        for k in range(self.plan.kills):
            time.sleep(self.rng.uniform(*self.plan.kill_gap))
            self.connector.kill()
            time.sleep(self.rng.uniform(*self.plan.down))
            self.connector.start()
            if (k + 1) % 20 == 0:
                self.say(f"[{self.report.store}] {k + 1} kills, {self.counters.writes} writes acknowledged")

    def _churn_directory(self) -> None:
        """Change numbers in the directory while the kills go on; stop slapd between polls now and then."""
        assert self.directory is not None
        pauses_left, rounds = self.plan.ldap_pauses, 0
        try:
            while not self.kills_done.is_set() or pauses_left:
                self.directory.churn(2)
                self.last_directory_change = time.time()
                time.sleep(1.5)  # a poll (poll_seconds = 1) sees it, or not
                rounds += 1
                if pauses_left and rounds % 3 == 0:
                    self.directory.pause()
                    time.sleep(self.rng.uniform(1.5, 4.0))  # at least one poll fails
                    self.directory.resume()
                    pauses_left -= 1
        except Exception as exc:  # noqa: BLE001 - reported
            self.report.harness_errors += 1
            self.report.problems.append(f"directory churn stopped: {type(exc).__name__}: {exc}")

    def wait_for_directory(self) -> None:
        """Wait until the watcher ran without error after the directory's last change."""
        deadline = time.monotonic() + self.plan.drain_timeout
        while time.monotonic() < deadline:
            try:
                mark = self.connector.cli("ldap", "status")
            except RuntimeError:
                mark = {}
            if (mark.get("last_run_at") or 0) > self.last_directory_change + 1 and not mark.get("last_error"):
                return
            time.sleep(1)
        self.report.harness_errors += 1
        self.report.problems.append(f"the LDAP watcher did not run cleanly after the last directory change: {mark}")

    def outage(self) -> None:
        """503s, connection refused, slow answers (tokens expired half-way), then Verba is back."""
        plan = self.plan
        self.say(f"[{self.report.store}] Verba outage: {plan.outage_503:.0f} s of 503, {plan.outage_refused:.0f} s "
                 f"refused, {plan.outage_slow:.0f} s slow")
        dead_before = self.queue().get("dead", 0)
        began = time.monotonic()
        self.sim.faults({"operation": "*", "http_status": 503})
        time.sleep(plan.outage_503)
        self.sim.stop()
        time.sleep(plan.outage_refused)
        self.sim.start()
        self.sim.faults({"operation": "*", "latency_ms": plan.slow_ms})
        time.sleep(plan.outage_slow / 2)
        self.sim.expire_tokens()
        time.sleep(plan.outage_slow / 2)
        self.sim.clear_faults()
        back = time.monotonic()
        self.report.outage_seconds = back - began
        self.stop_all_writers()  # nothing new: what follows is the backlog alone
        drained_at = self.drain()
        self.report.drain_seconds_after_outage = drained_at - back if self.drained else None
        self.report.outage_dead_letters = self.queue().get("dead", 0) - dead_before

    def disk_full(self) -> None:
        """Fill the store's filesystem while writers run; check what was acknowledged is stored; free it."""
        self.say(f"[{self.report.store}] full disk for {self.plan.disk_full:.0f} s")
        assert self.disk is not None
        self.stop_writers.clear()
        self.writers, self.workloads = [], []
        self.start_writers()
        time.sleep(0.5)
        status_503, writes = self.counters.status_503, self.counters.writes
        self.disk.fill()
        time.sleep(self.plan.disk_full)
        self.stop_all_writers()  # writes answered 503 are given up: 503 says nothing was changed
        self.report.disk_full_503 = self.counters.status_503 - status_503
        self.report.disk_full_writes_acknowledged = self.counters.writes - writes
        self.report.disk_full_acknowledged_unstored = self.read_back("disk full")
        self.disk.free()
        self.stop_writers.clear()
        self.writers, self.workloads = [], []
        self.start_writers()
        time.sleep(2.0)  # writes go through again
        self.stop_all_writers()

    def malformed(self) -> None:
        self.say(f"[{self.report.store}] malformed SCIM input: {self.plan.malformed_examples} x 4 requests")
        fuzzer = Fuzzer(self.connector.scim_url)
        try:
            fuzzer.run(self.plan.malformed_examples, self.seed)
        finally:
            fuzzer.close()
        self.report.malformed_requests = fuzzer.sent
        self.report.status_5xx += len(fuzzer.status_5xx)
        self.report.problems += [f"malformed input: {line}" for line in fuzzer.status_5xx[:20]]

    # measurements

    drained = False

    def queue(self) -> dict[str, int]:
        """Events by state, from the admin listener's /metrics."""
        try:
            text = self.admin.get("/metrics").text
        except httpx.TransportError:
            return {}
        return {m.group(1): int(float(m.group(2)))
                for m in re.finditer(r'^connector_queue_depth\{state="(\w+)"\} (\S+)$', text, re.MULTILINE)}

    def drain(self) -> float:
        """Wait until nothing is pending or in flight (twice in a row); return when, or give up."""
        deadline = time.monotonic() + self.plan.drain_timeout
        calm = 0
        while time.monotonic() < deadline:
            counts = self.queue()
            if counts and counts.get("pending", 0) + counts.get("in_flight", 0) == 0:
                calm += 1
                if calm == 2:
                    self.drained = True
                    return time.monotonic()
            else:
                calm = 0
            time.sleep(0.25)
        self.drained = False
        return time.monotonic()

    def measure(self) -> None:
        report = self.report
        self.say(f"[{report.store}] draining")
        if self.directory is not None:
            self.wait_for_directory()
            report.directory_changes, report.directory_outages = self.directory.changes, self.directory.pauses
        self.drain()
        status = self.connector.status()
        counts = status["counts"]
        report.runs, report.kills = self.connector.starts, self.connector.kills
        report.writes_acknowledged = self.counters.writes
        report.events_accepted = sum(counts.values())
        report.delivered = counts.get("done", 0)
        report.undelivered = counts.get("pending", 0) + counts.get("in_flight", 0)
        fuzz = self.connector.cli("events", "list", "--state", "dead", "--source", "fuzz", "--limit", "1000000")
        report.malformed_dead_letters = len(fuzz["events"])
        report.dead_letters = counts.get("dead", 0) - report.malformed_dead_letters
        report.held = counts.get("held", 0)
        for dead in status["dead_letters_by_cause"] if report.dead_letters else []:
            report.problems.append(f"dead letters: {dead['count']} x {dead['cause']}: {dead['error']}")
        for held in status["held_by_cause"]:
            report.problems.append(f"held: {held['count']} x {held['cause']} (source {held['source']})")
        report.status_5xx += self.counters.status_5xx
        report.status_503 = self.counters.status_503 + self.counters.status_503_without_retry_after
        report.unexpected_answers = len(self.counters.unexpected)
        report.problems += [f"answer: {line}" for line in self.counters.unexpected[:20]]
        report.lost = self.read_back("end")
        calls = self.sim.calls()
        writes = ("createExtension", "updateExtension")
        blind = [c for c in calls if c["operation"] in writes and c.get("user_id") is None]
        report.writes_without_user_id = len(blind)
        report.problems += [f"write without user id: {c}" for c in blind[:10]]
        verdict = oracle.compare(self.model, self.sim.state()["extensions"])
        report.wrong_final_states = len(verdict.wrong_users)
        report.problems += [f"wrong: {line}" for line in verdict.problems]
        if status.get("extension_conflicts"):
            report.problems += [f"open conflict: {c}" for c in status["extension_conflicts"][:10]]

    def read_back(self, when: str) -> int:
        """Acknowledged writes the connector does not have: users whose SCIM resource differs from the
        model. Call it with the writers stopped."""
        client = ScimClient(self.connector.scim_url, SCIM_TOKEN, Counters(), give_up_after=60)
        try:
            lost = read_back(self.model, client)
        finally:
            client.close()
        self.report.problems += [f"lost ({when}): {line}" for line in lost]
        return len(lost)
