"""The [ldap.NAME] keys that say which attributes are read, against a real slapd: `attributes` adds to the
dialect's own, a user gets no login name but one of its own, names the directory's schema does not define are
refused (validate-config --connect, ldap sync, the watcher's first run), and a ppolicy lockout after failed
binds is no leaver."""

from __future__ import annotations

import logging
from typing import Any

import ldap3
import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sources.ldap import dialects
from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import config_file, events_of, group_mapping, slapd_section
from tests.ldap.slapd_server import ADMIN_DN


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 61, "loginName": "fcalice", "displayName": "Alice", "eid": "0000"}]


# --- 1. attributes = [...] adds to what the dialect reads -----------------------------------------------------
def test_configured_attributes_add_to_the_dialects_own_and_recording_goes_on(slapd, admin, base, pipeline,
                                                                              tmp_path):
    """Before, attributes = ["departmentNumber"] replaced uid, telephoneNumber, memberOf and mail: the user was
    named by its DN, had no number and no groups, and the group rule recorded nothing."""
    alice = slapd.add_user(admin, base, "fcalice", telephoneNumber="+14155550171", mail="alice@corp.example",
                           departmentNumber="D-7")
    group = f"cn=Recorded,ou=groups,{base}"
    slapd.check(admin, admin.add(group, ["groupOfNames"], {"cn": "Recorded", "member": [alice]}))
    site = pipeline(group_mapping(tmp_path, "Recorded"),
                    slapd_section(tmp_path, slapd.url, base, guard_max_share=1.0, attributes=["departmentNumber"]))
    [change] = site.poll()
    state = change.state
    assert state["userName"] == "fcalice"
    assert state["phoneNumbers"] == [{"value": "+14155550171", "type": "work"}]
    assert state["emails"][0]["value"] == "alice@corp.example" and state["groups"] == [group]
    assert state["attributes"]["departmentNumber"] == "D-7" and state["attributes"]["uid"] == "fcalice"
    recorded = site.extension("+14155550171")
    assert recorded["voice"] is True and recorded["user_id"] == 61, recorded


# --- a user's login name ----------------------------------------------------------------------------------------
def test_an_entry_without_the_username_attribute_stops_the_run_naming_it(slapd, admin, base, ldap_config, store):
    """Before, bob (no mail) was pushed as "bob", from uid: another kind of login name than the one chosen, and
    with no uid, mail or cn the entry went to Verba named by its DN."""
    slapd.add_user(admin, base, "alice", mail="alice@corp.example", telephoneNumber="+14155550172")
    bob = slapd.add_user(admin, base, "bob", telephoneNumber="+14155550173")
    watcher = Watcher(store, ldap_config(username_attribute="mail"))
    with pytest.raises(DirectoryError) as info:
        watcher.run()
    watcher.close()
    message = str(info.value)
    assert f"{bob} has no mail that {ADMIN_DN} may read, so it has no login name (userName) for Verba" in message
    assert "(&(objectClass=inetOrgPerson)(mail=*))" in message
    assert not [e for e in events_of(store) if e.change.state["userName"] in ("bob", bob)]
    assert store.ldap_watermark("corp").last_error == message  # `connector ldap status` shows it


# --- 2. attribute names the schema does not define --------------------------------------------------------------
MISSPELLED = {"disabled_attribute": "pwdAccountLockTime", "username_attribute": "mial",
              "attributes": ["departmentNumber", "telephonNumber"]}


def test_validate_config_connect_refuses_names_the_schema_does_not_define(slapd, admin, base, tmp_path):
    config = str(config_file(tmp_path, slapd.url, base, **MISSPELLED))
    result = CliRunner().invoke(main, ["validate-config", "--connect", "--config", config])
    assert result.exit_code == 1, result.output
    out = result.output
    assert f"FAILED  ldap corp ({slapd.url}): bound as {ADMIN_DN}, base {base} readable, but:" in out
    assert (f"{config}: ldap.corp.disabled_attribute is 'pwdAccountLockTime', which the directory's schema "
            "(cn=Subschema) does not define: did you mean 'pwdAccountLockedTime'?") in out
    assert f"{config}: ldap.corp.username_attribute is 'mial', which" in out and "did you mean 'mail'?" in out
    assert f"{config}: ldap.corp.attributes[1] is 'telephonNumber', which" in out
    assert "did you mean 'telephoneNumber'?" in out and "departmentNumber" not in out
    assert "a search ignores a name the server does not know, so it would read as absent on every user" in out


