"""A slow Verba never lets two workers push one user: the lease is renewed while a push runs."""

from __future__ import annotations

from connector.delivery.worker import Deliverer, WorkerPool
from connector.mapping import load_mapping
from connector.runtime import open_client, open_migrated_store
from connector.store import EventState

from .conftest import settled, user


def test_a_push_slower_than_the_lease_is_never_taken_by_a_second_worker(make_config, simulator):
    config = make_config(delivery={"workers": 3, "lease_seconds": 0.6})
    simulator.fault(operation="createExtension", latency_ms=2000)  # each create outlasts three leases
    store, client = open_migrated_store(config), open_client(config)
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    store.enqueue([user(phones=("+14155550100",))])
    pool = WorkerPool(deliverer, 3, 0.01)
    pool.start()
    try:
        settled(deliverer, timeout=30)
    finally:
        pool.stop(10)
        client.close()
    creates = simulator.calls("createExtension")
    assert len(creates) == 1, f"the user was pushed {len(creates)} times at once"
    [event] = store.list_events()
    assert (event.state, event.attempts) == (EventState.DONE, 1)
    store.close()
