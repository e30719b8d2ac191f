"""What `connector ldap sync --dry-run` says about login names, against slapd and the simulator: every entry with no
login name is listed (a sync stops at the first), and logins that match no Verba user name the attribute they were
read from, with a hint at username_attribute when most match none."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import main
from tests.ldap.test_preview import write_config

# Verba's login names are email addresses; the directory's uid is not.
VERBA_USERS = [{"id": n, "loginName": f"{login}@example.test", "displayName": login.title(), "eid": "0000"}
               for n, login in ((3, "alice"), (4, "bob"), (5, "carol"))]


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return VERBA_USERS


@pytest.fixture
def seed_extensions() -> list[dict[str, Any]]:
    return []


def dry_run(config: str, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--dry-run", "--config", config, *options])
    return result.exit_code, result.output


def count(out: str, title: str) -> int | None:
    """The count of one outcome line of the dry run ("  unresolved (no Verba user)   3 users"), None if not shown."""
    found = re.search(rf"^  {re.escape(title)} +(\d+) (?:users|extensions)$", out, re.MULTILINE)
    return None if found is None else int(found[1])


def test_every_entry_without_a_login_name_is_listed_and_the_dry_run_goes_on(slapd, admin, base, simulator,
                                                                             tmp_path):
    slapd.add_user(admin, base, "alice", mail="alice@example.test", telephoneNumber="+14155550201")
    erin = slapd.add_user(admin, base, "erin", telephoneNumber="+14155550202")
    frank = slapd.add_user(admin, base, "frank", telephoneNumber="+14155550203")
    config = write_config(tmp_path, slapd.url, base, simulator.url, extra='username_attribute = "mail"\n')

    code, out = dry_run(config)
    assert code == 0, out
    assert "read 3 users (3 active, 0 inactive)" in out
    assert "; but it stops at the first of the 2 users with no login name (below)" in out
    assert count(out, "no login name (a sync stops at the first)") == 2, out
    for dn in (erin, frank):  # both, not only the first: fixed in one go
        assert f"): {dn} has no mail that " in out
    assert 'leave such entries out with filter = "(&(objectClass=inetOrgPerson)(mail=*))"' in out
    assert count(out, "would create") == 1  # alice, previewed all the same

    code, out = dry_run(config, "--json")
    report = json.loads(out)
    assert report["no_login"] == 2 and report["counts"]["no_login"] == 2
    assert sorted(i["detail"].split(" ")[0] for i in report["items"] if i["outcome"] == "no_login") == sorted(
        [erin, frank])

    # The sync itself still stops at the first (a misconfigured attribute must not deprovision everyone), and says
    # where to see them all.
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--config", config])
    assert result.exit_code == 1, result.output
    assert "has no mail that" in result.output and "the run stops at it (the first such entry: `connector ldap sync " \
        "corp --dry-run` lists them all)" in result.output


def test_logins_that_match_no_verba_user_name_their_attribute_and_the_key_to_check(slapd, admin, base, simulator,
                                                                                  tmp_path):
    for n, uid in enumerate(("alice", "bob", "carol")):
        slapd.add_user(admin, base, uid, mail=f"{uid}@example.test", telephoneNumber=f"+1415555021{n}")
    config = write_config(tmp_path, slapd.url, base, simulator.url)  # the defaults: OpenLDAP's login is uid

    code, out = dry_run(config)
    assert code == 0, out
    # Verba has each with a domain: no push would create them (a second Verba user of each), whatever create_missing
    assert count(out, "held under another loginName (never created twice)") == 3
    assert ("(alice): no Verba user has loginName 'alice' (from uid); Verba has 'alice@example.test', the same name "
            "with a domain: read the login name from the attribute Verba's login names are in ") in out
    [hint] = [line for line in out.splitlines() if line.startswith("hint: ")]
    assert hint == (f"hint: no Verba user has the login name of 3 of the 3 users looked up, read from uid (Verba has 3 "
                    f"of them with a domain or without one): if Verba's login names are in another attribute, set it "
                    f'in [ldap.corp] of {config}, e.g. username_attribute = "mail" for email addresses, then run the '
                    "dry run again")
    assert json.loads(dry_run(config, "--json")[1])["hints"] == [hint.removeprefix("hint: ")]

    # The one key: with it, every user resolves and there is nothing to hint at.
    config = write_config(tmp_path, slapd.url, base, simulator.url, extra='username_attribute = "mail"\n')
    code, out = dry_run(config)
    assert code == 0 and count(out, "unresolved (no Verba user)") == 0 and "hint:" not in out, out
    assert count(out, "would create") == 3


def test_a_few_unknown_logins_get_no_hint(slapd, admin, base, simulator, tmp_path):
    """Most users resolve: the unresolved ones are people missing in Verba, not a wrong attribute."""
    for n, uid in enumerate(("alice", "bob", "dave")):
        slapd.add_user(admin, base, uid, mail=f"{uid}@example.test", telephoneNumber=f"+1415555024{n}")
    config = write_config(tmp_path, slapd.url, base, simulator.url, extra='username_attribute = "mail"\n')
    code, out = dry_run(config)
    assert code == 0, out
    assert "no Verba user has loginName 'dave@example.test' (from mail)" in out and "hint:" not in out
