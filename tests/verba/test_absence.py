"""Absence in every plausible shape: one place decides, and only a not-found answer is absence."""

from __future__ import annotations

import pytest

from connector.verba import VerbaClient
from connector.verba.errors import ExtensionAbsent, VerbaStatusError
from connector.verba.status import Status, says_extension_absent
from tests.verba.helpers import Sim, record

ABSENT = [
    ("ERROR_GENERAL", "Extension not found: 0000:+14155550100"),
    ("ERROR_GENERAL", "The extension does not exist in the database: 0000:+14155550100"),
    ("ERROR_ILLEGAL_ARGUMENT", "Extension +14155550100 does not exist in environment 0000"),
    ("ERROR_GENERAL", "No such extension: 4567"),
    ("ERROR_ILLEGAL_ARGUMENT", "extension 4567 doesn't exist"),
    ("ERROR_GENERAL", "Unknown extension 4567"),
    ("ERROR_GENERAL", "Extension alice@corp.example not found"),
]
NOT_ABSENT = [
    ("ERROR_GENERAL", "java.lang.NullPointerException"),
    ("ERROR_GENERAL", "com.verba.web.user.UserNotFoundException"),  # a wrong API password
    ("ERROR_ILLEGAL_ARGUMENT", "No user with id 999"),
    ("ERROR_ILLEGAL_ARGUMENT", "Unknown recordingMode: 'LOUD'"),
    ("ERROR_ILLEGAL_ARGUMENT", "extension.extension is mandatory and cannot be empty"),
    ("ERROR_UNAUTHORIZED", "Extension not found"),  # a token problem, whatever the text
    ("ERROR_GENERAL", None),
    ("ERROR_GENERAL", "Cannot update extension +14155550100: user 111 not found"),  # the user is missing
    ("ERROR_GENERAL", "Extension +14155550100 exists; owner not found in directory cache"),
]


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_not_found_answers_are_absence(code: str, message: str) -> None:
    assert says_extension_absent(Status(code, message))


@pytest.mark.parametrize(("code", "message"), NOT_ABSENT)
def test_other_answers_are_not_absence(code: str, message: str | None) -> None:
    assert not says_extension_absent(Status(code, message))


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_get_extension_answers_none_for_each_absent_shape(sim: Sim, client: VerbaClient, code: str,
                                                          message: str) -> None:
    sim.faults({"operation": "getExtension", "status": code, "message": message})
    assert client.get_extension("+14155550100") is None


@pytest.mark.parametrize(("code", "message"), ABSENT)
def test_update_extension_raises_extension_absent_for_each_shape(sim: Sim, client: VerbaClient, code: str,
                                                                 message: str) -> None:
    sim.faults({"operation": "updateExtension", "status": code, "message": message})
    with pytest.raises(ExtensionAbsent) as caught:
        client.update_extension(record("+14155550100"))
    assert not caught.value.retryable and message in str(caught.value)


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
