from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import ConnectorError
from connector.mapping import MappingError, load_mapping
from tests.mapping.util import BASE

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
SHIPPED = sorted(MAPPINGS.glob("*.toml"))


def test_every_mapping_is_shipped() -> None:
    assert [p.name for p in SHIPPED] == ["ad.toml", "default.toml", "entra.toml", "okta.toml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_mappings_load(path: Path) -> None:
    loaded = load_mapping(path)
    assert loaded.eid == "0000"
    assert loaded.sources


def test_default_mapping() -> None:
    loaded = load_mapping(MAPPINGS / "default.toml")
    assert [str(s.path) for s in loaded.sources] == ['phoneNumbers[type eq "work"].value', "attributes.telephoneNumber"]
    assert {(s.normalize, s.default_country, s.on_invalid, s.suffix) for s in loaded.sources} == {
        ("e164", "US", "error", "keep")}
    assert [str(p) for p in loaded.login_name_paths] == ["userName", "attributes.userPrincipalName", "attributes.uid"]
    assert loaded.user_id_attribute is None
    assert loaded.create_missing_users is False
    assert loaded.rules == ()
    assert loaded.record_by_default is True
    assert (loaded.defaults.recording_mode, loaded.defaults.voice, loaded.defaults.im) == ("FULL", True, False)
    assert loaded.deprovision_action == "stop_recording"


def test_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(BASE)
    loaded = load_mapping(path)
    assert [str(p) for p in loaded.login_name_paths] == ["userName"]
    assert loaded.defaults.recording_mode == "FULL" and loaded.defaults.voice and not loaded.defaults.video
    assert loaded.deprovision_action == "stop_recording"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


RULE = '\n[[rules]]\nwhen = { group = "Traders" }\n'

# (the file's text, the key named in the message, the fix it suggests)
CASES = [
    (BASE + RULE + RULE + '[rules.set]\nrecordingMode = "SOMETIMES"\n',
     "rules[1].set.recordingMode is 'SOMETIMES'", "use one of FULL, ON_DEMAND, CONTROLLED"),
    (BASE.replace('eid = "0000"', "eid = 0"), "environment.eid is the number 0",
     'quote it so leading zeros stay: eid = "0000"'),
    (BASE.replace('eid = "0000"', "eid = 42"), "environment.eid is the number 42", 'eid = "0042"'),
    (BASE.replace('eid = "0000"', 'eid = "00000"'), "environment.eid is '00000'",
     'exactly 4 characters, such as "0000"'),
    (BASE.replace('eid = "0000"', 'eid = "0000"\nshort_name = "t1"'), "environment needs exactly one of", "not both"),
    (BASE.replace('eid = "0000"', 'short_name = "t\\uFFFF"'),
     "environment.short_name holds U+FFFF (a noncharacter), which XML 1.0 cannot carry",
     "use the environment's short name from Verba"),
    (BASE.replace('eid = "0000"', ""), "environment needs exactly one of", 'eid = "0000" or short_name'),
    (BASE.replace('[environment]\neid = "0000"', ""), "environment is missing", "add a [environment] table"),
    (BASE + "\n[defaults]\nvoise = true\n", "defaults.voise is not a known key", "did you mean 'voice'?"),
    ("colour = 1\n" + BASE, "colour is not a known key", "the keys of the top level are environment"),
    (BASE.replace("normalize", "normalise"), "extensions[0].normalise is not a known key", "did you mean 'normalize'?"),
    (BASE + "\n[defaults]\nim = \"yes\"\n", "defaults.im is 'yes'", "use true or false"),
    (BASE + RULE + "set = { video = 1 }\n", "rules[0].set.video is 1", "use true or false"),
    (BASE + RULE + "set = { record = false }\n", "rules[0].set.record belongs to the rule",
     "write record = false next to when"),
    (BASE + RULE + "record = false\nset = { im = true }\n", "rules[0].set cannot be used with record = false",
     "remove one"),
    (BASE + '\n[[rules]]\nset = { im = true }\n', "rules[0].when is missing", 'e.g. when = { group = "Traders" }'),
    (BASE + '\n[[rules]]\nwhen = {}\n', "rules[0].when is empty", 'group = "..." and/or attribute'),
    (BASE + '\n[[rules]]\nwhen = { attribute = "attributes.department" }\n',
     "rules[0].when.attribute needs exactly one of", "equals, matches or present"),
    (BASE + '\n[[rules]]\nwhen = { equals = "Sales" }\n', "rules[0].when.equals tests an attribute",
     'add attribute = "..."'),
    (BASE + '\n[[rules]]\nwhen = { attribute = "attributes.floor", equals = 3 }\n',
     "rules[0].when.equals is 3", 'use a quoted string (e.g. "3")'),
    (BASE + '\n[[rules]]\nwhen = { attribute = "attributes.d", matches = "(Sales" }\n',
     "rules[0].when.matches is not a valid regular expression", "fix or escape it"),
    (BASE + '\n[[rules]]\nwhen = { attribute = "department", present = true }\n',
     "rules[0].when.attribute is not a valid path", "write attributes.department"),
    (BASE.replace('.value', ''), "extensions[0].from is not a valid path", '.value'),
    (BASE.replace("phoneNumbers[type", "phoneNumber[type"), "extensions[0].from is not a valid path",
     "did you mean 'phoneNumbers[type eq \"work\"].value'?"),
    (BASE.replace('normalize = "e164"', 'normalize = "E.164"'), "extensions[0].normalize is 'E.164'",
     "use one of e164, digits, sip, none"),
    (BASE.replace('normalize = "e164"\n', ''), "extensions[0].normalize is missing",
     "use one of e164, digits, sip, none"),
    (BASE.replace('normalize = "e164"', 'normalize = "digits"'),
     "extensions[0].default_country only applies to normalize = \"e164\"", "remove it"),
    (BASE.replace('"US"', '"USA"'), "extensions[0].default_country is 'USA'", "two-letter region code"),
    (BASE + 'on_invalid = "warn"\n', "extensions[0].on_invalid is 'warn'", "use one of error, skip"),
    (BASE + 'suffix = "strip"\n', "extensions[0].suffix is 'strip'", "use one of keep, extension_only, drop"),
    (BASE + 'suffix = true\n', "extensions[0].suffix is True", "use one of keep, extension_only, drop"),
    (BASE.replace('normalize = "e164"\ndefault_country = "US"', 'normalize = "sip"\nsuffix = "keep"'),
     "extensions[0].suffix only applies to normalize = \"e164\" or \"digits\", not 'sip'", "remove it"),
    (BASE.replace('normalize = "e164"\ndefault_country = "US"', 'normalize = "none"\nsuffix = "drop"'),
     "extensions[0].suffix only applies to normalize = \"e164\" or \"digits\", not 'none'", "remove it"),
    (BASE + 'sufix = "keep"\n', "extensions[0].sufix is not a known key", "did you mean 'suffix'?"),
    (BASE.replace("from = ", "source = "), "extensions[0].source is not a known key",
     "the keys of [extensions[0]] are from"),
    ('[environment]\neid = "0000"\n', "extensions is missing", "add at least one [[extensions]] table"),
    (BASE.replace("[[extensions]]", "[extensions]"), "extensions must be an array of tables",
     "write each one as [[extensions]]"),
    (BASE + '\n[user_id]\nlogin_name = "userName"\n', "user_id.login_name is 'userName'",
     'use a list of paths tried in order'),
    (BASE + '\n[user_id]\nlogin_name = ["userName", "upn"]\n', "user_id.login_name[1] is not a valid path",
     "for a raw source attribute write attributes.upn"),
    (BASE + '\n[user_id]\nattribute = ""\n', "user_id.attribute is not a valid path", "non-empty string"),
    (BASE + '\n[user_id]\ncreate_missing = "no"\n', "user_id.create_missing is 'no'", "use true or false"),
    (BASE + '\n[deprovision]\naction = "delete"\n', "deprovision.action is 'delete'",
     "use one of stop_recording, ignore"),
    ('deprovision = "ignore"\n' + BASE, "deprovision is 'ignore'", "write it as a [deprovision] table"),
]


@pytest.mark.parametrize(("text", "key", "fix"), CASES, ids=[c[1][:40] for c in CASES])
def test_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str, fix: str) -> None:
    message = error(tmp_path, text)
    assert key in message
    assert fix in message


