"""Scale-out on PostgreSQL: three `connector run` instances (a, b, c) share one store behind a
round-robin load balancer, with a real slapd directory and a slow Verba; the instance polling the
directory (the leader in `connector status --json`) is SIGKILLed in the middle of the load.

What an operator relies on, and what this test checks:

- no acknowledged SCIM write is lost, Verba ends as the acknowledged writes and the directory say
  (chaos/oracle.py), and nothing is dead-lettered or held;
- the dead instance's work does not stay stuck: every event in flight right after the kill
  (`connector events list --state in_flight`; the dead instance's claims are all among them, as
  they stay in flight until their leases end or the instance is counted dead) is delivered,
  state done, within 15 s of the kill, by the time the store gives (the event's `updated_at`).
  That is what on-call staff look at after losing a host: nothing stays in flight;
- polling is taken over: `connector status --json` marks the dead instance `"dead": true` and names a
  live one as the directory's leader (which logs taking it within 15 s of the kill), and the
  directory's last change, made well after the kill, reaches Verba;
- no two instances ever worked on one extension at once: chaos/overlap.py over the simulator's
  call log, where each call's `agent` is its User-Agent, `verba-connector (instance NAME)`;
- no instance holds more PostgreSQL connections than it has threads (the store keeps one per
  thread; counted from /proc every half second), so three of them fit the server's 100;
- the survivors stop cleanly on SIGTERM and no instance logged an exception.

The work directory (configs, connector-NAME.log, simulator.log, and sim-calls.json, the
simulator's call log) is pytest's tmp_path, named in every failure message.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaos import oracle
from chaos.directory import Directory, slapd_available
from chaos.overlap import EXTENSION_CALLS, instance_of, overlaps
from chaos.processes import SCIM_TOKEN, Connector, Simulator
from chaos.workload import Balancer, Counters, Model, ScimClient, Workload, read_back

NAMES = ("a", "b", "c")
SCIM_USERS = 24
LDAP_USERS = 12
WRITERS = 3
WRITE_PAUSE = 0.05
LATENCY_MS = 500  # every SOAP call of the simulator takes this long
TARGET = {"timeout_seconds": 2}
# lease_seconds: the least the config accepts with a 2 s timeout (1.5 x (timeout + 1 s)); the
# stop-recording guard opened wide (the workload deactivates and deletes users on purpose)
DELIVERY = {"workers": 4, "lease_seconds": 4.5, "max_attempts": 12, "backoff_base_seconds": 0.2,
            "backoff_max_seconds": 2, "guard_max_count": 1_000_000}
INSTANCE = {"heartbeat_seconds": 1, "liveness_seconds": 5}
LOAD_BEFORE_KILL = 8.0  # seconds of writes with all three up
LOAD_AFTER_KILL = 12.0  # and with two
RECOVERY_SECONDS = 15.0  # the dead instance's in-flight events are delivered this soon after the kill
TAKEOVER_SECONDS = 15.0  # and another instance leads the directory this soon
DRAIN_SECONDS = 60.0


def leader_of(status: dict[str, Any], directory: str = "corp") -> str | None:
    """The instance polling [ldap.DIRECTORY]: `leaders` in `connector status --json` (None: nobody)."""
    if "leaders" not in status:
        raise AssertionError(f"`connector status --json` has no leaders: {json.dumps(status)[:3000]}")
    leader = status["leaders"].get(f"ldap.{directory}")
    return None if leader is None else str(leader)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    """Call `check()` until it returns something true; return that, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s (last seen: {last!r})")


def events_by_id(instance: Connector) -> dict[int, dict[str, Any]]:
    """Every event in the store, by id (`connector events list --json`)."""
    return {int(event["id"]): event for event in instance.cli("events", "list", "--limit", "1000000")["events"]}


def _user(event: dict[str, Any]) -> str:
    change = event["change"]
    return str(change["state"].get("userName") or f"{change['source']}/{change['external_id']}")


def live_instances(status: dict[str, Any]) -> set[str]:
    return {str(instance["name"]) for instance in status.get("instances", []) if not instance["dead"]}


