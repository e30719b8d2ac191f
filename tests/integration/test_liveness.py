"""An instance among several on one store (connector/liveness.py): heartbeats that reap the dead, the fence
of an instance cut off from the store, leadership of directories, and the User-Agent naming the instance."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time

import pytest

from connector.config import InstanceConfig
from connector.delivery.lease import LEASE_MARGIN_SECONDS
from connector.delivery.worker import Deliverer
from connector.liveness import Liveness, pid_namespace, previous_start_gone
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import EventState, Instance, Store, StoreError
from tests.plugins.simulator import drain, user
from tests.plugins.stores import Opener


def liveness(store: Store, name: str, *, shared: bool = True, liveness_seconds: float = 15.0, **kwargs) -> Liveness:
    return Liveness(store, InstanceConfig(name, heartbeat_seconds=0.05, liveness_seconds=liveness_seconds),
                    shared=shared, **kwargs)


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_live_instance_reaps_a_silent_one_and_wakes_its_workers(store_opener: Opener, caplog) -> None:
    store = store_opener()
    store.enqueue([user("u-alice")])
    woken = threading.Event()
    silent = liveness(store, "a", liveness_seconds=0.5)
    silent.start()
    silent._stop.set()  # its heartbeat thread stops, as when its process is SIGKILLed
    claim = store.claim(f"{silent.owner_prefix}0", time.time(), 120.0)
    assert claim is not None
    survivor = liveness(store, "b", liveness_seconds=0.5, on_release=woken.set)
    with caplog.at_level(logging.WARNING, logger="connector.instance"):
        survivor.start()
        try:
            assert woken.wait(10), "the survivor never counted the silent instance dead"
        finally:
            survivor.stop()
    assert store.get_event(claim.event_ids[0]).state is EventState.PENDING
    assert any("instance a (" in r.getMessage() and "1 in-flight events back to the queue" in r.getMessage()
               for r in caplog.records)
    assert store.live_instances()[1] == []  # b unregistered at its stop, a was reaped


def test_calls_may_run_until_the_liveness_timeout_after_the_last_heartbeat(store_opener: Opener, caplog) -> None:
    store = store_opener()
    now = [1_000.0]
    mine = Liveness(store, InstanceConfig("a", heartbeat_seconds=2, liveness_seconds=15), shared=True,
                    clock=lambda: now[0])
    assert mine.calls_until() == -math.inf  # not registered yet: no call
    mine.start()
    try:
        assert mine.calls_until() == 1_000.0 + 15 - LEASE_MARGIN_SECONDS
        now[0] = 1_004.0
        mine.beat()
        assert mine.calls_until() == 1_004.0 + 15 - LEASE_MARGIN_SECONDS
        now[0] = 1_006.0
        store.close()  # cut off from the store: the fence stays where the last heartbeat put it
        with caplog.at_level(logging.WARNING, logger="connector.instance"):
            mine.beat()
            mine.beat()
        assert mine.calls_until() == 1_004.0 + 15 - LEASE_MARGIN_SECONDS
        assert len([r for r in caplog.records if "heartbeat failed" in r.getMessage()]) == 1
    finally:
        mine._stop.set()


def test_on_a_store_of_its_own_calls_are_never_fenced(store_opener: Opener) -> None:
    store = store_opener()
    mine = liveness(store, "a", shared=False)
    mine.start()
    try:
        assert mine.calls_until() == math.inf
    finally:
        mine.stop()


def test_a_fenced_instance_claims_nothing(make_config, simulator) -> None:
    config = make_config()
    with open_configured_store(config, create=True) as store, open_client(config) as client:
        fenced = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery,
                           calls_until=lambda: time.time() + client.timeout - 1)
        store.enqueue([user("u-alice")])
        assert not fenced.deliver_one("w")
        assert store.count_by_state()[EventState.PENDING] == 1 and simulator.calls() == []
        free = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery,
                         calls_until=lambda: time.time() + client.timeout + 5)
        drain(free)
        assert store.count_by_state()[EventState.DONE] == 1


def test_an_instance_whose_name_was_taken_stops_calling_and_polling(store_opener: Opener, caplog) -> None:
    store = store_opener()
    old = liveness(store, "a", liveness_seconds=0.3)
    old.start()
    old._stop.set()
    time.sleep(0.4)
    store.register_instance(Instance("a", "new-run", socket.gethostname(), 1), 0.3, lambda previous: True)
    with caplog.at_level(logging.ERROR, logger="connector.instance"):
        old.beat()
    assert old.displaced and old.calls_until() == -math.inf and not old.leads("ldap.corp")
    assert any("another connector took the name 'a'" in r.getMessage() for r in caplog.records)


def test_leadership_changes_are_logged_once(store_opener: Opener, caplog) -> None:
    store = store_opener()
    a, b = liveness(store, "a"), liveness(store, "b")
    a.start()
    b.start()
    try:
        with caplog.at_level(logging.INFO, logger="connector.instance"):
            assert a.leads("ldap.corp") and a.leads("ldap.corp") and not b.leads("ldap.corp")
            a.stop()
            assert b.leads("ldap.corp") and b.leads("ldap.corp")
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ldap.corp")]
        assert lines == ["ldap.corp: run by this instance (a) from now on",
                         "ldap.corp: run by this instance (b) from now on"]
        assert store.leaders() == {"ldap.corp": "b"}
    finally:
        b.stop()


def test_a_start_of_another_host_or_a_running_process_is_not_known_to_be_over() -> None:
    host, here = socket.gethostname(), pid_namespace()
    assert previous_start_gone(Instance("a", "r", host, os.getpid(), pid_namespace=here))
    assert not previous_start_gone(Instance("a", "r", host, os.getppid(), pid_namespace=here))  # our parent runs
    assert not previous_start_gone(Instance("a", "r", f"{host}-elsewhere", 999_999_999, pid_namespace=here))
    assert previous_start_gone(Instance("a", "r", host, 999_999_999, pid_namespace=here))
    # the same host name in another container: its pids are not ours to look up
    assert not previous_start_gone(Instance("a", "r", host, 999_999_999, pid_namespace="other-boot:1"))


def test_a_second_connector_with_the_same_name_is_refused_at_start(store_opener: Opener) -> None:
    store = store_opener()
    first = liveness(store, "a")
    first.me = Instance("a", "first", socket.gethostname(), os.getppid())  # another process of this host, running
    first.start()
    try:
        assert first.leads("ldap.corp")
        second = liveness(store, "a")
        with pytest.raises(StoreError, match=r"named 'a' runs on .* give each instance its own \[instance\] name"):
            second.start()
        second.stop()  # never registered: leaves the first one's directories and row alone
        assert [i.run for i in store.live_instances()[1]] == ["first"] and store.leaders() == {"ldap.corp": "a"}
    finally:
        first.stop()


def test_every_call_names_the_instance_in_its_user_agent(make_config, simulator) -> None:
    config = make_config(instance={"name": "blue-7"})
    with open_client(config) as client:
        client.probe()
    assert {call["agent"] for call in simulator.calls()} == {"verba-connector (instance blue-7)"}


def test_after_a_store_outage_that_silenced_it_too_an_instance_counts_no_other_dead_until_they_wrote_theirs(
        store_opener: Opener, caplog) -> None:
    store = store_opener()
    store.enqueue([user("u-alice")])
    a, b = (Liveness(store, InstanceConfig(name, heartbeat_seconds=60, liveness_seconds=0.5), shared=True)
            for name in "ab")
    a.start()
    b.start()
    try:
        claim = store.claim(f"{b.owner_prefix}0", time.time(), 120.0)
        assert claim is not None
        time.sleep(0.7)  # the store answered neither: both silent for longer than liveness_seconds
        with caplog.at_level(logging.WARNING, logger="connector.instance"):
            a.beat()  # the store answers a first
        assert [i.name for i in store.live_instances()[1]] == ["a", "b"] and store.dead_instances() == []
        assert store.get_event(claim.event_ids[0]).state is EventState.IN_FLIGHT
        assert any("heartbeat written again after" in r.getMessage() for r in caplog.records)
        b.beat()  # then b: it was never counted dead
        assert store.get_event(claim.event_ids[0]).state is EventState.IN_FLIGHT
        wait_for(lambda: (a.beat(), time.sleep(0.05), store.dead_instances())[-1] != [])  # b silent on its own now
        assert [d.instance.name for d in store.dead_instances()] == ["b"]
        assert store.get_event(claim.event_ids[0]).state is EventState.PENDING
    finally:  # neither heartbeat thread outlives the test (a later beat on the closed store logs in another test)
        a.stop()
        b.stop()


def test_an_instance_stopped_while_the_store_blinks_still_unregisters(store_opener: Opener) -> None:
    store = store_opener()

    class Blinking:
        """The store, failing the first unregistration as during a PostgreSQL restart."""

        failures = 1

        def __getattr__(self, name: str):
            return getattr(store, name)

        def leave_instance(self, me: Instance) -> int:
            if self.failures:
                self.failures -= 1
                raise StoreError("cannot reach the PostgreSQL server (the database system is starting up)")
            return store.leave_instance(me)

    mine = Liveness(Blinking(), InstanceConfig("a", heartbeat_seconds=60, liveness_seconds=15), shared=True)
    mine.start()
    mine.stop()
    assert store.live_instances()[1] == [] and store.dead_instances() == []


def test_an_outage_shorter_than_liveness_seconds_still_makes_no_instance_count_another_dead(store_opener: Opener):
    """Its own silence stays under liveness_seconds, but the other's, heard from a little earlier, does not: once
    a heartbeat failed, the first one written again counts no other dead either."""
    store = store_opener()

    class Outage:
        """The store as instance a sees it: its next heartbeat fails, as during a short PostgreSQL restart."""

        down = False

        def __getattr__(self, name: str):
            return getattr(store, name)

        def heartbeat(self, *args, **kwargs):
            if self.down:
                raise StoreError("cannot reach the PostgreSQL server (the database system is starting up)")
            return store.heartbeat(*args, **kwargs)

    seen = Outage()
    a = Liveness(seen, InstanceConfig("a", heartbeat_seconds=60, liveness_seconds=0.5), shared=True)
    b = Liveness(store, InstanceConfig("b", heartbeat_seconds=60, liveness_seconds=0.5), shared=True)
    b.start()
    time.sleep(0.1)  # b's last heartbeat is a little older than a's
    a.start()
    a.reaps_from = -math.inf  # long started: its start's own grace is over
    seen.down = True
    time.sleep(0.2)
    a.beat()  # fails
    seen.down = False
    time.sleep(0.25)  # a silent 0.45 s, under liveness_seconds; b silent 0.55 s, over it
    a.beat()
    assert store.dead_instances() == [] and [i.name for i in store.live_instances()[1]] == ["a", "b"]
    a.stop()
    b.stop()


def test_a_long_silence_on_a_store_of_its_own_does_not_end_the_pushes_under_way(store_opener: Opener) -> None:
    """On a store no other instance shares, none can take this one's claims: a heartbeat late by more than
    liveness_seconds (a long write, a paused VM) must not make every push under way give its user back."""
    store = store_opener()
    now = [time.time()]
    solo = liveness(store, "solo", shared=False, clock=lambda: now[0])
    solo.me, _ = store.register_instance(solo.me, 15, previous_start_gone)
    solo.last_beat = solo.reaps_from = now[0]
    now[0] += 16
    solo.beat()
    assert solo.generation == 0
    shared = liveness(store, "shared", clock=lambda: now[0])  # one that others may have counted dead: a new one
    shared.me, _ = store.register_instance(shared.me, 15, previous_start_gone)
    shared.last_beat = shared.reaps_from = now[0]
    now[0] += 16
    shared.beat()
    assert shared.generation == 1
