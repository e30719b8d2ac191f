"""A search ldap3 refuses before sending (a filter it cannot parse) says what was searched, and promises no retry:
`connector ldap sync` runs once; under `connector run` the scheduler says when it retries."""

from __future__ import annotations

import ldap3
import pytest

from connector.sources.ldap.connection import DirectoryError, search


def test_a_filter_ldap3_cannot_parse_names_the_base_and_the_filter_and_claims_no_retry():
    conn = ldap3.Connection(ldap3.Server("mock"), client_strategy=ldap3.MOCK_SYNC)
    conn.bind()
    with pytest.raises(DirectoryError) as info:
        list(search(conn, "ou=staff,dc=example", "(&(objectClass=inetOrgPerson)(uid=a)", ["uid"], None))
    assert str(info.value) == ("search under 'ou=staff,dc=example' with (&(objectClass=inetOrgPerson)(uid=a) "
                               "failed (invalid filter)")
