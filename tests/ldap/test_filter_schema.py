"""The attribute names in an [ldap.NAME] filter are checked against the directory's schema as the other names are, and
so is each term's matching rule: a term on a name the server does not know, or one it cannot evaluate (>= on
telephoneNumber, which has no ORDERING rule), matches no user, so that a full sync would delete every user. On a
private slapd: `validate-config --connect` and the watcher's first run refuse such a filter, naming it and the fix."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import config_file, events_of
from tests.ldap.slapd_server import ADMIN_DN

SCHEMA = "the directory's schema (cn=Subschema)"


def validate(tmp_path, slapd, base, search_filter: str) -> tuple[int, str]:
    config = config_file(tmp_path, slapd.url, base, filter=search_filter)
    result = CliRunner().invoke(main, ["validate-config", "--connect", "--config", str(config)])
    return result.exit_code, result.output.replace(f"{config}: ", "")


def test_validate_config_connect_refuses_filter_terms_the_server_cannot_evaluate(slapd, base, tmp_path):
    """Only those: cn has no rule of its own, its SUBSTR and EQUALITY rules are those of its superior type, name;
    uidNumber and modifyTimestamp have ORDERING rules; an alias and any case of a name are the name."""
    code, out = validate(tmp_path, slapd, base, "(&(objectClass=inetOrgPerson)(employeTyp=staff)"
                                                "(|(telephoneNumber>=1)(uidNumber=1*)(jpegPhoto=x))(!(mial=*))"
                                                "(cn=Al*)(CN=Alice)(uidNumber>=1000)(modifyTimestamp<=29990101000000Z)"
                                                "(rfc822Mailbox=*)(cn:dn:=corp))")
    assert code == 1, out
    assert f"FAILED  ldap corp ({slapd.url}): bound as {ADMIN_DN}, base {base} readable, but:" in out
    assert [line.split(",")[0].strip() for line in out.splitlines() if "ldap.corp.filter" in line] == [
        "ldap.corp.filter names 'employeTyp'", "ldap.corp.filter matches telephoneNumber with >=",
        "ldap.corp.filter matches uidNumber with a substring (*)", "ldap.corp.filter matches jpegPhoto with =",
        "ldap.corp.filter names 'mial'"]
    assert f"ldap.corp.filter names 'employeTyp', which {SCHEMA} does not define: did you mean 'employeeType'?" in out
    assert f"ldap.corp.filter names 'mial', which {SCHEMA} does not define: did you mean 'mail'?" in out
    assert (f"ldap.corp.filter matches telephoneNumber with >=, but {SCHEMA} gives telephoneNumber no ORDERING rule: "
            "the server cannot evaluate that term, so it matches no user; match it with = or a substring (*) "
            "instead, or use an attribute whose type has an ORDERING rule") in out
    assert (f"ldap.corp.filter matches uidNumber with a substring (*), but {SCHEMA} gives uidNumber no SUBSTR rule: "
            "the server cannot evaluate that term, so it matches no user; match the whole value with = instead") in out
    assert (f"ldap.corp.filter matches jpegPhoto with =, but {SCHEMA} gives jpegPhoto no EQUALITY rule: the server "
            "cannot evaluate that term, so it matches no user; test only that it is there, (jpegPhoto=*), or use "
            "another attribute") in out
    assert ("a search ignores a name the server does not know, so it would read as absent on every user, and a filter "
            "term the server cannot evaluate matches no user: correct the config") in out


def test_a_filter_edited_to_one_that_matches_no_user_deletes_nobody(slapd, admin, base, ldap_config, store):
    """A running directory whose filter is edited (a restart reads it): the first run refuses it before it reads a
    user, instead of deleting every known user as gone from the filter."""
    for n in range(8):
        slapd.add_user(admin, base, f"user{n}", telephoneNumber=f"+1415555{n:04d}", employeeType="staff")
    first = Watcher(store, ldap_config())
    assert first.run().counts["upsert"] == 8
    first.close()
    edited = Watcher(store, ldap_config(filter="(&(objectClass=inetOrgPerson)(employeTyp=staff))"))
    with pytest.raises(DirectoryError, match="ldap.corp.filter names 'employeTyp', which .* mean 'employeeType'"):
        edited.run()
    edited.close()
    assert [e.change.kind for e in events_of(store)] == ["upsert"] * 8
    assert store.ldap_watermark("corp").known == 8
    assert "employeTyp" in store.ldap_watermark("corp").last_error  # `connector ldap status` shows why
