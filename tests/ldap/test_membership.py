"""Effective group membership on a real Samba AD DC and slapd: rules see direct, primary and nested groups
(state `groups`), `direct_groups` keeps memberOf, and a change to a nested group re-evaluates its members."""

from __future__ import annotations

import logging
import struct
from typing import Any

import ldap3
import pytest

from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import REALM, ad_section, add_ad_user, events_of, group_mapping, user_dn
from tests.ldap.samba_server import DOMAIN_DN

pytestmark = pytest.mark.slow
NAMES = ("nalice", "nbob", "ncarol", "ndave")


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 50 + n, "loginName": f"{name}@{REALM}", "displayName": name, "eid": "0000"}
            for n, name in enumerate(NAMES)]


def desk(name: str) -> str:
    return f"+1415555080{NAMES.index(name)}"


def group_dn(name: str) -> str:
    return f"CN={name},OU=nest,{DOMAIN_DN}"


def rid(conn: ldap3.Connection, dn: str) -> int:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
    return struct.unpack("<I", conn.response[0]["raw_attributes"]["objectSid"][0][-4:])[0]


def names(groups: list[str]) -> set[str]:
    return {g.split(",")[0][3:].lower() for g in groups}


def test_primary_and_nested_groups_record_and_a_nested_change_re_evaluates(samba, ad_admin, pipeline, tmp_path):
    samba.tool("ou", "add", f"OU=nest,{DOMAIN_DN}")
    for group in ("Rec-Nest", "Team-X", "Team-P"):
        samba.tool("group", "add", group, "--groupou=OU=nest")
    samba.tool("group", "addmembers", "Rec-Nest", "Team-X,Team-P")
    for name in NAMES:
        add_ad_user(samba, "nest", name, desk(name))
    samba.tool("group", "addmembers", "Team-X", "nalice")  # nested: Rec-Nest > Team-X > nalice
    samba.tool("group", "addmembers", "Rec-Nest", "ndave")  # direct
    conn = ad_admin
    for name, group in (("nbob", "Rec-Nest"), ("ncarol", "Team-P")):  # primary group: not in memberOf
        samba.tool("group", "addmembers", group, name)  # AD lets only a member make it the primary group
        assert conn.modify(
            user_dn(conn, name), {"primaryGroupID": [(ldap3.MODIFY_REPLACE, [str(rid(conn, group_dn(group)))])]}
        ), conn.result
    site = pipeline(group_mapping(tmp_path, "Rec-Nest"), ad_section(tmp_path, "nest"))

    states = {c.state["userName"].split("@")[0]: c.state for c in site.poll()}
    assert names(states["nalice"]["direct_groups"]) == {"team-x"}
    # Domain Users is the primary group, itself in BUILTIN\\Users
    assert names(states["nalice"]["groups"]) == {"team-x", "rec-nest", "domain users", "users"}
    assert "rec-nest" not in names(states["nbob"]["direct_groups"])  # AD keeps the primary group out of memberOf
    assert "rec-nest" in names(states["nbob"]["groups"])
    assert names(states["ncarol"]["groups"]) >= {"team-p", "rec-nest"}  # primary group Team-P, nested in Rec-Nest
    assert names(states["ndave"]["groups"]) == {"rec-nest", "domain users", "users"}
    for name in NAMES:
        assert site.extension(desk(name))["voice"] is True, name  # each is recorded: direct, primary or nested

    # Taking Team-X out of Rec-Nest writes to Rec-Nest only: nalice (and no one else) loses recording.
    samba.tool("group", "removemembers", "Rec-Nest", "Team-X")
    [left] = site.poll()
    assert left.state["userName"] == f"nalice@{REALM}" and "rec-nest" not in names(left.state["groups"])
    assert site.extension(desk("nalice"))["voice"] is False

    # A member added to the nested group (only Team-X changes) and Team-X put back: both recorded.
    samba.tool("group", "addmembers", "Team-X", "nbob")
    samba.tool("group", "addmembers", "Rec-Nest", "Team-X")
    changed = {c.state["userName"].split("@")[0] for c in site.poll()}
    assert changed == {"nalice", "nbob"}  # nbob: Team-X in his groups now
    assert site.extension(desk("nalice"))["voice"] is True

    # The primary group's own nesting counts: Team-P taken out of Rec-Nest stops ncarol.
    samba.tool("group", "removemembers", "Rec-Nest", "Team-P")
    [carol] = site.poll()
    assert carol.state["userName"] == f"ncarol@{REALM}" and site.extension(desk("ncarol"))["voice"] is False


