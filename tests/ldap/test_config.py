"""[ldap.NAME] sections: defaults, secrets from env or file, and errors that name the key and the fix."""

from __future__ import annotations

import subprocess

import pytest

from connector.config import ConfigError, LdapConfig, parse_config


def ldap(**keys):
    section = {"url": "ldaps://dc1.corp.example:636", "base": "DC=corp,DC=example", **keys}
    return parse_config({"ldap": {"corp": section}}, "c.toml").ldap["corp"]


def error(**keys) -> str:
    with pytest.raises(ConfigError) as info:
        ldap(**keys)
    return str(info.value)


def test_defaults_and_no_ldap_section():
    assert parse_config({}, "c.toml").ldap == {}
    config = ldap()
    assert config.name == "corp" and config.dialect == "openldap" and config.tls_verify and not config.starttls
    assert config.poll_seconds == 30 and config.page_size == 500 and config.full_sync_cron == "0 3 * * *"
    assert (config.guard_max_count, config.guard_max_share, config.guard_min_count) == (100, 0.1, 10)
    assert config.bind_dn is None and config.password is None  # an anonymous bind


def test_the_password_comes_from_env_or_file_and_stays_out_of_repr(monkeypatch, tmp_path):
    monkeypatch.setenv("LDAP_PW", "s3cret")
    config = ldap(bind_dn="CN=svc,DC=corp,DC=example", password_env="LDAP_PW")
    assert config.password == "s3cret" and "s3cret" not in repr(config)
    (tmp_path / "pw").write_text("from-file\n")
    assert ldap(bind_dn="CN=svc", password_file=str(tmp_path / "pw")).password == "from-file"


@pytest.mark.parametrize("keys, words", [
    ({"url": "http://dc1"}, ["ldap.corp.url", "ldaps://"]),
    ({"dialect": "novell"}, ["ldap.corp.dialect", "openldap, ad, generic"]),
    ({"starttls": True}, ["starttls", "ldaps://"]),
    ({"tls_verify": "no"}, ["ldap.corp.tls_verify", "true or false"]),
    ({"page_size": 5000, "dialect": "ad"}, ["page_size", "1000"]),
    ({"guard_max_share": 10}, ["guard_max_share", "between 0 and 1", "ldap.corp.guard_min_count"]),
    ({"guard_min_count": -1}, ["ldap.corp.guard_min_count", "not be negative"]),
    ({"full_sync_cron": "at three"}, ["full_sync_cron", "five fields"]),
    ({"bind_dn": "CN=svc"}, ["bind_dn", "password_env"]),
    ({"password_env": "NOT_SET_ANYWHERE"}, ["NOT_SET_ANYWHERE", "export"]),
    ({"ca_file": "/nope.pem"}, ["ca_file", "not a file"]),
    ({"attributes": ["mail", 3]}, ["attributes", "list of attribute names"]),
    ({"colour": "red"}, ["unknown key ldap.corp.colour"]),
])
def test_errors_name_the_key_and_the_fix(keys, words):
    message = error(**keys)
    assert message.startswith("c.toml: ")
    for word in words:
        assert word in message


def test_url_and_base_are_required():
    with pytest.raises(ConfigError, match="needs url"):
        parse_config({"ldap": {"corp": {"base": "dc=x"}}}, "c.toml")
    with pytest.raises(ConfigError, match=r"\[ldap.NAME\]"):
        parse_config({"ldap": {"url": "ldap://x"}}, "c.toml")


def test_identity_membership_clock_and_scope_keys():
    config = ldap()
    assert config.id_attribute is None and config.group_base is None and config.group_nesting_depth == 10
    assert config.clock_tolerance_seconds == 60 and config.scope_check_per_poll == 100
    config = ldap(dialect="generic", id_attribute="employeeNumber", group_base="ou=Groups,dc=corp",
                  group_nesting_depth=0, clock_tolerance_seconds=5, scope_check_per_poll=0)
    assert (config.id_attribute, config.group_base, config.group_nesting_depth) == (
        "employeeNumber",
        "ou=Groups,dc=corp",
        0,
    )
    assert config.clock_tolerance_seconds == 5.0 and config.scope_check_per_poll == 0
    assert ldap(id_attribute="dn").id_attribute == "dn"


