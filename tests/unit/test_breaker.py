"""The target's circuit breaker (connector/delivery/breaker.py), on a clock the test moves."""

from __future__ import annotations

from connector.delivery.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> Breaker:
    return Breaker(window_seconds=10, min_users=2, probe_seconds=5, clock=clock)


def test_one_user_failing_again_and_again_does_not_open_it() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(5):
        assert not b.failed(("scim", "alice"), "connection refused")
        clock.now += 1
    assert not b.state.open


def test_two_users_failing_within_the_window_open_it_with_the_time_and_error() -> None:
    clock = Clock()
    b = breaker(clock)
    assert not b.failed(("scim", "alice"), "HTTP 503")
    clock.now += 9
    assert b.failed(("ldap", "bob"), "HTTP 503")
    assert b.state.open and b.state.opened_at == clock.now and b.state.error == "HTTP 503"


def test_failures_further_apart_than_the_window_or_with_a_success_between_do_not_open_it() -> None:
    clock = Clock()
    b = breaker(clock)
    b.failed(("scim", "alice"), "timeout")
    clock.now += 11
    assert not b.failed(("scim", "bob"), "timeout")
    b.succeeded()
    assert not b.failed(("scim", "carol"), "timeout")


def test_one_probe_at_a_time_at_the_interval_and_the_first_success_closes_it() -> None:
    clock = Clock()
    b = breaker(clock)
    b.failed(("scim", "alice"), "refused")
    b.failed(("scim", "bob"), "refused")
    assert not b.take_probe()
    clock.now += 4.9
    assert not b.take_probe()  # the first probe is due probe_seconds after opening
    clock.now += 0.1
    assert b.take_probe() and not b.take_probe()  # the second worker waits for the first's probe
    assert not b.probed("still refused")
    assert b.state.open and b.state.probed_at == clock.now and b.state.error == "still refused"
    assert not b.take_probe()
    clock.now += 5
    assert b.take_probe() and b.probed(None)
    assert not b.state.open and b.state.opened_at is None and not b.take_probe()  # closed: nothing to probe
    assert not b.failed(("scim", "carol"), "refused")  # closed with a clean slate
