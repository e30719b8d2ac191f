"""Rule tests on values as the field sends them: spacing and Unicode forms, typed values (LDAP's "TRUE", an int from
`events ingest`, a JSON true in a filter), blank values, and the loader's wording for a `when` that is not a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.mapping import ExtensionRecord, MappedUser, MappingError, UnresolvedUser, load_mapping
from tests.mapping.util import BASE, change, mapping, work

A = "+14155550100"
RECORDED = MappedUser([ExtensionRecord(A, 7, "ON_DEMAND", True, False, False, False, eid="0000")], [])
NOT_RECORDED = MappedUser([], [ExtensionRecord(A, 7, "FULL", False, False, False, False, eid="0000")])
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
VERBA = "urn:ietf:params:scim:schemas:extension:verba:2.0:User"


def only_rule(when: str) -> str:
    """A mapping that records nobody but the users its one rule matches (on demand, to tell the rule did it)."""
    return f'\n[defaults]\nrecord = false\n\n[[rules]]\nwhen = {when}\nset = {{ recordingMode = "ON_DEMAND" }}\n'


def mapped(when: str, state: dict[str, Any]) -> MappedUser:
    return mapping(only_rule(when)).map_user(change({**work(A), **state}), 7, [])


def decided(when: str, state: dict[str, Any]) -> str:
    return mapping(only_rule(when)).decision(change({**work(A), **state}))


# 5: equals and matches compare values as groups do: spacing and Unicode forms do not count

@pytest.mark.parametrize("value", ["Trading ", " trading", "TRADING\t", "Trading\u00a0", "  Trading  "])
def test_equals_ignores_the_spaces_around_a_value(value: str) -> None:
    when = '{ attribute = "attributes.department", equals = "Trading" }'
    assert mapped(when, {"attributes": {"department": value}}) == RECORDED
    assert decided(when, {"attributes": {"department": value}}).startswith("rules[0] (when {")


@pytest.mark.parametrize(("rule", "value"), [("L\u00e9gal", "Le\u0301gal"), ("Le\u0301gal", "L\u00e9gal"),
                                             ("Sales Desk", "Sales  Desk"), ("Sales", "\uff33ales")])
def test_equals_ignores_the_unicode_form_and_runs_of_spaces(rule: str, value: str) -> None:
    assert mapped(f'{{ attribute = "attributes.department", equals = "{rule}" }}',
                  {"attributes": {"department": value}}) == RECORDED


@pytest.mark.parametrize(("pattern", "value"), [("(FX|Equities) Trading", "FX Trading "),
                                                ("(FX|Equities) Trading", "  equities trading"),
                                                ("(FX|Equities) Trading", "FX  Trading"),
                                                ("L\u00e9gal.*", "Le\u0301gal Ops"),
                                                ("Le\u0301gal.*", "L\u00e9gal Ops")])
def test_matches_reads_the_value_as_equals_does(pattern: str, value: str) -> None:
    assert mapped(f'{{ attribute = "attributes.department", matches = "{pattern}" }}',
                  {"attributes": {"department": value}}) == RECORDED


def test_a_different_value_still_does_not_match() -> None:
    when = '{ attribute = "attributes.department", equals = "Trading" }'
    assert mapped(when, {"attributes": {"department": "Trading Ops"}}) == NOT_RECORDED
    assert mapped('{ attribute = "attributes.department", matches = "Trad" }',
                  {"attributes": {"department": "Trading"}}) == NOT_RECORDED
    assert decided(when, {"attributes": {"department": "Trading Ops"}}) == (
        "no rule matched: not recorded ([defaults] record = false)")


def test_mapping_test_shows_the_rule_that_matched_a_value_with_a_trailing_space(tmp_path: Path) -> None:
    file = tmp_path / "m.toml"
    file.write_text(BASE + only_rule('{ attribute = "attributes.department", equals = "Trading" }'))
    user = tmp_path / "u.json"
    user.write_text(json.dumps({"userName": "alice", **work(A), "attributes": {"department": "Trading "}}))
    result = CliRunner().invoke(main, ["mapping", "test", "--mapping", str(file), "--user", str(user),
                                       "--user-id", "7"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[3] == ('decided by rules[0] (when { attribute = "attributes.department", equals = "Trading" }) '
                        "matched first: recorded with its settings")
    assert lines[-1].split() == [A, "7", "record", "ON_DEMAND", "yes", "no", "no", "no"]


# 6: typed values: a boolean rule matches LDAP's "TRUE", a string rule matches an int or a JSON boolean

@pytest.mark.parametrize(("when", "value"), [
    ('{ attribute = "attributes.isTrader", equals = true }', "TRUE"),
    ('{ attribute = "attributes.isTrader", equals = true }', "true"),
    ('{ attribute = "attributes.isTrader", equals = false }', "FALSE"),
    ('{ attribute = "attributes.isTrader", equals = true }', True),
    ('{ attribute = "attributes.isTrader", equals = "1" }', 1),
    ('{ attribute = "attributes.isTrader", equals = "true" }', True),
    ('{ attribute = "attributes.isTrader", equals = "TRUE" }', True),
    ('{ attribute = "attributes.isTrader", equals = "0" }', 0),
    ('{ attribute = "attributes.isTrader", matches = "[0-9]+" }', 42),
    ('{ attribute = "attributes.isTrader", matches = "true|yes" }', True),
])
def test_typed_values_match_through_their_text(when: str, value: Any) -> None:
    assert mapped(when, {"attributes": {"isTrader": value}}) == RECORDED


@pytest.mark.parametrize(("when", "value"), [
    ('{ attribute = "attributes.isTrader", equals = true }', "FALSE"),
    ('{ attribute = "attributes.isTrader", equals = true }', False),
    ('{ attribute = "attributes.isTrader", equals = true }', "yes"),
    ('{ attribute = "attributes.isTrader", equals = true }', 1),
    ('{ attribute = "attributes.isTrader", equals = "1" }', True),
    ('{ attribute = "attributes.isTrader", equals = "1" }', 10),
])
def test_typed_values_that_differ_do_not_match(when: str, value: Any) -> None:
    assert mapped(when, {"attributes": {"isTrader": value}}) == NOT_RECORDED


@pytest.mark.parametrize(("path", "primary"), [('emails[primary eq "true"].value', True),
                                               ("emails[primary eq true].value", "TRUE"),
                                               ("emails[primary eq false].value", "False")])
def test_a_filter_compares_typed_values_as_a_rule_does(path: str, primary: Any) -> None:
    state = {"emails": [{"value": "a@legal.example", "primary": primary}]}
    assert mapped(f"{{ attribute = '{path}', matches = '.*@legal[.]example' }}", state) == RECORDED


# 7: a blank Verba user id is no value: a leaver keeps the id last pushed

@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_user_id_falls_back_to_the_id_last_pushed(blank: str) -> None:
    okta = load_mapping("mappings/okta.toml")
    state = {**work(A), "attributes": {VERBA: {"verbaUserId": blank}}}
    assert okta.user_id_or_login(change(state, "deactivate"), 417) == 417
    assert okta.user_id_or_login(change(state), 417) == 417
    with pytest.raises(UnresolvedUser, match="fill that attribute at the source"):
        okta.user_id_or_login(change(state), None)


# 10: a blank flattened attribute does not hide the nested SCIM shape

@pytest.mark.parametrize("flat", ["", "  ", [], [""]])
def test_the_nested_shape_is_read_when_the_flattened_key_is_blank(flat: Any) -> None:
    entra = load_mapping("mappings/entra.toml")
    state = {**work(A), "attributes": {f"{ENTERPRISE}:department": flat, ENTERPRISE: {"department": "Legal"}}}
    assert entra.decision(change(state)).startswith("rules[2] (when {")
    assert [(r.extension, r.recording_mode, r.im) for r in entra.map_user(change(state), 7, []).upserts] == [
        (A, "ON_DEMAND", True)]


# 8: the loader's wording for a `when` that is not a table, a missing `when`, and equals = ""

def error(tmp_path: Path, text: str) -> list[str]:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(MappingError) as caught:
        load_mapping(file)
    return [line.removeprefix(f"{file}: ") for line in str(caught.value).splitlines()]


def test_a_when_written_as_a_string_is_one_problem_with_an_inline_table_fix(tmp_path: Path) -> None:
    assert error(tmp_path, BASE + '\n[[rules]]\nwhen = "Traders"\nrecord = false\n') == [
        "rules[0].when is 'Traders'; write the conditions as an inline table: when = { group = \"Traders\" }, "
        "or when = { attribute = \"PATH\", equals = \"VALUE\" }"]


def test_a_missing_when_says_what_a_rule_needs(tmp_path: Path) -> None:
    assert error(tmp_path, BASE + '\n[[rules]]\nset = { im = true }\n') == [
        "rules[0].when is missing; every rule says which users it applies to, e.g. when = { group = \"Traders\" } "
        "(how to record everyone else goes in [defaults])"]


def test_a_set_written_as_a_value_gets_an_inline_table_fix(tmp_path: Path) -> None:
    assert error(tmp_path, BASE + '\n[[rules]]\nwhen = { group = "Traders" }\nset = "FULL"\n') == [
        "rules[0].set is 'FULL'; write it as an inline table: set = { ... }"]


@pytest.mark.parametrize("blank", ["", "  "])
def test_equals_an_empty_string_is_refused_naming_present_false(tmp_path: Path, blank: str) -> None:
    assert error(tmp_path, BASE + f'\n[[rules]]\nwhen = {{ attribute = "attributes.title", equals = "{blank}" }}\n'
                 ) == [f"rules[0].when.equals is {blank!r}, which never matches: an empty value counts as no value; "
                       "for users without one write present = false"]


def test_every_when_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (BASE + '\n[[rules]]\nwhen = "Traders"\n\n[[rules]]\nrecord = false\n'
            '\n[[rules]]\nwhen = { attribute = "attributes.title", equals = "" }\n')
    assert [line.split(";")[0] for line in error(tmp_path, text)] == [
        "rules[0].when is 'Traders'", "rules[1].when is missing",
        "rules[2].when.equals is '', which never matches: an empty value counts as no value"]