def dead_instances(status: dict[str, Any]) -> set[str]:
    return {str(instance["name"]) for instance in status.get("instances", []) if instance["dead"]}


class Cluster:
    """The simulator, the directory and three connector instances on one PostgreSQL store, with the
    SCIM writers and the directory churn that load them."""

    def __init__(self, workdir: Path, store_url: str, store_port: int, seed: int) -> None:
        self.workdir = workdir
        self.store_port = store_port
        self.seed = seed
        self.model = Model(SCIM_USERS, seed, LDAP_USERS)
        self.directory = Directory(self.model, seed)
        self.sim = Simulator(workdir, self.model.verba_users(), seed)
        ldap = self.directory.config(workdir / "ldap-password")
        self.instances = {name: Connector(workdir, store_url, self.sim.url, DELIVERY, ldap, name=name,
                                          instance=INSTANCE, target=TARGET) for name in NAMES}
        self.counters = Counters()
        self.stop_load = threading.Event()
        self.threads: list[threading.Thread] = []
        self.workloads: list[Workload] = []
        self.changes: list[tuple[float, str, str]] = []  # (when, LDAP uid, new number's digits)
        self.errors: list[str] = []  # of the harness's threads
        self.facts: list[str] = [f"seed {seed}; configs, logs and the simulator's call log are in {workdir}"]
        self.findings: list[str] = []  # what is wrong, one readable line each
        self.killed = ""
        self.survivors: list[str] = []
        self.kill_at = 0.0
        self.in_flight: set[int] = set()  # the events in flight right after the kill
        self.stop_sampling = threading.Event()
        self.connections: dict[str, list[tuple[float, int, int]]] = {name: [] for name in NAMES}  # (at, conns, threads)

    def start(self) -> None:
        self.sim.start()
        self.sim.faults({"operation": "*", "latency_ms": LATENCY_MS})
        order = list(self.instances.values())
        random.Random(self.seed).shuffle(order)  # the first one up is likely to lead the directory
        for instance in order:
            instance.start()

    def start_load(self) -> None:
        urls = [instance.scim_url for instance in self.instances.values()]
        for i in range(WRITERS):
            workload = Workload(self.model, ScimClient(urls, SCIM_TOKEN, self.counters), self.seed * 1000 + i)
            self.workloads.append(workload)
            self.threads.append(threading.Thread(target=self._write, args=(workload,), name=f"writer-{i}"))
        self.threads.append(threading.Thread(target=self._churn, name="directory"))
        self.threads.append(threading.Thread(target=self._sample, name="connections"))
        for thread in self.threads:
            thread.start()

    def _write(self, workload: Workload) -> None:
        try:
            while not self.stop_load.is_set():
                workload.step()
                time.sleep(WRITE_PAUSE)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"{threading.current_thread().name} stopped: {type(exc).__name__}: {exc}")
        finally:
            workload.client.close()

    def _churn(self) -> None:
        """One number changes in the directory every second (the watcher polls every second)."""
        try:
            while not self.stop_load.wait(1.0):
                for user, digits in self.directory.churn(1):
                    self.changes.append((time.time(), user.user_name, digits))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(f"directory churn stopped: {type(exc).__name__}: {exc}")

    def _sample(self) -> None:
        """Each instance's PostgreSQL connections and threads, every half second while the load runs."""
        while not self.stop_sampling.wait(0.5):
            for name, instance in self.instances.items():
                if instance.pid is not None:
                    self.connections[name].append((time.time(), instance.connections_to(self.store_port),
                                                   instance.threads()))

    def check_connections(self) -> None:
        """The store keeps one connection per thread: an instance never holds more connections than threads."""
        for name, samples in self.connections.items():
            if not samples:
                continue
            most = max(samples, key=lambda sample: sample[1])
            over = [sample for sample in samples if sample[1] > sample[2]]
            self.facts.append(f"instance {name}: at most {most[1]} PostgreSQL connections ({most[2]} threads then)")
            if over:
                at, conns, threads = over[0]
                self.findings.append(
                    f"instance {name} held {conns} PostgreSQL connections with only {threads} threads "
                    f"{at - samples[0][0]:.0f} s into the load ({most[1]} at most, with {most[2]} threads): "
                    "connections of threads that ended stay open")

    @property
    def survivor(self) -> Connector:
        """An instance to ask: a survivor once the leader is killed."""
        return self.instances[self.survivors[0] if self.survivors else NAMES[0]]

    def wait_until_all_up(self) -> None:
        def ready() -> dict[str, Any] | None:
            status = self.survivor.status()
            return status if live_instances(status) == set(NAMES) and leader_of(status) else None

        wait_for("all three instances live in `connector status` and one of them leading ldap.corp", ready, 20)

    def kill_leader(self) -> None:
        """SIGKILL the directory's leader, then note the events in flight: every claim of the dead
        instance is among them (they stay in flight until its leases end or it is counted dead)."""
        status = self.survivor.status()
        leader = leader_of(status)
        assert leader in NAMES, f"the leader of ldap.corp is {leader!r}, not one of {NAMES}: {status}"
        self.killed, self.survivors = leader, [name for name in NAMES if name != leader]
        self.kill_at = time.time()
        self.instances[leader].kill()
        listed = self.survivor.cli("events", "list", "--state", "in_flight", "--limit", "1000000")["events"]
        self.in_flight = {int(event["id"]) for event in listed}
        self.facts.append(f"killed {leader} (the leader); {len(self.in_flight)} event(s) in flight in the store "
                          f"right after; survivors {self.survivors}")
        assert self.in_flight, "nothing was in flight at the kill: the load is too light to test anything"

    def watch_recovery(self) -> None:
        """Until the events in flight at the kill are done and a survivor leads the directory (the dead
        instance listed as dead in `instances`), or a while longer than either may take."""
        settled_at: float | None = None
        takeover_at: float | None = None
        status: dict[str, Any] = {}
        states: dict[int, Any] = {}
        deadline = self.kill_at + max(RECOVERY_SECONDS, TAKEOVER_SECONDS) + 10
        while (settled_at is None or takeover_at is None) and time.time() < deadline:
            if takeover_at is None:
                status = self.survivor.status()
                if (leader_of(status) in self.survivors and live_instances(status) == set(self.survivors)
                        and dead_instances(status) == {self.killed}):
                    takeover_at = time.time()
                    self.facts.append(f"{leader_of(status)} leads ldap.corp and {self.killed} is listed as dead "
                                      f"{takeover_at - self.kill_at:.1f} s after the kill")
            if settled_at is None:
                events = events_by_id(self.survivor)
                states = {i: events.get(i, {}).get("state") for i in sorted(self.in_flight)}
                if all(state == "done" for state in states.values()):
                    done = sorted((float(events[i]["updated_at"]) - self.kill_at, i) for i in self.in_flight)
                    settled_at = self.kill_at + done[-1][0]
                    slowest = ", ".join(f"event {i} ({_user(events[i])}) {delay:.1f} s" for delay, i in done[-3:])
                    self.facts.append(f"the {len(done)} event(s) in flight at the kill were all done "
                                      f"{done[-1][0]:.1f} s after it (by their updated_at; half by "
                                      f"{max(0.0, done[len(done) // 2][0]):.1f} s; slowest: {slowest}); "
                                      f"the slowest one's attempts: {self.attempts(done[-1][1])}")
                elif any(state in ("dead", "held", "discarded") for state in states.values()):
                    self.findings.append(f"events in flight at the kill ended {states}, not all done")
                    settled_at = float("inf")
            time.sleep(0.3)
        if settled_at is None:
            self.findings.append(f"events in flight at the kill are not all done {time.time() - self.kill_at:.0f} s "
                                 f"after it: {states}")
        elif settled_at - self.kill_at > RECOVERY_SECONDS and settled_at != float("inf"):
            self.findings.append(f"the events in flight at the kill were done only {settled_at - self.kill_at:.1f} s "
                                 f"after it, not within {RECOVERY_SECONDS:g} s")
        if takeover_at is None:
            self.findings.append(f"no survivor leads ldap.corp, or {self.killed} is not listed as dead, "
                                 f"{time.time() - self.kill_at:.0f} s after the kill: {json.dumps(status)[:3000]}")
            return
        taken = self.taken_over_at()  # the survivor's log says when precisely; status was only polled
        if taken is not None:
            self.facts.append(f"{taken[0]} logged taking ldap.corp {taken[1] - self.kill_at:.1f} s after the kill")
        took = (takeover_at if taken is None else taken[1]) - self.kill_at
        if took > TAKEOVER_SECONDS:
            self.findings.append(f"ldap.corp was taken over only {took:.1f} s after the kill, "
                                 f"not within {TAKEOVER_SECONDS:g} s")

    def taken_over_at(self) -> tuple[str, float] | None:
        """The survivor that took ldap.corp after the kill and when, from its log (None: none logged it)."""
        found = [(record["at"], name) for name in self.survivors
                 for record in self.instances[name].log_records()
                 if record["at"] > self.kill_at
                 and record.get("message") == f"ldap.corp: run by this instance ({name}) from now on"]
        return None if not found else (min(found)[1], min(found)[0])

    def attempts(self, event_id: int) -> str:
        """An event's delivery attempts (`connector events show`), timed from the kill."""
        shown = self.survivor.cli("events", "show", str(event_id))["attempts"]
        return "; ".join(f"{a['at'] - self.kill_at:+.1f} s {a['outcome']}"
                         + (f" ({a['cause']}: {str(a['error'])[:200]})" if a.get("cause") else "")
                         for a in shown) or "none"

    def drain(self) -> None:
        """Wait until the watcher polled after the directory's last change and nothing is pending or in flight."""
        last_change_at = self.changes[-1][0]

        def polled() -> bool:
            mark = self.survivor.cli("ldap", "status")
            return (mark.get("last_run_at") or 0) > last_change_at + 1 and not mark.get("last_error")

        wait_for("the watcher ran cleanly after the directory's last change", polled, DRAIN_SECONDS, every=1)
        calm = [0]

        def drained() -> bool:
            counts = self.survivor.status()["counts"]
            calm[0] = calm[0] + 1 if counts.get("pending", 0) + counts.get("in_flight", 0) == 0 else 0
            return calm[0] >= 2

        wait_for("the queue drained (nothing pending or in flight, twice in a row)", drained, DRAIN_SECONDS)

    def check_store_and_verba(self) -> None:
        """Nothing dead or held, every acknowledged write stored, Verba as the oracle says."""
        status = self.survivor.status()
        counts = status["counts"]
        if counts.get("dead") or counts.get("held"):
            self.findings.append(f"dead or held events: {counts}; dead letters {status['dead_letters_by_cause']}, "
                                 f"held {status['held_by_cause']}")
        client = ScimClient([self.instances[name].scim_url for name in self.survivors], SCIM_TOKEN, Counters(),
                            give_up_after=60)
        try:
            self.findings += [f"lost: {line}" for line in read_back(self.model, client)]
        finally:
            client.close()
        self.findings += [f"SCIM answer: {line}" for line in self.counters.unexpected[:20]]
        extensions = self.sim.state()["extensions"]
        self.findings += [f"Verba: {line}" for line in oracle.compare(self.model, extensions).problems]

    def check_call_log(self) -> None:
        """Who called Verba, that no two instances overlapped on one extension, and that the directory's
        last change (made after the kill, so polled by the new leader) reached Verba."""
        calls = self.sim.calls()
        (self.workdir / "sim-calls.json").write_text(json.dumps(calls))  # for a post-mortem
        agents = {instance_of(call.get("agent")) for call in calls}
        if not agents <= set(NAMES) or not agents >= set(self.survivors):
            self.findings.append(f"SOAP calls came from {sorted(agents)}; expected instances {list(NAMES)} "
                                 "(User-Agent `verba-connector (instance NAME)`)")
        busy = [c for c in calls
                if instance_of(c.get("agent")) == self.killed and c["started"] <= self.kill_at < c["at"]]
        if busy:
            self.facts.append(f"{self.killed} had {len(busy)} SOAP call(s) under way at the kill: "
                              + ", ".join(sorted(f"{c['operation']} {c['extension']}" for c in busy)))
        else:
            self.findings.append(f"{self.killed} had no SOAP call under way at the kill: the load is too light to "
                                 "test taking over a dead instance's pushes")
        checked = [c for c in calls if c["operation"] in EXTENSION_CALLS]
        self.facts.append(f"{len(checked)} calls naming an extension checked for overlaps, from "
                          + ", ".join(f"{name}: {sum(instance_of(c.get('agent')) == name for c in checked)}"
                                      for name in NAMES))
        self.findings += [f"overlap: {line}" for line in overlaps(calls)]
        writes = ("createExtension", "updateExtension")
        blind = [c for c in calls if c["operation"] in writes and c["user_id"] is None]
        self.findings += [f"write without user id: {c}" for c in blind[:10]]
        changed_at, uid, digits = self.changes[-1]
        number = oracle.extension(digits)
        what = f"the directory's last change ({uid} -> {number}, {changed_at - self.kill_at:.1f} s after the kill)"
        arrived = [c for c in calls if c["operation"] in writes and c["extension"] == number and c["status"] == "OK"
                   and c["started"] > changed_at]
        if arrived:
            self.facts.append(f"{what} reached Verba {arrived[0]['at'] - changed_at:.1f} s later, "
                              f"from {instance_of(arrived[0]['agent'])}")
        else:
            self.findings.append(f"{what} never reached Verba")

    def stop_survivors(self) -> None:
        """SIGTERM the survivors: each exits 0; no instance logged an exception."""
        for name in self.survivors:
            code = self.instances[name].stop()
            if code != 0:
                self.findings.append(f"instance {name} exited with status {code} on SIGTERM")
        for name, instance in self.instances.items():
            self.findings += [f"connector-{name}.log: {line[:600]}" for line in instance.log_errors()[1][:5]]
        logs = [instance.log.read_text(errors="replace") for instance in self.instances.values()]
        refused = sum(log.count('"cause": "lease_ending"') for log in logs)
        pushes = sum(log.count('"message": "pushed ') for log in logs)
        self.facts.append(f"{pushes} pushes done; {refused} attempt(s) gave up before a call (lease_ending): the "
                          "lease ran too short for the next call before its renewal")

    def load_facts(self) -> str:
        sent = [n for w in self.workloads if isinstance(w.client.http, Balancer) for n in w.client.http.sent.values()]
        return (f"{self.counters.writes} SCIM writes acknowledged ({self.counters.retries} retried, "
                f"{sum(sent)} requests through the balancer), {self.directory.changes} directory changes")

    def stop_loading(self) -> None:
        self.stop_load.set()
        self.stop_sampling.set()
        for thread in self.threads:
            thread.join(120)

    def close(self) -> None:
        self.stop_loading()
        for instance in self.instances.values():
            with contextlib.suppress(Exception):
                instance.stop()
        self.sim.close()
        self.directory.close()




