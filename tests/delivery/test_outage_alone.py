"""A Verba-wide failure never dead-letters changes: not when Verba answers a maintenance page instead of SOAP, and not
when only one user is pending (a lone night-time change), whose failure is checked with a probe before it spends an
attempt. A lone user's own failure, which Verba's probe answers through, still ends as a dead letter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connector.delivery.breaker import Breaker
from connector.delivery.worker import Deliverer
from connector.ops.health import probe_target
from connector.store import EventState
from connector.verba.errors import LeaseEnding
from tests.integration.test_delivery import SERVER_FAULT, breaker_deliverer, fast_breaker
from tests.ops.helpers import wait_for
from tests.plugins.simulator import Simulator, drain, user

A = "+14155550100"
MAINTENANCE = "<html><head><title>Down for maintenance</title></head></html>"


def delivering_until(deliverer: Deliverer, condition: Callable[[], Any], what: str) -> Any:
    """Push with one worker until `condition()` holds."""

    def step() -> Any:
        deliverer.deliver_one("w1")
        return condition()

    return wait_for(step, what=what)


def dead(deliverer: Deliverer) -> int:
    return deliverer.store.count_by_state()[EventState.DEAD]


def test_a_maintenance_page_for_every_call_opens_the_breaker_and_dead_letters_nothing(make_config, simulator):
    """A load balancer answers its maintenance page at HTTP 200 while Verba restarts, 5 users pending: each was
    tried 3 times and dead-lettered within seconds, and the breaker never opened."""
    logins = [f"u{n}@example.com" for n in range(5)]
    ids = {login: simulator.add_user(login) for login in logins}
    with breaker_deliverer(fast_breaker(make_config, 3)) as deliverer:
        store = deliverer.store
        simulator.fault(operation="*", body=MAINTENANCE)
        store.enqueue([user(f"u-{n}", login, phones=(f"+1415555020{n}",)) for n, login in enumerate(logins)])
        delivering_until(deliverer, lambda: len(simulator.calls()) >= 20 or dead(deliverer),
                         "Verba to be called well past every user's 3 attempts")

        assert dead(deliverer) == 0 and store.count_by_state()[EventState.PENDING] == 5
        assert {e.attempts for e in store.list_events()} == {0}  # the probe after the first failure failed too
        [breaker] = store.open_breakers()
        assert breaker.error is not None and "HTML page titled 'Down for maintenance'" in breaker.error, breaker

        simulator.clear_faults()
        drain(deliverer, timeout=10)
        assert not deliverer.breaker.state.open and store.open_breakers() == []
        assert {e.state for e in store.list_events()} == {EventState.DONE}
        assert {simulator.extensions()[f"+1415555020{n}"]["user_id"] for n in range(5)} == set(ids.values())


def test_one_user_pending_while_verba_fails_for_longer_than_its_attempts_is_delivered_after(make_config, simulator):
    """Verba answers HTTP 503 to everything and only alice is pending: her 2 attempts were spent into a dead letter
    (the breaker needs 2 users). Now a probe after her first failure fails too: the breaker opens, nothing spent."""
    with breaker_deliverer(fast_breaker(make_config, 2)) as deliverer:
        store = deliverer.store
        simulator.fault(operation="*", http_status=503)
        store.enqueue([user(phones=(A,))])
        delivering_until(deliverer, lambda: len(simulator.calls()) >= 8 or dead(deliverer),
                         "Verba to be called well past alice's 2 attempts")

        [event] = store.list_events()
        assert (event.state, event.attempts) == (EventState.PENDING, 0), event
        assert deliverer.breaker.state.open and store.open_breakers() != []
        [postponed] = store.attempts(event.id)
        assert (postponed.outcome, postponed.cause) == ("postponed", "http_5xx"), postponed

        simulator.clear_faults()
        drain(deliverer, timeout=10)
        [event] = store.list_events()
        assert event.state is EventState.DONE and simulator.extensions()[A]["user_id"] == 3
        assert not deliverer.breaker.state.open


def test_a_refused_login_with_one_user_pending_waits_and_says_verbas_own_reason(make_config, simulator):
    """requestToken answers ERROR_LICENSE "license expired" once the token expired, alice alone pending: she was
    dead-lettered (cause auth) after her attempts. Now the breaker opens, its error (what `connector status` shows)
    carries Verba's status and message, the password is still not sent again, and alice is delivered once the
    license is fixed and the refusal forgotten (SIGHUP)."""
    with breaker_deliverer(fast_breaker(make_config, 2)) as deliverer:
        store = deliverer.store
        deliverer.client.request_token()
        simulator.expire_tokens()
        simulator.fault(operation="requestToken", status="ERROR_LICENSE", message="license expired")
        store.enqueue([user(phones=(A,))])

        def probed_for_a_while() -> bool:
            state = deliverer.breaker.state
            return dead(deliverer) > 0 or (state.opened_at is not None and state.probed_at is not None
                                           and state.probed_at - state.opened_at > 0.5)

        delivering_until(deliverer, probed_for_a_while, "the breaker to probe for 0.5 s")
        assert dead(deliverer) == 0 and store.count_by_state()[EventState.PENDING] == 1
        [breaker] = store.open_breakers()
        assert breaker.error is not None and "answered ERROR_LICENSE: license expired; Verba refused the login for " \
            "the reason it gives, which does not name the password: fix that in Verba, then send SIGHUP" \
            in breaker.error, breaker
        refused = [c for c in simulator.calls("requestToken") if c["status"] == "ERROR_LICENSE"]
        assert len(refused) == 1  # withheld since: a refusal sent again could lock the account out

        simulator.clear_faults()  # the license is renewed
        assert deliverer.client.forget_refused_password()  # as SIGHUP does
        drain(deliverer, timeout=10)
        assert [e.state for e in store.list_events()] == [EventState.DONE]
        assert simulator.extensions()[A]["user_id"] == 3


@pytest.mark.parametrize(("rule", "cause"), [
    ({"http_status": 500, "body": SERVER_FAULT}, "http_5xx"),
    ({"malformed": True}, "malformed_response"),
], ids=["server-fault", "garbled-answer"])
def test_a_lone_users_own_failure_still_ends_as_a_dead_letter(make_config, simulator, rule, cause):
    """Verba reads (the probe after each failure is answered) but fails alice's write, a server fault or a garbled
    answer: her failure, not Verba's; her attempts are spent and she ends as a dead letter, never retried forever."""
    with breaker_deliverer(fast_breaker(make_config, 3)) as deliverer:
        store = deliverer.store
        simulator.fault(operation="createExtension", **rule)
        store.enqueue([user(phones=(A,))])
        delivering_until(deliverer, lambda: dead(deliverer), "alice's dead letter")
        [event] = store.list_events()
        assert (event.last_cause, event.attempts) == (cause, 3), event
        assert [a.outcome for a in store.attempts(event.id)] == ["retry", "retry", "dead"]
        assert store.open_breakers() == [] and not deliverer.breaker.state.open


