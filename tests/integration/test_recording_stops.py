"""No silent stop of an active user's recording (simulator over real HTTP): a number mistyped at the source keeps
the number last recorded, and any other stop of a user who stays active is logged and audited.

Mapped with mappings/entra.toml, whose mobile source skips a value that does not parse (on_invalid = "skip")."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from connector.events import UserChange
from connector.ops.preview import DryRun
from connector.ops.replay import preview
from connector.store import EventState
from tests.integration.test_ownership import make_deliverer, recording
from tests.plugins.simulator import drain

WORK, MOBILE = "+12125550401", "+19175550402"
# getExtension's answer when it cannot say: the client then asks listUsers who holds the extension.
UNCLEAR = {"operation": "getExtension", "status": "ERROR_GENERAL", "message": "java.lang.NullPointerException",
           "times": 1}


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 6, "loginName": "dave@example.com", "eid": "0000"}]


def dave(*phones: tuple[str, str], kind: str = "upsert", **state: Any) -> UserChange:
    numbers = [{"type": kind_of, "value": value} for kind_of, value in phones]
    return UserChange("hr", "d", kind, {"userName": "dave@example.com", "phoneNumbers": numbers, **state})  # type: ignore[arg-type]


def test_a_mistyped_mobile_keeps_it_recorded_and_says_so(make_config, simulator, caplog):
    deliverer = make_deliverer(make_config, "mappings/entra.toml")
    deliverer.store.enqueue([dave(("work", "+1 212 555 0401"), ("mobile", "+1 917 555 0402"))])
    drain(deliverer)
    assert recording(simulator.extensions()[MOBILE])

    with caplog.at_level(logging.WARNING, logger="connector.delivery"):
        deliverer.store.enqueue([dave(("work", "+1 212 555 0401"), ("mobile", "+1 917 555 04O2"))])  # letter O
        drain(deliverer)

    held = simulator.extensions()[MOBILE]
    assert recording(held) and held["user_id"] == 6, "a typo at the source must not stop Dave's recording"
    [event] = deliverer.store.list_events(limit=1)
    assert event.state is EventState.DONE
    [kept] = [a for a in deliverer.store.audit_of_event(event.id) if a.action == "kept_recording"]
    assert kept.detail["extension"] == MOBILE and "'+1 917 555 04O2'" in kept.reason
    assert "fixed at the source" in kept.reason
    assert any("left out as invalid" in r.getMessage() and "04O2" in r.getMessage() for r in caplog.records)
    shown = preview(deliverer.store, deliverer.mapping, event)  # what a replay's dry run says of the user
    assert any(line.startswith(f"keep {MOBILE} recorded as last pushed: a value left out as invalid") for line in
               shown.lines), shown

    deliverer.store.enqueue([dave(("work", "+1 212 555 0401"))])  # the mobile removed for good: stopped, and said
    drain(deliverer)
    assert not recording(simulator.extensions()[MOBILE])
    [event] = deliverer.store.list_events(limit=1)
    [stopped] = [a for a in deliverer.store.audit_of_event(event.id) if a.action == "recording_stopped"]
    assert stopped.detail["extension"] == MOBILE and "stays active" in stopped.reason


def test_a_stop_for_a_user_who_stays_active_is_audited_and_a_leavers_is_not(make_config, simulator, caplog):
    deliverer = make_deliverer(make_config, "mappings/entra.toml")
    deliverer.store.enqueue([dave(("work", "+1 212 555 0401"), ("mobile", "+1 917 555 0402"))])
    drain(deliverer)
    with caplog.at_level(logging.WARNING, logger="connector.delivery"):
        deliverer.store.enqueue([dave(("office", "+1 212 555 0401"), ("mobile", "+1 917 555 0402"))])
        drain(deliverer)
    assert not recording(simulator.extensions()[WORK]) and recording(simulator.extensions()[MOBILE])
    [stopped] = [a for a in deliverer.store.list_audit() if a.action == "recording_stopped"]
    assert stopped.detail["extension"] == WORK and stopped.detail["user"] == "hr/d"
    assert any(r.getMessage().startswith(f"stopped recording {WORK}: hr/d") for r in caplog.records)

    deliverer.store.enqueue([dave(("mobile", "+1 917 555 0402"), kind="deactivate")])
    drain(deliverer)
    assert not recording(simulator.extensions()[MOBILE])
    assert [a.detail["extension"] for a in deliverer.store.list_audit() if a.action == "recording_stopped"] == [WORK]


def test_a_new_user_whose_only_number_is_left_out_as_invalid_is_not_silently_done(make_config, simulator, caplog):
    deliverer = make_deliverer(make_config, "mappings/entra.toml")
    with caplog.at_level(logging.WARNING, logger="connector.delivery"):
        [event_id] = deliverer.store.enqueue([dave(("mobile", "+1 917 555 04O2"))])
        drain(deliverer)
    assert simulator.extensions() == {}
    [attempt] = deliverer.store.attempts(event_id)
    assert attempt.outcome == "done" and attempt.sent == ()
    assert attempt.error == ("maps to no extension and none was pushed for it; left out as invalid: "
                             "phoneNumbers[type eq \"mobile\"].value: '+1 917 555 04O2' has letters ('O') where a "
                             "phone number has digits; write the number in digits: fix it at the source")
    assert any("left out as invalid" in r.getMessage() for r in caplog.records)


def dave_listed_without_flags() -> dict[str, Any]:
    """A fault rule: the next listUsers answers dave linked to WORK and MOBILE without saying what Verba records on
    them."""
    body = ('<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:listUsersResponse '
            'xmlns:ns2="http://v2.provisioning.ws.web.verba.com/"><return><status><statusCode>OK</statusCode></status>'
            f"<users><extensions><extension>{WORK}</extension></extensions>"
            f"<extensions><extension>{MOBILE}</extension></extensions><id>6</id>"
            "<loginName>dave@example.com</loginName></users></return></ns2:listUsersResponse></S:Body></S:Envelope>")
    return {"operation": "listUsers", "body": body, "times": 1}


def stopped_audits(deliverer) -> list[Any]:
    return [a for a in deliverer.store.list_audit() if a.action == "recording_stopped"]


@pytest.mark.parametrize("flags_said", [True, False], ids=["holder-listed-with-flags", "flags-unknown"])
def test_a_stop_after_an_unclear_get_extension_is_still_audited(make_config, simulator, caplog, flags_said):
    """getExtension answers an unclear ERROR_GENERAL for the number dave no longer has; whether or not the client's
    listUsers fallback can tell what Verba records on it, the stop of an active user's recording is said."""
    deliverer = make_deliverer(make_config, "mappings/entra.toml")
    deliverer.store.enqueue([dave(("work", "+1 212 555 0401"), ("mobile", "+1 917 555 0402"))])
    drain(deliverer)
    # Twice: the push asks who holds the mobile before updating it, then who holds the number dave no longer has.
    simulator.http.post("/_sim/faults", json=[UNCLEAR, UNCLEAR] + ([] if flags_said else [dave_listed_without_flags(),
                                                                                          dave_listed_without_flags()]))
    with caplog.at_level(logging.WARNING, logger="connector.delivery"):
        deliverer.store.enqueue([dave(("office", "+1 212 555 0401"), ("mobile", "+1 917 555 0402"))])
        drain(deliverer)

    assert [c["status"] for c in simulator.calls("getExtension")][-1:] == ["ERROR_GENERAL"]
    assert not recording(simulator.extensions()[WORK]) and recording(simulator.extensions()[MOBILE])
    [event] = deliverer.store.list_events(limit=1)
    assert event.state is EventState.DONE
    [stopped] = stopped_audits(deliverer)
    assert stopped.detail["extension"] == WORK and stopped.detail["user"] == "hr/d" and "stays active" in stopped.reason
    assert any(r.getMessage().startswith(f"stopped recording {WORK}: hr/d") for r in caplog.records)
    if not flags_said:
        assert "Verba did not say whether it was recording it" in stopped.reason


