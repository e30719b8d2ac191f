"""Text from the config that the connector sends to Verba or stores as a name (target.login, the secrets as read
from their files or variables, eid, environment short names, SCIM client names, LDAP directory names) holding a
character XML 1.0 cannot carry (a control character, NUL, U+FFFF) is refused when the config is loaded, naming the
file, the key and the character, never the secret; `validate-config` exits 1 saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from tests.config.helpers import config_with, problems

TARGET = '[target]\nurl = "http://verba:7002/provisioning"\n'
SECRET = "demo-pw-7002"


def secret_file(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "secret"
    path.write_text(content)
    return path


@pytest.mark.parametrize("content, character", [
    (f"{SECRET}\x1a", "U+001A (a control character)"),  # the ^Z of an old editor
    (f"{SECRET}\x00\n", "U+0000 (a control character)"),
    (f"demo\x1b{SECRET}", "U+001B (a control character)"),
    (f"{SECRET}\uffff", "U+FFFF (a noncharacter)"),
], ids=["^Z at the end", "NUL", "ESC inside", "U+FFFF"])
@pytest.mark.parametrize("name, table", [("password", 'login = "connector"\neid = "0000"\n'), ("token", "")],
                         ids=["password_file", "token_file"])
def test_a_verba_secret_file_holding_a_character_xml_cannot_carry_is_refused_naming_the_file(
        tmp_path: Path, content: str, character: str, name: str, table: str) -> None:
    file = secret_file(tmp_path, content)
    config = config_with(tmp_path, TARGET + table + f'{name}_file = "{file}"\n')
    [problem] = problems(config)
    assert problem == (f"{config}: target.{name}_file {str(file)!r}: the {name} holds {character}, which XML 1.0 "
                       "cannot carry, so no request can send it; remove that character (only one trailing newline "
                       "is dropped)")
    assert SECRET not in problem


def test_a_verba_password_variable_holding_a_control_character_is_refused_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBA_PASSWORD", f"{SECRET}\x1a")
    config = config_with(tmp_path, TARGET + 'login = "connector"\npassword_env = "VERBA_PASSWORD"\n')
    assert problems(config) == [f"{config}: target.password_env VERBA_PASSWORD: the password holds U+001A (a control "
                                "character), which XML 1.0 cannot carry, so no request can send it; remove that "
                                "character (only one trailing newline is dropped)"]


@pytest.mark.parametrize("table, says", [
    ('login = "conn\\u0001ector"\neid = "0000"\npassword_file = "{file}"\n',
     "target.login holds U+0001 (a control character), which XML 1.0 cannot carry, so no request to Verba can send "
     "it; write it without that character"),
    ('environment_short_name = "tenant\\uffff"\ntoken_file = "{file}"\n',
     "target.environment_short_name holds U+FFFF (a noncharacter), which XML 1.0 cannot carry, so no request to "
     "Verba can send it; write it without that character"),
    ('eid = "\\u0001000"\ntoken_file = "{file}"\n',
     "target.eid is '\\x01000': it holds U+0001 (a control character), which XML 1.0 cannot carry; use the "
     "environment's id from Verba, such as \"0000\""),
], ids=["login", "environment_short_name", "eid"])
def test_a_target_setting_holding_a_character_xml_cannot_carry_is_refused(tmp_path: Path, table: str,
                                                                         says: str) -> None:
    config = config_with(tmp_path, TARGET + table.format(file=secret_file(tmp_path, SECRET)))
    assert problems(config) == [f"{config}: {says}"]


def test_a_mapping_eid_holding_a_control_character_fails_validate_config(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[environment]\neid = "\\u0001000"\n[[extensions]]\nfrom = "phoneNumbers[type eq \\"work\\"]'
                       '.value"\nnormalize = "e164"\ndefault_country = "US"\n')
    config = config_with(tmp_path, f'[mapping]\nfile = "{mapping}"\n')
    result = CliRunner().invoke(main, ["validate-config", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "environment.eid is '\\x01000': it holds U+0001 (a control character)" in result.output
    assert "\x01" not in result.output


@pytest.mark.parametrize("text, says", [
    ('[[scim.clients]]\nname = "entra\\u0000"\ntoken_env = "T"\n',
     "scim.clients[0].name 'entra\\x00' holds U+0000 (a control character), which XML 1.0 cannot carry, and every "
     "event of the client is stored under it; name the identity provider without that character"),
    ('[[scim.clients]]\nname = "okta\\u001b"\ntoken_env = "T"\n', "scim.clients[0].name 'okta\\x1b' holds U+001B"),
    ('[ldap."corp\\u0000"]\nurl = "ldaps://dc1:636"\nbase = "dc=corp"\n',
     "the name of [ldap.'corp\\x00'] holds U+0000 (a control character), which XML 1.0 cannot carry, and every event "
     "of the directory is stored under it; name the directory without that character"),
], ids=["NUL in a SCIM client's name", "ESC in a SCIM client's name", "NUL in an LDAP directory's name"])
def test_a_source_name_holding_a_character_xml_cannot_carry_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, says: str) -> None:
    monkeypatch.setenv("T", "t" * 32)
    config = config_with(tmp_path, text)
    assert [p for p in problems(config) if f"{config}: {says}" in p], problems(config)


@pytest.mark.parametrize("how", ["token_file", "token_env"])
def test_a_scim_token_holding_a_control_character_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             how: str) -> None:
    token = "t" * 32 + "\x1a"
    monkeypatch.setenv("T", token)
    file = secret_file(tmp_path, f"# rotated\n{token}\n")
    source = f'token_file = "{file}"' if how == "token_file" else 'token_env = "T"'
    config = config_with(tmp_path, f'[[scim.clients]]\nname = "entra"\n{source}\n')
    [problem] = problems(config)
    assert "holds U+001A (a control character), which XML 1.0 cannot carry, so no request can send it" in problem
    assert ("line 2: the token" in problem) if how == "token_file" else ("scim.clients[0].token_env T" in problem)
    assert "t" * 32 not in problem
