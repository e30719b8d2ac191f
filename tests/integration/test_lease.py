"""A slow Verba never lets two workers push one user: the lease is renewed while a push runs."""

from __future__ import annotations

import time

import pytest

from connector.config import ConfigError
from connector.delivery.worker import Deliverer, WorkerPool
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from tests.plugins.simulator import drain, settled, user


def test_a_push_slower_than_the_lease_is_never_taken_by_a_second_worker(make_config, simulator, store_url):
    # Four creates of 0.8 s each: the push outlasts its 3 s lease, each call fits in its 1 s timeout.
    config = make_config(store={"url": store_url}, target={"timeout_seconds": 1},
                         delivery={"workers": 3, "lease_seconds": 3})
    simulator.fault(operation="createExtension", latency_ms=800)
    store, client = open_configured_store(config, create=True), open_client(config)
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    numbers = [f"+1415555010{n}" for n in range(4)]
    store.enqueue([user(phones=tuple(numbers))])
    pool = WorkerPool(deliverer, 3, 0.01)
    pool.start()
    try:
        settled(deliverer, timeout=30)
    finally:
        pool.stop(10)
        client.close()
    creates = simulator.calls("createExtension")
    assert [c["extension"] for c in creates] == numbers, "each extension was created once, by one worker"
    [event] = store.list_events()
    assert (event.state, event.attempts) == (EventState.DONE, 1)
    store.close()


def test_a_lease_too_short_for_a_call_is_a_config_error(make_config):
    with pytest.raises(ConfigError) as caught:
        make_config(target={"timeout_seconds": 10}, delivery={"lease_seconds": 12})
    assert "delivery.lease_seconds is 12" in str(caught.value) and "at least 16.5" in str(caught.value)


def test_rate_limited_pushes_wait_as_told_without_spending_attempts(deliverer, simulator):
    simulator.fault(operation="createExtension", http_status=429, headers={"Retry-After": "1"}, times=3)
    deliverer.store.enqueue([user(phones=("+14155550100",))])
    drain(deliverer, timeout=30)
    [event] = deliverer.store.list_events()
    assert (event.state, event.attempts) == (EventState.DONE, 1), "three 429s spent no attempt"
    assert [c["status"] for c in simulator.calls("createExtension")] == ["HTTP_429"] * 3 + ["OK"]


def test_a_soap_client_fault_dead_letters_at_once_and_status_calls_the_target_misconfigured(
        deliverer, simulator, make_config, tmp_path):
    import subprocess
    import sys

    body = ('<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault><faultcode>S:Client'
            '</faultcode><faultstring>Cannot find dispatch method for {urn:x}createExtension</faultstring></S:Fault>'
            '</S:Body></S:Envelope>')
    simulator.fault(operation="createExtension", http_status=500, body=body)
    deliverer.store.enqueue([user(phones=("+14155550100",))])
    drain(deliverer)
    [event] = deliverer.store.list_events()
    assert (event.state, event.last_cause, event.attempts) == (EventState.DEAD, "target_misconfigured", 1)
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "connector.db"}"\n[target]\nurl = "{simulator.url}"\n'
                      f'token_env = "NO_SUCH_VAR_FOR_STATUS"\n')
    status = subprocess.run([sys.executable, "-m", "connector.cli", "status", "--config", str(config)],
                            capture_output=True, text=True, env={"NO_SUCH_VAR_FOR_STATUS": "t", "PATH": ""})
    assert f"target: {simulator.url} MISCONFIGURED: Verba refused the call as a SOAP client fault" in status.stdout, \
        status.stdout + status.stderr


def test_a_push_whose_look_ups_outlast_its_first_lease_locks_its_extensions_for_the_renewed_one(
        make_config, simulator, monkeypatch):
    """The user look-up (and createUser) may take longer than the lease a claim starts with; the lease is renewed
    meanwhile. The extension locks used to be written until the first lease's end, already past: another push
    could take the extension while this one wrote it. They now last as long as the renewed lease."""
    from connector.store.ownership import Claimant, ExtensionsBusy

    config = make_config(target={"timeout_seconds": 1}, delivery={"lease_seconds": 3})
    store, client = open_configured_store(config, create=True), open_client(config)
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    resolve, begin_push, rival = deliverer.users.resolve, store.begin_push, []

    def slow_resolve(*args, **kwargs):
        time.sleep(4)  # longer than the 3 s lease the claim started with; the renewer keeps it
        return resolve(*args, **kwargs)

    def begin_then_rival(*args, **kwargs):
        plan = begin_push(*args, **kwargs)
        now = time.time()
        try:
            begin_push("rival/0", now + 3, now, Claimant("other", "u-eve", 9, "eve@example.com", now),
                       ["+14155550100"], ["+14155550100"])
        except ExtensionsBusy as busy:
            rival.append(busy)
        return plan

    monkeypatch.setattr(deliverer.users, "resolve", slow_resolve)
    monkeypatch.setattr(store, "begin_push", begin_then_rival)
    store.enqueue([user(phones=("+14155550100",))])
    drain(deliverer, timeout=30)
    assert rival, "another push took the extension while this one held the lease"
    assert simulator.extensions()["+14155550100"]["user_id"] == 3
    client.close()
    store.close()
