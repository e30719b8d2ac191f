"""Previews before going live, against slapd and the simulator: `connector ldap sync --dry-run`,
`connector mapping test --ldap NAME --user ID` and `connector validate-config --connect`."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import load_config
from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD, free_port
from tests.plugins.simulator import PASSWORD, drain, seed

# Verba users: all but dave. Verba already holds:
#   +14155550102  carol's, recorded exactly as the mapping wants it       -> unchanged
#   +14155550103  hank's, recorded with im on (the mapping says off)     -> update
#   +14155550104  linked to frank, whom no source manages (bob wants it)  -> conflict
#   +14155550105  erin's, recorded; erin is disabled in the directory     -> stop recording
VERBA_USERS = [{"id": n, "loginName": login, "displayName": login.title(), "eid": "0000"}
               for n, login in ((3, "alice"), (4, "bob"), (5, "carol"), (6, "erin"), (8, "gus"), (9, "frank"),
                                (10, "hank"))]
RECORDED = {"eid": "0000", "recordingMode": "FULL", "voice": True, "im": False, "video": False,
            "screenCaptureEnabled": False}
VERBA_EXTENSIONS = [
    {**RECORDED, "extension": "+14155550102", "user_id": 5},
    {**RECORDED, "extension": "+14155550103", "user_id": 10, "im": True},
    {**RECORDED, "extension": "+14155550104", "user_id": 9},
    {**RECORDED, "extension": "+14155550105", "user_id": 6},
]
WRITES = {"createExtension", "updateExtension", "createUser", "updateUser", "deleteUser"}


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return VERBA_USERS


@pytest.fixture
def seed_extensions() -> list[dict[str, Any]]:
    return VERBA_EXTENSIONS


def write_config(tmp_path: Path, ldap_url: str, base: str, target: str, *, mapping: str = "mappings/default.toml",
                 extra: str = "") -> str:
    (tmp_path / "ldap-pw").write_text(ADMIN_PASSWORD)
    (tmp_path / "verba-pw").write_text(PASSWORD)
    path = tmp_path / "connector.toml"
    path.write_text(f"""[store]
url = "sqlite:///{tmp_path / 'c.db'}"
[target]
url = "{target}"
login = "connector"
password_file = "{tmp_path / 'verba-pw'}"
timeout_seconds = 5
[mapping]
file = "{mapping}"
[ldap.corp]
url = "{ldap_url}"
base = "{base}"
bind_dn = "{ADMIN_DN}"
password_file = "{tmp_path / 'ldap-pw'}"
disabled_attribute = "employeeType"
{extra}""")
    return str(path)


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a SQLite store."""
    with sqlite3.connect(db) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in names}


@pytest.fixture
def directory(slapd, admin, base) -> str:
    """Seven users: alice (a new number), bob (a number frank holds), carol (as Verba holds it), dave (no Verba
    user), erin (disabled, her number recorded), gus (a number that is no phone number), hank (other settings)."""
    for uid, phone, extra in (("alice", "+1 415 555 0101", {}), ("bob", "+14155550104", {}),
                              ("carol", "(415) 555-0102", {}), ("dave", "+14155550199", {}),
                              ("erin", "+14155550105", {"employeeType": "TRUE"}), ("gus", "12", {}),
                              ("hank", "+14155550103", {})):
        slapd.add_user(admin, base, uid, telephoneNumber=phone, **extra)
    return base


