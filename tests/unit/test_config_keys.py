"""A mistyped config key or section is answered with the one it is close to, then the keys it may be, as the
mapping's unknown keys are."""

from __future__ import annotations

import pytest

from connector.config import ConfigError, parse_config

LDAP = {"url": "ldap://dc1.corp.example", "base": "dc=corp,dc=example"}


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "c.toml")
    return str(info.value).splitlines()


@pytest.mark.parametrize(("typed", "meant"), [("pol_seconds", "poll_seconds"),
                                              ("disabled_atribute", "disabled_attribute"),
                                              ("Page_Size", "page_size")])
def test_a_mistyped_ldap_key_is_answered_with_the_key_it_is_close_to(typed, meant):
    [problem] = problems({"ldap": {"corp": {**LDAP, typed: 30}}})
    assert problem.startswith(f"c.toml: unknown key ldap.corp.{typed}; did you mean '{meant}'? the keys of "
                              "[ldap.corp] are url, base, ")


def test_a_mistyped_key_of_any_table_and_a_mistyped_section_are_answered_alike():
    assert problems({"store": {"ulr": "sqlite:///x.db"}, "delivry": {}}) == [
        "c.toml: unknown section [delivry]; did you mean 'delivery'? the sections are store, target, simulator, "
        "mapping, delivery, instance, drift, admin, logging, scim, ldap",
        "c.toml: unknown key store.ulr; did you mean 'url'? the keys of [store] are url, synchronous",
    ]


def test_a_key_close_to_none_lists_the_keys_of_its_table():
    [problem] = problems({"ldap": {"corp": {**LDAP, "colour": "red"}}})
    assert problem.startswith("c.toml: unknown key ldap.corp.colour; the keys of [ldap.corp] are url, base, dialect, ")
    [problem] = problems({"zzz": {}})
    assert problem.startswith("c.toml: unknown section [zzz]; the sections are store, target, ")