def test_garbled_writes_of_two_users_open_the_breaker_and_end_as_dead_letters_not_an_endless_trial(
        make_config, simulator):
    """createExtension answers something that is no SOAP for alice and bob, reads answered: two users failing so
    open the breaker, as a maintenance page would; every probe is answered, and each trial push garbled spends its
    attempt (it may be the record's own), as a SOAP fault at HTTP 5xx does: both end as dead letters."""
    with breaker_deliverer(fast_breaker(make_config, 3)) as deliverer:
        store = deliverer.store
        simulator.fault(operation="createExtension", malformed=True)
        store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=("+14155550111",))])
        delivering_until(deliverer, lambda: dead(deliverer) == 2, "both dead letters")
        events = store.list_events()
        assert [(e.last_cause, e.attempts) for e in events] == [("malformed_response", 3)] * 2, events
        outcomes = [(a.outcome, a.cause) for e in events for a in store.attempts(e.id)]
        assert ("postponed", "malformed_response") in outcomes, outcomes  # the breaker opened: one waited for it
        assert len(simulator.calls("createExtension")) <= 2 * 3 + 2  # the budget, and one free failure each


def test_a_breaker_opened_by_a_failed_probe_probes_again_an_interval_later() -> None:
    now = [1000.0]
    breaker = Breaker(window_seconds=10, min_users=2, probe_seconds=5, clock=lambda: now[0])
    breaker.open("Verba answered HTTP 503")
    assert breaker.state.open and breaker.state.opened_at == breaker.state.probed_at == 1000.0
    assert breaker.state.error == "Verba answered HTTP 503" and not breaker.take_probe()
    now[0] += 5
    breaker.open("another failure")  # open already: the same outage
    assert breaker.state.opened_at == 1000.0 and breaker.state.error == "Verba answered HTTP 503"
    assert breaker.take_probe()


def test_a_probe_the_push_lease_kept_from_being_sent_is_not_recorded(make_config, simulator: Simulator):
    """It found nothing of Verba: `connector status` must not show Verba unreachable for it."""
    with breaker_deliverer(fast_breaker(make_config, 3)) as deliverer:

        def not_sent() -> None:
            raise LeaseEnding("listUsers was not sent: the push's lease ends before a call could")

        probe = probe_target(not_sent, deliverer.store, "a", simulator.url)
        assert probe.cause == "lease_ending" and deliverer.store.target_probes() == []
