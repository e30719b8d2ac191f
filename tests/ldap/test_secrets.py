"""Bind passwords reach a real slapd and a real Samba AD DC exactly as written: no trimming, no SASLprep
(U+00A0 stays a no-break space, U+2168 stays one Roman numeral), only one trailing newline of a file dropped."""

from __future__ import annotations

import ldap3
import pytest

from connector.config import parse_config
from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import ad_section, add_ad_user, events_of, user_dn
from tests.ldap.samba_server import DOMAIN_DN

# SASLprep (RFC 4013) maps U+00A0 to a space and U+2168 to "IX": sent that way, these passwords are wrong.
PASSWORDS = {
    "nbsp": "Pa55\u00a0word-x1!",
    "roman": "Pa55word-\u2168!",
    "spaces": " Pa55word-x1! ",
    "both": "P\u00e4ss\u00a0w\u2168rd-x1!",
}


def service_account(slapd, admin, base: str, password: str) -> str:
    """An OpenLDAP service account with this password (userPassword compared as the octets it holds)."""
    dn = f"cn=svc,{base}"
    slapd.check(admin, admin.add(dn, ["applicationProcess", "simpleSecurityObject"],
                                 {"cn": "svc", "userPassword": password.encode("utf-8")}))
    return dn


@pytest.mark.parametrize("kind", PASSWORDS)
def test_openldap_binds_with_the_password_from_a_file_as_written(
    slapd, admin, base, ldap_config, store, tmp_path, kind
):
    password = PASSWORDS[kind]
    svc = service_account(slapd, admin, base, password)
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    (tmp_path / "svc-password").write_bytes(password.encode("utf-8") + b"\n")  # as `echo "$PW" > file` writes it
    watcher = Watcher(store, ldap_config(bind_dn=svc, password_file=str(tmp_path / "svc-password")))
    assert watcher.run().counts["upsert"] == 1
    assert [e.change.state["userName"] for e in events_of(store)] == ["alice"]
    watcher.close()


def test_openldap_binds_with_the_password_from_the_environment_as_written(slapd, admin, base, ldap_config, store,
                                                                         monkeypatch):
    svc = service_account(slapd, admin, base, PASSWORDS["both"] + "\n")  # from env, even a newline is the password's
    monkeypatch.setenv("SVC_PASSWORD", PASSWORDS["both"] + "\n")
    watcher = Watcher(store, ldap_config(bind_dn=svc, password_env="SVC_PASSWORD", password_file=None))
    assert watcher.run().full
    watcher.close()


def test_a_failed_bind_says_what_was_sent_without_the_password(slapd, admin, base, ldap_config, store, tmp_path,
                                                             monkeypatch):
    svc = service_account(slapd, admin, base, "Pa55word-x1!")
    monkeypatch.setenv("SVC_PASSWORD", PASSWORDS["both"])  # the admin pasted a word with a no-break space
    watcher = Watcher(store, ldap_config(bind_dn=svc, password_env="SVC_PASSWORD", password_file=None))
    with pytest.raises(DirectoryError) as info:
        watcher.run()
    message = str(info.value)
    assert f"bind as {svc} failed (invalidCredentials)" in message
    assert (
        "the password sent has 13 characters (17 bytes as UTF-8), from environment variable SVC_PASSWORD "
        "(ldap.corp.password_env)"
        in message
    )
    assert "non-ASCII characters, sent as UTF-8 without normalization" in message
    for part in (PASSWORDS["both"], "P\u00e4ss", "w\u2168rd"):
        assert part not in message
    assert store.ldap_watermark("corp").last_error == message


@pytest.mark.slow
def test_samba_binds_with_a_password_that_saslprep_would_change(samba, ad_admin, tmp_path, store):
    samba.tool("ou", "add", f"OU=secrets,{DOMAIN_DN}")
    add_ad_user(samba, "secrets", "secretsvc", "+14155550130", password=PASSWORDS["both"])
    svc = user_dn(ad_admin, "secretsvc")
    (tmp_path / "svc").write_bytes(PASSWORDS["both"].encode("utf-8") + b"\r\n")  # a file saved on Windows
    section = ad_section(tmp_path, "secrets", bind_dn=svc, password_file=str(tmp_path / "svc"))
    watcher = Watcher(store, parse_config({"ldap": {"corp": section}}, "c.toml").ldap["corp"])
    assert watcher.run().counts["upsert"] == 1
    watcher.close()

    sent_by_ldap3 = ldap3.Connection(ldap3.Server("ldap://127.0.0.1:389"), svc, PASSWORDS["both"])
    try:
        assert not sent_by_ldap3.bind()  # the same password as a str goes through SASLprep and is refused
    finally:
        sent_by_ldap3.unbind()  # a refused bind leaves the connection open
