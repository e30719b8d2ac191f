"""`connector mapping test`: a readable table, JSON with --json, one line for what cannot be mapped, and the
SCIM users the connector stores (the LDAP form, --ldap NAME --user ID, is in tests/ldap/test_preview.py)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from connector.cli import main
from connector.config import DEFAULT_MAPPING, load_config
from connector.records import ExtensionRecord
from connector.runtime import open_configured_store
from connector.sources.scim.schema import USERS
from connector.sources.scim.service import ScimService
from tests.plugins.simulator import PASSWORD, Simulator

OKTA = "tests/mapping/samples/okta_user.json"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["mapping", "test", *args])
    return result.exit_code, result.output


def test_a_table_by_default_and_json_with_the_flag():
    code, out = run("--mapping", "mappings/okta.toml", "--user", OKTA)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "using mapping mappings/okta.toml (--mapping); no config read"
    assert lines[1] == f"{OKTA} (upsert), from the file"
    assert lines[2].startswith("Verba user 417 (from attributes.")
    assert lines[3] == ('decided by rules[2] (when { attribute = "attributes.urn:ietf:params:scim:schemas:extension:'
                        'verba:2.0:User:recordingPolicy", equals = "on-demand" }) matched first: recorded with its '
                        'settings')
    assert lines[4] == ("left out as invalid (fix at the source): phoneNumbers[type eq \"mobile\"].value: "
                        "'07700 900123' is not a valid phone number for GB")
    assert lines[5].split() == ["EXTENSION", "USER", "ID", "ACTION", "RECORDING", "MODE", "VOICE", "IM", "VIDEO",
                                "SCREEN"]
    assert lines[6].split() == ["+442079460018", "417", "record", "ON_DEMAND", "yes", "no", "no", "no"]
    assert len(lines) == 7  # no footnote without a stop

    code, out = run("--mapping", "mappings/okta.toml", "--user", OKTA, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["user_id"] == 417 and [r["extension"] for r in data["upserts"]] == ["+442079460018"]
    assert data["deprovisions"] == [] and data["decided_by"].startswith("rules[2] (when {")
    assert (data["config"], data["mapping"]) == (None, "mappings/okta.toml")


def test_it_says_when_no_rule_matched_or_the_user_goes_away(tmp_path):
    other = tmp_path / "u.json"
    other.write_text(json.dumps({**json.loads(Path(OKTA).read_text()), "attributes": {}}))
    code, out = run("--mapping", "mappings/okta.toml", "--user", str(other), "--user-id", "5")
    assert code == 0 and "decided by no rule matched: recorded with [defaults]" in out, out
    code, out = run("--mapping", "mappings/okta.toml", "--user", OKTA, "--kind", "deactivate")
    assert code == 0 and "decided by a deactivate: not recorded" in out, out


def test_a_user_going_away_with_only_an_invalid_number_is_said_to_have_no_valid_value(tmp_path):
    invalid = tmp_path / "u.json"
    user = json.loads(Path(OKTA).read_text())
    invalid.write_text(json.dumps({**user, "phoneNumbers": [{"value": "call reception", "type": "work"}]}))
    code, out = run("--mapping", "mappings/okta.toml", "--user", str(invalid), "--kind", "deactivate")
    assert code == 0, out
    assert out.splitlines()[-1] == ("maps to no extension: the state has no valid value in the mapping's "
                                    "[[extensions]] sources, and nothing was pushed for it before "
                                    "(extensions[0].from 'phoneNumbers[type eq \"work\"].value': 1 value, not valid; "
                                    "extensions[1].from 'phoneNumbers[type eq \"mobile\"].value': absent "
                                    "(misspelled in the mapping, or not sent by the source?))")


def test_a_misspelled_extensions_source_is_named_when_the_user_maps_to_nothing(tmp_path):
    mapping = tmp_path / "typo.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace(
        'from = "attributes.telephoneNumber"', 'from = "attributes.telephoneNumbr"'))
    user = tmp_path / "u.json"
    user.write_text(json.dumps({"userName": "alice@example.com", "attributes": {"telephoneNumber": "+14155550100"}}))
    code, out = run("--mapping", str(mapping), "--user", str(user), "--user-id", "3")
    assert code == 0, out
    assert "extensions[1].from 'attributes.telephoneNumbr': absent (misspelled in the mapping, or not sent by the " \
           "source?)" in out.splitlines()[-1], out


def test_a_user_going_away_shows_its_extensions_stopped_if_verba_still_links_them_to_the_user():
    code, out = run("--mapping", "mappings/okta.toml", "--user", OKTA, "--kind", "deactivate")
    assert code == 0
    *_, row, footnote = out.splitlines()
    assert row.split() == ["+442079460018", "417", "stop", "FULL", "no", "no", "no", "no"]
    assert footnote == ("stop: recording stops (the extension stays linked to user 417) if Verba still links it to "
                        "this user and no other source of the user claims it; else it is left alone (audited "
                        "left_alone)")


def test_the_first_line_names_the_config_and_the_mapping_used(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('[mapping]\nfile = "mappings/okta.toml"\n')
    code, out = run("--config", str(config), "--user", OKTA)
    assert code == 0 and out.splitlines()[0] == f"using config {config} and its [mapping] file mappings/okta.toml"
    monkeypatch.setenv("CONNECTOR_CONFIG", str(config))
    code, out = run("--user", OKTA)
    assert out.splitlines()[0] == (f"using config {config} (from CONNECTOR_CONFIG) and its [mapping] file "
                                   "mappings/okta.toml")
    code, out = run("--user", OKTA, "--json")
    assert (json.loads(out)["config"], json.loads(out)["mapping"]) == (str(config), "mappings/okta.toml")


def test_a_state_that_cannot_be_mapped_is_one_line_with_the_fix():
    # The README's example of old: a UK number under the US default country.
    code, out = run("--mapping", "mappings/default.toml", "--user", OKTA, "--user-id", "3")
    assert code == 1 and "Traceback" not in out
    [line] = out.splitlines()
    assert "'020 7946 0018' is not a valid phone number for US" in line and "mappings/default.toml" in line
    assert 'set on_invalid = "skip"' in line


def test_a_file_user_whose_verba_id_is_looked_up_by_login_name_shows_it_looked_up_at_push_time(tmp_path):
    user = tmp_path / "u.json"
    user.write_text(json.dumps({"userName": "alice@example.com",
                                "phoneNumbers": [{"type": "work", "value": "tel:+1 415 555 0100"}]}))
    code, out = run("--mapping", "mappings/default.toml", "--user", str(user), "--kind", "deactivate")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[2] == ("Verba user looked up at push time (listUsers loginName 'alice@example.com' when it is "
                        "pushed; --user-id N maps with one now)")
    assert lines[4].split() == ["EXTENSION", "USER", "ID", "ACTION", "RECORDING", "MODE", "VOICE", "IM", "VIDEO",
                                "SCREEN"]
    assert lines[5].split() == ["+14155550100", "at", "push", "time", "stop", "FULL", "no", "no", "no", "no"]
    assert "stays linked to the Verba user of its login name" in lines[6]


def test_what_is_missing_is_said_in_one_line(tmp_path):
    code, out = run("--mapping", "mappings/default.toml", "--user", str(tmp_path / "none.json"))
    assert code == 1 and "no such file" in out
    (tmp_path / "bad.json").write_text("{")
    code, out = run("--mapping", "mappings/default.toml", "--user", str(tmp_path / "bad.json"))
    assert code == 1 and "not valid JSON" in out
    for number in ("1" * 401, "1e999", "NaN"):  # a double cannot hold it: the file is refused, not a traceback
        (tmp_path / "big.json").write_text(f'{{"state": {{"userName": "a@example.com"}}, "accepted_at": {number}}}')
        code, out = run("--mapping", "mappings/default.toml", "--user", str(tmp_path / "big.json"))
        assert code == 1 and out.startswith(f"Error: {tmp_path / 'big.json'}: not valid JSON ("), out
    code, out = run("--mapping", "mappings/default.toml")
    assert code == 2 and "give one user" in out
    code, out = run("--mapping", "mappings/default.toml", "--scim-user", "x", "--user", OKTA)
    assert code == 2 and "give one user" in out


def config_file(tmp_path: Path, simulator: Simulator) -> str:
    (tmp_path / "pw").write_text(PASSWORD)
    path = tmp_path / "c.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
                    f'[target]\nurl = "{simulator.url}"\nlogin = "connector"\npassword_file = "{tmp_path / "pw"}"\n'
                    'timeout_seconds = 5\n')
    return str(path)


def test_a_scim_user_the_connector_stores(tmp_path, simulator):
    config = config_file(tmp_path, simulator)
    with open_configured_store(load_config(config), create=True) as store:
        created = ScimService(store).create("entra", USERS, {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@example.com",
            "phoneNumbers": [{"type": "work", "value": "(415) 555-0100"}]})
    user_id = created.row.id
    simulator.clear_calls()

    for wanted in (user_id, f"entra/{user_id}", "alice@example.com"):
        code, out = run("--config", config, "--scim-user", wanted)
        assert code == 0, out
        lines = out.splitlines()
        assert lines[0] == f"using config {config} and its [mapping] file {DEFAULT_MAPPING}"
        assert lines[1] == f"entra/{user_id} (alice@example.com) (upsert), from SCIM client entra"
        assert lines[2] == "Verba user 3 (listUsers loginName 'alice@example.com')"
        assert lines[3] == "decided by no rule matched: recorded with [defaults]"
        assert lines[5].split()[:3] == ["+14155550100", "3", "record"]
    assert {c["operation"] for c in simulator.calls()} <= {"requestToken", "listUsers", "releaseToken"}

    code, out = run("--config", config, "--scim-user", "nobody")
    assert code == 1 and "the store holds no SCIM user 'nobody'" in out


def test_a_live_user_without_a_verba_user_is_one_line(tmp_path, simulator):
    config = config_file(tmp_path, simulator)
    with open_configured_store(load_config(config), create=True) as store:
        ScimService(store).create("okta", USERS, {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "zoe@example.com",
            "phoneNumbers": [{"type": "work", "value": "+14155550177"}]})
    code, out = run("--config", config, "--scim-user", "zoe@example.com")
    assert code == 1 and "no Verba user has loginName 'zoe@example.com'" in out and "--user-id" in out
    code, out = run("--config", config, "--scim-user", "zoe@example.com", "--user-id", "7")
    assert code == 0 and "+14155550177  7" in out


def test_a_live_user_without_a_verba_user_shows_what_a_push_does_as_delivery_decides(tmp_path, simulator):
    """With create_missing a push creates the user: its records are shown, not "a dead letter"; a person Verba holds
    under the login name in another case is never created twice, whatever create_missing says."""
    config = config_file(tmp_path, simulator)
    creating = tmp_path / "creating.toml"
    creating.write_text(Path(DEFAULT_MAPPING).read_text().replace("create_missing = false", "create_missing = true"))
    with open_configured_store(load_config(config), create=True) as store:
        for login, number in (("zoe@example.com", "+14155550177"), ("yan@example.com", "+14155550178")):
            ScimService(store).create("okta", USERS, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": login,
                "phoneNumbers": [{"type": "work", "value": number}]})
    code, out = run("--config", config, "--mapping", str(creating), "--scim-user", "zoe@example.com")
    assert code == 0, out
    assert ("Verba user looked up at push time (no Verba user has loginName 'zoe@example.com': a push creates one "
            "([user_id] create_missing = true))") in out.splitlines()
    assert "+14155550177  at push time  record" in out

    simulator.http.post("/_sim/users", json={"loginName": "Yan@example.com"}).raise_for_status()
    for mapping in ([], ["--mapping", str(creating)]):
        code, out = run("--config", config, *mapping, "--scim-user", "yan@example.com")
        assert code == 1, out
        assert ("no Verba user has loginName 'yan@example.com'; Verba has 'Yan@example.com', which differs only in "
                "case: fix the case at the source or in Verba (do not create another user); a push would be a dead "
                "letter (unresolved_user), creating no one; pass --user-id N to see the records anyway") in out
    assert not simulator.calls("createUser")

def test_a_rule_attribute_the_state_lacks_is_pointed_out(tmp_path):
    typo = tmp_path / "typo.toml"
    typo.write_text(Path("mappings/okta.toml").read_text().replace("User:department", "User:departmnt"))
    code, out = run("--mapping", str(typo), "--user", OKTA)
    assert code == 0, out
    assert ("not in this state (misspelled in the mapping, or not sent by the source?): rules[3].when.attribute "
            "'attributes.urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:departmnt'") in out.splitlines()
    code, out = run("--mapping", "mappings/okta.toml", "--user", OKTA)
    assert "not in this state" not in out
    code, out = run("--mapping", str(typo), "--user", OKTA, "--json")
    assert json.loads(out)["absent_attributes"] == [
        {"rule": 3, "attribute": "attributes.urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:departmnt"}]


def test_a_number_left_out_as_invalid_is_shown_and_the_number_last_recorded_kept(tmp_path, simulator):
    config = config_file(tmp_path, simulator)
    (tmp_path / "c.toml").write_text((tmp_path / "c.toml").read_text() + '[mapping]\nfile = "mappings/entra.toml"\n')
    mistyped = [{"type": "work", "value": "(415) 555-0100"}, {"type": "mobile", "value": "+1 917 555 04O2"}]
    with open_configured_store(load_config(config), create=True) as store:
        created = ScimService(store).create("entra", USERS, {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@example.com",
            "phoneNumbers": mistyped})
        store.remember_pushed("entra", created.row.id, [
            ExtensionRecord("+14155550100", 3, "FULL", True, False, False, False, eid="0000"),
            ExtensionRecord("+19175550402", 3, "FULL", True, False, False, False, eid="0000")])
    code, out = run("--config", config, "--scim-user", "alice@example.com")
    assert code == 0, out
    assert ("left out as invalid (fix at the source): phoneNumbers[type eq \"mobile\"].value: '+1 917 555 04O2' has "
            "letters ('O') where a phone number has digits") in out
    assert ["+19175550402", "3", "keep"] == next(line.split()[:3] for line in out.splitlines()
                                                 if line.startswith("+19175550402"))
    code, out = run("--config", config, "--scim-user", "alice@example.com", "--json")
    data = json.loads(out)
    assert data["kept"] == ["+19175550402"] and len(data["left_out"]) == 1 and data["deprovisions"] == []