@pytest.mark.parametrize("list_from", [50, 1], ids=["one-listUsers-a-user", "every-user-at-once"])
def test_dry_run_counts_each_outcome_and_changes_nothing(slapd, directory, simulator, tmp_path, monkeypatch,
                                                         list_from):
    """The same outcomes whether Verba is asked about each user or lists every user at once (LIST_FROM users on)."""
    monkeypatch.setattr("connector.ops.preview.LIST_FROM", list_from)
    config = write_config(tmp_path, slapd.url, directory, simulator.url)
    runner = CliRunner()
    assert runner.invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config]).exit_code == 0
    assert not (tmp_path / "c.db").exists()  # a preview before going live creates no store
    assert runner.invoke(main, ["db", "upgrade", "--config", config]).exit_code == 0
    before = tables(tmp_path / "c.db")
    simulator.clear_calls()

    result = runner.invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "read 7 users (6 active, 1 inactive)" in out and "nothing stored, nothing written to Verba" in out
    assert "a full sync now would store 7 events" in out
    counts = dict(re.findall(r"^  (\S.*?) +(\d+) (?:extensions|users)$", out, re.MULTILINE))
    assert counts == {"would create": "1", "would update": "1", "would stop recording": "1", "unchanged": "1",
                      "unresolved (no Verba user)": "1", "conflicts (extension held by another Verba user)": "1",
                      "mapping failures": "1"}, out
    assert "+14155550101  corp/" in out and "(alice): not in Verba: created for Verba user 3" in out
    assert "(dave): no Verba user has loginName 'dave'" in out
    assert "+14155550104  corp/" in out and "linked to Verba user 9 (frank), whom the connector does not manage" in out
    assert "+14155550105  corp/" in out and "(erin): inactive: Verba records voice" in out
    assert "+14155550103  corp/" in out and "im: Verba has True, wanted False" in out
    assert "(gus): " in out and "'12'" in out

    calls = {c["operation"] for c in simulator.calls()}
    assert {"listUsers", "getExtension"} <= calls and not calls & WRITES, calls
    assert tables(tmp_path / "c.db") == before
    asked = [c["loginName"] or "(every user)" for c in simulator.calls("listUsers") if c["extension"] is None]
    # dave: no Verba user, so the list does not hold him (asked one by one, the list of every user is then read once,
    # to tell whether Verba holds him under another loginName); gus's number fails the mapping before Verba is asked
    assert sorted(asked) == (["(every user)", "alice", "bob", "carol", "dave", "erin", "hank"] if list_from == 50
                             else ["(every user)", "dave"])


def test_dry_run_json_lists_every_outcome(slapd, directory, simulator, tmp_path):
    config = write_config(tmp_path, slapd.url, directory, simulator.url)
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--json", "--config", config])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    by: dict[str, list[tuple[str, str | None]]] = {}
    for item in report["items"]:
        by.setdefault(item["outcome"], []).append((item["user"].split(" ")[-1].strip("()"), item["extension"]))
    assert by == {"create": [("alice", "+14155550101")], "update": [("hank", "+14155550103")],
                  "stop": [("erin", "+14155550105")], "unchanged": [("carol", "+14155550102")],
                  "unresolved": [("dave", None)], "conflict": [("bob", "+14155550104")], "mapping": [("gus", None)]}
    assert report["active"] == 6 and report["inactive"] == 1 and report["would_store"] == 7


def test_create_missing_is_previewed_never_done(slapd, directory, simulator, tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace("create_missing = false",
                                                                          "create_missing = true"))
    config = write_config(tmp_path, slapd.url, directory, simulator.url, mapping=str(mapping))
    simulator.clear_calls()
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 0, result.output
    assert "no Verba user yet (create_missing: the push creates them)" in result.output
    assert "the push would create one" in result.output
    assert not {c["operation"] for c in simulator.calls()} & WRITES


def renamed_in_verba(simulator, login: str, new: str) -> None:
    """Verba user `login` renamed `new` behind the connector's back (as an admin would), its id and extensions kept."""
    state = simulator.http.get("/_sim/state").raise_for_status().json()
    users = [{"id": u["id"], "loginName": new if u["loginName"] == login else u["loginName"], "eid": "0000"}
             for u in state["users"]]
    extensions = [{k: v for k, v in e.items() if k != "id"} for e in state["extensions"]]
    simulator.http.post("/_sim/reset", json=seed(users, extensions)).raise_for_status()