def test_a_stop_verba_did_not_say_was_recording_is_audited_unconfirmed_when_its_reply_is_lost(make_config,
                                                                                              simulator):
    deliverer = make_deliverer(make_config, "mappings/entra.toml")
    deliverer.store.enqueue([dave(("work", "+1 212 555 0401"))])
    drain(deliverer)
    simulator.http.post("/_sim/faults", json=[UNCLEAR, dave_listed_without_flags(),
                                              {"operation": "updateExtension", "http_status": 502, "times": 1}])
    deliverer.store.enqueue([dave(("office", "+1 212 555 0401"))])
    drain(deliverer)

    assert not recording(simulator.extensions()[WORK])
    unconfirmed = [a for a in stopped_audits(deliverer) if a.detail.get("confirmed") is False]
    assert [a.detail["extension"] for a in unconfirmed] == [WORK]
    assert "Verba did not say whether it was recording it" in unconfirmed[0].reason
    assert "Verba may have applied it (unconfirmed)" in unconfirmed[0].reason


def test_the_dry_run_shows_a_stop_verba_did_not_say_was_recording(make_config, simulator):
    deliverer = make_deliverer(make_config, "mappings/entra.toml")
    deliverer.store.enqueue([dave(("work", "+1 212 555 0401"))])
    drain(deliverer)
    simulator.fault(**dave_listed_without_flags())  # what the dry run reads of dave's extensions
    [shown] = DryRun(deliverer.store, deliverer.client, deliverer.mapping).preview(
        [dave(("office", "+1 212 555 0401"))]).items
    assert (shown.outcome, shown.extension) == ("stop", WORK)
    assert shown.detail == ("not recorded by the mapping's rules: Verba did not say whether it records it for Verba "
                            "user 6")