def test_ldap_sync_and_its_dry_run_refuse_them_before_reading_a_user(slapd, admin, base, tmp_path):
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550174")
    config = str(config_file(tmp_path, slapd.url, base, disabled_attribute="pwdAccountLockTime"))
    runner = CliRunner()
    for extra in ([], ["--dry-run"]):
        result = runner.invoke(main, ["ldap", "sync", "corp", "--config", config, *extra])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert (f"Error: {config}: ldap.corp.disabled_attribute is 'pwdAccountLockTime', which the directory's "
                "schema (cn=Subschema) does not define: did you mean 'pwdAccountLockedTime'?") in result.output
        assert "read 1 users" not in result.output and "read 1 user " not in result.output
    status = runner.invoke(main, ["ldap", "status", "--config", config])
    assert "known users 0" in status.output and "pwdAccountLockTime" in status.output, status.output


def test_the_watchers_first_run_refuses_them_and_stores_nothing(slapd, admin, base, ldap_config, store):
    """What `connector run` does: the run fails (readiness degraded, retried with backoff), nothing is stored."""
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550175")
    watcher = Watcher(store, ldap_config(username_attribute="mial"))
    with pytest.raises(DirectoryError, match="ldap.corp.username_attribute is 'mial'.*did you mean 'mail'"):
        watcher.run()
    watcher.close()
    assert events_of(store) == [] and store.ldap_entries("corp") == {}


def test_names_are_case_insensitive_and_may_be_aliases_or_oids(slapd, admin, base, ldap_config, store):
    """rfc822Mailbox is mail's alias and 2.5.4.13 description's OID: slapd answers both as mail and description."""
    slapd.add_user(admin, base, "alice", mail="alice@corp.example")
    slapd.add_user(admin, base, "bob", mail="bob@corp.example", description="TRUE")
    watcher = Watcher(store, ldap_config(username_attribute="RFC822MAILBOX", disabled_attribute="2.5.4.13",
                                         attributes=["DEPARTMENTNUMBER"]))
    watcher.run()
    watcher.close()
    kinds = {e.change.state["userName"]: e.change.kind for e in events_of(store)}
    assert kinds == {"alice@corp.example": "upsert", "bob@corp.example": "deactivate"}


def test_a_schema_that_cannot_be_read_is_warned_of_not_refused(slapd, admin, base, ldap_config, store, tmp_path,
                                                               monkeypatch, caplog):
    def unreadable(conn: Any, dse: Any) -> Any:
        raise DirectoryError("insufficientAccessRights")

    monkeypatch.setattr(dialects, "read_schema", unreadable)
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550176")
    config = str(config_file(tmp_path, slapd.url, base, disabled_attribute="pwdAccountLockTime"))
    result = CliRunner().invoke(main, ["validate-config", "--connect", "--config", config])
    assert f"ok      ldap corp ({slapd.url})" in result.output, result.output
    assert ("WARNING: ldap.corp.disabled_attribute not checked against the directory's schema, which cannot be read "
            "(insufficientAccessRights)") in result.output
    watcher = Watcher(store, ldap_config(disabled_attribute="pwdAccountLockTime"))
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        assert watcher.run().counts["upsert"] == 1
    watcher.close()
    assert "not checked against the directory's schema" in caplog.text


# --- 3. pwdAccountLockedTime: only the administrator's lock is a leaver ------------------------------------------
def lock_out(slapd: Any, admin: ldap3.Connection, base: str, dn: str) -> str:
    """Lock `dn` out as ppolicy does after too many failed binds; returns the pwdAccountLockedTime it wrote."""
    policy = f"cn=lockout,{base}"
    slapd.check(admin, admin.add(policy, ["pwdPolicy", "device"], {
        "cn": "lockout", "pwdAttribute": "userPassword", "pwdLockout": "TRUE", "pwdMaxFailure": "2",
        "pwdLockoutDuration": "300"}))
    slapd.modify(admin, dn, pwdPolicySubentry=policy)
    for _ in range(3):
        trader = ldap3.Connection(ldap3.Server(slapd.url, get_info=ldap3.NONE), dn, "mistyped", raise_exceptions=False)
        assert not trader.bind()
        trader.unbind()
    slapd.check(admin, admin.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["pwdAccountLockedTime"]))
    return str(admin.response[0]["attributes"]["pwdAccountLockedTime"][0])


def test_a_lockout_after_failed_binds_keeps_the_user_recorded_an_administrators_lock_does_not(
        slapd, admin, base, ldap_config, store):
    """Before, any pwdAccountLockedTime was a leaver: a trader who mistyped a password stopped being recorded."""
    dn = slapd.add_user(admin, base, "trader", telephoneNumber="+14155550177", userPassword="right-pa55")
    locked_at = lock_out(slapd, admin, base, dn)
    assert locked_at != "000001010000Z"  # the time of the lockout, which ends by itself
    watcher = Watcher(store, ldap_config(disabled_attribute="pwdAccountLockedTime"))
    watcher.run()
    assert [e.change.kind for e in events_of(store)] == ["upsert"]

    slapd.modify(admin, dn, pwdAccountLockedTime="000001010000Z")  # locked by an administrator
    watcher.run()
    watcher.close()
    assert [e.change.kind for e in events_of(store)] == ["upsert", "deactivate"]