@pytest.mark.parametrize("list_from", [50, 1], ids=["list-read-when-first-needed", "every-user-at-once"])
def test_a_person_verba_holds_under_another_login_name_is_previewed_as_the_push_then_does_never_created(
        slapd, admin, base, simulator, tmp_path, monkeypatch, list_from):
    """With create_missing the dry run said "the push would create one" for ivan, renamed ivan.new in Verba, for
    judy, whom Verba holds as Judy, and for lee, whom Verba holds as lee@example.com (its login names are email
    addresses, the directory's uid is not); the push refuses to make a second Verba user of any (an unresolved_user
    dead letter), as delivery and drift decide it. kim, whom Verba does not hold at all, is created."""
    monkeypatch.setattr("connector.ops.preview.LIST_FROM", list_from)
    ivan = simulator.add_user("ivan")
    slapd.add_user(admin, base, "ivan", telephoneNumber="+14155550140")
    config_path = write_config(tmp_path, slapd.url, base, simulator.url)
    runner = CliRunner()

    def sync(*options: str) -> str:
        result = runner.invoke(main, ["ldap", "sync", "corp", *options, "--config", config_path])
        assert result.exit_code == 0, result.output
        return result.output

    def delivered() -> dict[str, str | None]:
        config = load_config(config_path)
        with open_configured_store(config, create=True) as store, open_client(config) as client:
            drain(Deliverer(store, client, load_mapping(config.mapping_file), config.delivery))
            return {e.change.state["userName"]: e.last_cause for e in store.list_events(state=EventState.DEAD)}

    sync()
    assert delivered() == {}  # ivan pushed: the store knows him as Verba user `ivan`
    renamed_in_verba(simulator, "ivan", "ivan.new")
    slapd.modify(admin, f"uid=ivan,ou=people,{base}", telephoneNumber="+14155550141")  # so the sync pushes him again
    simulator.add_user("Judy")
    slapd.add_user(admin, base, "judy", telephoneNumber="+14155550142")
    slapd.add_user(admin, base, "kim", telephoneNumber="+14155550143")
    simulator.add_user("lee@example.com")
    slapd.add_user(admin, base, "lee", telephoneNumber="+14155550144")
    mapping = tmp_path / "m.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace("create_missing = false",
                                                                          "create_missing = true"))
    config_path = write_config(tmp_path, slapd.url, base, simulator.url, mapping=str(mapping))
    simulator.clear_calls()

    out = sync("--dry-run")
    assert re.search(r"^  held under another loginName \(never created twice\) +3 users$", out, re.MULTILINE), out
    assert re.search(r"^  no Verba user yet \(create_missing: the push creates them\) +1 users$", out, re.MULTILINE)
    assert (f"(ivan): no Verba user has loginName 'ivan' (from uid), but Verba user {ivan}, last pushed for it, now "
            "has loginName 'ivan.new': make the two names match, in Verba or at the source (do not create another "
            "user); the push would be a dead letter (unresolved_user), creating no one") in out
    assert ("(judy): no Verba user has loginName 'judy' (from uid); Verba has 'Judy', which differs only in case: fix "
            "the case at the source or in Verba (do not create another user); the push would be a dead letter "
            "(unresolved_user), creating no one") in out
    assert ("(lee): no Verba user has loginName 'lee' (from uid); Verba has 'lee@example.com', the same name with a "
            "domain: read the login name from the attribute Verba's login names are in ([user_id] login_name in the "
            "mapping, or the LDAP directory's username_attribute), e.g. mail or userPrincipalName (do not create "
            "another user); the push would be a dead letter (unresolved_user), creating no one") in out
    assert "(kim): no Verba user has loginName 'kim' (from uid); the push would create one (" in out
    assert "hint:" not in out  # Verba holds ivan and judy: lee alone is little sign of a wrong login attribute
    assert [c["loginName"] for c in simulator.calls("listUsers")].count(None) == 1  # every user, read once
    items = {i["user"].split(" ")[-1].strip("()"): i for i in json.loads(sync("--dry-run", "--json"))["items"]
             if i["extension"] is None}
    assert {user: item["outcome"] for user, item in items.items()} == {
        "ivan": "held_elsewhere", "judy": "held_elsewhere", "kim": "unresolved", "lee": "held_elsewhere"}

    sync()  # what the dry run foretold: no second Verba user of ivan, judy or lee; kim created
    assert delivered() == {"ivan": "unresolved_user", "judy": "unresolved_user", "lee": "unresolved_user"}
    assert simulator.users("ivan") == simulator.users("judy") == simulator.users("lee") == []
    assert len(simulator.users("kim")) == 1


