"""The target's health as the running connector sees it (connector/ops/health.py): a real probe, reused for a few
seconds, one at a time, recorded in the store for `connector status`; /readyz built on it and on the sources."""

from __future__ import annotations

import threading
import time

import httpx

from connector.config import InstanceConfig
from connector.errors import ConnectorError
from connector.liveness import Liveness
from connector.ops.health import (
    TargetHealth,
    check_store,
    create_admin_app,
    readiness,
    recorded_target_state,
    scim_state,
    target_state,
)
from connector.store import Instance, OpenBreaker, Store, TargetProbe
from connector.verba.errors import VerbaAuthError, VerbaHTTPError, VerbaMisconfigured
from tests.scim.live import serve

URL = "http://verba:7002/provisioning"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_probe_is_reused_while_young_and_recorded_with_when_it_was_taken(store: Store) -> None:
    calls: list[float] = []
    clock = Clock()
    health = TargetHealth(lambda: calls.append(clock()), store, "conn-a", URL, clock=clock)
    first = health.check()
    assert (first.instance, first.url, first.probed_at, first.cause, first.error) == ("conn-a", URL, clock.now,
                                                                                       None, None)
    assert first.answered and target_state(first) == "reachable"
    clock.now += 4.9
    assert health.check() is first and len(calls) == 1
    clock.now += 0.2
    second = health.check()
    assert second.probed_at == clock.now and len(calls) == 2
    assert health.check(max_age=30) is second
    assert store.target_probes() == [second]  # one row per instance, replaced by each probe


def test_a_probe_of_a_mistyped_target_url_says_misconfigured_not_unreachable(store: Store) -> None:
    """Verba answers, so "unreachable: http_404: ..." sent on-call looking for an outage."""
    wrong = VerbaMisconfigured("Verba answered HTTP 404: no SOAP service at path /provisionin; set target.url to ...")

    def probe() -> None:
        raise wrong

    health = TargetHealth(probe, store, "conn-a", URL, clock=Clock())
    assert target_state(health.check()) == f"MISCONFIGURED: {wrong}"


def test_a_failed_probe_says_what_failed_and_is_recorded(store: Store) -> None:
    answers: list[Exception | None] = [VerbaHTTPError(503), VerbaAuthError("requestToken for login 'api' answered "
                                                                           "ERROR_UNAUTHORIZED"), None]

    def probe() -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    clock = Clock()
    health = TargetHealth(probe, store, "conn-a", URL, clock=clock)
    down = health.check()
    assert not down.answered and down.cause == "http_5xx"
    assert target_state(down).startswith("unreachable: http_5xx: Verba answered HTTP 503")
    assert store.target_probes()[0].error == down.error
    clock.now += 10
    assert target_state(health.check()).startswith("unreachable: auth: requestToken for login 'api'")
    clock.now += 10
    assert target_state(health.check()) == "reachable" and store.target_probes()[0].answered


def test_an_unexpected_failure_or_a_store_that_cannot_record_does_not_break_the_probe(store: Store) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    class Unwritable:
        def note_target_probe(self, probe: TargetProbe) -> None:
            raise ConnectorError("database is locked")

    probe = TargetHealth(broken, Unwritable(), "conn-a", URL).check()  # type: ignore[arg-type]
    assert (probe.cause, probe.error) == ("unexpected", "RuntimeError: boom")