@pytest.mark.parametrize("suffix", ["keep", "extension_only", "drop"])
@pytest.mark.parametrize("normalize", ["e164", "digits"])
def test_suffix_is_read(tmp_path: Path, normalize: str, suffix: str) -> None:
    text = BASE.replace('normalize = "e164"\ndefault_country = "US"', f'normalize = "{normalize}"\nsuffix = "{suffix}"')
    [source] = load_mapping(write(tmp_path, text)).sources
    assert (source.normalize, source.suffix) == (normalize, suffix)


def test_suffix_defaults_to_keep(tmp_path: Path) -> None:
    [source] = load_mapping(write(tmp_path, BASE)).sources
    assert source.suffix == "keep"


@pytest.mark.parametrize(("suffix", "expected"), [
    ("keep", ["+12125550142;ext=101", "+12125550142;ext=102"]), ("extension_only", ["101", "102"]),
    ("drop", ["+12125550142"])])
def test_suffix_reaches_the_extensions(tmp_path: Path, suffix: str, expected: list[str]) -> None:
    source = load_mapping(write(tmp_path, BASE + f'suffix = "{suffix}"\n')).sources[0]
    state = {"phoneNumbers": [{"value": v, "type": "work"} for v in ("(212) 555-0142 x101", "(212) 555-0142 ext. 102")]}
    extensions, skipped = source.extensions(state, strict=True)
    assert list(dict.fromkeys(extensions)) == expected and skipped == []


def test_a_filter_may_use_any_key(tmp_path: Path) -> None:
    assert load_mapping(write(tmp_path, BASE.replace("phoneNumbers[type", "phoneNumbers[display"))).sources


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, BASE + "\n[defaults]\nvoice = yes\n")
    assert "not valid TOML" in message
    assert "line 11" in message


