"""/readyz answers at once whatever Verba's latency: from the last finished probe, saying how old it is, while a new
probe runs in the background (a load balancer with a 2 s health check must not drop the instance, and SCIM intake
with it, because Verba is slow). "At once" is shown by order, not by the clock: every answer arrives while the probe
is still held, and the probe is let go only after them."""

from __future__ import annotations

import threading
import time

import httpx

from connector.ops.health import TargetHealth, create_admin_app
from connector.store import Store
from tests.scim.live import serve

URL = "http://verba:7002/provisioning"
OLD = 30.0  # seconds: how old the first probe is made to look


class SkewedClock:
    """Real time plus `skew` seconds."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def __call__(self) -> float:
        return time.time() + self.skew


class SlowVerba:
    """A probe that answers at once `fast` times, then is held until `release` (as a Verba answering after 15 s)."""

    def __init__(self, fast: int) -> None:
        self.fast = fast
        self.calls = 0
        self.held = threading.Event()  # a held probe runs
        self.release = threading.Event()
        self.ended = threading.Event()  # a held probe ended

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.fast:
            return
        self.held.set()
        self.release.wait(60)
        self.ended.set()


def ask_concurrently(url: str, n: int, verba: SlowVerba) -> list[tuple[httpx.Response, bool]]:
    """GET /readyz `n` times at once; each answer with whether the held probe had ended when it arrived. Lets the
    probe go after all answered, or after 20 s (then the answers that came late fail the caller's assertions)."""
    answers: list[tuple[httpx.Response, bool]] = []

    def ask() -> None:
        response = httpx.get(f"{url}/readyz", timeout=60)
        answers.append((response, verba.ended.is_set()))

    threads = [threading.Thread(target=ask) for _ in range(n)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    verba.release.set()
    for thread in threads:
        thread.join(30)
    return answers


def test_readyz_answers_from_the_last_probe_while_verba_is_slow_and_says_how_old_it_is(store: Store) -> None:
    verba = SlowVerba(fast=1)
    clock = SkewedClock(-OLD)
    health = TargetHealth(verba, store, "conn-a", URL, clock=clock)
    first = health.check()
    assert first is not None and first.answered
    clock.skew = 0.0  # the first probe is now OLD seconds old: stale

    with serve(create_admin_app(store, health.check, {"scim": lambda: "ok"})) as url:
        answers = ask_concurrently(url, 4, verba)
        assert verba.held.is_set() and verba.calls == 2, "one new probe, started by the first stale answer"
        assert [ended for _, ended in answers] == [False] * 4, "every /readyz waited for the slow probe"
        for response, _ in answers:
            body = response.json()
            assert (response.status_code, body["status"], body["target"]) == (200, "ready", "reachable"), body
            assert body["target_probed_at"] == first.probed_at and body["target_probe_age_seconds"] >= OLD - 1, body

        assert verba.ended.wait(30)
        fresh = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fresh = httpx.get(f"{url}/readyz", timeout=30).json()
            if fresh["target_probed_at"] != first.probed_at:
                break
            time.sleep(0.05)
    assert fresh is not None and fresh["target_probed_at"] > first.probed_at, fresh
    assert fresh["target_probe_age_seconds"] < OLD - 1 and fresh["status"] == "ready"
    assert verba.calls == 2


def test_readyz_answers_before_the_first_probe_ends_and_says_so(store: Store) -> None:
    """A connector that starts while Verba is slow is degraded (intake works), not unready, and says why."""
    verba = SlowVerba(fast=0)
    health = TargetHealth(verba, store, "conn-a", URL)
    with serve(create_admin_app(store, health.check, {"scim": lambda: "ok"})) as url:
        answers = ask_concurrently(url, 3, verba)
    assert verba.calls == 1
    assert [ended for _, ended in answers] == [False] * 3
    for response, _ in answers:
        body = response.json()
        assert (response.status_code, body["status"]) == (200, "degraded"), body
        assert body["target"] == "unknown: the first probe of Verba has not ended yet"
        assert "target_probe_age_seconds" not in body


def test_readyz_answers_unready_in_seconds_while_the_store_does_not_answer(store: Store, monkeypatch) -> None:
    """A SQLite file another process keeps locked, or an unreachable PostgreSQL host, holds each store call for its
    driver's timeout (5 s, 10 s, more for several calls): /readyz says unready after 3 s instead of outliving the load
    balancer's check, asks the store once however often it is asked, and says writable again once the store answers."""
    pinged, answer = [], threading.Event()
    ping = store.ping

    def hanging() -> None:
        pinged.append(1)
        answer.wait(30)
        ping()

    monkeypatch.setattr(store, "ping", hanging)
    with serve(create_admin_app(store, lambda: None, {"scim": lambda: "ok"})) as url:
        answers = [httpx.get(f"{url}/readyz", timeout=30) for _ in range(2)]
        assert len(pinged) == 1, "one store check at a time"
        answer.set()
        back = httpx.get(f"{url}/readyz", timeout=30)
    for response in answers:
        assert response.status_code == 503, response.text
        assert response.json()["store"] == "unwritable: the store did not answer within 3 s"
    assert back.json()["store"] == "writable"