def test_concurrent_callers_share_one_probe(store: Store) -> None:
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> None:
        calls.append(1)
        started.set()
        release.wait(5)

    health = TargetHealth(slow, store, "conn-a", URL)
    results: list[TargetProbe] = []
    threads = [threading.Thread(target=lambda: results.append(health.check())) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait(5)
    time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1 and len(results) == 8 and len({id(r) for r in results}) == 1


def test_the_running_connector_probes_on_its_own_every_interval(store: Store) -> None:
    calls: list[float] = []
    health = TargetHealth(lambda: calls.append(time.time()), store, "conn-a", URL)
    health.start(interval=0.05)
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        health.stop()
    assert len(calls) >= 3
    stopped = len(calls)
    time.sleep(0.15)
    assert len(calls) == stopped


def test_what_status_shows_from_the_store() -> None:
    now = 1_000_000.0
    assert recorded_target_state([], [], set(), now).startswith(
        "unknown: no running connector has recorded a probe of Verba yet")
    newest = TargetProbe("conn-b", URL, now - 12, 0.05, "http_5xx", "Verba answered HTTP 503")
    older = TargetProbe("conn-a", URL, now - 40, 0.05, None, None)
    shown = recorded_target_state([newest, older], [], {"conn-a", "conn-b"}, now)
    assert shown.startswith("unreachable: http_5xx: Verba answered HTTP 503 (probed 12s ago, at ")
    assert shown.endswith(", by instance conn-b)")
    assert recorded_target_state([older], [], {"conn-b"}, now).endswith(
        "by instance conn-a; instance conn-a is not running now)")
    breaker = OpenBreaker("conn-b", now - 60, now - 5, "transport: refused", now - 5)
    assert recorded_target_state([older], [breaker], {"conn-b"}, now).startswith("DOWN: circuit breaker open since")


def test_readyz_is_degraded_by_an_unreachable_target_or_scim_not_listening(store: Store) -> None:
    up = TargetProbe("conn-a", URL, time.time(), 0.01, None, None)
    down = TargetProbe("conn-a", URL, time.time(), 0.01, "http_5xx", "Verba answered HTTP 503")
    listening = scim_state("http://127.0.0.1:8080/scim/v2", ["entra", "okta"], True, {})
    assert listening == "ok: listening on http://127.0.0.1:8080/scim/v2; clients entra, okta"

    code, body = readiness(lambda: check_store(store), lambda: up,
                           {"scim": lambda: listening, "ldap.corp": lambda: "ok"})
    assert (code, body["status"], body["target"]) == (200, "ready", "reachable")
    assert body["sources"] == {"scim": listening, "ldap.corp": "ok"} and body["target_probed_at"] == up.probed_at

    code, body = readiness(lambda: check_store(store), lambda: down, {"scim": lambda: listening})
    assert (code, body["status"]) == (200, "degraded")
    assert body["target"] == "unreachable: http_5xx: Verba answered HTTP 503"

    stopped = scim_state("http://127.0.0.1:8080/scim/v2", [], False, {})
    code, body = readiness(lambda: check_store(store), lambda: up, {"scim": lambda: stopped})
    assert (code, body["status"], body["sources"]["scim"]) == (200, "degraded",
                                                                "not listening on http://127.0.0.1:8080/scim/v2")
    assert scim_state("http://h:1/scim/v2", [], True, {}) == (
        "ok: listening on http://h:1/scim/v2; no clients configured (every request gets 401)")


def test_readyz_is_unready_once_another_start_took_the_instances_name(store: Store) -> None:
    """A load balancer must send it nothing: it calls Verba no more and must be stopped."""
    up = TargetProbe("b", URL, time.time(), 0.01, None, None)
    old = Liveness(store, InstanceConfig("b", heartbeat_seconds=60, liveness_seconds=0.3), shared=True)
    old.start()
    try:
        code, body = readiness(lambda: check_store(store), lambda: up, {"scim": lambda: "ok"}, old.unready)
        assert (code, body["status"]) == (200, "ready") and "instance" not in body
        time.sleep(0.4)  # paused past liveness_seconds, and meanwhile the name is started again elsewhere
        store.register_instance(Instance("b", "newer", "vm2", 202), 0.3, lambda previous: True)
        old.beat()

        code, body = readiness(lambda: check_store(store), lambda: up, {"scim": lambda: "ok"}, old.unready)
        with serve(create_admin_app(store, lambda: up, {}, old.unready)) as url:
            answer = httpx.get(f"{url}/readyz")
    finally:
        old.stop()
    reason = ("displaced: another connector took the name 'b' while this one was counted dead: this one calls Verba "
              "no more; stop it, and give each instance its own [instance] name")
    assert (code, body["status"], body["instance"], body["store"]) == (503, "unready", reason, "writable")
    assert (answer.status_code, answer.json()["status"], answer.json()["instance"]) == (503, "unready", reason)