def test_the_login_hint_counts_no_creation_for_users_verba_has_with_a_domain(slapd, admin, base, simulator, tmp_path):
    """It said "create_missing = true: a push creates a Verba user for each", twins of mia and noel included."""
    for login in ("mia@example.com", "noel@example.com"):
        simulator.add_user(login)
    for n, uid in enumerate(("mia", "noel", "olga")):
        slapd.add_user(admin, base, uid, telephoneNumber=f"+1415555015{n}")
    mapping = tmp_path / "m.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace("create_missing = false",
                                                                          "create_missing = true"))
    config = write_config(tmp_path, slapd.url, base, simulator.url, mapping=str(mapping))
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 0, result.output
    [hint] = [line for line in result.output.splitlines() if line.startswith("hint: ")]
    assert hint.startswith("hint: no Verba user has the login name of 3 of the 3 users looked up, read from uid (Verba "
                           "has 2 of them with a domain or without one; create_missing = true: a push creates a Verba "
                           "user for the 1 other): if Verba's login names are in another attribute, set it in "
                           "[ldap.corp] of "), hint


def test_a_conflict_with_the_same_person_under_a_login_name_with_a_domain_is_previewed_with_the_login_fix(
        slapd, admin, base, simulator, tmp_path):
    """Verba user quinn, a twin create_missing made before, wants quinn@example.com's number: the dry run said to set
    on_conflict = "take_over", which would file quinn's recordings under the empty twin."""
    holder, twin = simulator.add_user("quinn@example.com"), simulator.add_user("quinn")
    simulator.edit_extension("+14155550160", user_id=holder, recordingMode="FULL", voice=True)
    slapd.add_user(admin, base, "quinn", telephoneNumber="+14155550160")
    config = write_config(tmp_path, slapd.url, base, simulator.url)
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--json", "--config", config])
    assert result.exit_code == 0, result.output
    [item] = [i for i in json.loads(result.output)["items"] if i["extension"] == "+14155550160"]
    assert (item["outcome"], item["detail"]) == ("conflict", (
        f"linked to Verba user {holder} (quinn@example.com), whom the connector does not manage: read the login name "
        "from the attribute Verba's login names are in ([user_id] login_name in the mapping, or the LDAP directory's "
        f"username_attribute), e.g. mail or userPrincipalName, so that the push finds Verba user {holder} "
        f"(quinn@example.com), then check Verba user {twin} (quinn), a second Verba user of the same person, and "
        'remove it in Verba; do not take the number over (on_conflict = "take_over"): its recordings would be filed '
        f"under Verba user {twin}"))


def test_the_dry_run_foretells_what_the_sync_then_does(slapd, admin, directory, simulator, tmp_path):
    config_path = write_config(tmp_path, slapd.url, directory, simulator.url)
    runner = CliRunner()
    preview = json.loads(runner.invoke(main, ["ldap", "sync", "corp", "--dry-run", "--json", "--config",
                                              config_path]).output)
    assert runner.invoke(main, ["ldap", "sync", "corp", "--config", config_path]).exit_code == 0
    config = load_config(config_path)
    with open_configured_store(config, create=True) as store, open_client(config) as client:
        drain(Deliverer(store, client, load_mapping(config.mapping_file), config.delivery))
        dead = {e.change.state["userName"]: e.last_cause for e in store.list_events(state=EventState.DEAD)}
    held = simulator.extensions()
    predicted = {item["extension"] or item["user"].split(" ")[-1].strip("()"): item["outcome"]
                 for item in preview["items"]}
    assert predicted["+14155550101"] == "create" and held["+14155550101"]["user_id"] == 3
    assert predicted["+14155550103"] == "update" and held["+14155550103"]["im"] is False
    assert predicted["+14155550105"] == "stop" and held["+14155550105"]["voice"] is False
    assert predicted["+14155550102"] == "unchanged"
    assert predicted["+14155550104"] == "conflict" and held["+14155550104"]["user_id"] == 9
    assert predicted["dave"] == "unresolved" and dead["dave"] == "unresolved_user"
    assert predicted["gus"] == "mapping" and dead["gus"] == "mapping"

    # Live now: a number changes at the source; the next dry run sees the old one stopped and the new one created.
    slapd.modify(admin, f"uid=alice,ou=people,{directory}", telephoneNumber="+14155550111")
    result = runner.invoke(main, ["ldap", "sync", "corp", "--dry-run", "--json", "--config", config_path])
    items = {(i["outcome"], i["extension"]) for i in json.loads(result.output)["items"]}
    assert {("create", "+14155550111"), ("stop", "+14155550101"), ("unchanged", "+14155550102"),
            ("unchanged", "+14155550103")} <= items, items


