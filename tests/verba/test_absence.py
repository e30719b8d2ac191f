"""Absence in every plausible shape: one place decides, and only a not-found answer about the extension is absence.

The shapes are tried on the classifier, on the client, and end to end: delivery against the simulator (a subprocess
over real HTTP) answering a missing extension in each shape (its `missing_extension` behaviour, set to the answer).
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from connector.verba import VerbaClient
from connector.verba.errors import ExtensionAbsent, VerbaStatusError
from connector.verba.status import Status, says_extension_absent
from tests.plugins.simulator import drain, user
from tests.verba.helpers import Sim, record

X, Y = "+14155550100", "+14155550111"
# How a missing extension may be answered, {eid} and {extension} as the simulator fills them in (MissingAnswer).
ABSENT = [
    ("ERROR_GENERAL", "Extension not found: {eid}:{extension}"),
    ("ERROR_GENERAL", "The extension does not exist in the database: {eid}:{extension}"),
    ("ERROR_ILLEGAL_ARGUMENT", "Extension {extension} does not exist in environment {eid}"),
    ("ERROR_GENERAL", "No such extension: {extension}"),
    ("ERROR_ILLEGAL_ARGUMENT", "extension {extension} doesn't exist"),
    ("ERROR_GENERAL", "Unknown extension {extension}"),
    ("ERROR_GENERAL", "Extension alice@corp.example not found"),
    # the vendor's documented exception style (com.verba.web.user.UserNotFoundException), for the extension
    ("ERROR_GENERAL", "com.verba.web.extension.ExtensionNotFoundException"),
    ("ERROR_GENERAL", "com.verba.ws.exception.ExtensionNotFoundException: {eid}:{extension}"),
    ("ERROR_GENERAL", "com.verba.web.extension.NoSuchExtensionException: {extension}"),
    # the vendor's eid:number token before the phrase
    ("ERROR_GENERAL", "Extension {eid}:{extension} not found"),
    ("ERROR_ILLEGAL_ARGUMENT", "Extension {eid}:{extension} does not exist"),
    ("ERROR_GENERAL", "Extension '{eid}:{extension}' was not found"),
    ("ERROR_GENERAL", "Extension with number {extension} does not exist in environment {eid}"),
    ("ERROR_GENERAL", "The requested extension {extension} could not be found"),
    ("ERROR_GENERAL", "No extension found: {eid}:{extension}"),
    ("ERROR_GENERAL", "Could not find extension {eid}:{extension}"),
    ("ERROR_GENERAL", "updateExtension failed because extension {extension} does not exist"),
    ("ERROR_GENERAL", "javax.persistence.EntityNotFoundException: Unable to find com.verba.model.Extension with id 56"),
    # undocumented codes
    ("ERROR_NOT_FOUND", "Extension {eid}:{extension} not found"),
    ("NOT_FOUND", "No such extension"),
    ("ERROR_EXTENSION_NOT_FOUND", None),
    ("ERROR_EXTENSION_NOT_FOUND", "{eid}:{extension}"),
]
# Something else than the extension not found, in an answer that names the extension: unclear, never "nothing to do".
OTHER_NOT_FOUND = [
    "Extension lookup failed, linked user record not found (transaction rolled back)",
    "Extension update failed: user with id 7 not found",
    "Extension update failed, user with id 7 not found",
    "Cannot update extension +14155550100: user 111 not found",
    "Extension +14155550100 exists; owner not found in directory cache",
    "The user of this extension does not exist",
    "Owner for extension 4567 not found",
    "Owner for extension not found",
    "The user of this extension not found",
    "Extension user not found",
    "Extension's user does not exist",
    "No extension owner found",
    "Could not find extension owner 7",
    "Could not find the extension's user",
    "extension-user link not found",
    "com.verba.web.extension.ExtensionUserNotFoundException",
    "javax.persistence.EntityNotFoundException: Unable to find com.verba.model.User with id 7",
    "Extension 0000:+14155550100 not found; group 12 not found",  # the extension, and something else
    "Extension 4567 not found: unknown environment 0001",
]
NOT_ABSENT = [
    ("ERROR_GENERAL", "java.lang.NullPointerException"),
    ("ERROR_GENERAL", "com.verba.web.user.UserNotFoundException"),  # a wrong API password
    ("ERROR_ILLEGAL_ARGUMENT", "No user with id 999"),
    ("ERROR_ILLEGAL_ARGUMENT", "Unknown recordingMode: 'LOUD'"),
    ("ERROR_ILLEGAL_ARGUMENT", "extension.extension is mandatory and cannot be empty"),
    ("ERROR_UNAUTHORIZED", "Extension not found"),  # a token problem, whatever the text
    ("ERROR_ALREADY_EXISTS", "Extension not found"),
    ("ERROR_GENERAL", None),
    ("ERROR_NOT_FOUND", None),  # not found, but which?
    ("ERROR_GENERAL", "Failed to load extension 4567"),
    ("ERROR_GENERAL", "Extension 4567 is missing its user"),
    ("ERROR_NOT_FOUND", "Recorder recorder-1 not found"),
    ("ERROR_USER_NOT_FOUND", "Extension 4567 not found"),  # the code says the user is missing
    # Verba failing, or a code that is not about absence: a leaver must not be taken for done
    ("ERROR_SERVICE_UNAVAILABLE", "No extension found: service starting"),
    ("ERROR_INTERNAL", "could not find extension index; rebuild in progress"),
    ("ERROR_DATABASE", "Extension 4567 not found (replica lagging)"),
    ("ERROR_GENERAL", "Timeout: extension 0000:+1555 could not be found in time"),
    ("ERROR_GENERAL", "No extensions found in the cache, reload pending"),
    ("ERROR_GENERAL", "Could not load extension 0000:+1555: connection to database lost; extension not found in cache"),
    # something of the extension's, not the extension
    ("ERROR_GENERAL", "No extension recording policy found for 0000:+15551234"),
    ("ERROR_GENERAL", "Failed to locate extension service endpoint"),
    ("ERROR_GENERAL", "Unknown extension data source"),
    ("ERROR_ILLEGAL_ARGUMENT", "Unknown extension type: SIP"),
    ("ERROR_ILLEGAL_ARGUMENT", "No such extension field: screenCapture"),
    *(("ERROR_GENERAL", message) for message in OTHER_NOT_FOUND),
    *(("ERROR_ILLEGAL_ARGUMENT", message) for message in OTHER_NOT_FOUND[:3]),
]


def said(message: str | None, extension: str = X) -> str | None:
    """A message of ABSENT as Verba would fill it in for this extension of environment 0000."""
    return None if message is None else message.replace("{eid}", "0000").replace("{extension}", extension)


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_not_found_answers_are_absence(code: str, message: str | None) -> None:
    assert says_extension_absent(Status(code, said(message)))


@pytest.mark.parametrize(("code", "message"), NOT_ABSENT)
def test_other_answers_are_not_absence(code: str, message: str | None) -> None:
    assert not says_extension_absent(Status(code, message))


def missing_answered(sim: Any, code: str, message: str | None) -> None:
    """The simulator (Sim or Simulator) answers a missing extension, and only a missing one, with this status."""
    sim.http.post("/_sim/behaviour", json={"missing_extension": {"status": code, "message": message}}
                  ).raise_for_status()


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_get_extension_answers_none_for_each_absent_shape(sim: Sim, client: VerbaClient, code: str,
                                                          message: str | None) -> None:
    missing_answered(sim, code, message)
    assert client.get_extension(X) is None
    assert [(c["extension"], c["status"]) for c in sim.calls("getExtension")] == [(X, code)]


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_update_extension_raises_extension_absent_for_each_shape(sim: Sim, client: VerbaClient, code: str,
                                                                 message: str | None) -> None:
    missing_answered(sim, code, message)
    client.create_extension(record(Y))
    client.update_extension(record(Y, recording_mode="ON_DEMAND"))  # an existing one updates as ever
    with pytest.raises(ExtensionAbsent) as caught:
        client.update_extension(record(X))
    assert not caught.value.retryable and (said(message) or "") in str(caught.value)
    assert sim.extension(X) is None and (sim.extension(Y) or {})["recordingMode"] == "ON_DEMAND"


@pytest.mark.parametrize("message", OTHER_NOT_FOUND)
def test_a_get_extension_naming_something_else_not_found_asks_list_users(sim: Sim, client: VerbaClient,
                                                                        message: str) -> None:
    client.create_extension(record(X, user_id=3))
    sim.faults({"operation": "getExtension", "status": "ERROR_GENERAL", "message": message})
    found = client.get_extension(X)
    assert found is not None and (found["user_id"], found["user_login_name"]) == (3, "alice@example.com")
    assert sim.calls("listUsers"), "listUsers was asked who holds it"


@pytest.mark.parametrize("message", OTHER_NOT_FOUND[:3])
def test_an_update_naming_something_else_not_found_stays_an_error(sim: Sim, client: VerbaClient,
                                                                  message: str) -> None:
    client.create_extension(record(X))
    sim.faults({"operation": "updateExtension", "status": "ERROR_GENERAL", "message": message})
    with pytest.raises(VerbaStatusError) as caught:
        client.update_extension(record(X))
    assert caught.value.cause == "error_general" and caught.value.retryable


def test_an_unclear_get_extension_asks_list_users_who_holds_it(sim: Sim, client: VerbaClient) -> None:
    client.create_extension(record("4567", user_id=4))
    sim.faults({"operation": "getExtension", "status": "ERROR_GENERAL", "message": "java.lang.NullPointerException"})
    found = client.get_extension("4567")
    assert found is not None and (found["user_id"], found["user_login_name"]) == (4, "bob@example.com")


def test_an_unclear_get_extension_nobody_holds_answers_no_user(sim: Sim, client: VerbaClient) -> None:
    sim.faults({"operation": "getExtension", "status": "ERROR_GENERAL", "message": "java.lang.NullPointerException"})
    found = client.get_extension("4567")
    assert found is not None and found["user_id"] is None and found["extension"] == "4567"


def test_an_illegal_argument_that_is_not_absence_stays_a_refusal(sim: Sim, client: VerbaClient) -> None:
    sim.faults({"operation": "getExtension", "status": "ERROR_ILLEGAL_ARGUMENT", "message": "Unknown environment"})
    with pytest.raises(VerbaStatusError) as caught:
        client.get_extension("4567")
    assert caught.value.cause == "error_illegal_argument" and not caught.value.retryable


# End to end: delivery against the simulator (a subprocess, real HTTP) answering a missing extension in each shape.


def alice(*phones: str, **state: Any):  # noqa: ANN201 - a UserChange
    return user("u-alice", "alice@example.com", phones=phones, **state)


def recording(extension: dict[str, Any]) -> bool:
    return any(extension[flag] for flag in ("voice", "im", "video", "screenCaptureEnabled"))


def statuses(simulator: Any, operation: str, extension: str) -> list[str]:
    return [c["status"] for c in simulator.calls(operation) if c["extension"] == extension]


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_an_extension_deleted_by_hand_is_created_again_in_each_absent_shape(deliverer: Deliverer, simulator: Any,
                                                                           code: str, message: str | None) -> None:
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    simulator.delete_extension(X)
    missing_answered(simulator, code, message)
    simulator.clear_calls()
    deliverer.store.enqueue([alice(X, Y)])
    drain(deliverer)

    event = deliverer.store.list_events(user="u-alice")[0]
    assert (event.state, event.attempts, event.last_cause) == (EventState.DONE, 1, None)
    assert statuses(simulator, "updateExtension", X) == [code], "updated as confirmed, answered as missing"
    extensions = simulator.extensions()
    assert extensions[X]["user_id"] == 3 and recording(extensions[X]), "created again for alice"
    assert extensions[Y]["user_id"] == 3 and recording(extensions[Y])


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_a_leaver_whose_extension_is_gone_still_stops_the_others_in_each_absent_shape(
        deliverer: Deliverer, simulator: Any, code: str, message: str | None) -> None:
    deliverer.store.enqueue([alice(X, Y)])
    drain(deliverer)
    simulator.delete_extension(X)
    missing_answered(simulator, code, message)
    simulator.clear_calls()
    deliverer.store.enqueue([alice(X, Y, kind="deactivate")])
    drain(deliverer)

    event = deliverer.store.list_events(user="u-alice")[0]
    assert (event.state, event.attempts) == (EventState.DONE, 1)
    assert statuses(simulator, "getExtension", X) == [code]
    extensions = simulator.extensions()
    assert X not in extensions, "nothing to stop, nothing written"
    assert extensions[Y]["user_id"] == 3 and not recording(extensions[Y]), "the leaver's other extension stopped"


@pytest.mark.parametrize("message", OTHER_NOT_FOUND)
def test_a_leavers_extension_is_stopped_when_get_extension_says_something_else_is_not_found(
        deliverer: Deliverer, simulator: Any, message: str) -> None:
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    simulator.fault(operation="getExtension", status="ERROR_GENERAL", message=message, times=1)
    deliverer.store.enqueue([alice(X, kind="deactivate")])
    drain(deliverer)

    event = deliverer.store.list_events(user="u-alice")[0]
    assert event.state == EventState.DONE
    extension = simulator.extensions()[X]
    assert extension["user_id"] == 3 and not recording(extension), "the leaver is no longer recorded"
    assert simulator.calls("listUsers"), "listUsers was asked who holds the extension"


@pytest.mark.parametrize(("code", "message", "cause", "attempts"), [
    ("ERROR_GENERAL", "java.lang.NullPointerException", "error_general", 3),  # retried, up to max_attempts
    ("ERROR_GENERAL", "Extension lookup failed, linked user record not found", "error_general", 3),
    ("ERROR_NOT_FOUND", None, "error_not_found", 1),  # an undocumented code: a dead letter at once
    ("ERROR_NOT_FOUND", "Recorder recorder-1 not found", "error_not_found", 1),
])
def test_an_unrecognised_answer_for_a_missing_extension_is_bounded_and_writes_nothing(
        make_config: Any, simulator: Any, code: str, message: str | None, cause: str, attempts: int) -> None:
    config = make_config(delivery={"max_attempts": 3})
    store = open_configured_store(config, create=True)
    with open_client(config) as client:
        deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
        store.enqueue([alice(X)])
        drain(deliverer)
        simulator.delete_extension(X)
        missing_answered(simulator, code, message)
        store.enqueue([alice(X, Y)])
        drain(deliverer)

        event = store.list_events(user="u-alice")[0]
        assert (event.state, event.last_cause, event.attempts) == (EventState.DEAD, cause, attempts)
        assert X not in simulator.extensions(), "not created: Verba's answer did not say it is gone"
    store.close()
