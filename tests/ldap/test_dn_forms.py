"""Group DNs with `+`, `,` and non-ASCII names against a real slapd and Samba AD DC: rules that spell them
with RFC 4514 hex escapes (`\\2B`, `\\C3\\A9`), or by their CN, record the members, and a membership change
is matched with what the watcher stored, whichever spelling the server sends."""

from __future__ import annotations

from typing import Any

import ldap3
import pytest

from tests.ldap.helpers import REALM, ad_section, add_ad_user, group_mapping, slapd_section, user_dn
from tests.ldap.samba_server import DOMAIN_DN

UIDS = ("dnalice", "dnbob")


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 70 + n, "loginName": uid, "displayName": uid, "eid": "0000"} for n, uid in enumerate(UIDS)] + [
        {"id": 80 + n, "loginName": f"{uid}@{REALM}", "displayName": uid, "eid": "0000"} for n, uid in enumerate(UIDS)]


@pytest.mark.parametrize("rule", [
    "cn=Sales\\2BTrading\\2C R\\C3\\A9seau,ou=groups,{base}",  # hex escapes, as an LDIF export may print them
    "CN=Sales\\+Trading\\, Réseau, OU=Groups, {base}",  # pairs, upper case, spaces after the commas
    "Sales+Trading, Réseau",  # the CN alone
])
def test_openldap_rules_match_a_group_dn_in_any_spelling(slapd, admin, base, pipeline, tmp_path, rule):
    alice = slapd.add_user(admin, base, "dnalice", telephoneNumber="+14155550140")
    slapd.add_user(admin, base, "dnbob", telephoneNumber="+14155550141")
    group = f"cn=Sales\\+Trading\\, Réseau,ou=groups,{base}"
    slapd.check(admin, admin.add(group, ["groupOfNames"], {"cn": "Sales+Trading, Réseau", "member": [alice]}))
    section = slapd_section(tmp_path, slapd.url, base, guard_max_share=1.0)
    site = pipeline(group_mapping(tmp_path, rule.format(base=base)), section)
    site.poll()
    assert site.extension("+14155550140")["voice"] is True
    assert "+14155550141" not in site.simulator.extensions() or site.extension("+14155550141")["voice"] is False

    slapd.check(admin, admin.modify(group, {"member": [(ldap3.MODIFY_REPLACE, [f"uid=dnbob,ou=people,{base}"])]}))
    changes = {c.state["userName"]: c for c in site.poll()}
    assert set(changes) == {"dnalice", "dnbob"}  # alice found by the group DN the watcher stored, bob by memberOf
    assert site.extension("+14155550140")["voice"] is False and site.extension("+14155550141")["voice"] is True


@pytest.mark.slow
def test_ad_rules_match_escaped_group_dns(samba, ad_admin, pipeline, tmp_path):
    samba.tool("ou", "add", f"OU=dnforms,{DOMAIN_DN}")
    add_ad_user(samba, "dnforms", "dnalice", "+14155550150")
    conn = ad_admin
    group = f"CN=Voix\\+Données,OU=dnforms,{DOMAIN_DN}"  # samba-tool cannot escape the '+': add it over LDAP
    assert conn.add(group, ["top", "group"], {"sAMAccountName": "voix-donnees"}), conn.result
    alice_dn = user_dn(conn, "dnalice")
    assert conn.modify(group, {"member": [(ldap3.MODIFY_ADD, [alice_dn])]}), conn.result
    rule = f"CN=Voix\\2BDonn\\C3\\A9es,OU=dnforms,{DOMAIN_DN}"
    site = pipeline(group_mapping(tmp_path, rule), ad_section(tmp_path, "dnforms"))
    [alice] = site.poll()
    assert any(g.startswith("CN=Voix\\+Donn") for g in alice.state["groups"])  # the server's own spelling
    assert site.extension("+14155550150")["voice"] is True
    assert conn.modify(group, {"member": [(ldap3.MODIFY_DELETE, [alice_dn])]}), conn.result
    [left] = site.poll()
    assert left.external_id == alice.external_id and site.extension("+14155550150")["voice"] is False
