"""TLS against the real slapd: ldaps:// and StartTLS with the fixture's throwaway CA, and the errors without it."""

from __future__ import annotations

import pytest

from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import events_of


@pytest.fixture
def users(slapd, admin, base) -> list[str]:
    return [slapd.add_user(admin, base, uid, telephoneNumber="+14155550100") for uid in ("alice", "bob")]


def synced(store, config) -> Watcher:
    """A watcher that ran once and stored both users."""
    watcher = Watcher(store, config)
    result = watcher.run()
    assert result.counts["upsert"] == 2
    assert {e.change.state["userName"] for e in events_of(store)} == {"alice", "bob"}
    assert store.ldap_watermark("corp").known == 2
    return watcher


def test_ldaps_with_the_ca_file(slapd, users, ldap_config, store):
    watcher = synced(store, ldap_config(url=slapd.ldaps_url, ca_file=slapd.ca_file))
    assert watcher._conn.server.ssl
    watcher.close()


def test_starttls_on_ldap_with_the_ca_file(slapd, users, ldap_config, store):
    watcher = synced(store, ldap_config(starttls=True, ca_file=slapd.ca_file))
    assert watcher._conn.tls_started and not watcher._conn.server.ssl
    watcher.close()


def test_tls_verify_false_connects_without_a_ca_file(slapd, users, ldap_config, store):
    synced(store, ldap_config(url=slapd.ldaps_url, tls_verify=False)).close()


def failed(store, config) -> str:
    """Run once, expecting a DirectoryError; check nothing was stored and return the message."""
    with pytest.raises(DirectoryError) as info:
        Watcher(store, config).run()
    watermark = store.ldap_watermark("corp")
    assert events_of(store) == [] and watermark.cursor == {} and watermark.known == 0
    assert watermark.last_error == str(info.value)
    return str(info.value)


@pytest.mark.parametrize("way", ["ldaps", "starttls"])
def test_an_untrusted_certificate_without_a_ca_file_says_to_set_one(slapd, users, ldap_config, store, way):
    config = ldap_config(url=slapd.ldaps_url) if way == "ldaps" else ldap_config(starttls=True)
    message = failed(store, config)
    assert message.startswith(f"directory corp ({config.url}): the server's TLS certificate is not trusted")
    assert "self-signed certificate in certificate chain" in message
    assert "set ca_file" in message and "tls_verify = false" in message


def test_a_ca_file_that_did_not_issue_the_certificate_says_so(slapd, users, ldap_config, store):
    message = failed(store, ldap_config(url=slapd.ldaps_url, ca_file=slapd.certificate_file))
    assert f"not signed by the CA in ca_file {slapd.certificate_file}" in message
    assert "set ca_file to the PEM file of the CA that issued" in message


def test_a_certificate_for_another_host_name_says_so(slapd, users, ldap_config, store):
    message = failed(store, ldap_config(url=f"ldaps://localhost:{slapd.tls_port}", ca_file=slapd.ca_file))
    assert "certificate is not issued for localhost (Hostname mismatch" in message
    assert "it names IP:127.0.0.1, CN:127.0.0.1: use one of those in url" in message
