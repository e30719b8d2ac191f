"""Users who leave without a write to their entry that an incremental poll can see, on a real Samba AD DC and
slapd: moved to an OU outside the base, moved where the account may not read, deleted recording groups."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import ldap3
import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import parse_config
from connector.sources.ldap.watcher import Watcher
from connector.store.sqlite import SQLiteStore
from tests.ldap.helpers import REALM, ad_section, add_ad_user, config_file, events_of, group_mapping, user_dn
from tests.ldap.samba_server import DOMAIN_DN
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD

pytestmark = pytest.mark.slow
NAMES = ("salice", "sbob", "scarol", "sdave")


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 60 + n, "loginName": f"{name}@{REALM}", "displayName": name, "eid": "0000"}
            for n, name in enumerate(NAMES)]


def desk(name: str) -> str:
    return f"+1415555090{NAMES.index(name)}"


def sid_text(conn: ldap3.Connection, dn: str) -> str:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
    sid = conn.response[0]["raw_attributes"]["objectSid"][0]
    authority = int.from_bytes(sid[2:8], "big")
    return f"S-{sid[0]}-{authority}-" + "-".join(str(s) for s in struct.unpack(f"<{sid[1]}I", sid[8:8 + 4 * sid[1]]))


def test_ad_moves_out_of_scope_and_deleted_groups_are_seen_by_the_next_poll(samba, pipeline, tmp_path):
    samba.tool("ou", "add", f"OU=staff,{DOMAIN_DN}")
    samba.tool("ou", "add", f"OU=leavers,{DOMAIN_DN}")
    for group in ("Rec-Scope", "Team-S"):
        samba.tool("group", "add", group, "--groupou=OU=staff")
    samba.tool("group", "addmembers", "Rec-Scope", "Team-S")
    for name in NAMES:
        add_ad_user(samba, "staff", name, desk(name))
    samba.tool("group", "addmembers", "Rec-Scope", "salice,sbob")
    samba.tool("group", "addmembers", "Team-S", "scarol")
    site = pipeline(group_mapping(tmp_path, "Rec-Scope"), ad_section(tmp_path, "staff", scope_check_per_poll=0))
    site.poll()
    assert all(site.extension(desk(n))["voice"] for n in ("salice", "sbob", "scarol"))

    samba.tool("user", "move", "salice", "OU=leavers")  # the leavers' OU, outside the base
    [moved] = site.poll()
    assert moved.kind == "delete" and moved.cause == "ldap:out-of-scope"
    assert site.extension(desk("salice"))["voice"] is False and site.extension(desk("salice"))["user_id"] == 60

    samba.tool("group", "delete", "Team-S")  # writes neither to scarol nor to Rec-Scope: only a tombstone
    [unnested] = site.poll()
    assert unnested.state["userName"] == f"scarol@{REALM}" and unnested.kind == "upsert"
    assert not any("Rec-Scope" in g for g in unnested.state["groups"])
    assert site.extension(desk("scarol"))["voice"] is False

    samba.tool("group", "delete", "Rec-Scope")
    [ungrouped] = site.poll()
    assert ungrouped.state["userName"] == f"sbob@{REALM}" and ungrouped.state["groups"][0].startswith("CN=Domain")
    assert site.extension(desk("sbob"))["voice"] is False
    assert site.poll(full=True) == []  # the nightly full sync has nothing left to correct


def test_ad_a_user_moved_where_the_account_may_not_read_is_found_by_the_scope_check(samba, ad_admin, tmp_path, store):
    samba.tool("ou", "add", f"OU=seen,{DOMAIN_DN}")
    samba.tool("ou", "add", f"OU=hidden,{DOMAIN_DN}")
    add_ad_user(samba, "seen", "svcscope", "+14155550990", password="Passw0rd-svc1!")
    for n in range(3):
        add_ad_user(samba, "seen", f"hid{n}", f"+1415555099{n + 1}")
    conn = ad_admin
    svc = user_dn(conn, "svcscope")
    samba.tool("dsacl", "set", f"--objectdn=OU=hidden,{DOMAIN_DN}", f"--sddl=(D;CI;RPLCLO;;;{sid_text(conn, svc)})",
               "-H", str(samba.directory / "private" / "sam.ldb"))
    (tmp_path / "svc").write_text("Passw0rd-svc1!")
    section = ad_section(tmp_path, "seen", bind_dn=svc, password_file=str(tmp_path / "svc"), scope_check_per_poll=2)
    watcher = Watcher(store, parse_config({"ldap": {"corp": section}}, "c.toml").ldap["corp"])
    watcher.run()
    samba.tool("user", "move", "hid0", "OU=hidden")  # for svcscope, hid0 just disappears
    results = [watcher.run() for _ in range(3)]  # 2 known users a poll, in turn: 4 users in 2 polls at most
    assert sum(r.counts["delete"] for r in results) == 1
    [gone] = [e.change for e in events_of(store) if e.change.kind == "delete"]
    assert gone.cause == "ldap:vanished" and gone.state["userName"] == f"hid0@{REALM}"
    watcher.close()


def test_ad_an_account_shown_no_tombstone_is_told_how_deletes_are_found(samba, ad_admin, tmp_path):
    """Samba shows a plain domain user CN=Deleted Objects but none of its tombstones: the status must not claim
    that deletes are seen at once."""
    samba.tool("ou", "add", f"OU=tomb,{DOMAIN_DN}")
    add_ad_user(samba, "tomb", "svctomb", "+14155550980", password="Passw0rd-svc2!")
    add_ad_user(samba, "tomb", "tgone", "+14155550981")
    samba.tool("user", "delete", "tgone")  # at least one tombstone
    svc = user_dn(ad_admin, "svctomb")
    (tmp_path / "svc").write_text("Passw0rd-svc2!")
    notes = {}
    for who, keys in (("plain", {"bind_dn": svc, "password_file": str(tmp_path / "svc")}), ("admin", {})):
        with SQLiteStore(str(tmp_path / f"{who}.db")) as store:
            store.migrate()
            watcher = Watcher(store, parse_config({"ldap": {"corp": ad_section(tmp_path, "tomb", **keys)}},
                                                  "c.toml").ldap["corp"])
            watcher.run()
            watcher.close()
            notes[who] = " ".join(store.ldap_watermark("corp").cursor.get("notes", []))
    assert "CN=Deleted Objects shows this account no tombstone" in notes["plain"], notes["plain"]
    assert f'dsacls "CN=Deleted Objects,{DOMAIN_DN}" /takeownership' in notes["plain"]
    assert "Deleted Objects" not in notes["admin"], notes["admin"]


# --- OpenLDAP ----------------------------------------------------------------------------
def openldap(slapd, base: str, tmp_path: Path, mapping: str | None = None, **keys: Any):
    (tmp_path / "pw").write_text(ADMIN_PASSWORD)
    section = {"url": slapd.url, "base": f"ou=people,{base}", "group_base": base, "bind_dn": ADMIN_DN,
               "password_file": str(tmp_path / "pw"), "guard_max_share": 1.0, **keys}
    data: dict[str, Any] = {"ldap": {"corp": section}}
    if mapping:
        data["mapping"] = {"file": mapping}
    return parse_config(data, str(tmp_path / "c.toml")).ldap["corp"]


def test_openldap_moves_out_of_the_base_and_deleted_groups(slapd, admin, base, store, tmp_path):
    alice = slapd.add_user(admin, base, "alice")
    bob = slapd.add_user(admin, base, "bob")
    carol = slapd.add_user(admin, base, "carol")
    team = f"cn=team,ou=groups,{base}"
    rec = f"cn=rec-{base.split(',')[0][3:]},ou=groups,{base}"
    slapd.check(admin, admin.add(team, ["groupOfNames"], {"cn": "team", "member": [carol]}))
    slapd.check(admin, admin.add(rec, ["groupOfNames"], {"cn": rec.split(",")[0][3:], "member": [bob, team]}))
    slapd.check(admin, admin.add(f"ou=leavers,{base}", ["organizationalUnit"], {"ou": "leavers"}))
    config = openldap(slapd, base, tmp_path, group_mapping(tmp_path, rec.split(",")[0][3:]), scope_check_per_poll=0)
    watcher = Watcher(store, config)
    watcher.run()

    slapd.check(admin, admin.modify_dn(alice, "uid=alice", new_superior=f"ou=leavers,{base}"))
    mark = events_of(store)[-1].id
    watcher.run()
    [moved] = events_of(store, mark)
    assert moved.change.kind == "delete" and moved.change.cause == "ldap:out-of-scope"

    slapd.check(admin, admin.delete(team))  # memberof updates carol, and refint rec, with no new modifyTimestamp
    watcher.run()
    [unnested] = events_of(store, moved.id)
    assert unnested.change.state["userName"] == "carol" and unnested.change.state["groups"] == []

    slapd.check(admin, admin.delete(rec))  # the group the rules name: re-read each poll, and gone
    watcher.run()
    [ungrouped] = events_of(store, unnested.id)
    assert ungrouped.change.state["userName"] == "bob" and ungrouped.change.state["groups"] == []
    assert "rule_groups" in store.ldap_watermark("corp").cursor
    watcher.close()


def test_status_says_what_the_account_cannot_see(slapd, admin, base, tmp_path):
    slapd.add_user(admin, base, "alice")
    path = config_file(tmp_path, slapd.url, base)
    runner = CliRunner()
    assert runner.invoke(main, ["ldap", "sync", "corp", "--config", str(path)]).exit_code == 0
    output = runner.invoke(main, ["ldap", "status", "--config", str(path)]).output
    assert "identity    entryUUID" in output
    assert "note        openldap keeps no tombstones: deleted users are found by checking known users" in output


def test_a_size_limited_account_looks_for_leavers_under_the_base_only(slapd, admin, base, store, tmp_path):
    from tests.ldap.slapd_server import READER_DN, READER_LIMIT, READER_PASSWORD

    alice = slapd.add_user(admin, base, "alice")
    slapd.add_user(admin, base, "bob")
    elsewhere = slapd.add_ou(admin, f"{base.split(',')[0][3:]}-other")
    for n in range(READER_LIMIT + 2):  # more changed users in the naming context than the reader may list
        slapd.add_user(admin, elsewhere, f"other{n}")
    (tmp_path / "reader").write_text(READER_PASSWORD)
    section = {"url": slapd.url, "base": base, "group_base": base, "bind_dn": READER_DN,
               "password_file": str(tmp_path / "reader"), "guard_max_share": 1.0, "overlap_seconds": 5}
    watcher = Watcher(store, parse_config({"ldap": {"corp": section}}, "c.toml").ldap["corp"])
    watcher.run()
    slapd.modify(admin, alice, telephoneNumber="+14155550100")
    result = watcher.run()  # the search of the naming context hits the limit: the base is searched instead
    assert result.counts["upsert"] == 1 and result.counts["delete"] == 0
    notes = store.ldap_watermark("corp").cursor["notes"]
    assert any("exceed the bind account's size or time limit" in note for note in notes)
    watcher.close()


def test_an_account_that_cannot_read_the_naming_context_finds_leavers_by_the_scope_check(slapd, admin, base, store,
                                                                                          tmp_path):
    from tests.ldap.slapd_server import NOID_DN, NOID_PASSWORD, SUFFIX

    slapd.check(admin, admin.add(f"ou=staff,{base}", ["organizationalUnit"], {"ou": "staff"}))
    slapd.check(admin, admin.add(f"ou=leavers,{base}", ["organizationalUnit"], {"ou": "leavers"}))
    alice = f"uid=alice,ou=staff,{base}"
    slapd.check(admin, admin.add(alice, ["inetOrgPerson"], {"cn": "Alice", "sn": "A", "uid": "alice",
                                                            "employeeNumber": "E-1"}))
    (tmp_path / "noid").write_text(NOID_PASSWORD)
    section = {"url": slapd.url, "base": f"ou=staff,{base}", "group_base": base, "bind_dn": NOID_DN,
               "password_file": str(tmp_path / "noid"), "id_attribute": "employeeNumber", "guard_max_share": 1.0}
    watcher = Watcher(store, parse_config({"ldap": {"corp": section}}, "c.toml").ldap["corp"])
    watcher.run()
    assert f"cannot read {SUFFIX}" in " ".join(store.ldap_watermark("corp").cursor["notes"])
    slapd.check(admin, admin.modify_dn(alice, "uid=alice", new_superior=f"ou=leavers,{base}"))
    result = watcher.run()
    assert result.counts["delete"] == 1 and events_of(store)[-1].change.cause == "ldap:vanished"
    watcher.close()