def test_a_number_relinked_by_hand_since_the_connector_wrote_it_is_foretold_as_the_push_does_it(
        slapd, admin, directory, simulator, tmp_path):
    """The push asks Verba who holds a number it last wrote before writing it (connector/delivery/ownership.py), so
    one an admin relinked by hand since is a conflict, never set back; the dry run says the same."""
    config_path = write_config(tmp_path, slapd.url, directory, simulator.url)
    runner = CliRunner()
    assert runner.invoke(main, ["ldap", "sync", "corp", "--config", config_path]).exit_code == 0
    config = load_config(config_path)
    with open_configured_store(config, create=True) as store, open_client(config) as client:
        drain(Deliverer(store, client, load_mapping(config.mapping_file), config.delivery))
    assert simulator.extensions()["+14155550101"]["user_id"] == 3  # alice's, written by the connector
    simulator.edit_extension("+14155550101", user_id=9)  # relinked by hand in Verba
    result = runner.invoke(main, ["ldap", "sync", "corp", "--dry-run", "--json", "--config", config_path])
    [item] = [i for i in json.loads(result.output)["items"] if i["extension"] == "+14155550101"]
    assert item["outcome"] == "conflict" and "linked to Verba user 9" in item["detail"], item


def test_two_users_with_one_number_are_a_conflict_for_the_later_one(slapd, admin, base, simulator, tmp_path):
    for uid in ("alice", "bob"):
        slapd.add_user(admin, base, uid, telephoneNumber="+14155550120")
    config = write_config(tmp_path, slapd.url, base, simulator.url)
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--json", "--config", config])
    outcomes = sorted((i["outcome"], i["detail"]) for i in json.loads(result.output)["items"])
    assert [o for o, _ in outcomes] == ["conflict", "create"]
    assert "claimed it first: the earliest claim wins" in outcomes[0][1]


def test_a_user_without_a_number_is_nothing_to_do_in_the_preview_the_push_and_drift(slapd, admin, base, simulator,
                                                                                   tmp_path):
    """A service account: no number and no Verba user. Nothing is recorded for it, so nothing is looked up."""
    slapd.add_user(admin, base, "svc-backup")
    config_path = write_config(tmp_path, slapd.url, base, simulator.url)
    runner = CliRunner()
    preview = runner.invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config_path])
    assert preview.exit_code == 0 and "(1 user maps to no extension)" in preview.output, preview.output
    assert "read 1 user (1 active" in preview.output and "would store 1 event (" in preview.output
    assert re.search(r"^  unresolved \(no Verba user\) +0 users$", preview.output, re.MULTILINE), preview.output
    assert runner.invoke(main, ["ldap", "sync", "corp", "--config", config_path]).exit_code == 0
    simulator.clear_calls()
    config = load_config(config_path)
    with open_configured_store(config) as store, open_client(config) as client:
        drain(Deliverer(store, client, load_mapping(config.mapping_file), config.delivery))
        assert [e.state for e in store.list_events()] == [EventState.DONE]
    assert [c["operation"] for c in simulator.calls()] == []
    drift = subprocess.run([sys.executable, "-m", "connector.cli", "drift", "--config", config_path],
                           capture_output=True, text=True, timeout=120, check=False)
    assert drift.returncode == 0 and "not checked" not in drift.stdout, drift.stdout + drift.stderr


def test_a_verba_error_about_one_user_is_reported_not_fatal(slapd, admin, base, simulator, tmp_path):
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550131")
    config = write_config(tmp_path, slapd.url, base, simulator.url)
    simulator.fault(operation="getExtension", status="ERROR_ILLEGAL_ARGUMENT", message="Bad extension")
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 0, result.output
    assert re.search(r"^  Verba errors \(for this user only\) +1 users$", result.output, re.MULTILINE), result.output
    assert "(alice): error_illegal_argument: " in result.output and "Bad extension" in result.output

    simulator.clear_faults()
    simulator.fault(operation="listUsers", http_status=503)  # Verba fails as a whole: the preview ends
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "dry run: Verba could not be read at" in result.output and "HTTP 503" in result.output


