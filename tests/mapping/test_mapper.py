from __future__ import annotations

import pytest

from connector.events import UserChange
from connector.mapping import ExtensionRecord, MappedUser, MappingFailure, UnresolvedUser
from connector.mapping.mapper import mistyped
from tests.mapping.util import BASE, change, mapping, work

A, B, C = "+14155550100", "+14155550101", "+14155550102"


def rec(extension: str, user_id: int = 7, mode: str = "FULL", voice: bool = True, im: bool = False,
        video: bool = False, screen: bool = False) -> ExtensionRecord:
    return ExtensionRecord(extension, user_id, mode, voice, im, video, screen, eid="0000")


def off(extension: str, user_id: int = 7, mode: str = "FULL") -> ExtensionRecord:
    return rec(extension, user_id, mode, voice=False)


def test_upsert_maps_the_work_number_with_the_defaults() -> None:
    assert mapping().map_user(change(work("(415) 555-0100")), 7, []) == MappedUser([rec(A)], [])


def test_number_moves_from_a_to_b() -> None:
    mapped = mapping().map_user(change(work("415 555 0101")), 7, [rec(A)])
    assert mapped.upserts == [rec(B)]
    assert mapped.deprovisions == [off(A)]


def test_deprovisioned_records_carry_the_given_user_id_and_keep_their_own_settings() -> None:
    previous = [rec(A, user_id=3, mode="ON_DEMAND", im=True)]
    assert mapping().map_user(change(work(B)), 7, previous).deprovisions == [off(A, user_id=7, mode="ON_DEMAND")]


def test_an_unchanged_number_is_upserted_and_not_deprovisioned() -> None:
    assert mapping().map_user(change(work(A)), 7, [rec(A, mode="CONTROLLED")]) == MappedUser([rec(A)], [])


@pytest.mark.parametrize(
    ("kind", "active"), [("deactivate", True), ("delete", True), ("upsert", False), ("delete", None)]
)
def test_a_user_going_away_stops_every_previous_and_mapped_extension(kind: str, active: bool | None) -> None:
    state = {**work(B, C), **({} if active is None else {"active": active})}
    # A was pushed before; C was never pushed (e.g. created by hand in Verba): both stop.
    mapped = mapping().map_user(change(state, kind), 7, [rec(A, user_id=3), rec(B)])
    assert mapped.upserts == []
    assert mapped.deprovisions == [off(A), off(B), off(C)]
    assert all(r.user_id == 7 and not r.recording for r in mapped.deprovisions)


def test_a_user_going_away_with_a_bad_number_still_stops_the_rest() -> None:
    mapped = mapping().map_user(change(work("not a number", B), "deactivate"), 7, [rec(A)])
    assert mapped.deprovisions == [off(A), off(B)]


def test_a_bad_number_fails_by_default_naming_the_path_and_the_value() -> None:
    with pytest.raises(MappingFailure) as caught:
        mapping().map_user(change(work("555-0100x", B)), 7, [])
    message = str(caught.value)
    assert 'phoneNumbers[type eq "work"].value' in message and "'555-0100x'" in message
    assert 'on_invalid = "skip"' in message


def test_on_invalid_skip_drops_the_bad_number() -> None:
    loaded = mapping('on_invalid = "skip"\n')
    mapped = loaded.map_user(change(work("555-0100x", B)), 7, [])
    assert mapped == MappedUser([rec(B)], []) and mapped.kept == ()
    [skipped] = mapped.skipped
    assert skipped.startswith("phoneNumbers[type eq \"work\"].value: '555-0100x' has the extension suffix")


