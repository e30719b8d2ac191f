from __future__ import annotations

import pytest

from connector.mapping import normalize_extension
from connector.mapping.normalize import SUFFIX_MODES


@pytest.mark.parametrize(
    ("value", "how", "country", "expected"),
    [
        ("+14155550100", "e164", None, "+14155550100"),
        ("  (415) 555-0100 ", "e164", "US", "+14155550100"),
        ("tel:+1 415 555 0100", "e164", None, "+14155550100"),
        ("TEL: 415.555.0100", "e164", "US", "+14155550100"),
        ("tel:+12125550142;ext=4142", "e164", "US", "+12125550142;ext=4142"),
        ("020 7946 0018", "e164", "GB", "+442079460018"),
        ("+44 20 7946 0018", "e164", "US", "+442079460018"),
        ("x4567 ", "digits", None, "4567"),
        ("+1 212 555 0142 x101", "digits", None, "12125550142;ext=101"),
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
        ("x4567", "e164", "US", "not a valid phone number for US"),
        ("ext. 101", "e164", "US", "not a valid phone number for US"),  # no number before the suffix
        ("+1 212 555 0142 x", "e164", "US", "has the extension suffix 'x', which is not 1 to 8 digits"),
        ("+1 212 555 0142 x", "digits", None, "has the extension suffix 'x', which is not 1 to 8 digits"),
        ("+1 212 555 0142 #", "digits", None, "has the extension suffix '#', which is not 1 to 8 digits"),
        ("tel:+12125550142;ext=", "e164", "US", "has the extension suffix ';ext=', which is not 1 to 8 digits"),
        ("+1 212 555 0142 ext. 123456789", "e164", "US", "'ext. 123456789', which is not 1 to 8 digits"),
        ("+1 212 555 0142 x12-34", "digits", None, "'x12-34', which is not 1 to 8 digits"),
        ("+1 212 555 0142 extn. 10-1", "e164", "US", "'extn. 10-1', which is not 1 to 8 digits"),
        ("+1 212 555 0142,,101", "e164", "US", "has an extension suffix '101' in a form not understood"),
        ("555 0142 x101", "e164", "US", "'555 0142 x101' is not a valid phone number for US"),
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


SUFFIX_FORMS = [
    "+1 (212) 555-0142 x101", "+1 212 555 0142 X 101", "+1 212 555 0142x101", "+1 212 555 0142 ext101",
    "+1 212 555 0142 ext. 101", "+1 212 555 0142 Ext 101", "+1 212 555 0142 extension 101", "+1 212 555 0142 #101",
    "+1 212 555 0142 extn 101",
    "+1 212 555 0142 # 101", "tel:+12125550142;ext=101", "TEL:+1-212-555-0142;EXT=101", "+12125550142;ext=101",
]
# (mode, e164 result, digits result)
SUFFIX_RESULTS = [
    ("keep", "+12125550142;ext=101", "12125550142;ext=101"),
    ("extension_only", "101", "101"),
    ("drop", "+12125550142", "12125550142"),
]


def test_suffix_modes() -> None:
    assert SUFFIX_MODES == ("keep", "extension_only", "drop")
    assert [mode for mode, _, _ in SUFFIX_RESULTS] == list(SUFFIX_MODES)


@pytest.mark.parametrize("value", SUFFIX_FORMS)
@pytest.mark.parametrize(("suffix", "e164", "digits"), SUFFIX_RESULTS)
def test_suffix_forms_in_every_mode(value: str, suffix: str, e164: str, digits: str) -> None:
    assert normalize_extension(value, "e164", "US", suffix) == e164
    assert normalize_extension(value, "digits", None, suffix) == digits


def test_keep_is_the_default() -> None:
    assert normalize_extension("+1 (212) 555-0142 x101", "e164", "US") == "+12125550142;ext=101"
    assert normalize_extension("212-555-0142 ext. 101", "e164", "US") == "+12125550142;ext=101"
    assert normalize_extension("212-555-0142 ext. 101", "digits") == "2125550142;ext=101"


@pytest.mark.parametrize(("suffix", "expected"), [("keep", "+12125550142;ext=101"), ("drop", "+12125550142")])
def test_keep_and_drop_results_normalize_to_themselves(suffix: str, expected: str) -> None:
    assert normalize_extension("+1 212 555 0142 x101", "e164", "US", suffix) == expected
    assert normalize_extension(expected, "e164", "US", suffix) == expected
    digits = expected.lstrip("+")
    assert normalize_extension(digits, "digits", None, suffix) == digits


@pytest.mark.parametrize("suffix", ["keep", "extension_only"])
@pytest.mark.parametrize("how", ["e164", "digits"])
def test_users_on_one_main_number_stay_apart(suffix: str, how: str) -> None:
    first = normalize_extension("+1 (212) 555-0142 x101", how, "US", suffix)
    second = normalize_extension("+1 (212) 555-0142 x102", how, "US", suffix)
    assert first != second
    assert first.endswith("101") and second.endswith("102")


def test_drop_merges_users_on_one_main_number() -> None:
    # Told to: the two users then claim one extension, which the connector reports as a conflict.
    assert {
        normalize_extension(v, "e164", "US", "drop") for v in ("+1 (212) 555-0142 x101", "+1 (212) 555-0142 x102")
    } == {"+12125550142"}


@pytest.mark.parametrize(
    ("suffix", "expected"), [("keep", "+14255550100;ext=4142"), ("extension_only", "4142"), ("drop", "+14255550100")])
def test_lync_line_uri(suffix: str, expected: str) -> None:
    assert normalize_extension("tel:+14255550100;ext=4142", "e164", "US", suffix) == expected


def test_other_tel_uri_parameters() -> None:
    # phone-context still completes a local number for e164; digits mode drops every other parameter.
    assert normalize_extension("tel:5550142;phone-context=+1212;ext=9", "e164", None) == "+12125550142;ext=9"
    assert normalize_extension("tel:+12125550142;ext=9;isub=1", "digits") == "12125550142;ext=9"
    assert normalize_extension("tel:4567;phone-context=+1212", "digits") == "4567"


@pytest.mark.parametrize("suffix", SUFFIX_MODES)
@pytest.mark.parametrize(
    ("value", "how", "country", "expected"),
    [
        ("+1 (212) 555-0142", "e164", "US", "+12125550142"),
        ("020 7946 0018", "e164", "GB", "+442079460018"),
        ("+1 (415) 555-0100", "digits", None, "14155550100"),
        ("4142", "digits", None, "4142"),
        ("x4567", "digits", None, "4567"),  # a marker before any digit is not a suffix
        ("1-800-FLOWERS", "e164", "US", "+18003569377"),  # letters, no marker
        ("sip:Alice@Corp.example", "sip", None, "alice@corp.example"),  # suffix is ignored by sip and none
        ("Turret #12", "none", None, "Turret #12"),
    ],
)
def test_values_without_suffix_are_unchanged(value: str, how: str, country: str | None, expected: str,
                                             suffix: str) -> None:
    assert normalize_extension(value, how, country, suffix) == expected


def test_unknown_suffix_mode() -> None:
    with pytest.raises(ValueError, match="suffix 'strip' is unknown; use one of keep, extension_only, drop"):
        normalize_extension("4567", "digits", None, "strip")