# (the line the parser stops at, what it says there, the fix)
TOML_MISTAKES = [
    ("eid = 0000", "(at line 2, column 8)", 'a number with a leading zero, which TOML refuses; quote it: eid = "0000"'),
    ("eid = 0042  # the tenant", "(at line 2, column 8)", 'quote it: eid = "0042"'),
    ('from = "phoneNumbers[type eq "work"].value"', "(at line 2, column 31)",
     "a double quote inside a \"...\" value ends it; write the whole value in single quotes, as the header of "
     "mappings/default.toml says: from = 'phoneNumbers[type eq \"work\"].value'"),
    ('when = { attribute = "title", equals = "say "hi" now" }', "(at line 2, column 46)",
     "write the whole value in single quotes, as the header of mappings/default.toml says: "
     "from = 'phoneNumbers[type eq \"work\"].value'"),
    ("login_name = [0042]", "(at line 2, column 16)", 'quote it: "0042"'),
]


@pytest.mark.parametrize(("line", "where", "fix"), TOML_MISTAKES, ids=[m[0][:20] for m in TOML_MISTAKES])
def test_the_likeliest_toml_mistakes_get_a_fix_and_the_line(tmp_path: Path, line: str, where: str, fix: str) -> None:
    path = tmp_path / "bad.toml"
    first, shown = error(tmp_path, "[x]\n" + line + "\n").splitlines()
    assert first.startswith(f"{path}: not valid TOML: ") and where in first, first
    assert first.endswith(fix), first
    assert shown == f"{path}: line 2: {line}"


def test_other_toml_mistakes_keep_the_general_fix_and_show_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    assert error(tmp_path, BASE + "\n[defaults]\nvoice = yes\n").splitlines() == [
        f"{path}: not valid TOML: Invalid value (at line 11, column 9); fix the syntax there",
        f"{path}: line 11: voice = yes"]


def test_the_keys_of_set_leave_out_record_which_belongs_to_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    assert error(tmp_path, BASE + RULE + 'set = { recordMode = "FULL", record = false }\n').splitlines() == [
        f"{path}: rules[0].set.record belongs to the rule, not to its settings; write record = false next to when",
        f"{path}: rules[0].set.recordMode is not a known key; did you mean 'recordingMode'? the keys of "
        "[rules[0].set] are recordingMode, voice, im, video, screenCaptureEnabled",
    ]


def test_missing_file() -> None:
    with pytest.raises(
        MappingError, match=r"mappings/nope\.toml: cannot read the mapping file .*check \[mapping\] file"
    ):
        load_mapping("mappings/nope.toml")


def test_mapping_error_is_a_connector_error() -> None:
    assert issubclass(MappingError, ConnectorError)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """A file with one mistake in each table gets one line per mistake, and nothing follows from another."""
    text = (
        '[environment]\neid = "12"\n'
        '[defaults]\nrecordingMode = "SOMETIMES"\nvoice = "yes"\n'
        '[[extensions]]\nfrom = "phoneNumbers.value"\nnormalize = "E.164"\ndefault_country = "US"\nsuffix = "keep"\n'
        '[[extensions]]\nnormalize = "digits"\n'
        '[[rules]]\nset = { record = false }\n'
        '[[rules]]\nwhen = { attribute = "department", equals = 3 }\n'
    )
    lines = error(tmp_path, text).splitlines()
    path = tmp_path / "bad.toml"
    assert lines == [
        f"{path}: environment.eid is '12'; an eid has exactly 4 characters, such as \"0000\" (quote it)",
        f"{path}: defaults.recordingMode is 'SOMETIMES'; use one of FULL, ON_DEMAND, CONTROLLED",
        f"{path}: defaults.voice is 'yes'; use true or false (unquoted)",
        f"{path}: extensions[0].normalize is 'E.164'; use one of e164, digits, sip, none",
        f"{path}: extensions[1].from is missing; say where the numbers come from, "
        "e.g. from = 'phoneNumbers[type eq \"work\"].value'",
        f"{path}: rules[0].when is missing; every rule says which users it applies to, "
        'e.g. when = { group = "Traders" } (how to record everyone else goes in [defaults])',
        f"{path}: rules[0].set.record belongs to the rule, not to its settings; write record = false next to when",
        f"{path}: rules[1].when.equals is 3; use a quoted string (e.g. \"3\") or true/false",
        f"{path}: rules[1].when.attribute is not a valid path: 'department' does not start with a part of the user "
        "state (userName, displayName, active, groups, name, emails, phoneNumbers, attributes); for a raw source "
        "attribute write attributes.department",
    ]


def test_a_table_written_as_a_value_is_one_problem(tmp_path: Path) -> None:
    text = BASE.replace('[environment]\neid = "0000"', 'environment = "0000"')
    assert error(tmp_path, text).splitlines() == [
        f"{tmp_path / 'bad.toml'}: environment is '0000'; write it as a [environment] table"]
