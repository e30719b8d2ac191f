"""The [ldap.NAME] keys that say which attributes are read, against a real slapd: `attributes` adds to the
dialect's own, a user gets no login name but one of its own, names the directory's schema does not define are
refused (validate-config --connect, ldap sync, the watcher's first run), and a ppolicy lockout after failed
binds is no leaver."""

from __future__ import annotations

from typing import Any

import ldap3
import pytest

from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import events_of, group_mapping
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 61, "loginName": "fcalice", "displayName": "Alice", "eid": "0000"}]


def section(slapd: Any, base: str, tmp_path: Any, **keys: Any) -> dict[str, Any]:
    (tmp_path / "pw").write_text(ADMIN_PASSWORD)
    return {"url": slapd.url, "base": base, "bind_dn": ADMIN_DN, "password_file": str(tmp_path / "pw"),
            "guard_max_share": 1.0, **keys}


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
                    section(slapd, base, tmp_path, attributes=["departmentNumber"]))
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
