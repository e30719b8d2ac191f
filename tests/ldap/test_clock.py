"""A timestamp cursor never runs ahead of the server: an entry stamped ten minutes ahead (a replica with a fast
clock, an import that kept its stamps; written here with the Relax Rules control) must not hide later changes.
The bound is the server's time where it tells it (slapd's cn=Monitor, Samba's rootDSE currentTime), else the
connector's clock plus clock_tolerance_seconds."""

from __future__ import annotations

import datetime
import time

import ldap3
import pytest

from connector.config import parse_config
from connector.sources.ldap.dialects import parse_time
from connector.sources.ldap.watcher import Watcher
from connector.store import LdapPoll
from tests.ldap.helpers import ad_section, add_ad_user, events_of
from tests.ldap.samba_server import DOMAIN_DN
from tests.ldap.slapd_server import SlapdServer


def ahead(minutes: int) -> str:
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + minutes * 60))


def cursor_time(store) -> datetime.datetime:
    return parse_time(store.ldap_watermark("corp").cursor["stamp"])


def utc_now(plus: float = 0) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=plus)


def later_change_is_seen(slapd, admin, watcher, store, dn: str) -> None:
    """A change made after a future-stamped entry was read shows in the next incremental poll."""
    mark = events_of(store)[-1].id
    slapd.modify(admin, dn, telephoneNumber="+14155550177")
    result = watcher.run()
    assert not result.full
    [change] = events_of(store, mark)
    assert change.change.state["phoneNumbers"][0]["value"] == "+14155550177"


def test_a_stamp_ahead_of_the_server_is_bounded_by_cn_monitor(slapd, admin, base, ldap_config, store):
    future = slapd.add_user(admin, base, "future")
    bob = slapd.add_user(admin, base, "bob")
    slapd.relax(admin, future, modifyTimestamp=ahead(10))  # as a replica ten minutes fast would stamp it
    watcher = Watcher(store, ldap_config())
    watcher.run()
    assert store.ldap_watermark("corp").cursor["clock"] == "server cn=Monitor"
    assert cursor_time(store) <= utc_now(2)  # not ten minutes ahead
    later_change_is_seen(slapd, admin, watcher, store, bob)
    for _ in range(2):  # the future entry is read again inside the window, unchanged: no event
        watcher.run()
    assert [e.change.state["userName"] for e in events_of(store)].count("future") == 1
    watcher.close()


def test_a_cursor_stored_ahead_comes_back_to_the_server_time(slapd, admin, base, ldap_config, store):
    bob = slapd.add_user(admin, base, "bob")
    watcher = Watcher(store, ldap_config())
    watcher.run()
    watermark = store.ldap_watermark("corp")  # as an earlier version left it: the largest stamp seen, a day ahead
    store.commit_poll(LdapPoll("corp", watermark.version, {**watermark.cursor, "stamp": ahead(24 * 60)}, 1.0))
    later_change_is_seen(slapd, admin, watcher, store, bob)
    assert cursor_time(store) <= utc_now(2)
    watcher.close()


def test_without_a_server_clock_the_bound_is_the_connector_clock_plus_the_tolerance(ldap_config, store):
    server = SlapdServer.start(monitor=False)  # no cn=Monitor, and OpenLDAP's rootDSE has no currentTime
    try:
        admin = server.admin()
        base = server.add_ou(admin, "noclock")
        future = server.add_user(admin, base, "future")
        bob = server.add_user(admin, base, "bob")
        server.relax(admin, future, modifyTimestamp=ahead(10))
        watcher = Watcher(store, ldap_config(url=server.url, base=base, clock_tolerance_seconds=3))
        watcher.run()
        assert store.ldap_watermark("corp").cursor["clock"] == "connector clock + 3 s"
        assert cursor_time(store) <= utc_now(3 + 1)
        assert parse_time(store.ldap_watermark("corp").cursor["started"]) <= utc_now(-3)  # the earliest it may be
        later_change_is_seen(server, admin, watcher, store, bob)
        watcher.close()
        admin.unbind()
    finally:
        server.stop()


@pytest.mark.slow
def test_samba_bounds_a_timestamp_cursor_by_its_current_time(samba, ad_admin, tmp_path, store):
    samba.tool("ou", "add", f"OU=clock,{DOMAIN_DN}")
    add_ad_user(samba, "clock", "clockalice", "+14155550160")
    section = ad_section(tmp_path, "clock", dialect="generic", id_attribute="objectGUID", overlap_seconds=5)
    watcher = Watcher(store, parse_config({"ldap": {"corp": section}}, "c.toml").ldap["corp"])
    watcher.run()
    conn = ad_admin
    conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["currentTime"])
    server_now = parse_time(conn.response[0]["attributes"]["currentTime"][0])
    cursor = store.ldap_watermark("corp").cursor
    assert cursor["clock"] == "server currentTime" and parse_time(cursor["stamp"]) <= server_now
    [alice] = events_of(store)
    conn.search(DOMAIN_DN, "(sAMAccountName=clockalice)", attributes=["1.1"])
    assert conn.modify(conn.response[0]["dn"], {"telephoneNumber": [(ldap3.MODIFY_REPLACE, ["+14155550161"])]})
    watcher.run()
    [changed] = events_of(store, alice.id)
    assert changed.change.external_id == alice.change.external_id  # objectGUID as the generic dialect's id
    watcher.close()
