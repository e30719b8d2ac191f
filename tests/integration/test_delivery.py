"""Delivery against the simulator over real HTTP: upserts, moves, deprovisioning, failures."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import Config
from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.ops.report import attempt_lines
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from tests.plugins.simulator import drain, user

A, B = "+14155550100", "+14155550111"


def pushes(simulator):
    return [c for c in simulator.calls() if c["operation"] in ("createExtension", "updateExtension")]


def test_a_new_user_gets_a_linked_recording_extension(deliverer, simulator):
    deliverer.store.enqueue([user(phones=(A,))])
    drain(deliverer)
    ext = simulator.extensions()[A]
    assert ext["user_id"] == 3 and ext["recordingMode"] == "FULL" and ext["voice"] is True
    assert deliverer.store.count_by_state()[EventState.DONE] == 1


def test_a_number_moving_from_a_to_b_upserts_b_and_stops_a_keeping_its_link(deliverer, simulator):
    deliverer.store.enqueue([user(phones=(A,))])
    drain(deliverer)
    deliverer.store.enqueue([user(phones=(B,))])
    drain(deliverer)
    extensions = simulator.extensions()
    assert extensions[B]["user_id"] == 3 and extensions[B]["voice"] is True
    assert extensions[A]["user_id"] == 3, "deprovisioning must keep the user link"
    assert not any(extensions[A][k] for k in ("voice", "im", "video", "screenCaptureEnabled"))
    assert [r.extension for r in deliverer.store.pushed_extensions("test", "u-alice")] == [B]


@pytest.mark.parametrize("how", [{"kind": "deactivate"}, {"kind": "delete"}, {"active": False}])
def test_deprovisioning_keeps_the_link_and_stops_recording(deliverer, simulator, how):
    deliverer.store.enqueue([user(phones=(A,))])
    drain(deliverer)
    deliverer.store.enqueue([user(phones=(A,), **how)])
    drain(deliverer)
    ext = simulator.extensions()[A]
    assert ext["user_id"] == 3
    assert not any(ext[k] for k in ("voice", "im", "video", "screenCaptureEnabled"))
    assert all(c["user_id"] == 3 for c in pushes(simulator))


@pytest.fixture
def seed_extensions():
    """A made by hand in Verba, linked to no user."""
    return [{"eid": "0000", "extension": A, "recordingMode": "ON_DEMAND", "voice": False, "im": False,
             "video": False, "screenCaptureEnabled": False}]


def test_an_existing_unlinked_extension_is_read_then_updated_with_the_full_record(deliverer, simulator):
    deliverer.store.enqueue([user(phones=(A,))])
    drain(deliverer)
    calls = [c for c in simulator.calls() if c["operation"] in ("createExtension", "getExtension", "updateExtension")]
    assert [(c["operation"], c["status"]) for c in calls] == [("createExtension", "ERROR_ALREADY_EXISTS"),
                                                              ("getExtension", "OK"), ("updateExtension", "OK")]
    assert calls[2]["user_id"] == 3 and calls[2]["recordingMode"] == "FULL"
    assert simulator.extensions()[A]["user_id"] == 3


def test_fifty_queued_changes_to_one_user_cost_one_push_of_the_final_state(deliverer, simulator):
    numbers = [f"+1415555{n:04d}" for n in range(50)]
    deliverer.store.enqueue([user(phones=(n,)) for n in numbers])
    drain(deliverer)
    assert [c["extension"] for c in pushes(simulator)] == [numbers[-1]]
    assert deliverer.store.count_by_state()[EventState.DONE] == 50


def test_an_expired_token_is_renewed_once_and_delivery_continues(deliverer, simulator):
    deliverer.store.enqueue([user(phones=(A,))])
    drain(deliverer)
    simulator.expire_tokens()
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(B,))])
    drain(deliverer)
    assert simulator.extensions()[B]["user_id"] == 4
    assert len(simulator.calls("requestToken")) == 2
    assert deliverer.store.count_by_state()[EventState.DEAD] == 0


def test_verba_answering_503_delays_delivery_and_loses_nothing(make_config, simulator):
    with breaker_deliverer(fast_breaker(make_config, 12)) as deliverer:
        simulator.fault(operation="*", http_status=503, times=3)
        deliverer.store.enqueue([user(phones=(A,))])
        drain(deliverer)
        [event] = deliverer.store.list_events()
        assert event.state is EventState.DONE and event.attempts == 1  # a probe failed too: Verba's outage spent none
        assert simulator.extensions()[A]["user_id"] == 3


def test_writes_failing_for_the_whole_budget_while_verba_reads_end_in_a_dead_letter_with_the_cause(
        make_config, simulator):
    config = make_config(delivery={"max_attempts": 3})
    store, client = open_configured_store(config, create=True), open_client(config)
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    simulator.fault(operation="createExtension", http_status=503)  # the probe after each failure is answered
    store.enqueue([user(phones=(A,))])
    drain(deliverer)
    [event] = store.list_events()
    assert event.state is EventState.DEAD and event.attempts == 3 and event.last_cause == "http_5xx"
    client.close()
    store.close()


def test_illegal_argument_dead_letters_at_once_with_the_vendors_message(deliverer, simulator):
    simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT", message="Unknown recording mode: X")
    deliverer.store.enqueue([user(phones=(A,))])
    drain(deliverer)
    [event] = deliverer.store.list_events()
    assert event.state is EventState.DEAD and event.attempts == 1
    assert event.last_cause == "error_illegal_argument" and "Unknown recording mode: X" in event.last_error


def test_a_user_unknown_to_verba_dead_letters_and_nothing_reaches_the_wire(deliverer, simulator):
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(A,))])
    drain(deliverer)
    [event] = deliverer.store.list_events()
    assert event.state is EventState.DEAD and event.last_cause == "unresolved_user"
    assert "carol@example.com" in event.last_error
    assert pushes(simulator) == []


def test_a_user_with_no_number_unknown_to_verba_is_done_without_a_call(deliverer, simulator):
    """A service account without a number: nothing to record or stop, so no Verba user is needed."""
    deliverer.store.enqueue([user("u-svc", "svc-backup@example.com", phones=()),
                             user("u-gone", "gone@example.com", phones=(), kind="delete")])
    drain(deliverer)
    assert [(e.change.external_id, e.state) for e in deliverer.store.list_events()] == [
        ("u-gone", EventState.DONE), ("u-svc", EventState.DONE)]
    assert [c["operation"] for c in simulator.calls()] == []  # not even a listUsers
    deliverer.store.enqueue([user("u-svc", "svc-backup@example.com", phones=(A,))])  # given a number: resolved
    drain(deliverer)
    newest = deliverer.store.list_events()[0]
    assert newest.state is EventState.DEAD and newest.last_cause == "unresolved_user"


@pytest.mark.parametrize("leaves", ["delete", "deactivate", "inactive"])
def test_a_leaver_who_never_reached_verba_is_done_and_its_dead_letter_goes(deliverer, simulator, leaves):
    """A contractor created at the source with a number but never in Verba, then removed: nothing in Verba can be
    linked to a user Verba does not have, so the leave is done (no advice to create a Verba user for a leaver),
    and the create's dead letter, superseded, no longer fails `status --check`."""
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(A,))])
    drain(deliverer)
    left = (user("u-carol", "carol@example.com", phones=(A,), active=False) if leaves == "inactive" else
            user("u-carol", "carol@example.com", phones=(A,), kind=leaves))
    deliverer.store.enqueue([left])
    drain(deliverer)
    newest, first = deliverer.store.list_events()
    assert newest.state is EventState.DONE, newest.last_error
    assert first.state is EventState.DISCARDED and deliverer.store.dead_letter_summary() == []
    assert pushes(simulator) == [] and {c["operation"] for c in simulator.calls()} <= {"requestToken", "listUsers"}
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(A,))])  # back, recorded: unresolved again
    drain(deliverer)
    assert deliverer.store.list_events()[0].last_cause == "unresolved_user"


