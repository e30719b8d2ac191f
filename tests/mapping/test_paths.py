from __future__ import annotations

from typing import Any

import pytest

from connector.mapping.paths import AttributePath

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

STATE: dict[str, Any] = {
    "userName": "alice@corp.example",
    "active": False,
    "displayName": "Alice",
    "name": {"givenName": "Alice", "familyName": "Smith"},
    "emails": [
        {"value": "alice@home.example", "type": "home", "primary": False},
        {"value": "alice@corp.example", "type": "work", "primary": True},
    ],
    "phoneNumbers": [
        {"value": "+1 415 555 0100", "type": "Work"},
        {"value": "+1 415 555 0199", "type": "mobile"},
        {"value": "+1 415 555 0101", "type": "work"},
    ],
    "groups": ["Traders", "CN=Sales,OU=Groups,DC=corp,DC=example"],
    "attributes": {
        "telephoneNumber": "+1 415 555 0102",
        "otherTelephone": ["+1 415 555 0103", "+1 415 555 0104"],
        "msRTCSIP-Line": "tel:+14155550105",
        f"{ENTERPRISE}:department": "Legal",
        "urn:ietf:params:scim:schemas:extension:verba:2.0:User": {"verbaUserId": "42"},
        "empty": None,
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("userName", ["alice@corp.example"]),
        ("USERNAME", ["alice@corp.example"]),
        ("active", [False]),
        ("name.givenName", ["Alice"]),
        ("groups", ["Traders", "CN=Sales,OU=Groups,DC=corp,DC=example"]),
        ('phoneNumbers[type eq "work"].value', ["+1 415 555 0100", "+1 415 555 0101"]),
        ('phoneNumbers[TYPE EQ "WORK"].value', ["+1 415 555 0100", "+1 415 555 0101"]),
        ('phoneNumbers[type eq "fax"].value', []),
        ("phoneNumbers.value", ["+1 415 555 0100", "+1 415 555 0199", "+1 415 555 0101"]),
        ("emails[primary eq true].value", ["alice@corp.example"]),
        ("emails[primary eq false].value", ["alice@home.example"]),
        ("attributes.telephoneNumber", ["+1 415 555 0102"]),
        ("attributes.TELEPHONENUMBER", ["+1 415 555 0102"]),
        ("attributes.othertelephone", ["+1 415 555 0103", "+1 415 555 0104"]),
        ("attributes.msRTCSIP-Line", ["tel:+14155550105"]),
        (f"attributes.{ENTERPRISE}:department", ["Legal"]),
        (f"attributes.{ENTERPRISE.upper()}:DEPARTMENT", ["Legal"]),
        ("attributes.urn:ietf:params:scim:schemas:extension:verba:2.0:User:verbaUserId", ["42"]),
        ("attributes.empty", []),
        ("attributes.missing", []),
    ],
)
def test_values(path: str, expected: list[Any]) -> None:
    assert AttributePath.parse(path).values(STATE) == expected


def test_missing_parts_of_the_state_yield_nothing() -> None:
    for path in ("displayName", "groups", "phoneNumbers.value", "name.givenName", "attributes.ipPhone"):
        assert AttributePath.parse(path).values({"userName": "bob"}) == []


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "non-empty string"),
        ("phone", "for a raw source attribute write attributes.phone"),
        ("attributes", "name the attribute, e.g. attributes.telephoneNumber"),
        ("userName.value", "userName has no sub-attributes"),
        ('groups[type eq "x"]', "only emails and phoneNumbers take a [filter]"),
        ('phoneNumbers[type eq "work"]', 'add the part to read, e.g. phoneNumbers[type eq "work"].value'),
        ("phoneNumbers[type = 'work'].value", "is not a path"),
        ("phoneNumbers[type eq work].value", "is not a path"),
    ],
)
def test_bad_paths_say_why(path: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        AttributePath.parse(path)
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("path", "meant"),
    [
        ('phoneNumber[type eq "work"].value', 'phoneNumbers[type eq "work"].value'),
        ("PhoneNumber.value", "phoneNumbers.value"),
        ("usrName", "userName"),
        ("mail", "emails.value"),
    ],
)
def test_a_misspelt_part_of_the_user_state_is_suggested_before_a_raw_attribute(path: str, meant: str) -> None:
    with pytest.raises(ValueError) as caught:
        AttributePath.parse(path)
    message = str(caught.value)
    assert f"did you mean {meant!r}?" in message
    AttributePath.parse(meant)  # the suggestion is a path
    raw = f"attributes.{path}"
    if " " in path:  # attributes.NAME takes no [filter]: not offered
        assert raw not in message
    else:
        assert message.index("did you mean") < message.index(raw)
