"""A push whose claim another worker or instance may hold now calls Verba no more and changes nothing in the store:
an instance counted dead that comes back (connector/liveness.py, delivery/worker.py), a lease lost while its push
ran (delivery/lease.py), a push that begins after its lease was taken over (store/ownership.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from connector.config import InstanceConfig
from connector.delivery.worker import Deliverer
from connector.liveness import Liveness
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import EventState, Store
from tests.plugins.simulator import Simulator, drain, user

LIVENESS = 2.5  # above the 1 s call timeout and the 1 s lease margin: calls run until 1.5 s after a heartbeat


@pytest.fixture
def site(make_config, simulator: Simulator, store_url: str) -> Iterator[tuple[Store, Deliverer, Deliverer, Liveness]]:
    """One store; instance A (its heartbeats driven by hand) with its deliverer fenced by its liveness, and a
    deliverer of another instance, B."""
    config = make_config(store={"url": store_url}, target={"timeout_seconds": 1}, delivery={"lease_seconds": 60})
    store, client = open_configured_store(config, create=True), open_client(config)
    mapping = load_mapping(config.mapping_file)
    a = Liveness(store, InstanceConfig("a", heartbeat_seconds=600, liveness_seconds=LIVENESS), shared=True)
    a.start()
    mine = Deliverer(store, client, mapping, config.delivery, calls_until=a.calls_until,
                     generation=lambda: a.generation)
    yield store, mine, Deliverer(store, client, mapping, config.delivery), a
    a._stop.set()
    client.close()
    store.close()


def frozen(deliverer: Deliverer) -> tuple[threading.Event, threading.Event]:
    """Make the deliverer's next push stop right after its claim, before its first call (a VM paused, swapping)
    until the second event is set; the first is set once it stopped."""
    paused, resume = threading.Event(), threading.Event()
    resolve = deliverer.users.resolve

    def stopped(*args, **kwargs):
        paused.set()
        assert resume.wait(30)
        return resolve(*args, **kwargs)

    deliverer.users.resolve = stopped  # type: ignore[method-assign]
    return paused, resume


def test_an_instance_counted_dead_that_comes_back_never_pushes_the_user_it_gave_back(site, simulator) -> None:
    store, mine, other, a = site
    b = Liveness(store, InstanceConfig("b", heartbeat_seconds=600, liveness_seconds=LIVENESS), shared=True)
    b.start()
    paused, resume = frozen(mine)
    store.enqueue([user()])
    pushing = threading.Thread(target=mine.deliver_one, args=(f"{a.owner_prefix}0",))
    pushing.start()
    try:
        assert paused.wait(10)
        # A stays silent; B's heartbeats count it dead and give its claim back; B pushes the user.
        deadline = time.monotonic() + 30
        while not store.dead_instances():
            assert time.monotonic() < deadline, "B never counted A dead"
            time.sleep(0.2)
            b.beat()
        drain(other)
        pushed = len(simulator.calls())
        assert pushed > 0
        a.beat()  # A resumes: its heartbeat registers it again, and lifts its fence
        assert time.time() + 1 <= a.calls_until(), "A's fence is lifted: only the rejoin stops its push"
    finally:
        resume.set()
        pushing.join(30)
        b._stop.set()
    assert len(simulator.calls()) == pushed, "A called Verba for a user it no longer held"
    [event] = store.list_events()
    assert event.state is EventState.DONE, "B's push stands, A's changed nothing"


def test_a_push_whose_lease_was_taken_over_before_it_began_writes_nothing(site, simulator, monkeypatch) -> None:
    store, mine, _, a = site
    store.enqueue([user()])
    begin_push, taken = store.begin_push, []

    def taken_over_first(*args, **kwargs):
        # Another instance whose clock runs ahead finds the lease over and takes the user, as this push begins.
        taken.append(store.claim("b-run/0", time.time() + 120, 60))
        return begin_push(*args, **kwargs)

    monkeypatch.setattr(store, "begin_push", taken_over_first)
    assert mine.deliver_one(f"{a.owner_prefix}0")
    assert taken and taken[0] is not None
    assert simulator.calls("createExtension") == simulator.calls("updateExtension") == [], "nothing written"
    assert store.claimed("test", "u-alice") == set(), "no claim recorded by the push that lost its lease"
    [event] = store.list_events()
    assert (event.state, event.attempts) == (EventState.IN_FLIGHT, 2), "the new holder's claim, untouched"
