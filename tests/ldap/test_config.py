"""[ldap.NAME] sections: defaults, secrets from env or file, and errors that name the key and the fix."""

from __future__ import annotations

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


@pytest.mark.parametrize(("url", "starttls", "password", "warned"), [
    ("ldap://dc1:389", False, "pw", True),
    ("ldap://dc1:389", True, "pw", False),
    ("ldaps://dc1:636", False, "pw", False),
    ("ldap://dc1:389", False, None, False),  # anonymous: no password to give away
])
def test_a_password_sent_in_clear_text_is_warned_of(url: str, starttls: bool, password: str | None,
                                                    warned: bool) -> None:
    config = LdapConfig(name="corp", url=url, base="dc=corp", starttls=starttls, password=password)
    assert (config.unencrypted_bind is not None) is warned
