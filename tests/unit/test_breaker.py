"""The target's circuit breaker (connector/delivery/breaker.py), on a clock the test moves."""

from __future__ import annotations

from connector.delivery.breaker import TRIAL_FAILED, Breaker


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


def opened(clock: Clock) -> Breaker:
    b = breaker(clock)
    b.failed(("scim", "alice"), "refused")
    b.failed(("scim", "bob"), "refused")
    return b


def test_one_probe_at_a_time_at_the_interval_and_an_answered_one_starts_a_trial_that_a_write_ends() -> None:
    clock = Clock()
    b = opened(clock)
    assert not b.take_probe()
    clock.now += 4.9
    assert not b.take_probe()  # the first probe is due probe_seconds after opening
    clock.now += 0.1
    assert b.take_probe() and not b.take_probe()  # the second worker waits for the first's probe
    assert not b.probed("still refused", "w1")
    assert b.state.open and b.state.probed_at == clock.now and b.state.error == "still refused"
    assert not b.take_probe()
    clock.now += 5
    assert b.take_probe() and b.probed(None, "w1")
    # A read answered: w1 pushes alone; the breaker stays open for the others, and nobody else probes.
    assert b.state.open and b.on_trial("w1") and not b.on_trial("w2")
    clock.now += 10
    assert not b.take_probe()
    assert b.close()  # Verba took w1's write
    assert not b.state.open and b.state.opened_at is None and not b.on_trial("w1") and not b.take_probe()
    assert not b.close()  # closed already: nothing to end
    assert not b.failed(("scim", "carol"), "refused")  # closed with a clean slate


def test_a_trial_push_that_fails_as_a_whole_opens_it_again_with_the_next_probe_an_interval_later() -> None:
    clock = Clock()
    b = opened(clock)
    clock.now += 5
    assert b.take_probe() and b.probed(None, "w1")
    clock.now += 1
    assert b.failed(("scim", "carol"), "HTTP 503 on createExtension")  # one user is enough during a trial
    # Said as what happened: the probe (a read) was answered, the push after it failed.
    assert b.state.open and not b.on_trial("w1") and b.state.error == f"{TRIAL_FAILED}: HTTP 503 on createExtension"
    assert b.state.probed_at == 1005.0  # the answered probe's time, not the failed push's
    assert b.state.opened_at == 1000.0  # still the same outage
    assert not b.take_probe() and not b.close()
    clock.now += 5
    assert b.take_probe()