def test_dry_run_failures_are_one_line(slapd, directory, tmp_path):
    config = write_config(tmp_path, slapd.url, directory, f"http://127.0.0.1:{free_port()}/provisioning")
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "dry run: Verba could not be read" in result.output and "target.url" in result.output
    config = write_config(tmp_path, f"ldap://127.0.0.1:{free_port()}", directory, "http://127.0.0.1:1/provisioning")
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 1 and "cannot connect" in result.output
    assert not (tmp_path / "c.db").exists()

    builtin = tmp_path / "builtin.toml"  # no [target] url: the built-in simulator, which runs in connector run
    builtin.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[ldap.corp]\nurl = "{slapd.url}"\n'
                       f'base = "{directory}"\nbind_dn = "{ADMIN_DN}"\npassword_file = "{tmp_path / "ldap-pw"}"\n'
                       '[simulator]\nlisten = "127.0.0.1:1"\n')
    config = str(builtin)
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config])
    assert result.exit_code == 1, result.output
    assert result.output.count("built-in") == 1 and "set [target] url to your Verba" in result.output  # said once


def load_store_rows(tmp_path: Path) -> int:
    """How many rows the store's tables hold besides the schema version."""
    return sum(len(rows) for name, rows in tables(tmp_path / "c.db").items() if name != "schema_version")


def test_mapping_test_reads_a_live_directory_user_by_login_dn_or_id(slapd, admin, directory, simulator, tmp_path):
    config = write_config(tmp_path, slapd.url, directory, simulator.url)
    dn = f"uid=alice,ou=people,{directory}"
    entry_uuid = slapd.entry_uuid(admin, dn)
    simulator.clear_calls()
    for wanted in ("alice", dn, dn.upper(), entry_uuid):
        result = CliRunner().invoke(main, ["mapping", "test", "--config", config, "--ldap", "corp", "--user", wanted])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0] == f"using config {config} and its [mapping] file mappings/default.toml"
        assert lines[1] == f"corp/{entry_uuid} (alice) (upsert), from directory corp: {dn}"
        assert lines[2] == "Verba user 3 (listUsers loginName 'alice')"
        assert lines[3].startswith("decided by ")
        assert lines[5].split() == ["+14155550101", "3", "record", "FULL", "yes", "no", "no", "no"]
    assert {c["operation"] for c in simulator.calls()} <= {"requestToken", "listUsers", "releaseToken"}

    result = CliRunner().invoke(main, ["mapping", "test", "--config", config, "--ldap", "corp", "--user", "erin",
                                       "--json"])
    data = json.loads(result.output)
    assert data["kind"] == "deactivate" and [r["extension"] for r in data["deprovisions"]] == ["+14155550105"]


def test_mapping_test_of_a_live_user_says_what_is_wrong_in_one_line(slapd, admin, directory, simulator, tmp_path):
    config = write_config(tmp_path, slapd.url, directory, simulator.url)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["mapping", "test", "--config", config, *args])
        assert "Traceback" not in result.output
        return result.exit_code, result.output

    code, out = run("--ldap", "corp", "--user", "gus")
    assert code == 1 and "the mapping mappings/default.toml cannot map this state" in out and "'12'" in out
    code, out = run("--ldap", "corp", "--user", "nobody")
    assert code == 1 and "directory corp has no user 'nobody' in scope" in out
    code, out = run("--ldap", "corp", "--user", f"uid=alice,ou=people,{directory.replace('ou=t', 'ou=x')}")
    assert code == 1 and "has no user" in out
    code, out = run("--ldap", "lab", "--user", "alice")
    assert code == 1 and "no [ldap.lab] section" in out
    code, out = run("--ldap", "corp")
    assert code == 2 and "give one user" in out
    slapd.add_user(admin, directory, "alice2", mail="alice")
    code, out = run("--ldap", "corp", "--user", "alice")
    assert code == 1 and "2 users match 'alice'" in out and "give the DN or the stable id of one" in out
    code, out = run("--ldap", "corp", "--user", "dave")
    assert code == 1 and ("no Verba user has loginName 'dave' (from uid), so a push would be a dead letter "
                          "(unresolved_user): create the user in Verba (or set [user_id] create_missing = true in the "
                          "mapping), or, if Verba's login names are in another attribute, set it in [ldap.corp] of "
                          f'{config}, e.g. username_attribute = "mail" for email addresses; pass --user-id N to see '
                          "the records anyway") in out, out
    # Verba's login names are email addresses, the directory's uid is not: never a second Verba user of lee
    simulator.add_user("lee@example.com")
    slapd.add_user(admin, directory, "lee", telephoneNumber="+14155550106")
    code, out = run("--ldap", "corp", "--user", "lee")
    assert code == 1 and ("no Verba user has loginName 'lee' (from uid); Verba has 'lee@example.com', the same name "
                          "with a domain: read the login name from the attribute Verba's login names are in ([user_id] "
                          "login_name in the mapping, or the LDAP directory's username_attribute), e.g. mail or "
                          "userPrincipalName (do not create another user); a push would be a dead letter "
                          "(unresolved_user), creating no one; pass --user-id N to see the records anyway") in out, out