def test_a_number_left_out_as_invalid_keeps_the_numbers_last_recorded_instead_of_stopping_them() -> None:
    """A mistyped number may be the one recorded until now: nothing is stopped while it is left out (kept as last
    pushed); once fixed, or gone for good without a bad value, the old number is stopped as usual."""
    loaded = mapping('on_invalid = "skip"\n')
    mistyped = loaded.map_user(change(work("555-0100x", B)), 7, [rec(A, mode="CONTROLLED"), rec(B)])
    assert mistyped == MappedUser([rec(B), rec(A, mode="CONTROLLED")], [])
    assert mistyped.kept == (A,) and mistyped.active and len(mistyped.skipped) == 1
    assert loaded.map_user(change(work(B)), 7, [rec(A), rec(B)]) == MappedUser([rec(B)], [off(A)])
    # A bad value that cannot be A mistyped (too unlike it) keeps nothing: a number that moved is stopped as usual.
    assert loaded.map_user(change(work("ask reception", B)), 7, [rec(A)]) == MappedUser([rec(B)], [off(A)])
    assert loaded.map_user(change(work("555-0199x", B)), 7, [rec(A)]) == MappedUser([rec(B)], [off(A)])
    unrecorded = loaded.map_user(change({**work("555-0100x", B), "active": False}), 7, [rec(A)])
    assert unrecorded.kept == () and unrecorded.skipped == (), "the values of a user not recorded are not used"
    assert loaded.map_user(change(work("555-0100x", B), "delete"), 7, [rec(A)]) == MappedUser([], [off(A), off(B)])


@pytest.mark.parametrize(("value", "number", "alike"), [
    ("+1 917 555 04O2", "+19175550402", True), ("917 555 04O2", "+19175550402", True),
    ("+1 917 555 4002", "+19175550402", True), ("ask reception", "+19175550402", False),
    ("+1 212 555 0401", "+19175550402", False), ("x101", "+12125550142;ext=101", False),
    # U+FFFD: a character the source held that no store can (an LDAP NUL): the value as meant is read without it
    ("41\ufffd00", "4100", True), ("41\ufffd00", "+14155550100", False),
    ("+1 917 555 \ufffd0402", "+19175550402", True),
    ("sip:ali\ufffdce@Example.com", "alice@example.com", True), ("ali\ufffdce@example.com", "bob@example.com", False)])
def test_a_bad_value_is_taken_for_a_number_mistyped_only_when_their_digits_are_alike(value, number, alike) -> None:
    assert mistyped(value, number) is alike


def test_empty_values_are_ignored() -> None:
    assert mapping().map_user(change(work("", "  ", A)), 7, []).upserts == [rec(A)]


def test_duplicates_after_normalization_keep_the_first() -> None:
    loaded = mapping(
        '\n[[extensions]]\nfrom = "attributes.telephoneNumber"\nnormalize = "e164"\ndefault_country = "US"\n'
    )
    state = {
        **work("+1 415 555 0101", "tel:4155550101", A),
        "attributes": {"telephoneNumber": ["(415) 555-0100", "415 555 0102"]},
    }
    assert [r.extension for r in loaded.map_user(change(state), 7, []).upserts] == [B, A, C]


def test_previous_duplicates_are_deprovisioned_once() -> None:
    assert mapping().map_user(change(work(B)), 7, [rec(A), rec(A, mode="ON_DEMAND")]).deprovisions == [off(A)]


RULES = """
[[rules]]
when = { group = "Do-Not-Record" }
record = false

[[rules]]
when = { group = "Traders" }
set = { recordingMode = "FULL", im = true, video = true, screenCaptureEnabled = true }

[[rules]]
when = { group = "Sales", attribute = "attributes.department", equals = "inside sales" }
set = { recordingMode = "ON_DEMAND" }

[[rules]]
when = { attribute = "attributes.title", matches = "(Senior )?Trader" }
set = { recordingMode = "CONTROLLED" }

[[rules]]
when = { attribute = "attributes.ipPhone", present = false }
set = { voice = false, im = true }
"""


