"""Account expiry, on a real Samba AD DC (accountExpires) and slapd (shadowExpire, pwdEndTime): an expired
account is a disabled one, also when the date passes between polls with no write to the directory."""

from __future__ import annotations

import datetime
import time
from typing import Any

import ldap3
import pytest

from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import REALM, ad_section, add_ad_user, events_of, group_mapping, user_dn
from tests.ldap.samba_server import DOMAIN_DN

pytestmark = pytest.mark.slow
FILETIME_1601 = 11644473600  # seconds from 1601-01-01 to 1970-01-01


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 30 + n, "loginName": f"exp{n}@{REALM}", "displayName": f"Exp {n}", "eid": "0000"} for n in range(4)]


def desk(n: int) -> str:
    return f"+1415555070{n}"


def account_expires(at: float) -> str:
    """accountExpires for Unix time `at`: 100-ns intervals since 1601."""
    return str(int((at + FILETIME_1601) * 10_000_000))


def set_expiry(samba, name: str, value: str) -> None:
    conn = samba.admin()
    try:
        assert conn.modify(user_dn(conn, name), {"accountExpires": [(ldap3.MODIFY_REPLACE, [value])]}), conn.result
    finally:
        conn.unbind()


def wait_past(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()) + 0.2)


def test_an_expired_ad_account_stops_recording_also_when_the_date_passes_between_polls(samba, pipeline, tmp_path):
    samba.tool("ou", "add", f"OU=expiry,{DOMAIN_DN}")
    samba.tool("group", "add", "Rec-Expiry")
    for n in range(3):
        add_ad_user(samba, "expiry", f"exp{n}", desk(n))
        samba.tool("group", "addmembers", "Rec-Expiry", f"exp{n}")
    site = pipeline(group_mapping(tmp_path, "Rec-Expiry"), ad_section(tmp_path, "expiry"))
    assert {c.kind for c in site.poll()} == {"upsert"}
    assert all(site.extension(desk(n))["voice"] for n in range(3))

    # exp0: accountExpires written in the past (a write, seen by uSNChanged)
    set_expiry(samba, "exp0", account_expires(time.time() - 86400))
    [expired] = site.poll()
    assert expired.kind == "deactivate" and expired.cause == "ldap:expired" and expired.state["active"] is False
    assert expired.state["expiresAt"] < datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        site.extension(desk(0))["voice"] is False and site.extension(desk(0))["user_id"] == 30
    )  # stopped, still linked

    # exp1: expires in 3 s. The poll before is an ordinary change; the one after has no write to see.
    due = time.time() + 3
    set_expiry(samba, "exp1", account_expires(due))
    [scheduled] = site.poll()
    assert scheduled.kind == "upsert" and "expiresAt" in scheduled.state
    assert site.store.ldap_watermark("corp").cursor["expiry_due"] == pytest.approx(int(due), abs=1)
    wait_past(due)
    [came_due] = site.poll()
    assert came_due.kind == "deactivate" and came_due.cause == "ldap:expired"
    assert came_due.external_id == scheduled.external_id
    assert site.extension(desk(1))["voice"] is False
    assert "expiry_due" not in site.store.ldap_watermark("corp").cursor
    assert site.poll() == []  # nothing more to do

    # A full sync agrees, and stores nothing new; the user's state stays inactive.
    assert site.poll(full=True) == []
    assert site.store.ldap_entries("corp", [came_due.external_id])[came_due.external_id].active is False

    # Extending the account (accountExpires = never) records it again.
    set_expiry(samba, "exp1", "9223372036854775807")
    [extended] = site.poll()
    assert extended.kind == "upsert" and extended.state["active"] and "expiresAt" not in extended.state
    assert site.extension(desk(1))["voice"] is True


def test_a_full_sync_after_an_unnoticed_expiry_deactivates(samba, tmp_path, store):
    from connector.config import parse_config

    samba.tool("ou", "add", f"OU=expfull,{DOMAIN_DN}")
    add_ad_user(samba, "expfull", "expfull0", "+14155550710")
    watcher = Watcher(store, parse_config({"ldap": {"corp": ad_section(tmp_path, "expfull")}}, "c.toml").ldap["corp"])
    watcher.run()
    due = time.time() + 2
    set_expiry(samba, "expfull0", account_expires(due))
    watcher.run()
    wait_past(due)
    result = watcher.run(full=True)  # the --full of the issue: it reads accountExpires and compares it with now
    assert result.counts["deactivate"] == 1
    assert events_of(store)[-1].change.cause == "ldap:reconcile-expired"
    watcher.close()


def test_shadow_expire_and_pwd_end_time_expire_openldap_accounts(slapd, admin, base, ldap_config, store):
    today = int(time.time() // 86400)
    past = slapd.add_user(admin, base, "past", telephoneNumber="+14155550720")
    never = slapd.add_user(admin, base, "never", telephoneNumber="+14155550721")
    soon = slapd.add_user(admin, base, "soon", telephoneNumber="+14155550722")
    for dn, days in ((past, today - 1), (never, -1)):  # shadow(5): days since 1970; -1 is "never"
        slapd.check(admin, admin.modify(dn, {"objectClass": [(ldap3.MODIFY_ADD, ["shadowAccount"])],
                                             "shadowExpire": [(ldap3.MODIFY_REPLACE, [str(days)])]}))
    due = time.time() + 2
    slapd.modify(admin, soon, pwdEndTime=time.strftime("%Y%m%d%H%M%SZ", time.gmtime(due)))  # ppolicy
    watcher = Watcher(store, ldap_config())
    watcher.run()
    kinds = {e.change.state["userName"]: e.change.kind for e in events_of(store)}
    assert kinds == {"past": "deactivate", "never": "upsert", "soon": "upsert"}

    wait_past(due + 1)  # pwdEndTime has a one-second granularity
    mark = events_of(store)[-1].id
    watcher.run()  # nothing was written since the last poll
    [came_due] = events_of(store, mark)
    assert came_due.change.state["userName"] == "soon" and came_due.change.kind == "deactivate"
    assert came_due.change.cause == "ldap:expired"
    watcher.close()
