"""Instances sharing the store (connector/store/instances.py), on every backend: registration, heartbeats,
a dead instance's claims and locks given back at once and in order, and one leader per directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from connector.liveness import pid_namespace, previous_start_gone
from connector.store import EventState, Instance, Store, StoreError
from connector.store.ownership import Claimant, ExtensionsBusy
from tests.store.test_conformance import change

LIVENESS = 5.0


def start(store: Store, name: str, run: str, pid: int = 1, gone: bool = False) -> Instance:
    """Register a start of instance `name`; returns it as registered (its start on the store's clock)."""
    instance, _ = store.register_instance(Instance(name, run, "host-1", pid), LIVENESS, lambda previous: gone)
    return instance


def claim_as(store: Store, instance: Instance, worker: int = 0):
    claim = store.claim(f"{instance.run}/{worker}", time.time(), 120.0)
    assert claim is not None
    return claim


def age(store: Store, instance: Instance, seconds: float) -> None:
    """Make `instance` silent for `seconds` by the store's clock (as if its process had stopped)."""
    now, _ = store.live_instances()
    with store._write() as conn:
        conn.execute(store._sql("UPDATE instances SET heartbeat_at = %s WHERE run = %s"),
                     (now - seconds, instance.run))


def test_registered_instances_are_listed_with_the_stores_clock(store: Store) -> None:
    start(store, "a", "run-a", pid=11)
    start(store, "b", "run-b", pid=12)
    now, instances = store.live_instances()
    assert [(i.name, i.run, i.host, i.pid) for i in instances] == [("a", "run-a", "host-1", 11),
                                                                  ("b", "run-b", "host-1", 12)]
    assert all(0 <= now - i.heartbeat_at < 5 and abs(now - time.time()) < 5 for i in instances)


def test_a_second_live_instance_of_the_same_name_is_refused(store: Store) -> None:
    start(store, "a", "run-1", pid=11)
    with pytest.raises(StoreError, match=r"named 'a' runs on host-1 \(pid 11\).*own \[instance\] name.*if it has "
                       r"exited \(a crash\), start this one again in [1-6] s, once it has been silent for "
                       r"\[instance\] liveness_seconds \(5 s\)"):
        start(store, "a", "run-2", pid=12)
    assert [i.run for i in store.live_instances()[1]] == ["run-1"]


def test_a_restarted_instance_gives_back_the_claims_of_its_previous_start(store: Store) -> None:
    store.enqueue([change("alice", 1), change("bob", 1)])
    first = start(store, "a", "run-1")
    claims = [claim_as(store, first, 0), claim_as(store, first, 1)]
    other = start(store, "b", "run-b")
    kept = store.enqueue([change("carol", 1)])
    claim_as(store, other)

    again, released = store.register_instance(Instance("a", "run-2", "host-1", 2), LIVENESS, lambda previous: True)
    assert released == 2 and (again.run, again.started_at) == ("run-2", store.live_instances()[1][0].started_at)
    assert {store.get_event(i).state for c in claims for i in c.event_ids} == {EventState.PENDING}
    assert store.get_event(kept[0]).state is EventState.IN_FLIGHT  # b's claim is b's
    assert [i.run for i in store.live_instances()[1]] == ["run-2", "run-b"]


def test_a_silent_instance_is_reaped_by_the_next_heartbeat_with_its_claims_and_locks(store: Store) -> None:
    ids = store.enqueue([change("alice", 1), change("alice", 2, idem_key="a2"), change("bob", 1)])
    dead, alive = start(store, "dead", "run-d"), start(store, "alive", "run-l")
    claim = claim_as(store, dead)
    alice = Claimant("scim", "alice", 7, "alice", 1.0)
    store.begin_push(claim.owner, claim.lease_until, time.time(), alice, ["+1"], ["+1"])
    store.note_breaker("dead", time.time(), None, "Verba down")
    assert store.lead("ldap.corp", "dead")

    beat = store.heartbeat(alive, LIVENESS)
    assert beat.reaped == [] and not beat.rejoined and not beat.displaced
    age(store, dead, LIVENESS + 1)
    beat = store.heartbeat(alive, LIVENESS)

    assert [(instance.name, released) for instance, released in beat.reaped] == [("dead", 2)]
    assert [i.name for i in store.live_instances()[1]] == ["alive"]
    assert [store.get_event(i).state for i in ids[:2]] == [EventState.PENDING, EventState.PENDING]
    again = claim_as(store, alive)  # at once, the user's events in order, the lease long from over
    assert (again.external_id, again.event_ids, again.latest.id) == ("alice", tuple(ids[:2]), ids[1])
    store.begin_push(again.owner, again.lease_until, time.time(), alice, ["+1"], ["+1"])  # the lock is free
    assert store.open_breakers() == []
    assert store.lead("ldap.corp", "alive") and store.leaders() == {"ldap.corp": "alive"}


def test_an_instance_counted_dead_stays_on_record_until_it_starts_again(store: Store) -> None:
    store.enqueue([change("alice", 1), change("bob", 1)])
    dead, alive = start(store, "dead", "run-d", pid=11), start(store, "alive", "run-l")
    claim_as(store, dead, 0), claim_as(store, dead, 1)
    assert store.lead("drift", "dead")
    age(store, dead, LIVENESS + 1)
    now, _ = store.live_instances()
    store.heartbeat(alive, LIVENESS)

    [record] = store.dead_instances()
    assert (record.instance.name, record.instance.run, record.instance.pid) == ("dead", "run-d", 11)
    assert (record.reaped_by, record.released) == ("alive", 2) and abs(record.reaped_at - now) < 5
    assert [i.name for i in store.live_instances()[1]] == ["alive"]  # not registered: it leads nothing
    assert store.leaders() == {} and store.lead("drift", "alive")
    store.heartbeat(alive, LIVENESS)
    assert [d.reaped_by for d in store.dead_instances()] == ["alive"]  # counted dead once

    start(store, "dead", "run-d2")
    assert store.dead_instances() == []


def test_an_instance_counted_dead_that_beats_again_or_stops_cleanly_leaves_no_record(store: Store) -> None:
    zombie, other = start(store, "z", "run-z"), start(store, "o", "run-o")
    age(store, zombie, LIVENESS + 1)
    store.heartbeat(other, LIVENESS)
    assert store.heartbeat(zombie, LIVENESS).rejoined and store.dead_instances() == []

    age(store, zombie, LIVENESS + 1)
    store.heartbeat(other, LIVENESS)
    store.leave_instance(zombie)
    assert store.dead_instances() == [] and [i.name for i in store.live_instances()[1]] == ["o"]
    store.leave_instance(other)
    assert store.dead_instances() == []


def test_forgetting_an_instance_drops_its_record_or_its_silent_row_and_refuses_a_live_one(store: Store) -> None:
    store.enqueue([change("alice", 1)])
    dead, alive = start(store, "dead", "run-d"), start(store, "alive", "run-l", pid=7)
    age(store, dead, LIVENESS + 1)
    store.heartbeat(alive, LIVENESS)
    assert store.forget_dead_instance("dead", LIVENESS) == 0
    assert store.dead_instances() == [] and store.forget_dead_instance("dead", LIVENESS) is None

    with pytest.raises(StoreError, match=r"instance 'alive' on host-1 \(pid 7\) was heard from \d+ s ago: only an "
                                         r"instance that is gone can be forgotten. If it still runs, stop it"):
        store.forget_dead_instance("alive", LIVENESS)
    claim_as(store, alive)  # then it crashes, and no other instance is left to count it dead
    age(store, alive, LIVENESS + 1)
    assert store.forget_dead_instance("alive", LIVENESS) == 1
    assert store.live_instances()[1] == [] and store.count_by_state()[EventState.PENDING] == 1


def test_a_reaped_instance_that_beats_again_rejoins_and_its_late_results_change_nothing(store: Store) -> None:
    store.enqueue([change("alice", 1)])
    zombie, other = start(store, "z", "run-z"), start(store, "o", "run-o")
    claim = claim_as(store, zombie)
    age(store, zombie, LIVENESS + 1)
    store.heartbeat(other, LIVENESS)

    beat = store.heartbeat(zombie, LIVENESS)
    assert beat.rejoined and not beat.displaced
    store.complete(claim, [], None)  # its lease went with it: nothing settles
    assert store.get_event(claim.event_ids[0]).state is EventState.PENDING
    assert store.renew_lease(claim, time.time() + 60) is None


def test_a_reaped_instance_that_beats_again_keeps_its_start(store: Store) -> None:
    """Its process still runs as it started (with the mapping as it was then): `status --check` compares that start
    with the mapping file's last change."""
    zombie, other = start(store, "z", "run-z"), start(store, "o", "run-o")
    now, listed = store.live_instances()
    assert [(i.run, i.started_at) for i in listed] == [("run-o", other.started_at), ("run-z", zombie.started_at)]
    assert 0 <= now - zombie.started_at < 5 and zombie.heartbeat_at == zombie.started_at
    age(store, zombie, LIVENESS + 1)
    store.heartbeat(other, LIVENESS)
    time.sleep(0.01)  # the store's clock moves on

    assert store.heartbeat(zombie, LIVENESS).rejoined
    [back] = [i for i in store.live_instances()[1] if i.name == "z"]
    assert (back.run, back.started_at) == ("run-z", zombie.started_at) and back.heartbeat_at > zombie.started_at


def test_a_reaped_instance_whose_name_was_taken_is_displaced(store: Store) -> None:
    old = start(store, "a", "run-1")
    age(store, old, LIVENESS + 1)
    start(store, "a", "run-2")  # the silent start counts as over
    beat = store.heartbeat(old, LIVENESS)
    assert beat.displaced and not beat.rejoined
    assert [i.run for i in store.live_instances()[1]] == ["run-2"]


def test_one_leader_per_directory_until_it_leaves_or_dies(store: Store) -> None:
    a, b = start(store, "a", "run-a"), start(store, "b", "run-b")
    assert store.lead("ldap.corp", "a") and store.lead("ldap.hr", "b")
    assert not store.lead("ldap.corp", "b") and not store.lead("ldap.hr", "a")
    assert store.lead("ldap.corp", "a")  # a leader keeps it
    assert store.leaders() == {"ldap.corp": "a", "ldap.hr": "b"}

    assert store.leave_instance(a) == 0
    assert store.leaders() == {"ldap.hr": "b"}
    assert store.lead("ldap.corp", "b")
    age(store, b, LIVENESS + 1)
    c = start(store, "c", "run-c")
    store.heartbeat(c, LIVENESS)
    assert store.lead("ldap.corp", "c") and store.lead("ldap.hr", "c")


def test_a_directory_whose_leader_is_unregistered_is_free(store: Store) -> None:
    store.lead("ldap.corp", "ghost")  # never registered: e.g. its row went with a single-instance restart
    start(store, "a", "run-a")
    assert store.leaders() == {}
    assert store.lead("ldap.corp", "a")


def test_single_instance_start_up_forgets_every_instance_and_leader(store: Store) -> None:
    start(store, "a", "run-a")
    store.lead("ldap.corp", "a")
    store.release_leases()
    assert store.live_instances()[1] == [] and store.leaders() == {} and store.dead_instances() == []


def test_extension_locks_of_a_live_instance_stay(store: Store) -> None:
    store.enqueue([change("alice", 1)])
    a, b = start(store, "a", "run-a"), start(store, "b", "run-b")
    claim = claim_as(store, a)
    alice = Claimant("scim", "alice", 7, "alice", 1.0)
    store.begin_push(claim.owner, claim.lease_until, time.time(), alice, ["+1"], ["+1"])
    store.heartbeat(b, LIVENESS)
    with pytest.raises(ExtensionsBusy):
        store.begin_push("run-b/0", time.time() + 60, time.time(), alice, ["+1"], ["+1"])


def test_a_second_start_takes_over_a_start_on_its_host_only_among_its_own_pids(store: Store) -> None:
    """Containers that share a host name each have their own pids: a pid not running here may run there."""
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                            check=True)
    gone_pid, host = int(exited.stdout), socket.gethostname()
    other_container = Instance("a", "run-1", host, gone_pid, pid_namespace="another-boot:4026531836")
    store.register_instance(other_container, LIVENESS, previous_start_gone)
    with pytest.raises(StoreError, match="named 'a' runs on"):
        store.register_instance(Instance("a", "run-2", host, os.getpid(), pid_namespace=pid_namespace()), LIVENESS,
                                previous_start_gone)
    assert [i.run for i in store.live_instances()[1]] == ["run-1"], "the live one in the other container stays"

    store.register_instance(Instance("b", "run-3", host, gone_pid, pid_namespace=pid_namespace()), LIVENESS,
                            previous_start_gone)
    store.register_instance(Instance("b", "run-4", host, os.getpid(), pid_namespace=pid_namespace()), LIVENESS,
                            previous_start_gone)  # its own earlier start here, its process gone: taken over at once
    assert sorted(i.run for i in store.live_instances()[1]) == ["run-1", "run-4"]