@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_instances_lose_the_directory_leader_and_nothing_else(postgres_server, tmp_path):
    why = slapd_available()
    if why:
        pytest.skip(why)
    began = time.monotonic()
    cluster = Cluster(tmp_path, postgres_server.create_schema(), postgres_server.port, random.randrange(1_000_000))
    try:
        cluster.start()
        cluster.wait_until_all_up()
        cluster.start_load()
        time.sleep(LOAD_BEFORE_KILL)
        cluster.kill_leader()
        cluster.watch_recovery()
        time.sleep(max(0.0, cluster.kill_at + LOAD_AFTER_KILL - time.time()))
        cluster.stop_loading()
        cluster.findings += cluster.errors
        cluster.check_connections()
        cluster.facts.append(cluster.load_facts())
        cluster.drain()
        cluster.facts.append(f"drained {time.monotonic() - began:.1f} s after the start")
        cluster.check_store_and_verba()
        cluster.check_call_log()
        cluster.stop_survivors()
    finally:
        if not cluster.stop_sampling.is_set():  # it failed half-way: the connections held may explain why
            cluster.stop_loading()
            cluster.check_connections()
        cluster.close()
        cluster.facts.append(f"took {time.monotonic() - began:.1f} s")
        report = "\n".join(["", *cluster.facts, *(["findings:", *cluster.findings] if cluster.findings else [])])
        print(report)  # shown with any failure, an exception half-way included
    assert not cluster.findings, report