def test_the_password_source_is_named_never_the_password(monkeypatch):
    monkeypatch.setenv("LDAP_PW", " s3cret ")
    config = ldap(bind_dn="CN=svc", password_env="LDAP_PW")
    assert config.password == " s3cret "  # from env exactly as set
    assert config.password_source == "environment variable LDAP_PW (ldap.corp.password_env)"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize("keys, words", [
    ({"id_attribute": "employee number"}, ["ldap.corp.id_attribute", "never changes", "employeeNumber"]),
    ({"id_attribute": "dn", "dialect": "ad"}, ["id_attribute = \"dn\"", "objectGUID", "remove the key"]),
    ({"group_nesting_depth": -1}, ["ldap.corp.group_nesting_depth", "not be negative"]),
    ({"clock_tolerance_seconds": -5}, ["ldap.corp.clock_tolerance_seconds", "not be negative"]),
    ({"scope_check_per_poll": 1.5}, ["ldap.corp.scope_check_per_poll", "an integer"]),
])
def test_errors_of_the_new_keys_name_the_key_and_the_fix(keys, words):
    message = error(**keys)
    for word in words:
        assert word in message


def test_the_clock_tolerance_stays_within_the_overlap_window():
    assert ldap(overlap_seconds=20).clock_tolerance_seconds == 20  # the default, 60, is capped by the overlap
    assert ldap(overlap_seconds=20, clock_tolerance_seconds=10).clock_tolerance_seconds == 10
    message = error(overlap_seconds=20, clock_tolerance_seconds=30)
    assert "ldap.corp.clock_tolerance_seconds (30) is above ldap.corp.overlap_seconds (20)" in message
    assert "raise overlap_seconds" in message


@pytest.mark.parametrize("keys, words", [
    ({"base": "ou=staff,,dc=example"}, ["ldap.corp.base 'ou=staff,,dc=example' is not a DN", "single commas"]),
    ({"base": "Staff"}, ["ldap.corp.base 'Staff' is not a DN", "OU=Staff,DC=corp,DC=example"]),
    ({"group_base": "ou=groups,dc=corp,"}, ["ldap.corp.group_base 'ou=groups,dc=corp,' is not a DN"]),
    ({"filter": "(objectClass=inetOrgPerson"}, ["ldap.corp.filter '(objectClass=inetOrgPerson' is not an LDAP "
                                                "filter (invalid filter)", "every ( closed"]),
    ({"filter": "objectClass=person"}, ["ldap.corp.filter", "in parentheses"]),
    ({"filter": "(objectClass=person)(mail=*)"}, ["ldap.corp.filter", "missing boolean operator", "(&"]),
    ({"filter": "(!(a=b)(c=d))"}, ["ldap.corp.filter", "NOT (!)"]),
])
def test_a_base_group_base_or_filter_that_cannot_be_sent_is_a_config_error(keys, words):
    message = error(**keys)
    assert message.startswith("c.toml: ") and len(message.splitlines()) == 1
    for word in words:
        assert word in message


@pytest.mark.parametrize("keys", [
    {"base": "OU=Sales\\, EMEA, DC=corp,DC=example", "group_base": "1.3.6.1.4.1.1466.0=#04024869,DC=example"},
    {"filter": "(&(objectCategory=person)(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"},
    {"filter": " (uid=a\\2a*) "},
    # An Active Directory bind may name the account as a UPN or DOMAIN\user, which are not DNs.
    {"bind_dn": "svc-verba@corp.example", "password_env": "LDAP_PW"},
    {"bind_dn": "CORP\\svc-verba", "password_env": "LDAP_PW"},
])
def test_well_formed_dns_filters_and_ad_bind_names_are_accepted(keys, monkeypatch):
    monkeypatch.setenv("LDAP_PW", "s3cret")
    ldap(**keys)


CLEAR = ("the bind password crosses the network unencrypted (ldap:// without starttls): use ldaps://host:636, "
         "or starttls = true")