def test_a_user_who_loses_every_number_is_still_stopped_through_their_verba_user(deliverer, simulator):
    deliverer.store.enqueue([user(phones=(A,))])
    drain(deliverer)
    deliverer.store.enqueue([user(phones=())])
    drain(deliverer)
    stopped = simulator.extensions()[A]
    assert stopped["user_id"] == 3 and not stopped["voice"]  # recording stopped, still linked to alice


def test_a_bad_number_is_a_mapping_dead_letter_not_nothing_to_do(deliverer, simulator):
    deliverer.store.enqueue([user("u-svc", "svc-backup@example.com", phones=("not a number",))])
    drain(deliverer)
    [event] = deliverer.store.list_events()
    assert event.state is EventState.DEAD and event.last_cause == "mapping" and "not a number" in event.last_error


def test_different_users_are_pushed_and_each_ends_linked_to_its_own_id(deliverer, simulator):
    deliverer.store.enqueue([user(phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
    drain(deliverer)
    extensions = simulator.extensions()
    assert (extensions[A]["user_id"], extensions[B]["user_id"]) == (3, 4)


def test_create_missing_users_creates_the_verba_user_then_links_the_extension(make_config, simulator, tmp_path):
    mapping = tmp_path / "create.toml"
    mapping.write_text(
        Path("mappings/default.toml").read_text().replace("create_missing = false", "create_missing = true")
    )
    config = make_config(mapping=str(mapping))
    store, client = open_configured_store(config, create=True), open_client(config)
    deliverer = Deliverer(store, client, load_mapping(mapping), config.delivery)
    store.enqueue([user("u-carol", "carol@example.com", phones=(A,), displayName="Carol")])
    drain(deliverer)
    [created] = simulator.calls("createUser")
    assert created["status"] == "OK"
    carol = [u for u in simulator.http.get("/_sim/state").json()["users"] if u["loginName"] == "carol@example.com"]
    assert len(carol) == 1
    assert simulator.extensions()[A]["user_id"] == carol[0]["id"]
    client.close()
    store.close()


def test_verba_down_for_several_users_opens_the_breaker_no_budget_is_spent_and_the_backlog_drains(
        make_config, simulator):
    # Without the breaker, two attempts each would dead-letter both users; their backoff is a long 30 s.
    config = make_config(delivery={"max_attempts": 2, "backoff_base_seconds": 30, "backoff_max_seconds": 30,
                                   "probe_seconds": 0.05})
    with open_configured_store(config, create=True) as store:
        client = open_client(config)
        deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
        simulator.fault(operation="*", http_status=503)
        store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
        for _ in range(6):  # alice fails, and so does a probe: Verba fails as a whole; then probes fail
            deliverer.deliver_one("w1")
            time.sleep(0.06)
        assert deliverer.breaker.state.open and "503" in (deliverer.breaker.state.error or "")
        [open_breaker] = store.open_breakers()
        assert open_breaker.opened_at == deliverer.breaker.state.opened_at
        counts = store.count_by_state()
        assert counts[EventState.PENDING] == 2 and counts[EventState.DEAD] == 0
        assert sorted(e.attempts for e in store.list_events()) == [0, 0]  # alice's wait spent nothing
        # ... but on-call sees what it sent: a postponed attempt, not counted
        [alice] = store.list_events(user="u-alice")
        [postponed] = store.attempts(alice.id)
        assert (postponed.outcome, postponed.cause) == ("postponed", "http_5xx") and postponed.sent, postponed
        shown = attempt_lines(store.attempts(alice.id), [], alice)
        assert shown[0].startswith("  at ") and ": postponed, not counted as an attempt (http_5xx: " in shown[0], shown
        assert shown[1].startswith(f"    {postponed.sent[0]['operation']} -> "), shown

        simulator.clear_faults()
        drain(deliverer, timeout=10)  # well inside alice's 30 s backoff: she is due at once when Verba is back
        assert not deliverer.breaker.state.open and store.open_breakers() == []
        assert [e.state for e in store.list_events()] == [EventState.DONE, EventState.DONE]
        assert {n: simulator.extensions()[n]["user_id"] for n in (A, B)} == {A: 3, B: 4}
        client.close()


@contextlib.contextmanager
def breaker_deliverer(config: Config) -> Iterator[Deliverer]:
    """A deliverer of `config`, on a new store, for the circuit breaker's tests (they push with `deliver_one`)."""
    with open_configured_store(config, create=True) as store:
        client = open_client(config)
        try:
            yield Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
        finally:
            client.close()


def fast_breaker(make_config, max_attempts: int) -> Config:
    """A config whose backoff and probes take hundredths of a second."""
    return make_config(delivery={"max_attempts": max_attempts, "backoff_base_seconds": 0.01,
                                 "backoff_max_seconds": 0.01, "probe_seconds": 0.02})


def test_an_outage_of_writes_alone_spends_no_budget_though_every_probe_is_answered(make_config, simulator):
    """listUsers answers (so does every probe), createExtension and updateExtension fail with 503: an answered
    probe lets one push through as a trial, whose failure opens the breaker again at no cost. It used to close
    the breaker, make every backed-off event due and spend an attempt of each: all dead within minutes."""
    with breaker_deliverer(fast_breaker(make_config, 3)) as deliverer:
        store = deliverer.store
        for operation in ("createExtension", "updateExtension"):
            simulator.fault(operation=operation, http_status=503)
        store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
        for n in range(60):  # about 40 probe intervals, each answered
            deliverer.deliver_one(f"w{n % 2}")
            time.sleep(0.03)
        assert store.count_by_state()[EventState.DEAD] == 0
        assert max(e.attempts for e in store.list_events()) <= 1  # only the failures that opened it spent one
        assert deliverer.breaker.state.open
        assert len([c for c in simulator.calls("listUsers") if c["status"] == "OK"]) > 10, "probes were answered"

        simulator.clear_faults()
        drain(deliverer, timeout=10)
        assert not deliverer.breaker.state.open and store.open_breakers() == []
        assert {e.state for e in store.list_events()} == {EventState.DONE}


SERVER_FAULT = ('<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault><faultcode>S:Server'
                '</faultcode><faultstring>java.lang.NullPointerException</faultstring></S:Fault></S:Body></S:Envelope>')


def test_records_verba_refuses_with_a_server_fault_end_as_dead_letters_not_an_endless_trial(make_config, simulator):
    """Two users whose writes Verba's service answers with a SOAP Server fault (HTTP 500), reads answered: the
    breaker opens (5xx for two users), every probe is answered, and each trial push fails on one of them. Those
    failures used to spend nothing and make the event due again at once: the same two writes forever, one per
    probe, with the breaker open all along. A trial refused by the service itself now spends its attempt."""
    with breaker_deliverer(fast_breaker(make_config, 3)) as deliverer:
        store = deliverer.store
        simulator.fault(operation="createExtension", http_status=500, body=SERVER_FAULT)
        store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
        deadline = time.monotonic() + 20
        while store.count_by_state()[EventState.DEAD] < 2 and time.monotonic() < deadline:
            deliverer.deliver_one("w1")
            time.sleep(0.01)
        events = store.list_events()
        assert [(e.state, e.last_cause, e.attempts) for e in events] == [(EventState.DEAD, "http_5xx", 3)] * 2, events
        assert "java.lang.NullPointerException" in (events[0].last_error or "")
        assert len(simulator.calls("createExtension")) <= 2 * 3 + 2  # the budget, and one free failure each


def test_writes_refused_with_http_403_and_a_soap_fault_wait_for_verba_spending_nothing(make_config, simulator):
    """A gateway refuses the connector's writes with HTTP 403 and a SOAP fault, reads answer: an authorization
    outage, not the records' own failure. The trial pushes spend no attempt, as for any refused login."""
    with breaker_deliverer(fast_breaker(make_config, 2)) as deliverer:
        store = deliverer.store
        simulator.fault(operation="createExtension", http_status=403, body=SERVER_FAULT)
        store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
        for _ in range(40):
            deliverer.deliver_one("w1")
            time.sleep(0.01)
        assert store.count_by_state()[EventState.DEAD] == 0 and store.count_by_state()[EventState.PENDING] == 2
        assert deliverer.breaker.state.open and len(simulator.calls("createExtension")) > 4, "trials were made"


def test_an_expired_fixed_token_opens_the_breaker_instead_of_dead_lettering_the_backlog(make_config, simulator):
    """Every call is refused once the operator's fixed token expires, and it cannot be renewed: that used to spend
    each event's whole budget, one by one, into dead letters. It now counts as Verba refusing the connector as a
    whole: the backlog waits, and `connector status` shows why."""
    config = fast_breaker(make_config, 2)
    login = open_client(config)
    login.request_token()
    fixed = dataclasses.replace(config.target, login=None, password=None, password_file=None, token=login._token)
    with breaker_deliverer(dataclasses.replace(config, target=fixed)) as deliverer:
        store = deliverer.store
        simulator.expire_tokens()
        store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
        for _ in range(30):
            deliverer.deliver_one("w1")
            time.sleep(0.01)
        assert store.count_by_state()[EventState.DEAD] == 0 and store.count_by_state()[EventState.PENDING] == 2
        assert deliverer.breaker.state.open and "ERROR_UNAUTHORIZED" in (deliverer.breaker.state.error or "")
    login.close()


def test_http_404_while_verba_restarts_pauses_delivery_instead_of_dead_lettering_the_backlog(
        make_config, simulator, tmp_path):
    """Verba's web application answers HTTP 404 for a few seconds while it redeploys after a restart: every event
    pushed meanwhile was dead-lettered as target_misconfigured. It fails every call alike, so the breaker pauses
    delivery (nothing spent), `connector status` names the url and the 404, and the backlog drains once it serves."""
    with breaker_deliverer(fast_breaker(make_config, 2)) as deliverer:
        store = deliverer.store
        simulator.fault(operation="*", http_status=404)
        store.enqueue([user("u-alice", phones=(A,)), user("u-bob", "bob@example.com", phones=(B,))])
        for _ in range(30):
            deliverer.deliver_one("w1")
            time.sleep(0.01)
        assert store.count_by_state()[EventState.DEAD] == 0 and store.count_by_state()[EventState.PENDING] == 2
        assert max(e.attempts for e in store.list_events()) <= 1  # only the failures that opened it spent one
        assert deliverer.breaker.state.open
        config = tmp_path / "status.toml"
        config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "connector.db"}"\n[target]\nurl = "{simulator.url}"\n'
                          'token_env = "NO_SUCH_VAR_FOR_STATUS"\n')
        status = CliRunner().invoke(main, ["status", "--config", str(config)])
        [target] = [line for line in status.output.splitlines() if line.startswith("target: ")]
        assert f"target_misconfigured: Verba answered HTTP 404 at {simulator.url}: no SOAP service at path " \
               "/provisioning (Verba's web application answers so while it restarts); if it lasts, set target.url" \
               in target, status.output

        simulator.clear_faults()  # the web application is up again
        drain(deliverer, timeout=10)
        assert not deliverer.breaker.state.open
        assert {e.state for e in store.list_events()} == {EventState.DONE}
        assert {n: simulator.extensions()[n]["user_id"] for n in (A, B)} == {A: 3, B: 4}


def test_a_push_the_store_cannot_record_is_given_back_at_once_not_left_in_flight(deliverer, simulator, monkeypatch):
    from connector.store import StoreError

    [event_id] = deliverer.store.enqueue([user(phones=(A,))])
    complete, failures = deliverer.store.complete, [StoreError("the store could not be written: disk full")]

    def failing_once(*args, **kwargs):
        if failures:
            raise failures.pop()
        return complete(*args, **kwargs)

    monkeypatch.setattr(deliverer.store, "complete", failing_once)
    with pytest.raises(StoreError):
        deliverer.deliver_one("w1")
    event = deliverer.store.get_event(event_id)
    assert event.state is EventState.PENDING and event.attempts == 0  # not in flight for a whole lease
    drain(deliverer)  # another worker takes it at once: the extension locks went with the claim
    assert deliverer.store.get_event(event_id).state is EventState.DONE
    assert simulator.extensions()[A]["user_id"] == 3
