"""A user's identity never falls back to the DN silently, against a real slapd whose access rule hides
entryUUID from one service account (NOID_DN): refuse, say how to grant read access, or use the configured
stable id; DN-keyed identity only when chosen, with a warning."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import events_of
from tests.ldap.slapd_server import NOID_DN, NOID_PASSWORD


@pytest.fixture
def noid(ldap_config, tmp_path):
    """ldap_config(...) bound as the account that may not read entryUUID."""
    (tmp_path / "noid-password").write_text(NOID_PASSWORD)
    return lambda **keys: ldap_config(bind_dn=NOID_DN, password_file=str(tmp_path / "noid-password"), **keys)


def test_openldap_without_read_access_to_entry_uuid_says_how_to_grant_it(slapd, admin, base, noid, store):
    dn = slapd.add_user(admin, base, "alice")
    with pytest.raises(DirectoryError) as info:
        Watcher(store, noid()).run()
    message = str(info.value)
    assert message.startswith(f"{dn} has no entryUUID that {NOID_DN} may read: an access rule hides it")
    assert f'access to attrs=entryUUID by dn.exact="{NOID_DN}" read by * break' in message
    assert "olcAccess" in message and "id_attribute" in message
    assert 'dialect = "generic"' not in message  # no more advice to fall back to the DN
    assert events_of(store) == [] and store.ldap_watermark("corp").cursor == {}


def test_the_generic_dialect_refuses_entries_without_a_stable_id(slapd, admin, base, noid, store):
    slapd.add_user(admin, base, "alice")
    with pytest.raises(DirectoryError, match="has no entryUUID or nsUniqueId or ipaUniqueID") as info:
        Watcher(store, noid(dialect="generic")).run()
    assert "set id_attribute" in str(info.value) and 'id_attribute = "dn"' in str(info.value)
    assert events_of(store) == []


def test_a_configured_id_attribute_keeps_the_user_through_a_rename(slapd, admin, base, noid, store):
    dn = slapd.add_user(admin, base, "alice", employeeNumber="E-1042", telephoneNumber="+14155550100")
    watcher = Watcher(store, noid(id_attribute="employeeNumber"))
    watcher.run()
    assert events_of(store)[0].change.external_id == "E-1042"
    slapd.check(admin, admin.modify_dn(dn, "uid=alice.liddell"))
    result = watcher.run()
    assert (result.counts["upsert"], result.counts["delete"]) == (1, 0)  # an update, not a delete and a create
    renamed = events_of(store)[-1].change
    assert renamed.external_id == "E-1042" and renamed.state["attributes"]["dn"].startswith("uid=alice.liddell,")
    assert "employeeNumber" not in renamed.state["attributes"]  # the id is no attribute to map
    watcher.close()


def test_dn_keyed_identity_only_when_chosen_and_warned(slapd, admin, base, noid, store, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "connector.ldap")
    dn = slapd.add_user(admin, base, "alice")
    watcher = Watcher(store, noid(id_attribute="dn"))
    assert "users are keyed by DN (id_attribute = \"dn\"): a rename or a move becomes a delete" in caplog.text
    watcher.run()
    assert events_of(store)[0].change.external_id == dn.lower()
    slapd.check(admin, admin.modify_dn(dn, "uid=alice2"))
    watcher.run()
    kinds = sorted(e.change.kind for e in events_of(store)[1:])
    assert kinds == ["delete", "upsert"]  # the price of keying by DN, which the warning names
    watcher.close()

    (tmp_path / "c.toml").write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "x.db"}"\n[ldap.corp]\nurl = "{slapd.url}"\nbase = "{base}"\n'
        f'bind_dn = "{NOID_DN}"\npassword_file = "{tmp_path / "noid-password"}"\nid_attribute = "dn"\n')
    runner = CliRunner()
    assert runner.invoke(main, ["ldap", "sync", "corp", "--config", str(tmp_path / "c.toml")]).exit_code == 0
    status = runner.invoke(main, ["ldap", "status", "--config", str(tmp_path / "c.toml")]).output
    assert "identity    DN (id_attribute = \"dn\"): WARNING: users are keyed by DN" in status
