"""The connector instances sharing the store: who lives (by heartbeats on the database's clock), whose
claims go back to the queue when one dies (and the record that it was counted dead, kept until it starts
again or an operator forgets it), and which instance runs each task only one may run (polling an LDAP
directory, the drift check)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

from connector.store.database import Audit, Database, StoreError, repeatable


@dataclasses.dataclass(frozen=True)
class Instance:
    """One start of a connector process. `run` is unique to this start; its claims' lease owners
    are "<run>/<worker>". Times are the database's clock (Unix seconds)."""

    name: str  # [instance] name: stable across restarts
    run: str
    host: str
    pid: int
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    # The pid's namespace (connector/liveness.py `pid_namespace`); None: unknown (read only at registration)
    pid_namespace: str | None = None
    # The digest of the mapping it loaded (connector/mapping/loader.py `mapping_digest`); None: not recorded (an
    # instance of an older version; read by `live_instances` only)
    mapping_digest: str | None = None


@dataclasses.dataclass(frozen=True)
class DeadInstance:
    """A start of an instance that a live one's heartbeat counted dead; its claims, locks, tasks and breaker
    went at once, this record stays until the instance registers again or an operator forgets it."""

    instance: Instance  # as last registered: its last heartbeat is when it went silent
    reaped_at: float  # the database's clock (Unix seconds)
    reaped_by: str  # the name of the instance whose heartbeat counted it dead
    released: int  # how many of its in-flight events went back to the queue

    @classmethod
    def from_row(cls, row: Any) -> DeadInstance:
        # what only a start knows of itself is not kept with the record: a dead start is never asked again
        fields = {f.name: row[f.name] for f in dataclasses.fields(Instance)
                  if f.name not in ("pid_namespace", "mapping_digest")}
        return cls(Instance(**fields), row["reaped_at"], row["reaped_by"], row["released"])


@dataclasses.dataclass(frozen=True)
class Beat:
    """What one heartbeat found."""

    rejoined: bool  # this instance had been judged dead (its claims went back) and registered again
    displaced: bool  # another start of the same name took its place: this one must stop delivering
    reaped: list[tuple[Instance, int]]  # instances found dead now, with how many in-flight events went back


