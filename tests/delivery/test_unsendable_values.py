"""A value no request to Verba can carry (a character XML 1.0 refuses: a control character, U+FFFF) costs whose value it
is, and nothing sticks: a person's login name dead-letters that person's event alone (cause mapping, replayed once the
source is fixed); a cosmetic field of a user created with create_missing is sent without the character, with a
warning; the connector's own password pauses delivery as a refused one does, dead-lettering nobody; and an extension
whose request could not be built leaves no note that a later push would try to deprovision. Simulator over real HTTP,
on both stores."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connector.config import Config
from connector.delivery.worker import Deliverer
from connector.mapping import MappedUser
from connector.store import EventState
from connector.store.ownership import Claimant
from connector.verba.errors import UnsendableValue
from tests.ops.helpers import wait_for
from tests.plugins.simulator import PASSWORD, Simulator, delivering, drain, user
from tests.verba.helpers import record

ALICE, BOB = "+14155550100", "+14155550111"
UNSENDABLE = "+1415555\uffff0101"  # a number a mapping before connector.mapping refused such characters let through


@pytest.fixture
def make_config(make_config: Callable[..., Config], store_url: str) -> Callable[..., Config]:
    """Every config of this module on each store."""
    return functools.partial(make_config, store={"url": store_url})


@pytest.fixture
def probing(make_config: Callable[..., Config]) -> Iterator[Deliverer]:
    """A deliverer that probes Verba every 0.1 s while its circuit breaker is open."""
    yield from delivering(make_config(delivery={"probe_seconds": 0.1}))


def states(deliverer: Deliverer) -> dict[str, int]:
    return {state.value: n for state, n in deliverer.store.count_by_state().items() if n}


def test_a_login_name_xml_cannot_carry_dead_letters_that_user_alone_naming_it(
        deliverer: Deliverer, simulator: Simulator) -> None:
    [broken, fine] = deliverer.store.enqueue([user("u-bob", "bob\x01@example.com", phones=(BOB,)), user()])
    drain(deliverer)

    dead = deliverer.store.get_event(broken)
    assert dead is not None and (dead.state, dead.last_cause) == (EventState.DEAD, "mapping")
    assert "filter.loginName 'bob\\x01@example.com' holds U+0001" in str(dead.last_error)
    assert "fix the value at the source, then replay the event" in str(dead.last_error)
    assert deliverer.store.get_event(fine).state is EventState.DONE  # type: ignore[union-attr]
    assert simulator.extensions()[ALICE]["user_id"] == 3 and BOB not in simulator.extensions()
    assert not deliverer.breaker.state.open

    # Fixed at the source: the next change of the user is delivered.
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(deliverer)
    assert simulator.extensions()[BOB]["user_id"] == 4


def test_a_new_users_cosmetic_fields_are_sent_without_the_characters_xml_cannot_carry(
        creating: Deliverer, simulator: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    carol = user("u-carol", "carol@example.com", phones=("+14155550122",), displayName="Carol\x1b[1m",
                 emails=[{"value": "carol\uffff@example.com", "primary": True}])
    [event_id] = creating.store.enqueue([carol])
    with caplog.at_level(logging.WARNING):
        drain(creating)

    assert creating.store.get_event(event_id).state is EventState.DONE  # type: ignore[union-attr]
    [created] = simulator.users("carol@example.com")
    assert (created["displayName"], created["email"]) == ("Carol[1m", "carol@example.com")
    assert simulator.extensions()["+14155550122"]["user_id"] == created["id"]
    assert creating.store.verba_user_id("test", "u-carol") == created["id"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for field, character in (("displayName", "U+001B"), ("email", "U+FFFF")):
        assert any("test/u-carol" in w and f"with {field} " in w and f"holds {character}" in w for w in warnings), \
            warnings


def test_a_login_name_xml_cannot_carry_is_never_altered_to_create_a_user(
        creating: Deliverer, simulator: Simulator) -> None:
    [event_id] = creating.store.enqueue([user("u-dave", "dave\x7f\x02@example.com", phones=("+14155550133",))])
    drain(creating)

    dead = creating.store.get_event(event_id)
    assert dead is not None and (dead.state, dead.last_cause) == (EventState.DEAD, "mapping")
    assert "holds U+0002" in str(dead.last_error)
    assert [u["loginName"] for u in simulator.users()] == ["alice@example.com", "bob@example.com"]


def test_a_password_file_rotated_to_one_xml_cannot_carry_pauses_delivery_and_dead_letters_nobody(
        probing: Deliverer, tmp_path: Path, simulator: Simulator) -> None:
    (tmp_path / "verba-password").write_text(f"{PASSWORD}\x1a")  # rotated during a first sync
    probing.store.enqueue([user(), user("u-bob", "bob@example.com", phones=(BOB,))])

    wait_for(lambda: deliver(probing) and probing.breaker.state.probed_at, what="a probe of the open breaker")
    assert states(probing) == {"pending": 2}, "nothing dead-lettered, as for a refused password"
    error = str(probing.breaker.state.error)
    assert "requestToken was not sent" in error and "target.password_file" in error and "U+001A" in error
    assert PASSWORD not in error
    assert simulator.calls() == []

    (tmp_path / "verba-password").write_text(PASSWORD)  # fixed: the next probe logs in
    wait_for(lambda: deliver(probing) and states(probing) == {"done": 2}, what="both users delivered")
    assert {n: simulator.extensions()[n]["user_id"] for n in (ALICE, BOB)} == {ALICE: 3, BOB: 4}


def test_an_extension_whose_request_cannot_be_built_leaves_no_note_a_later_push_would_deprovision(
        deliverer: Deliverer, simulator: Simulator) -> None:
    store = deliverer.store
    store.enqueue([user()])
    claim = store.claim("w", time.time(), 60)
    assert claim is not None
    good, bad, after = record(ALICE, eid="0000"), record(UNSENDABLE, eid="0000"), record("+14155550102", eid="0000")
    me = Claimant("test", "u-alice", 3, "alice@example.com", claim.latest.change.accepted_at)

    with pytest.raises(UnsendableValue) as caught:
        deliverer.owners.push(claim, me, MappedUser([good, bad, after], [], active=True), [good, bad, after])

    assert "extension.extension '+1415555\\uffff0101' holds U+FFFF" in str(caught.value)
    assert store.pushed_extensions("test", "u-alice") == [good], "only the extension Verba received stays noted"
    store.dead_letter(claim, caught.value.cause, str(caught.value))

    # The source fixed the number: the next push writes it and asks Verba about nothing it never received.
    simulator.clear_calls()
    [event_id] = store.enqueue([user(phones=(ALICE, "+14155550101"))])
    drain(deliverer)
    assert store.get_event(event_id).state is EventState.DONE  # type: ignore[union-attr]
    assert {c["extension"] for c in simulator.calls("getExtension")} <= {ALICE, "+14155550101"}
    assert simulator.extensions()["+14155550101"]["user_id"] == 3


def test_a_noted_extension_no_request_can_name_is_left_alone_instead_of_failing_the_user_for_ever(
        deliverer: Deliverer, simulator: Simulator) -> None:
    # A note left by a push before the connector took such notes back, or a crash mid-push.
    deliverer.store.remember_pushed("test", "u-alice", [record(UNSENDABLE, eid="0000")])

    [event_id] = deliverer.store.enqueue([user()])
    drain(deliverer)

    assert deliverer.store.get_event(event_id).state is EventState.DONE  # type: ignore[union-attr]
    assert simulator.extensions()[ALICE]["user_id"] == 3
    assert [r.extension for r in deliverer.store.pushed_extensions("test", "u-alice")] == [ALICE]
    [left] = [a for a in deliverer.store.audit_of_event(event_id) if a.action == "left_alone"]
    assert left.detail["extension"] == UNSENDABLE
    assert "holds U+FFFF" in left.reason and "cannot stop it" in left.reason


def deliver(deliverer: Deliverer) -> bool:
    """One claim (or probe) by a worker; True, to chain in a `wait_for` condition."""
    deliverer.deliver_one("test")
    return True