def test_a_nested_group_taken_out_passes_the_mass_change_guard(samba, tmp_path, store, caplog):
    from connector.config import parse_config

    samba.tool("ou", "add", f"OU=nestguard,{DOMAIN_DN}")
    samba.tool("group", "add", "Rec-Guard", "--groupou=OU=nestguard")
    samba.tool("group", "add", "Team-G", "--groupou=OU=nestguard")
    samba.tool("group", "addmembers", "Rec-Guard", "Team-G")
    for n in range(3):
        add_ad_user(samba, "nestguard", f"ng{n}", f"+141555508{n}9")
        samba.tool("group", "addmembers", "Team-G", f"ng{n}")
    section = ad_section(tmp_path, "nestguard", guard_max_count=2, guard_max_share=1.0)
    config = parse_config({"ldap": {"corp": section}, "mapping": {"file": group_mapping(tmp_path, "Rec-Guard")}},
                          "c.toml").ldap["corp"]
    watcher = Watcher(store, config)
    watcher.run()
    samba.tool("group", "removemembers", "Rec-Guard", "Team-G")
    result = watcher.run()
    assert result.counts["held"] == 3 and "3 of 3 known users" in caplog.text
    assert "leave a group the rules name" in result.guard_message
    watcher.close()


# --- OpenLDAP: nested groupOfNames, followed to a depth limit ---------------------------------
def add_group(slapd, admin, base: str, name: str, *members: str) -> str:
    dn = f"cn={name},ou=groups,{base}"
    slapd.check(admin, admin.add(dn, ["groupOfNames"], {"cn": name, "member": list(members) or [f"cn=nobody,{base}"]}))
    return dn


def test_nested_groups_of_names_count_and_a_nested_change_re_evaluates(slapd, admin, base, ldap_config, store):
    alice = slapd.add_user(admin, base, "alice")
    bob = slapd.add_user(admin, base, "bob")
    team = add_group(slapd, admin, base, "team", alice)
    rec = add_group(slapd, admin, base, "rec", team)
    watcher = Watcher(store, ldap_config(group_base=base))
    watcher.run()
    [state] = [e.change.state for e in events_of(store) if e.change.state["userName"] == "alice"]
    assert state["direct_groups"] == [team] and sorted(state["groups"]) == sorted([rec, team])

    mark = events_of(store)[-1].id
    slapd.check(admin, admin.modify(team, {"member": [(ldap3.MODIFY_ADD, [bob])]}))  # only the nested group changes
    watcher.run()
    [joined] = events_of(store, mark)
    assert joined.change.state["userName"] == "bob" and rec in joined.change.state["groups"]

    mark = joined.id
    slapd.check(admin, admin.modify(rec, {"member": [(ldap3.MODIFY_REPLACE, [f"cn=nobody,{base}"])]}))
    watcher.run()  # rec changed: its former members, nested ones too, are read again
    left = {e.change.state["userName"]: e.change.state["groups"] for e in events_of(store, mark)}
    assert left == {"alice": [team], "bob": [team]}
    watcher.close()


def test_nesting_is_followed_to_the_depth_limit_and_cycles_end(slapd, admin, base, ldap_config, store, caplog):
    alice = slapd.add_user(admin, base, "alice")
    chain = [add_group(slapd, admin, base, "g0", alice)]
    for n in range(1, 13):
        chain.append(add_group(slapd, admin, base, f"g{n}", chain[-1]))
    slapd.check(
        admin, admin.modify(chain[0], {"member": [(ldap3.MODIFY_ADD, [chain[2]])]})
    )  # a cycle g0 > g2 > g1 > g0
    caplog.set_level(logging.WARNING, "connector.ldap")
    watcher = Watcher(store, ldap_config(group_base=base))
    watcher.run()
    groups = events_of(store)[-1].change.state["groups"]
    assert sorted(groups) == sorted(chain[:11])  # g0 and 10 levels above it: g1 .. g10
    assert "nested more than 10 levels deep" in caplog.text and "group_nesting_depth" in caplog.text
    watcher.close()

    shallow = Watcher(store, ldap_config(group_base=base, group_nesting_depth=2))
    shallow.run(full=True)
    assert sorted(events_of(store)[-1].change.state["groups"]) == sorted(chain[:3])
    shallow.close()


def test_a_directory_larger_than_a_page_with_groups_syncs_in_full(slapd, admin, base, ldap_config, store):
    """Membership look-ups are searches too: they must not break the paged search of the users."""
    users = [slapd.add_user(admin, base, f"p{n:02d}") for n in range(12)]
    team = add_group(slapd, admin, base, "team", *users[:6])
    add_group(slapd, admin, base, "rec", team)
    watcher = Watcher(store, ldap_config(group_base=base, page_size=5))
    result = watcher.run(full=True)
    assert result.counts["upsert"] == 12
    states = {e.change.state["userName"]: e.change.state for e in events_of(store)}
    assert len(states) == 12 and all(team in states[f"p{n:02d}"]["groups"] for n in range(6))
    watcher.close()