def checked(line: str) -> tuple[str, str]:
    """("ok" or "FAILED", what) of a line of `validate-config --connect`; "store" for the store's."""
    status, what = line[:10].strip(), line[10:].split(": ", 1)[0]
    return status, "store" if what.startswith("store ") else what


def test_validate_config_connect_checks_every_connection(slapd, base, simulator, tmp_path):
    config = write_config(tmp_path, slapd.url, base, simulator.url)
    result = CliRunner().invoke(main, ["validate-config", "--connect", "--config", config])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [checked(line) for line in lines[1:-1]] == [
        ("ok", "mapping"), ("ok", "store"), ("ok", "verba requestToken"), ("ok", "verba listUsers"),
        ("ok", f"ldap corp ({slapd.url})")]
    assert f"bound as {ADMIN_DN}, base {base} readable; WARNING: the bind password crosses the network " \
           "unencrypted (ldap:// without starttls): use ldaps://host:636, or starttls = true" in result.output
    assert ": none yet: `connector run` creates it" in result.output  # a first install: it made no store
    assert not (tmp_path / "c.db").exists()
    assert lines[-1].endswith("all 5 checks passed")
    assert {c["operation"] for c in simulator.calls()} <= {"requestToken", "listUsers", "releaseToken"}


def test_validate_config_connect_reports_every_failure_with_its_fix(slapd, base, simulator, tmp_path):
    port = free_port()
    extra = (f'[ldap.gone]\nurl = "ldap://127.0.0.1:{port}"\nbase = "{base}"\ntimeout_seconds = 1\n'
             f'[ldap.nobase]\nurl = "{slapd.url}"\nbase = "ou=nowhere,{base}"\nbind_dn = "{ADMIN_DN}"\n'
             f'password_file = "{tmp_path / "admin-pw"}"\n')
    (tmp_path / "admin-pw").write_text(ADMIN_PASSWORD)
    config = write_config(tmp_path, slapd.url, base, simulator.url, extra=extra)
    (tmp_path / "ldap-pw").write_text("wrong")  # [ldap.corp]'s
    (tmp_path / "verba-pw").write_text("wrong")
    with sqlite3.connect(tmp_path / "c.db") as raw:  # a store of an older connector
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        raw.execute("INSERT INTO schema_version VALUES (1)")
    result = CliRunner().invoke(main, ["validate-config", "--connect", "--config", config])
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = {checked(line)[1]: line for line in result.output.splitlines() if line.startswith("  FAILED")}
    corp, gone, nobase = (f"ldap corp ({slapd.url})", f"ldap gone (ldap://127.0.0.1:{port})",
                          f"ldap nobase ({slapd.url})")
    assert set(failed) == {"store", "verba requestToken", corp, gone, nobase}, result.output
    assert "connector db upgrade" in failed["store"]
    assert f"check target.login and the password in file {tmp_path / 'verba-pw'} (target.password_file" in failed[
        "verba requestToken"]
    assert "check bind_dn and the password" in failed[corp]
    assert "cannot connect" in failed[gone]
    assert f"base 'ou=nowhere,{base}' does not exist or the bind account may not read it" in failed[nobase]
    assert "  ok      mapping" in result.output
    assert "5 of 6 checks failed" in result.output