UNUSED = "ca_file is set but unused: did you mean starttls = true?"
UNVERIFIED = ("tls_verify = false: the server is not authenticated, so anyone in the middle can pose as it and read "
              "the bind password; set ca_file to the PEM file of the CA that issued the server's certificate and "
              "remove tls_verify")


@pytest.mark.parametrize(("keys", "warnings"), [
    ({"url": "ldap://dc1:389"}, [CLEAR]),
    ({"url": "ldap://dc1:389", "starttls": True}, []),
    ({"url": "ldaps://dc1:636"}, []),
    ({"url": "ldap://dc1:389", "password": None}, []),  # anonymous: no password to give away
    ({"url": "ldap://dc1:389", "ca_file": "ca.pem"}, [f"{CLEAR}; {UNUSED}"]),
    ({"url": "ldap://dc1:389", "ca_file": "ca.pem", "password": None}, [f"ldap:// without starttls: {UNUSED}"]),
    ({"url": "ldap://dc1:389", "ca_file": "ca.pem", "starttls": True}, []),
    ({"url": "ldaps://dc1:636", "tls_verify": False}, [UNVERIFIED]),
    ({"url": "ldap://dc1:389", "starttls": True, "tls_verify": False}, [UNVERIFIED]),
    ({"url": "ldaps://dc1:636", "tls_verify": False, "password": None},
     [UNVERIFIED.replace(" and read the bind password", "")]),
    ({"url": "ldap://dc1:389", "tls_verify": False}, [CLEAR]),  # no TLS at all: the clear text is the warning
])
def test_a_password_sent_in_clear_or_to_a_server_not_authenticated_is_warned_of(keys, warnings) -> None:
    config = LdapConfig(**{"name": "corp", "base": "dc=corp", "password": "pw", **keys})
    assert list(config.warnings) == warnings


def test_a_ca_file_openssl_cannot_read_as_pem_is_a_config_error_saying_how_to_convert_it(tmp_path):
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", str(tmp_path / "ca.key"), "-out", str(tmp_path / "ca.pem"),
                           "-days", "2", "-subj", "/CN=test CA", "-config", "/dev/null"], capture_output=True)
    assert made.returncode == 0, made.stderr
    subprocess.run(["openssl", "x509", "-in", str(tmp_path / "ca.pem"), "-outform", "DER",
                    "-out", str(tmp_path / "ca.cer")], check=True)
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    assert ldap(ca_file=str(tmp_path / "ca.pem")).ca_file == str(tmp_path / "ca.pem")
    convert = "it must be PEM text (-----BEGIN CERTIFICATE-----): convert a DER file, such as a Windows .cer " \
              "export, with `openssl x509 -inform DER -in ca.cer -out ca.pem`"
    der = error(ca_file=str(tmp_path / "ca.cer"))
    assert der == (f"c.toml: ldap.corp.ca_file {str(tmp_path / 'ca.cer')!r} holds no certificate OpenSSL reads as "
                   f"PEM (NO_CERTIFICATE_OR_CRL_FOUND, it is DER (binary)); {convert}")
    garbage = error(ca_file=str(tmp_path / "garbage.pem"))
    assert garbage == (f"c.toml: ldap.corp.ca_file {str(tmp_path / 'garbage.pem')!r} holds no certificate OpenSSL "
                       f"reads as PEM (NO_CERTIFICATE_OR_CRL_FOUND); {convert}")
    assert error(ca_file=str(tmp_path / "ca.key")).startswith("c.toml: ldap.corp.ca_file")  # a key, no certificate


@pytest.mark.parametrize(("value", "said"), [("", "which is empty"), ("  \n", "which is set to white space only")])
def test_a_password_variable_set_empty_is_not_called_unset(monkeypatch, value, said):
    monkeypatch.setenv("LDAP_PW", value)
    assert error(bind_dn="CN=svc", password_env="LDAP_PW") == (
        f"c.toml: ldap.corp.password_env names LDAP_PW, {said}; put the password in it, or use "
        "ldap.corp.password_file")