class Instances(Database):
    def register_instance(self, me: Instance, liveness_seconds: float,
                          gone: Callable[[Instance], bool]) -> tuple[Instance, int]:
        """Register this start of the instance; the claims its previous start left go back to the queue.
        Returns `me` as registered (started now, by the database's clock: heartbeat it as that) and how many events
        went back. StoreError if another start of the same name still lives: one heard from within
        `liveness_seconds` for which `gone` (e.g. its process no longer runs) is False; `gone` is given the previous
        start with the pid namespace it registered with (`me.pid_namespace` is recorded for the next one)."""
        with self._write() as conn:
            self._lock(conn, "connector.instances")
            now = self._now(conn)
            row = conn.execute(self._q["registered_instance"], (me.name,)).fetchone()
            previous = None if row is None else Instance(**row)
            if previous is not None and now - previous.heartbeat_at <= liveness_seconds and not gone(previous):
                raise StoreError(
                    f"another connector named {me.name!r} runs on {previous.host} (pid {previous.pid}), heard from "
                    f"{now - previous.heartbeat_at:.0f} s ago: give each instance its own [instance] name, or stop "
                    f"the other one first; if it has exited (a crash), start this one again in "
                    f"{math.ceil(liveness_seconds - (now - previous.heartbeat_at)) + 1} s, once it has been silent for "
                    f"[instance] liveness_seconds ({liveness_seconds:g} s)")
            released = 0 if previous is None else self._release(conn, previous)
            me = dataclasses.replace(me, started_at=now, heartbeat_at=now)
            conn.execute(self._q["put_instance"], (me.name, me.run, me.host, me.pid, now, now))
            conn.execute(self._q["note_start"], (me.pid_namespace, me.mapping_digest, me.run))
            conn.execute(self._q["forget_dead_instance"], (me.name,))
        return me, released

    @repeatable
    def heartbeat(self, me: Instance, liveness_seconds: float, *, reap: bool = True) -> Beat:
        """Record that `me` (as `register_instance` returned it) lives, and (unless not `reap`) give back the claims,
        extension locks and tasks of every instance silent for over `liveness_seconds` (unregistering it, and recording
        it as counted dead by `me`: see `dead_instances`). One transaction. If `me` was counted dead, it registers
        again with its own start: its process still runs as it started (with the mapping as it was then). Safe to
        repeat: a second run finds the dead reaped and `me` registered (what a first run lost at its COMMIT did then
        goes unreported)."""
        with self._write() as conn:
            self._lock(conn, "connector.instances")
            now = self._now(conn)
            here = conn.execute(self._q["beat"], (now, me.run)).rowcount == 1
            silent = conn.execute(self._q["silent_instances"], (now - liveness_seconds,)) if reap else []
            reaped = [(i, self._reap(conn, i, me.name, now)) for i in [Instance(**row) for row in silent]
                      if i.run != me.run]
            displaced = False
            if not here:
                displaced = not conn.execute(self._q["add_instance"], (
                    me.name, me.run, me.host, me.pid, me.started_at, now)).rowcount
            if not here and not displaced:  # back from the dead
                conn.execute(self._q["note_start"], (me.pid_namespace, me.mapping_digest, me.run))
                conn.execute(self._q["forget_dead_instance"], (me.name,))
        return Beat(not here and not displaced, displaced, reaped)

    @repeatable
    def leave_instance(self, me: Instance) -> int:
        """Unregister `me` at a clean stop: its claims (none once its workers stopped), locks and
        tasks are given back at once, and no record of it stays; returns how many events went back. Safe to repeat:
        a second run finds nothing left to give back."""
        with self._write() as conn:
            self._lock(conn, "connector.instances")
            conn.execute(self._q["forget_dead_run"], (me.run,))  # counted dead while it hung, then stopped
            return self._release(conn, me)

    @repeatable
    def live_instances(self) -> tuple[float, list[Instance]]:
        """The database's clock now, and the registered instances by name (a dead one stays until a live
        one's heartbeat removes it)."""
        with self._read() as conn:
            return self._now(conn), [Instance(**row) for row in conn.execute(self._q["instances"])]

    def dead_instances(self) -> list[DeadInstance]:
        """The instances counted dead that have neither registered again nor been forgotten, by name."""
        return [DeadInstance.from_row(row) for row in self._all("dead_instances")]

    def forget_dead_instance(self, name: str, liveness_seconds: float, *, audit: Audit | None = None) -> int | None:
        """Acknowledge that instance `name` is gone for good: drop the record that it was counted dead, and
        unregister it if it is registered but silent for over `liveness_seconds` (as a live one's heartbeat
        would: its claims, locks, tasks and breaker go). Returns how many in-flight events went back, or None if
        there was nothing to forget. StoreError if it was heard from within `liveness_seconds`. `audit` is written
        in the same transaction when something was forgotten, with "released": the count."""
        with self._write() as conn:
            self._lock(conn, "connector.instances")
            now = self._now(conn)
            row = conn.execute(self._q["instance"], (name,)).fetchone()
            registered = None if row is None else Instance(**row)
            if registered is not None and (silent := now - registered.heartbeat_at) <= liveness_seconds:
                raise StoreError(
                    f"instance {name!r} on {registered.host} (pid {registered.pid}) was heard from {silent:.0f} s "
                    f"ago: only an instance that is gone can be forgotten. If it still runs, stop it (a clean stop "
                    f"leaves nothing to forget); if it was killed, it counts as gone {liveness_seconds:g} s after "
                    f"its last heartbeat: try again in {math.ceil(liveness_seconds - silent)} s")
            recorded = conn.execute(self._q["forget_dead_instance"], (name,)).rowcount
            if registered is None and not recorded:
                return None
            released = 0 if registered is None else self._release(conn, registered)
            if audit is not None:
                self._audit(conn, audit, [], released=released)
            return released

    @repeatable
    def lead(self, task: str, name: str) -> bool:
        """Whether instance `name` runs `task` ("ldap.NAME", "drift"): it takes it if nobody does or the
        leader is no longer registered, and keeps it while it leads. Safe to repeat."""
        with self._statement() as conn:  # one statement: its own transaction
            return conn.execute(self._q["lead"], (task, name, time.time())).fetchone() is not None

    def leaders(self) -> dict[str, str]:
        """The registered instance that runs each task, by task."""
        return {row["task"]: row["instance"] for row in self._all("leaders")}

    def _release(self, conn: Any, instance: Instance) -> int:
        """Unregister `instance`: its claims go back to pending, its extension locks, tasks and breaker go."""
        self._lock_queue(conn)  # its claims may be many users' (queue.py)
        released = int(conn.execute(self._q["release_run"], (time.time(), instance.run)).rowcount)
        conn.execute(self._q["unlock_run"], (instance.run,))
        conn.execute(self._q["forget_leadership"], (instance.name,))
        conn.execute(self._q["close_breaker"], (instance.name,))
        conn.execute(self._q["forget_instance"], (instance.run,))
        return released

    def _reap(self, conn: Any, instance: Instance, reaper: str, now: float) -> int:
        """Release `instance`, counted dead by instance `reaper` at `now`, and record that; returns how many
        in-flight events went back."""
        released = self._release(conn, instance)
        conn.execute(self._q["note_dead_instance"], {**dataclasses.asdict(instance), "reaped_at": now,
                                                     "reaped_by": reaper, "released": released})
        return released

    def _now(self, conn: Any) -> float:
        return float(conn.execute(self._q["now"]).fetchone()["now"])
