"""The lines `connector status` prints of each source."""

from __future__ import annotations

from connector.config import parse_config
from connector.ops.report import source_states
from connector.store import LdapWatermark


def test_a_directory_says_which_instance_polls_it_or_that_none_does() -> None:
    config = parse_config({"ldap": {name: {"url": "ldap://127.0.0.1:1389", "base": "dc=corp", "bind_dn": "cn=r",
                                           "password_env": "UNSET"} for name in ("corp", "hr")}},
                          "connector.toml", secrets=())
    polled = LdapWatermark("corp", {}, 3, 12, 1_700_000_000.0, 1_700_000_000.0, None, {})
    states = source_states(config, {"corp": polled}, {"ldap.corp": "vm1"})
    assert states["ldap.corp"].startswith("ok, last run ") and states["ldap.corp"].endswith(
        ", 12 users known; polled by instance vm1")
    assert states["ldap.hr"] == "never run; no running connector polls it (one with [ldap.hr] in its config does)"
