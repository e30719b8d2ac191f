"""The store-backed metrics, read at scrape time from a real store."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connector.events import UserChange
from connector.ops.metrics import register_store
from connector.store import EventState, LdapPoll, open_store


def test_queue_dead_letters_accepted_and_watermark_lag_come_from_the_store(store):
    store.enqueue([UserChange("scim", "1", "upsert", {"userName": "a"}, accepted_at=time.time() - 60)])
    store.enqueue([UserChange("scim", "2", "delete", {"userName": "b"})], state=EventState.HELD)
    store.commit_poll(LdapPoll(directory="corp", version=0, cursor={"usn": 1}, at=time.time() - 30))
    registry = CollectorRegistry()
    register_store(store, registry)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples[("connector_queue_depth", (("state", "pending"),))] == 1
    assert samples[("connector_queue_depth", (("state", "held"),))] == 1
    assert samples[("connector_queue_depth", (("state", "done"),))] == 0
    assert samples[("connector_pending_events", (("state", "pending"),))] == 1
    assert samples[("connector_pending_events", (("state", "held"),))] == 1
    assert ("connector_pending_events", (("state", "done"),)) not in samples
    assert ("connector_pending_events", (("state", "discarded"),)) not in samples
    assert 59 <= samples[("connector_queue_oldest_pending_age_seconds", ())] < 120
    assert samples[("connector_events_accepted_total", (("kind", "delete"), ("source", "scim")))] == 1
    assert 29 <= samples[("connector_ldap_watermark_lag_seconds", (("directory", "corp"),))] < 120


def test_open_conflicts_and_clashes_come_from_the_store(store):
    from connector.store.ownership import Claimant, Conflict

    [event_id] = store.enqueue([UserChange("scim", "b", "upsert", {"userName": "bob"})])
    alice, bob = Claimant("scim", "a", 3, "alice", 1.0), Claimant("scim", "b", 4, "bob", 2.0)
    store.begin_push("w1", time.time() + 60, time.time(), alice, ["+1"], ["+1"])
    store.finish_push("w1", alice, {"+1": 3}, [], [])
    store.begin_push("w2", time.time() + 60, time.time(), bob, ["+1"], ["+1"])
    store.finish_push("w2", bob, {}, [Conflict("+1", bob, event_id, 3, "alice", "scim/a", "held by alice", 1.0)], [])
    registry = CollectorRegistry()
    register_store(store, registry)
    samples = {s.name: s.value for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples["connector_extension_conflicts"] == 1
    assert samples["connector_extension_clashes"] == 1
    assert samples["connector_instances_dead"] == 0


def test_an_instance_counted_dead_is_a_metric_until_forgotten(store):
    from connector.store import Instance

    for name in ("a", "b"):
        store.register_instance(Instance(name, f"run-{name}", "vm", 1), 15, lambda previous: True)
    with store._write() as conn:  # a crashed: its heartbeats stopped a minute ago
        conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 60 WHERE name = 'a'")
    store.heartbeat(Instance("b", "run-b", "vm", 1), 15)
    registry = CollectorRegistry()
    register_store(store, registry)

    def dead() -> float | None:
        return registry.get_sample_value("connector_instances_dead")

    assert dead() == 1
    store.forget_dead_instance("a", 15)
    assert dead() == 0


def test_an_open_breaker_shows_in_metrics_readyz_and_status(config, store):
    from connector.ops.health import check_store, readiness
    from tests.ops.helpers import cli

    opened = time.time() - 90
    store.note_breaker("host-a/4711", opened, opened + 80, "http_5xx: Verba answered HTTP 503")
    registry = CollectorRegistry()
    register_store(store, registry)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    code, body = readiness(lambda: check_store(store), lambda: pytest.fail("no probe while a breaker is open"), {})

    assert samples[("connector_target_breaker_open", ())] == 1
    assert samples[("connector_target_breaker_opened_timestamp_seconds", (("instance", "host-a/4711"),))] == opened
    assert code == 200 and body["status"] == "degraded"
    assert body["target"].startswith("DOWN: circuit breaker open since") and "HTTP 503" in body["target"]
    shown = cli("status", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert "DOWN: circuit breaker open since" in shown.stdout and "host-a/4711" in shown.stdout
    assert "spends no attempts" in shown.stdout


def test_a_new_registry_at_a_collected_one_s_address_starts_empty(store):
    """The registered stores were keyed by id(registry): a test's registry collected, the next one created at its
    address inherited its collector, and register_store failed with KeyError (a flaky CI run)."""
    for _ in range(50):  # CPython reuses a freed object's address at once, most of the time
        registry = CollectorRegistry()
        register_store(store, registry)
        del registry


def test_a_scrape_while_the_store_cannot_be_read_still_answers_without_its_figures(tmp_path, caplog):
    """A database outage is when the metrics matter most: the scrape answers (no 500), says the store is down, and
    keeps the process's own figures (SOAP calls, SCIM requests)."""
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    store.migrate()
    registry = CollectorRegistry()
    register_store(store, registry)
    assert "connector_store_up 1.0" in generate_latest(registry).decode()
    store.close()  # every read now fails with StoreError, as in an outage
    scraped = generate_latest(registry).decode()
    assert "connector_store_up 0.0" in scraped and "connector_queue_depth" not in scraped
    assert "the store's figures are left out of this scrape: the store " in caplog.text


def test_a_scrape_does_not_wait_out_a_store_that_does_not_answer(store, caplog, monkeypatch):
    """A SQLite file another process keeps locked (or an unreachable PostgreSQL host) would hold a scrape past
    Prometheus' 10 s: the scrape answers connector_store_up 0 once the read takes longer than its limit, starts
    no second read while the first hangs, and shows the figures again once the store answers."""
    registry = CollectorRegistry()
    collector = register_store(store, registry)
    collector.reading.seconds = 0.2
    answer, reads = threading.Event(), []
    counted = store.count_by_state

    def hanging(**filters):
        reads.append(1)
        answer.wait(30)
        return counted(**filters)

    monkeypatch.setattr(store, "count_by_state", hanging)
    first, second = (generate_latest(registry).decode() for _ in range(2))  # while the store does not answer
    assert "connector_store_up 0.0" in first and "connector_store_up 0.0" in second
    assert "connector_queue_depth" not in second and len(reads) == 1, "one read at a time"
    assert "the store's figures are left out of this scrape: the store did not answer within 0.2 s" in caplog.text
    answer.set()
    monkeypatch.setattr(store, "count_by_state", counted)
    collector.reading.seconds = 30
    back = generate_latest(registry).decode()
    assert "connector_store_up 1.0" in back and 'connector_queue_depth{state="pending"} 0.0' in back
