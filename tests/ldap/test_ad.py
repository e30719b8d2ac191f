"""The ad dialect against a real Samba AD DC, end to end: directory change -> event -> extension at the simulator."""

from __future__ import annotations

from typing import Any

import ldap3
import pytest

from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.sources.ldap.connection import search
from connector.sources.ldap.watcher import Watcher
from connector.store import LdapPoll
from tests.ldap.helpers import REALM, ad_section, add_ad_user, events_of, user_dn
from tests.ldap.samba_server import DOMAIN_DN
from tests.plugins.simulator import drain

pytestmark = pytest.mark.slow


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 3, "loginName": f"e2ealice@{REALM}", "displayName": "Alice", "eid": "0000"},
            {"id": 4, "loginName": f"e2ebob@{REALM}", "displayName": "Bob", "eid": "0000"}]


def test_users_phones_disables_groups_and_deletes_reach_verba(samba, ad_admin, make_config, simulator, tmp_path):
    samba.tool("ou", "add", f"OU=e2e,{DOMAIN_DN}")
    add_ad_user(samba, "e2e", "e2ealice", "+14155550100")
    add_ad_user(samba, "e2e", "e2ebob", "+14155550101")
    samba.tool("group", "add", "Verba-Recorded")
    samba.tool("group", "addmembers", "Verba-Recorded", "e2ealice")
    config = make_config(mapping="mappings/ad.toml", ldap={"corp": ad_section(tmp_path, "e2e")})
    store = open_configured_store(config, create=True)
    watcher = Watcher(store, config.ldap["corp"])
    client = open_client(config)
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)

    def poll_and_push() -> list[Any]:
        mark = max((e.id for e in events_of(store)), default=0)
        watcher.run()
        drain(deliverer)
        return [e.change for e in events_of(store, mark)]

    [alice, bob] = sorted(poll_and_push(), key=lambda c: c.state["userName"])
    assert alice.kind == "upsert" and alice.state["userName"] == f"e2ealice@{REALM}"
    assert any("verba-recorded" in g.lower() for g in alice.state["groups"])
    extensions = simulator.extensions()
    assert extensions["+14155550100"]["user_id"] == 3 and extensions["+14155550100"]["voice"] is True
    assert "+14155550101" not in extensions or extensions["+14155550101"]["voice"] is False  # bob: not recorded
    assert store.ldap_watermark("corp").cursor["usn"] > 0

    conn = ad_admin
    conn.modify(user_dn(conn, "e2ealice"), {"telephoneNumber": [(ldap3.MODIFY_REPLACE, ["+14155550199"])]})
    [changed] = poll_and_push()
    assert changed.cause == "ldap:change" and changed.external_id == alice.external_id
    extensions = simulator.extensions()
    assert extensions["+14155550199"]["voice"] is True and extensions["+14155550199"]["user_id"] == 3
    assert extensions["+14155550100"]["voice"] is False and extensions["+14155550100"]["user_id"] == 3

    samba.tool("group", "addmembers", "Verba-Recorded", "e2ebob")  # changes the group, not bob's uSNChanged
    [joined] = poll_and_push()
    assert joined.external_id == bob.external_id
    assert simulator.extensions()["+14155550101"]["voice"] is True

    samba.tool("user", "disable", "e2ealice")
    [disabled] = poll_and_push()
    assert disabled.kind == "deactivate" and disabled.state["attributes"]["userAccountControl"] == "514"
    assert simulator.extensions()["+14155550199"]["voice"] is False
    assert simulator.extensions()["+14155550199"]["user_id"] == 3  # the link to the user stays

    samba.tool("user", "delete", "e2ebob")
    [deleted] = poll_and_push()
    assert deleted.kind == "delete" and deleted.cause == "ldap:tombstone"
    assert deleted.external_id == bob.external_id
    assert simulator.extensions()["+14155550101"]["voice"] is False
    assert store.ldap_watermark("corp").known == 1
    assert poll_and_push() == []  # nothing changed: nothing emitted
    watcher.close()
    client.close()
    store.close()


def test_a_new_invocation_id_forces_a_full_resync(samba, tmp_path, caplog):
    from connector.config import parse_config
    from connector.store.sqlite import SQLiteStore

    samba.tool("ou", "add", f"OU=epoch,{DOMAIN_DN}")
    add_ad_user(samba, "epoch", "epochcarol", "+14155550300")
    config = parse_config({"ldap": {"corp": ad_section(tmp_path, "epoch")}}, "c.toml").ldap["corp"]
    store = SQLiteStore(str(tmp_path / "s.db"))
    store.migrate()
    watcher = Watcher(store, config)
    assert watcher.run().full
    assert not watcher.run().full
    watermark = store.ldap_watermark("corp")  # as if the DC had been restored from a backup
    store.commit_poll(LdapPoll("corp", watermark.version, {**watermark.cursor, "invocation_id": "0" * 32}, 1.0))
    assert watcher.run().full
    assert "the DC's identity changed" in caplog.text
    assert len(events_of(store)) == 1  # the resync re-read carol, unchanged: no new event
    watcher.close()
    store.close()


def test_ranged_attributes_are_read_whole(samba, tmp_path):
    from connector.config import parse_config
    from connector.sources.ldap.connection import close, open_connection

    samba.tool("ou", "add", f"OU=range,{DOMAIN_DN}")
    samba.tool("group", "add", "Range-Group", "--groupou=OU=range")
    for n in range(5):
        add_ad_user(samba, "range", f"range{n}", f"+1415555040{n}")
        samba.tool("group", "addmembers", "Range-Group", f"range{n}")
    conn = open_connection(parse_config({"ldap": {"corp": ad_section(tmp_path, "range")}}, "c.toml").ldap["corp"])
    try:
        [(dn, values, _)] = list(search(conn, f"OU=range,{DOMAIN_DN}", "(cn=Range-Group)", ["member;range=0-1"], 10))
    finally:
        close(conn)
    assert len(values["member"]) == 5
