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
        ("call me", "e164", "US", "has letters ('callme') where a phone number has digits"),
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
    "+1 212 555 0142 ext 101", "+1 212 555 0142 Ext: 101", "+1 212 555 0142 extension: 101",
    "+1 212 555 0142 (ext. 101)", "+1 212 555 0142 (x101)", "tel:+12125550142;ext=101;user=phone",
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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sips:Alice@Example.COM", "alice@example.com"),  # RFC 3261 19.1: sips is the secure scheme
        ("<sip:Alice@Example.COM>", "alice@example.com"),  # name-addr
        ('"Alice Smith" <sip:Alice@Example.COM>', "alice@example.com"),
        ('"Smith, \\"Al\\"" <sips:alice@example.com>', "alice@example.com"),
        ("Alice <sip:alice@example.com;transport=tls>", "alice@example.com"),
        ("sip:Alice@Example.COM;transport=tls", "alice@example.com"),  # URI parameters
        ("sip:alice@example.com?subject=project%20x&priority=urgent", "alice@example.com"),  # headers
        ("sip:alice@example.com;maddr=239.255.255.1;ttl=15?subject=x", "alice@example.com"),
        ("sip:+14155550100@example.com;user=phone", "+14155550100@example.com"),  # the user part is the number
        ("sip:alice;day=tuesday@atlanta.com", "alice;day=tuesday@atlanta.com"),  # RFC 3261 19.1.3: ";" in the user
        ("sip:alice@example.com:5061;transport=tls", "alice@example.com:5061"),  # the port is part of the address
    ],
)
def test_sip_uri_forms_are_the_address(value: str, expected: str) -> None:
    assert normalize_extension(value, "sip") == expected
    assert normalize_extension(expected, "sip") == expected


@pytest.mark.parametrize(
    "value", ["sip:alice@;transport=tls", "<sip:alice>", "sip:@example.com", "sip:alice@?x=1", 'sip:"A"<a@b>'])
def test_sip_without_user_or_host_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="is not a SIP address such as alice@corp.example"):
        normalize_extension(value, "sip")


def test_none_strips_sips_and_keeps_the_rest() -> None:
    assert normalize_extension("sips:Alice@Example.COM;transport=tls", "none") == "Alice@Example.COM;transport=tls"
    assert normalize_extension("<sip:Alice@Example.COM>", "none") == "<sip:Alice@Example.COM>"


@pytest.mark.parametrize(
    ("value", "how", "expected"),
    [
        ("sip:+14155550100;user=phone", "e164", "+14155550100"),
        ("sip:+14155550100@example.com;user=phone", "e164", "+14155550100"),
        ("sips:+1-415-555-0100@example.com;user=phone", "e164", "+14155550100"),
        ("<sip:+14155550100@example.com;user=phone>", "e164", "+14155550100"),
        ('"Alice" <tel:+14155550100;ext=12>', "e164", "+14155550100;ext=12"),
        ("sip:+14155550100;ext=12@example.com;user=phone", "e164", "+14155550100;ext=12"),
        ("+1 415 555 0100;ext=12;foo=bar", "e164", "+14155550100;ext=12"),
        ("tel:+14155550100;foo=bar;isub=7", "e164", "+14155550100"),
        ("tel:5550100;user=phone;phone-context=+1415", "e164", "+14155550100"),
        ("sip:4567@10.0.0.1;user=phone", "digits", "4567"),  # the host's digits are not the number's
        ("sip:+14155550100@example.com;user=phone", "digits", "14155550100"),
    ],
)
def test_uri_whose_user_part_is_a_number(value: str, how: str, expected: str) -> None:
    # Parameters other than ext (and phone-context, which completes a local number) are dropped:
    # one line is one extension string whatever a directory appends to it.
    assert normalize_extension(value, how, "US") == expected
    assert normalize_extension(expected, how, "US") == expected


def test_uri_whose_user_part_is_a_name_is_not_a_number() -> None:
    with pytest.raises(ValueError, match=r"'sip:alice@example.com' has letters \('alice'\)"):
        normalize_extension("sip:alice@example.com", "e164", "US")


def test_leading_zeros_of_an_extension_are_kept() -> None:
    # A PBX dials 0012 and 12 as two different extensions, and Verba matches the string it reports.
    assert normalize_extension("+1 212 555 0142 x0012", "e164", "US") == "+12125550142;ext=0012"
    assert normalize_extension("+1 212 555 0142 x12", "e164", "US") == "+12125550142;ext=12"
    assert normalize_extension("x0012", "digits") == "0012"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("+1 212 555 0142 x", "'x', which is not 1 to 8 digits (it has no digits)"),
        ("+1 212 555 0142 ext. 123456789", "'ext. 123456789', which is not 1 to 8 digits (it has 9 digits)"),
        ("+1 212 555 0142 x12-34", "'x12-34', which is not 1 to 8 digits ('-' is not a digit)"),
        ("+1 212 555 0142 Ext: 1O1", "'Ext: 1O1', which is not 1 to 8 digits ('O' is not a digit)"),
        ("+1 212 555 0142 (ext. 12", "'(ext. 12', which is not 1 to 8 digits (')' is missing)"),
        ("tel:+12125550142;ext=12a", "';ext=12a', which is not 1 to 8 digits ('a' is not a digit)"),
    ],
)
def test_a_bad_suffix_says_what_is_wrong(value: str, why: str) -> None:
    for how in ("e164", "digits"):
        with pytest.raises(ValueError) as caught:
            normalize_extension(value, how, "US")
        assert str(caught.value) == f"{value!r} has the extension suffix {why}; write it as x101, ext. 101 or ;ext=101"


@pytest.mark.parametrize(
    ("value", "letters"),
    [("1-800-FLOWERS", "'FLOWERS'"), ("+1 212 555 0142 A", "'A'"), ("sip:+1800FLOWERS@example.com", "'FLOWERS'")],
)
def test_letters_in_a_number_are_refused(value: str, letters: str) -> None:
    # phonenumbers reads keypad letters as digits (+18003569377) or drops a stray one; in a directory
    # they are far more often a typing error than a vanity number.
    with pytest.raises(ValueError) as caught:
        normalize_extension(value, "e164", "US")
    assert str(caught.value) == (f"{value!r} has letters ({letters}) where a phone number has digits; "
                                 "write the number in digits")
