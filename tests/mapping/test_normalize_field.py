"""Values seen in directories that used to become another extension, or drop one silently.

Each case states what a user gets: the extension string pushed to Verba, or the ValueError (left out as invalid
with on_invalid = "skip", the user's push refused with "error") and its message.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.mapping import ExtensionRecord, MappedUser, MappingFailure, normalize_extension
from tests.mapping.util import change, mapping

DIGITS = """
[environment]
eid = "0000"

[[extensions]]
from = "attributes.ipPhone"
normalize = "digits"
"""
TWO_NUMBERS = "if the value holds two numbers, put each in a value of its own"


def rec(extension: str) -> ExtensionRecord:
    return ExtensionRecord(extension, 7, "FULL", True, False, False, False, eid="0000")


def reason(value: str, how: str, country: str | None = None) -> str:
    with pytest.raises(ValueError) as caught:
        normalize_extension(value, how, country)
    return str(caught.value)


# 1. digits mode no longer deletes what is not a digit: a letter, a second number or a note makes the value invalid.
@pytest.mark.parametrize(
    ("value", "letters"),
    [
        ("4l42", "'l'"),  # was 442: a wrong extension recorded, 4142 stopped
        ("4O67", "'O'"),  # was 467
        ("sip:alice2@corp.example", "'alice'"),  # was 2
        ("+1-800-FLOWERS", "'FLOWERS'"),  # was 1800
        ("45-67 (old: 1234)", "'old'"),  # was 45671234
        ("212 555 0142 BOX", "'BOX'"),  # was 2125550142: the x of BOX is no suffix marker, and BOX no number
        ("x4567 x12", "'x'"),  # was 456712
    ],
)
def test_digits_refuses_letters(value: str, letters: str) -> None:
    assert reason(value, "digits") == (f"{value!r} has letters ({letters}) where a phone number has digits; "
                                       "write the number in digits")


@pytest.mark.parametrize(
    ("value", "char"),
    [
        ("4567, 4568", "','"),  # was 45674568
        ("4567 / 4568", "'/'"),  # was 45674568
        ("+1 212 555 0142 | 0143", "'|'"),  # was 121255501420143
        ("+1 212 555 0142 & 0143", "'&'"),
        ("+1 212 555 0142_0143", "'_'"),
        ("+1 212 555 0142²", "'²'"),  # was 12125550142: a superscript is no digit of the number
    ],
)
def test_digits_refuses_other_characters(value: str, char: str) -> None:
    assert reason(value, "digits") == (
        f"{value!r} has {char} in the number {value!r}, where only digits, spaces and + - . ( ) belong; "
        f"{TWO_NUMBERS}, else write the number without {char}")


def test_digits_refuses_a_plus_inside_the_number() -> None:
    # Was 10112125550142: the extension and the number glued into one.
    assert reason("ext. 101 +1 212 555 0142", "digits") == (
        "'ext. 101 +1 212 555 0142' has a '+' inside the number '101 +1 212 555 0142'; a + only starts a number "
        f"(+1 212 555 0142): {TWO_NUMBERS}")


def test_digits_refuses_a_trailing_number_in_parentheses() -> None:
    # Was 45674568. An area code in parentheses comes before the rest of the number.
    assert reason("4567 (4568)", "digits") == (
        "'4567 (4568)' ends with '(4568)', which is no part of the number (an area code in parentheses comes "
        "before the rest); if it is a second number, put it in a value of its own")
    assert "has an unmatched ')'" in reason("415) 555-0100", "digits")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("４５６７", "4567"),  # fullwidth digits: was "has no digits"
        ("٤٥٦٧", "4567"),  # Arabic-Indic digits
        ("+١ ٢١٢ ٥٥٥ ٠١٤٢", "12125550142"),
        ("+1 212\u2013555\u20130142", "12125550142"),  # en dashes
        # Still read as before:
        ("+1 (415) 555-0100", "14155550100"),
        ("415.555.0100", "4155550100"),
        ("(+44) 20 7946 0018", "442079460018"),
        ("+1\u00a0212\u00a0555\u00a00142", "12125550142"),
        ("x4567", "4567"),
        ("(ext. 4567)", "4567"),
        ("sip:4567@10.0.0.1;user=phone", "4567"),
    ],
)
def test_digits_reads_decimal_digits_of_any_script(value: str, expected: str) -> None:
    assert normalize_extension(value, "digits") == expected
    assert normalize_extension(expected, "digits") == expected


@pytest.mark.parametrize(
    ("value", "country", "why"),
    [
        ("+49 30 12345 67 (89)", "DE", "ends with '(89)', which is no part of the number"),
        ("+1 212 555 0142 ++", "US", "has a '+' inside the number"),  # was +12125550142
    ],
)
def test_e164_refuses_what_digits_refuses(value: str, country: str, why: str) -> None:
    assert why in reason(value, "e164", country)


@pytest.mark.parametrize("value", ["030/1234567", "+49 (0)30 / 1234567", "030 / 123 45 67", "0049 30/1234567",
                                   "(030) / 1234567"])
def test_e164_reads_a_slash_after_the_area_code_digits_mode_refuses_it(value: str) -> None:
    """A German number is often written 030/1234567 (DIN 5008's older form). In digits mode a slash is refused
    ("4567 / 4568" is two extensions)."""
    assert normalize_extension(value, "e164", "DE") == "+49301234567"
    assert "has '/' in the number" in reason(value, "digits")


@pytest.mark.parametrize("value", [
    "030 12345 / 030 12346",  # was +49301234503012346: two numbers glued, 17 digits
    "030 1234 / 5678",  # "or 5678": was +493012345678
    "+49 30 1234567/8",
    "030/1234567/101",  # was +49301234567101
    "030 1234567 / 101",
    "089/1234-5 / 6",  # was +4989123456
])
def test_a_slash_anywhere_but_after_the_area_code_is_refused(value: str) -> None:
    """German numbers have no fixed length, so phonenumbers takes two numbers glued together for a valid one."""
    assert "has '/' in the number" in reason(value, "e164", "DE")


@pytest.mark.parametrize(("value", "how", "country"), [
    ("+49 30 1234567.0", "e164", "DE"),  # was +493012345670
    ("4930123456.0", "e164", "DE"),  # was +49301234560
    ("4567.0", "digits", None),  # was 45670
])
def test_a_number_a_spreadsheet_stored_as_a_decimal_is_refused(value: str, how: str, country: str | None) -> None:
    assert "ends with '.0', as a number a spreadsheet stored as a decimal" in reason(value, how, country)


def test_numbers_with_dots_as_separators_still_read() -> None:
    assert normalize_extension("+1 415.555.0100", "e164", "US") == "+14155550100"
    assert normalize_extension("01.23.45.67.00", "e164", "FR") == "+33123456700"


@pytest.mark.parametrize(("value", "country", "expected"), [
    ("01\u202f23\u202f45\u202f67\u202f89", "FR", "+33123456789"),  # narrow no-break spaces, French typography
    ("+33\u20091\u200923\u200945\u200967\u200989", "FR", "+33123456789"),  # thin spaces
    ("03\u30fc1234\u30fc5678", "JP", "+81312345678"),  # a Japanese keyboard's long vowel mark for a dash
])
def test_any_space_and_a_dash_typed_on_a_japanese_keyboard_read_as_separators(value: str, country: str,
                                                                               expected: str) -> None:
    assert normalize_extension(value, "e164", country) == expected


@pytest.mark.parametrize(("value", "names"), [
    ("030 1234567 Durchwahl 101", "has letters ('Durchwahl')"),  # was "too long to be a phone number"
    ("+1 212 555 0142 / +1 212 555 0199", "has '/' in the number"),  # was "did not seem to be a phone number"
    ("+1 212\u00b7555\u00b70142", "has '\u00b7' in the number"),
])
def test_a_value_the_library_cannot_read_is_told_what_is_wrong_with_it(value: str, names: str) -> None:
    assert names in reason(value, "e164", "DE" if "Durchwahl" in value else "US")


def test_a_mistyped_ip_phone_is_left_out_and_the_number_last_recorded_kept() -> None:
    # Was: 1917555042 pushed recording and 19175550402 stopped, bypassing on_invalid and the mistyped protection.
    loaded = mapping('on_invalid = "skip"\n', DIGITS)
    mapped = loaded.map_user(change({"attributes": {"ipPhone": "+1 917 555 04l2"}}), 7, [rec("19175550402")])
    assert mapped == MappedUser([rec("19175550402")], []) and mapped.kept == ("19175550402",)
    assert mapped.skipped == ("attributes.ipPhone: '+1 917 555 04l2' has letters ('l') where a phone number has "
                              "digits; write the number in digits",)
    with pytest.raises(MappingFailure, match=r"attributes.ipPhone: '4l42' has letters \('l'\)"):
        mapping("", DIGITS).map_user(change({"attributes": {"ipPhone": "4l42"}}), 7, [rec("4142")])


# 2. Text after a ";" is a parameter (name=value), or the value is invalid: never the second number dropped.
@pytest.mark.parametrize(
    ("value", "how", "param"),
    [
        ("+1 212 555 0142; +1 212 555 0199", "e164", "';+1 212 555 0199'"),  # was +12125550142 only
        ("+1 212 555 0142;0143", "e164", "';0143'"),  # was +12125550142
        ("4567;4568", "digits", "';4568'"),  # was 4567
        ("+1 212 555 0142;foo", "e164", "';foo'"),
    ],
)
def test_text_after_a_semicolon_must_be_a_parameter(value: str, how: str, param: str) -> None:
    assert reason(value, how, "US") == (f"{value!r} has {param}, which is not a parameter (name=value, such as "
                                        f";ext=101 or ;phone-context=+1212); {TWO_NUMBERS}")


def test_two_extension_suffixes_are_refused() -> None:
    # Were ;ext=101 (102 dropped) and 12125550142101;ext=102.
    assert reason("tel:+12125550142;ext=101;ext=102", "e164", "US") == (
        "'tel:+12125550142;ext=101;ext=102' has 2 extension suffixes (;ext=); keep one, or put each number in a "
        "value of its own")
    assert reason("+1 212 555 0142 x101;ext=102", "digits") == (
        "'+1 212 555 0142 x101;ext=102' has two extension suffixes ('x101' and ';ext=102'); keep one, or put each "
        "number in a value of its own")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tel:+12125550142;npdi;rn=+12125550000", "+12125550142"),  # RFC 4694: npdi is a flag
        ("+1 212 555 0142;", "+12125550142"),  # an empty parameter is none
        ("+1 212 555 0142; ext = 101", "+12125550142;ext=101"),
        ("tel:5550142;phone-context=+1212;ext=9", "+12125550142;ext=9"),
    ],
)
def test_parameters_still_read(value: str, expected: str) -> None:
    assert normalize_extension(value, "e164", "US") == expected


# 3. Suffix digits are ASCII in the extension string, whatever script they were written in.
@pytest.mark.parametrize(
    "value",
    ["+1 212 555 0142 x１０１", "+1 212 555 0142 x١٠١", "tel:+12125550142;ext=١٠١", "+1 212 555 0142 ｘ101",
     "+1 212 555 0142 ＃101"],
)
def test_suffix_digits_are_ascii(value: str) -> None:
    # Were ";ext=１０１" and ";ext=١٠١": an extension no PBX reports, and ";ext=101" stopped.
    assert normalize_extension(value, "e164", "US") == "+12125550142;ext=101"
    assert normalize_extension(value, "digits") == "12125550142;ext=101"
    assert normalize_extension(value, "e164", "US", "extension_only") == "101"


def test_a_superscript_in_a_suffix_is_not_a_digit() -> None:
    assert "which is not 1 to 8 digits ('²' is not a digit)" in reason("+1 212 555 0142 x10²", "e164", "US")


# 4. Invisible characters and the two Unicode spellings of one name.
@pytest.mark.parametrize(
    ("value", "how", "expected"),
    [
        ("\ufeffsip:Jane@corp.example", "sip", "jane@corp.example"),  # was '\ufeffsip:jane@corp.example'
        ("sip:Jane@corp.example\u200b", "sip", "jane@corp.example"),
        ("sip:jane@corp.example\u00ad", "sip", "jane@corp.example"),
        ("\u200e+1 212 555 0142\u200e", "e164", "+12125550142"),  # left-to-right marks around a number
        ("4567\x00", "digits", "4567"),
        ("\ufeffTurret 12", "none", "Turret 12"),
        ("Turret\t12", "none", "Turret\t12"),  # a tab is a space
    ],
)
def test_invisible_characters_at_either_end_are_stripped(value: str, how: str, expected: str) -> None:
    assert normalize_extension(value, how, "US") == expected


@pytest.mark.parametrize(
    ("value", "how", "what"),
    [
        ("sip:ja\u200bne@corp.example", "sip", "U+200B ZERO WIDTH SPACE"),
        ("sip:ja\u00adne@corp.example", "sip", "U+00AD SOFT HYPHEN"),
        ("sip:ja\x00ne@corp.example", "sip", "U+0000"),
        ("+1 212\u200b555 0142", "e164", "U+200B ZERO WIDTH SPACE"),
        ("Turret\u200b12", "none", "U+200B ZERO WIDTH SPACE"),
    ],
)
def test_an_invisible_character_inside_is_refused(value: str, how: str, what: str) -> None:
    assert reason(value, how, "US") == f"{value!r} has the invisible character {what} inside; remove it at the source"


def test_a_line_break_inside_is_refused() -> None:
    # Was 45674568 in digits mode.
    assert reason("4567\n4568", "digits") == (
        "'4567\\n4568' has a line break (U+000A) inside; put each number or address in a value of its own")


@pytest.mark.parametrize("how", ["sip", "none"])
def test_nfd_and_nfc_spellings_are_one_extension(how: str) -> None:
    nfc, nfd = "sip:jos\u00e9@corp.example", "sip:jose\u0301@corp.example"
    assert normalize_extension(nfd, how) == normalize_extension(nfc, how) == "jos\u00e9@corp.example"


# 5. The message names the cause.
def test_letters_are_named_before_validity() -> None:
    # Was "'+1 917 555 04O2' is not a valid phone number".
    assert reason("+1 917 555 04O2", "e164", "US") == (
        "'+1 917 555 04O2' has letters ('O') where a phone number has digits; write the number in digits")
    assert reason("ext. none", "digits") == "'ext. none' has no digits"


# 6. A character no SOAP call can carry, or one the source lost (U+FFFD): invalid in every mode, so on_invalid decides.
# Were: in sip and none, an extension Verba never received (lxml refuses to build the call), the user undeliverable.
XML = "which XML 1.0 cannot carry, so no SOAP call to Verba can send it"
BROKEN = [("\ufffe", f"U+FFFE (a noncharacter), {XML}"), ("\uffff", f"U+FFFF (a noncharacter), {XML}"),
          ("\ud800", f"U+D800 (an unpaired surrogate), {XML}"),
          ("\ufffd", "U+FFFD REPLACEMENT CHARACTER, written for a character the source could not give (a NUL, bytes "
                     "that are not UTF-8): the value is broken")]
IN_EVERY_MODE = [("sip:ja{}ne@corp.example", "sip"), ("Turret 12{}", "none"), ("+1 212 555{}0142", "e164"),
                 ("4567{}", "digits"), ("{}4567", "digits")]
SIP = """
[environment]
eid = "0000"

[[extensions]]
from = 'emails[type eq "work"].value'
normalize = "sip"
"""


def emails(*addresses: str) -> dict[str, list[dict[str, str]]]:
    return {"emails": [{"type": "work", "value": address} for address in addresses]}


@pytest.mark.parametrize(("char", "why"), BROKEN, ids=["fffe", "ffff", "surrogate", "fffd"])
@pytest.mark.parametrize(("form", "how"), IN_EVERY_MODE)
def test_a_character_xml_cannot_carry_or_a_replacement_character_is_refused_naming_it(char: str, why: str,
                                                                                       form: str, how: str) -> None:
    value = form.format(char)
    assert reason(value, how, "US") == f"{value!r} holds {why}"


def test_a_value_the_source_broke_keeps_the_extension_last_pushed_with_skip() -> None:
    """An LDAP mail whose NUL was read as U+FFFD (connector.events.storable): a broken value may stand for the
    extension last pushed that it spells without the lost character, which stays recording; another extension of
    the user (a number moved to someone else) and an address merely changed are stopped as before."""
    skip = mapping('on_invalid = "skip"\n', SIP)
    last = [rec("alice@example.com")]
    broken = skip.map_user(change(emails("ali\ufffdce@example.com")), 7, last)
    assert broken == MappedUser(last, []) and broken.kept == ("alice@example.com",)
    two = [rec("alice@example.com"), rec("alice.old@example.com")]
    one_kept = skip.map_user(change(emails("ali\ufffdce@example.com")), 7, two)
    assert one_kept == MappedUser([two[0]], [two[1].stopped()]) and one_kept.kept == ("alice@example.com",)
    assert broken.skipped[0].startswith(
        "emails[type eq \"work\"].value: 'ali\ufffdce@example.com' holds U+FFFD REPLACEMENT CHARACTER")
    moved = skip.map_user(change(emails("alice@example.org")), 7, last)
    assert moved == MappedUser([rec("alice@example.org")], [rec("alice@example.com").stopped()])
    with pytest.raises(MappingFailure, match=r"value: 'ali\ufffdce@example.com' holds U\+FFFD REPLACEMENT"):
        mapping("", SIP).map_user(change(emails("ali\ufffdce@example.com")), 7, last)


@pytest.mark.parametrize("on_invalid", ["error", "skip"])
def test_mapping_test_shows_a_value_no_soap_call_can_carry_as_invalid(tmp_path, on_invalid: str) -> None:
    (tmp_path / "m.toml").write_text(f'{SIP}on_invalid = "{on_invalid}"\n[defaults]\nrecordingMode = "FULL"\n')
    (tmp_path / "u.json").write_text(json.dumps({"userName": "alice", **emails("alice\uffff@example.com")}))
    result = CliRunner().invoke(main, ["mapping", "test", "--mapping", str(tmp_path / "m.toml"),
                                       "--user", str(tmp_path / "u.json"), "--user-id", "3"])
    why = f"emails[type eq \"work\"].value: 'alice\\uffff@example.com' holds U+FFFF (a noncharacter), {XML}"
    if on_invalid == "error":
        assert result.exit_code == 1 and f"cannot map this state: {why}; fix the value at the source" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert f"left out as invalid (fix at the source): {why}\n" in result.output
        assert "maps to no extension" in result.output
