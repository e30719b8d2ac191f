from __future__ import annotations

import pytest

from connector.mapping import normalize_extension


@pytest.mark.parametrize(
    ("value", "how", "country", "expected"),
    [
        ("+14155550100", "e164", None, "+14155550100"),
        ("  (415) 555-0100 ", "e164", "US", "+14155550100"),
        ("tel:+1 415 555 0100", "e164", None, "+14155550100"),
        ("TEL: 415.555.0100", "e164", "US", "+14155550100"),
        ("tel:+12125550142;ext=4142", "e164", "US", "+12125550142"),
        ("020 7946 0018", "e164", "GB", "+442079460018"),
        ("+44 20 7946 0018", "e164", "US", "+442079460018"),
        ("x4567 ", "digits", None, "4567"),
        ("+1 (415) 555-0100", "digits", None, "14155550100"),
        ("tel:4567", "digits", None, "4567"),
        ("sip:Jane.Doe@Corp.Example", "sip", None, "jane.doe@corp.example"),
        ("SIP:alice@corp.example", "sip", None, "alice@corp.example"),
        (" sip: Bob@X.org ", "sip", None, "bob@x.org"),
        ("sip:Alice@Corp.example", "none", None, "Alice@Corp.example"),
        ("  Turret 12 ", "none", None, "Turret 12"),
    ],
)
def test_normalizes(value: str, how: str, country: str | None, expected: str) -> None:
    assert normalize_extension(value, how, country) == expected
    assert normalize_extension(expected, how, country) == expected


@pytest.mark.parametrize(
    ("value", "how", "country", "why"),
    [
        ("(415) 555-0100", "e164", None, "no +country code and no default_country"),
        ("4567", "e164", "US", "not a valid phone number for US"),
        ("+1 555 0100", "e164", "US", "not a valid phone number"),
        ("call me", "e164", "US", "not a phone number"),
        ("07700 900123", "e164", "GB", "not a valid phone number for GB"),
        ("ext. none", "digits", None, "has no digits"),
        ("alice", "sip", None, "not a SIP address"),
        ("alice smith@corp.example", "sip", None, "not a SIP address"),
        ("sip:  ", "none", None, "is empty"),
        ("   ", "digits", None, "is empty"),
    ],
)
def test_rejects_with_value_and_reason(value: str, how: str, country: str | None, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_extension(value, how, country)
    assert repr(value) in str(caught.value)
    assert why in str(caught.value)


def test_stacked_prefixes_are_all_stripped() -> None:
    assert normalize_extension("sip:sip:alice@corp.example", "sip", None) == "alice@corp.example"


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="use one of e164, digits, sip, none"):
        normalize_extension("4567", "octal", None)


def test_non_text_is_rejected() -> None:
    with pytest.raises(ValueError, match="4567 is not text"):
        normalize_extension(4567, "digits", None)  # type: ignore[arg-type]