@pytest.mark.parametrize(
    ("groups", "attributes", "expected"),
    [
        (["Traders"], {}, rec(A, im=True, video=True, screen=True)),
        (["CN=TRADERS,OU=Groups,DC=corp,DC=example"], {}, rec(A, im=True, video=True, screen=True)),
        (["Traders", "Sales"], {"department": "Inside Sales"}, rec(A, im=True, video=True, screen=True)),
        (["Sales", "Traders"], {"department": "Inside Sales"}, rec(A, im=True, video=True, screen=True)),
        (["Sales"], {"department": "Inside Sales", "ipPhone": "1"}, rec(A, mode="ON_DEMAND")),
        (["Sales"], {"department": "Field Sales", "ipPhone": "1"}, rec(A)),
        ([], {"department": "Inside Sales", "ipPhone": "1"}, rec(A)),
        ([], {"title": "senior trader", "ipPhone": "1"}, rec(A, mode="CONTROLLED")),
        ([], {"title": "Senior Trader Assistant", "ipPhone": "1"}, rec(A)),
        ([], {"title": ["Analyst", "Trader"], "ipPhone": "1"}, rec(A, mode="CONTROLLED")),
        ([], {"ipPhone": ""}, rec(A, voice=False, im=True)),
        ([], {}, rec(A, voice=False, im=True)),
        (["CN=Traders-Old,OU=Groups,DC=corp"], {"ipPhone": "1"}, rec(A)),
        (["OU=Traders,DC=corp"], {"ipPhone": "1"}, rec(A)),
        (["cn=Traders\\,Desk 2,OU=Groups,DC=corp"], {"ipPhone": "1"}, rec(A)),
    ],
)
def test_the_first_matching_rule_wins(
    groups: list[str], attributes: dict[str, object], expected: ExtensionRecord
) -> None:
    mapped = mapping(RULES).map_user(change({**work(A), "groups": groups, "attributes": attributes}), 7, [])
    assert mapped == MappedUser([expected], [])


def test_a_record_false_rule_stops_previous_and_mapped_extensions() -> None:
    mapped = mapping(RULES).map_user(change({**work(B), "groups": ["do-not-record", "Traders"]}), 7, [rec(A)])
    assert mapped == MappedUser([], [off(A), off(B)])


def test_defaults_record_false_records_only_rule_matches() -> None:
    loaded = mapping(
        '\n[defaults]\nrecord = false\nrecordingMode = "ON_DEMAND"\n\n[[rules]]\nwhen = { group = "Recorded" }\n'
    )
    assert loaded.map_user(change({**work(A), "groups": ["Recorded"]}), 7, []) == MappedUser(
        [rec(A, mode="ON_DEMAND")], []
    )
    assert loaded.map_user(change(work(A)), 7, [rec(B)]) == MappedUser([], [off(B), off(A, mode="ON_DEMAND")])


def test_rules_on_booleans_and_core_attributes() -> None:
    loaded = mapping(
        '\n[[rules]]\nwhen = { attribute = "emails[primary eq true].value", matches = ".*@legal\\\\.example" }\n'
        'set = { recordingMode = "CONTROLLED" }\n'
    )
    state = {**work(A), "emails": [{"value": "a@legal.example", "primary": True}]}
    assert loaded.map_user(change(state), 7, []).upserts == [rec(A, mode="CONTROLLED")]
    state["emails"][0]["primary"] = False
    assert loaded.map_user(change(state), 7, []).upserts == [rec(A)]


def test_ignore_pushes_nothing_for_removed_extensions() -> None:
    loaded = mapping(RULES + '\n[deprovision]\naction = "ignore"\n')
    assert loaded.map_user(change(work(B)), 7, [rec(A)]) == MappedUser([rec(B, voice=False, im=True)], [])
    assert loaded.map_user(change(work(B), "delete"), 7, [rec(A)]) == MappedUser([], [])
    assert loaded.map_user(change({**work(B), "groups": ["Do-Not-Record"]}), 7, [rec(A)]) == MappedUser([], [])


def test_environment_short_name_is_carried() -> None:
    loaded = mapping(base=BASE.replace('eid = "0000"', 'short_name = "tenant1"'))
    (record,) = loaded.map_user(change(work(A)), 7, []).upserts
    assert (record.eid, record.environment_short_name) == (None, "tenant1")


