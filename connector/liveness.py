"""This connector instance among those sharing one store: it registers, heartbeats, gives back the claims
of instances that died, fences itself when cut off from the store, and runs the tasks only one instance may run (polling
an LDAP directory, the drift check) when no live instance does.

Liveness is judged by the store's clock: an instance whose last heartbeat is older than
`[instance] liveness_seconds` is dead, and the next heartbeat of any live instance returns its
in-flight events to the queue, drops its extension locks and frees its tasks. An instance cut
off from a shared store fences itself: no call starts unless it can end before the others would
count this instance dead. An instance that finds it was counted dead (a VM paused, swapping) while it ran goes on
in a new `generation`: the pushes it began before gave their users back with its claims, and call Verba no more.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import socket
import threading
import time
import uuid
from collections.abc import Callable

from connector.config import InstanceConfig
from connector.delivery.lease import LEASE_MARGIN_SECONDS
from connector.store import Instance, Instances, StoreError

log = logging.getLogger("connector.instance")

DISPLACED = ("another connector took the name {name!r} while this one was counted dead: this one calls Verba no more; "
             "stop it, and give each instance its own [instance] name")


class Liveness:
    """This instance's registration and heartbeat thread (`start()` ... `stop()`).

    `shared`: other instances may take over this one's claims (PostgreSQL), so it must fence itself;
    `on_release` is called when a dead instance's events went back to the queue (to wake the workers).
    """

    def __init__(self, store: Instances, config: InstanceConfig, *, shared: bool, mapping_digest: str | None = None,
                 on_release: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.shared = shared
        self.on_release = on_release
        self.clock = clock
        # start() replaces it with this start as registered: started_at on the database's clock, kept if it rejoins
        self.me = Instance(config.name, uuid.uuid4().hex[:12], socket.gethostname(), os.getpid(),
                           pid_namespace=pid_namespace(), mapping_digest=mapping_digest)
        self.last_beat = -math.inf  # local time the last heartbeat the store took was sent
        self.reaps_from = -math.inf  # local time from which this instance counts silent ones dead (see `beat`)
        self.displaced = False
        # Bumped each time this instance finds it was counted dead: a push that began in an earlier generation lost
        # its claim (another instance may push its user now) and must call Verba no more (delivery/worker.py).
        self.generation = 0
        self._registered = False
        self._failing = False
        self._leading: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    @property
    def owner_prefix(self) -> str:
        """What this start's lease owners begin with: its workers claim as "<run>/<n>"."""
        return f"{self.me.run}/"

    def start(self) -> int:
        """Register (StoreError if a live instance has the same name) and start heartbeating; returns how
        many in-flight events of this instance's previous start went back to the queue."""
        sent = self.clock()
        self.me, released = self.store.register_instance(self.me, self.config.liveness_seconds, previous_start_gone)
        self.last_beat = sent
        self.reaps_from = sent + self.config.liveness_seconds  # a start may follow an outage the others sat out too
        self._registered = True
        self._thread.start()
        log.info("instance %s (run %s) registered; heartbeat every %g s, counted dead after %g s of silence",
                 self.me.name, self.me.run, self.config.heartbeat_seconds, self.config.liveness_seconds)
        return released

    def stop(self) -> None:
        """Stop heartbeating and unregister (call it once the workers and pollers stopped): the other
        instances take this one's tasks at once instead of after the liveness timeout."""
        self._stop.set()
        if not self._registered:
            return
        self._thread.join()
        if self.displaced:  # nothing of it is registered; its name's tasks and breaker are the newer start's
            return
        # The store may be down for a moment (a PostgreSQL restart): try again until the others would count this
        # instance dead anyway, rather than leave a record of a death that on-call is paged for.
        give_up = time.monotonic() + max(0.0, self.last_beat + self.config.liveness_seconds - self.clock())
        while True:
            try:
                self.store.leave_instance(self.me)
                return
            except StoreError as exc:
                if time.monotonic() >= give_up:
                    log.warning("could not unregister instance %s (%s); the others count it dead %g s after its last "
                                "heartbeat, and `connector status` lists it as DEAD until it starts again: if it "
                                "stays stopped, run `connector instances forget %s --reason R`", self.me.name, exc,
                                self.config.liveness_seconds, self.me.name)
                    return
            time.sleep(1)

    def calls_until(self) -> float:
        """Until when (Unix time) a call may run: on a shared store, the liveness timeout after the last
        heartbeat the store took, less a margin; never once another start took this one's name."""
        if self.displaced:
            return -math.inf
        if not self.shared:
            return math.inf
        return self.last_beat + self.config.liveness_seconds - LEASE_MARGIN_SECONDS

    def unready(self) -> str | None:
        """Why a load balancer must send this instance nothing (/readyz answers 503 saying so), or None."""
        return f"displaced: {DISPLACED.format(name=self.me.name)}" if self.displaced else None

    def beat(self) -> None:
        """One heartbeat: say this instance lives and give back the claims of the dead ones.

        Once the store answers again after failed heartbeats (and after its start), this instance counts no other
        dead for `liveness_seconds` more: a store outage silences every instance alike, and the others need a
        heartbeat of their own to say they live before their claims are taken from them."""
        sent = self.clock()
        silence = sent - self.last_beat
        if self._failing or silence > self.config.liveness_seconds:
            self.reaps_from = sent + self.config.liveness_seconds
        try:
            beat = self.store.heartbeat(self.me, self.config.liveness_seconds, reap=sent >= self.reaps_from)
        except StoreError as exc:
            if not self._failing:
                log.warning("instance %s: heartbeat failed (%s); calls to Verba stop %g s after the last one "
                            "unless the store answers again", self.me.name, exc, self.config.liveness_seconds)
            self._failing = True
            return
        if silence > self.config.liveness_seconds:
            log.warning("instance %s: heartbeat written again after %.0f s; no other instance is counted dead for "
                        "%g s, while those the store did not answer either write theirs", self.me.name, silence,
                        self.config.liveness_seconds)
        elif self._failing:
            log.info("instance %s: heartbeat written again", self.me.name)
        self._failing = False
        # Before the fence lifts (last_beat below), so that no push of a claim given back calls Verba in between. A
        # silence that long may have been counted dead though the store's answer did not say so (a lost reply); on a
        # store of its own (SQLite) no other instance takes its claims, so its pushes go on.
        if beat.rejoined or (self.shared and silence > self.config.liveness_seconds):
            self.generation += 1
        if beat.rejoined:
            log.error("instance %s was counted dead by the others (no heartbeat for %g s): its claims went back to "
                      "the queue, and the pushes under way here end before their next call; registered again",
                      self.me.name, self.config.liveness_seconds)
            self._leading.clear()
        if beat.displaced and not self.displaced:
            log.error(DISPLACED.format(name=self.me.name))
            self.displaced = True
        self.last_beat = sent
        for dead, released in beat.reaped:
            log.warning("instance %s (%s, pid %d) silent for over %g s: counted dead; %d in-flight events back to "
                        "the queue, its extension locks and tasks freed", dead.name, dead.host, dead.pid,
                        self.config.liveness_seconds, released)
        if beat.reaped:
            self.on_release()

    def leads(self, task: str) -> bool:
        """Whether this instance runs `task` ("ldap.NAME", "drift") now; it takes it if no live instance does.
        Logs each change."""
        if self.displaced:
            return False
        leading = self.store.lead(task, self.me.name)
        if leading and task not in self._leading:
            log.info("%s: run by this instance (%s) from now on", task, self.me.name)
            self._leading.add(task)
        elif not leading and task in self._leading:
            log.warning("%s: another instance runs it now; this one (%s) stops", task, self.me.name)
            self._leading.discard(task)
        return leading

    def _run(self) -> None:
        while not self._stop.wait(self.config.heartbeat_seconds):
            self.beat()


def previous_start_gone(previous: Instance) -> bool:
    """Whether `previous`, a registered start of this instance's name, is known to be over: it ran on this
    host, among this process's pids (the same `pid_namespace`: not another container with the same host name), and
    its process is gone (or its pid is now this process's). Else only the liveness timeout tells."""
    mine = pid_namespace()
    if previous.host != socket.gethostname() or mine is None or previous.pid_namespace != mine:
        return False
    if previous.pid == os.getpid():
        return True
    try:
        os.kill(previous.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user has that pid now: not ours
        return True
    return False


def pid_namespace() -> str | None:
    """Which pids this process sees: the host's boot id and the inode of its pid namespace, "BOOT_ID:INODE"
    (containers on one host, each with its own pid namespace, differ); None where /proc does not say."""
    try:
        boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None