@pytest.mark.parametrize("user_id", [0, -1, True, "7", None])
def test_map_user_refuses_a_missing_user_id(user_id: object) -> None:
    with pytest.raises(ValueError, match="positive integer Verba user id"):
        mapping().map_user(change({}), user_id, [])  # type: ignore[arg-type]


def test_login_name_takes_the_first_present_path() -> None:
    loaded = mapping(
        '\n[user_id]\nlogin_name = ["attributes.userPrincipalName", "attributes.sAMAccountName", "userName"]\n'
    )
    assert (
        loaded.login_name({"userName": "x", "attributes": {"sAMAccountName": ["jdoe"], "userPrincipalName": " "}})
        == "jdoe"
    )
    assert (
        loaded.login_name({"userName": "x", "attributes": {"USERPRINCIPALNAME": "jdoe@corp.example"}})
        == "jdoe@corp.example"
    )
    assert loaded.login_name({"userName": "x"}) == "x"
    assert mapping().login_name({"userName": "alice"}) == "alice"
    assert mapping().login_name({}) is None


def test_user_id_from_state() -> None:
    loaded = mapping('\n[user_id]\nattribute = "attributes.verbaUserId"\n')
    assert loaded.user_id_attribute == "attributes.verbaUserId"
    assert loaded.user_id_from_state({"attributes": {"verbaUserId": "42"}}) == 42
    assert loaded.user_id_from_state({"attributes": {"VERBAUSERID": 42}}) == 42
    assert loaded.user_id_from_state({"attributes": {"verbaUserId": [" 43 "]}}) == 43
    assert loaded.user_id_from_state({"attributes": {}}) is None
    assert mapping().user_id_attribute is None
    assert mapping().user_id_from_state({"attributes": {"verbaUserId": "42"}}) is None


def test_user_id_or_login_decides_for_delivery_replay_and_mapping_test() -> None:
    by_attribute = mapping('\n[user_id]\nattribute = "attributes.verbaUserId"\n')
    assert by_attribute.user_id_or_login(change({"attributes": {"verbaUserId": "42"}}), 7) == 42
    assert by_attribute.user_id_or_login(change({}), 7) == 7  # the id last pushed
    with pytest.raises(UnresolvedUser, match="no Verba user id in 'attributes.verbaUserId'"):
        by_attribute.user_id_or_login(change({}), None)
    assert mapping().user_id_or_login(change({}), 7) == "alice"  # an upsert looks the login name up again
    assert mapping().user_id_or_login(change({}, kind="deactivate"), 7) == 7
    assert mapping().user_id_or_login(change({}, kind="deactivate"), None) == "alice"
    with pytest.raises(UnresolvedUser, match="no login name"):
        mapping().user_id_or_login(UserChange("test", "u1", "upsert", {}), None)


@pytest.mark.parametrize("value", ["abc", "0", "-4", "4.5", 0, -1, True, 4.0, "٤٢"])
def test_a_bad_user_id_says_which_attribute_and_value(value: object) -> None:
    loaded = mapping('\n[user_id]\nattribute = "attributes.verbaUserId"\n')
    with pytest.raises(MappingFailure) as caught:
        loaded.user_id_from_state({"attributes": {"verbaUserId": value}})
    assert f"attributes.verbaUserId is {value!r}" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_non_text_value_is_a_bad_value() -> None:
    loaded = mapping('\n[[extensions]]\nfrom = "attributes.ipPhone"\nnormalize = "digits"\n')
    with pytest.raises(MappingFailure, match="attributes.ipPhone: 4567 is not text"):
        loaded.map_user(change({"attributes": {"ipPhone": 4567}}), 7, [])


def test_a_group_cn_with_an_escaped_comma() -> None:
    loaded = mapping('\n[[rules]]\nwhen = { group = "Smith, John" }\nrecord = false\n')
    assert loaded.map_user(change({**work(A), "groups": ["CN=Smith\\, John,OU=People,DC=corp"]}), 7, []).upserts == []
    assert loaded.map_user(change({**work(A), "groups": ["CN=Smith,OU=People,DC=corp"]}), 7, []).upserts == [rec(A)]
