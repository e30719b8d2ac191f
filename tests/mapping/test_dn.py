"""DNs in one comparable form: RFC 4514's examples, the spellings servers send, and group rules that use them."""

from __future__ import annotations

import pytest

from connector.dn import InvalidDn, is_within, normalize_dn, parent_dn, parse_dn, rdn_value, same_dn
from connector.mapping.rules import in_group

# RFC 4514, section 4 (Examples): each DN and the RDNs it holds, values unescaped.
RFC_4514_EXAMPLES = [
    ("UID=jsmith,DC=example,DC=net", [[("uid", "jsmith")], [("dc", "example")], [("dc", "net")]]),
    ("OU=Sales+CN=J.  Smith,DC=example,DC=net",
     [[("ou", "Sales"), ("cn", "J.  Smith")], [("dc", "example")], [("dc", "net")]]),
    ('CN=James \\"Jim\\" Smith\\, III,DC=example,DC=net',
     [[("cn", 'James "Jim" Smith, III')], [("dc", "example")], [("dc", "net")]]),
    ("CN=Before\\0dAfter,DC=example,DC=net", [[("cn", "Before\rAfter")], [("dc", "example")], [("dc", "net")]]),
    ("1.3.6.1.4.1.1466.0=#04024869,DC=example,DC=com",
     [[("1.3.6.1.4.1.1466.0", "Hi")], [("dc", "example")], [("dc", "com")]]),
    ("CN=Lu\\C4\\8Di\\C4\\87", [[("cn", "Lučić")]]),
]


@pytest.mark.parametrize("text, rdns", RFC_4514_EXAMPLES)
def test_the_rfc_4514_examples_parse_into_their_unescaped_values(text, rdns):
    assert parse_dn(text) == rdns


@pytest.mark.parametrize("one, other", [
    ("CN=Lu\\C4\\8Di\\C4\\87,DC=example", "cn=Lučić,dc=EXAMPLE"),  # RFC 4514 hex UTF-8 and the raw characters
    ("CN=Sales\\2BTrading,OU=Groups,DC=corp", "cn=Sales\\+Trading,ou=groups,dc=corp"),  # \2B and \+ are one '+'
    ("CN=Smith\\2C John,DC=corp", "CN=Smith\\, John,DC=corp"),
    ("CN=R\\C3\\A9seau,DC=corp", "CN=Réseau,DC=corp"),
    ("CN=R\\c3\\a9seau,DC=corp", "CN=RÉSEAU,DC=corp"),  # lower-case hex, and case
    ("CN=Team  X,DC=corp", "CN=team x,DC=corp"),  # insignificant spaces (RFC 4518)
    ("CN=Team X, OU=Groups, DC=corp", "CN=Team X,OU=Groups,DC=corp"),  # spaces after separators (RFC 2253)
    ("OU=Sales+CN=J. Smith,DC=example", "CN=J. Smith+OU=Sales,DC=example"),  # AVA order in an RDN
    ("1.3.6.1.4.1.1466.0=#04024869,DC=example", "1.3.6.1.4.1.1466.0=Hi,DC=example"),  # BER hexstring
    ("CN=\\23hash,DC=x", "CN=\\#hash,DC=x"),  # a leading '#' escaped as hex or as a pair
    ("CN=\\ lead,DC=x", "CN=\\20lead,DC=x"),
    ("CN=x=y,DC=x", "CN=x\\=y,DC=x"),  # '=' may stand unescaped in a value
])
def test_one_dn_in_different_spellings_normalizes_to_one_string(one, other):
    assert normalize_dn(one) == normalize_dn(other)
    assert same_dn(one, other)


@pytest.mark.parametrize("one, other", [
    ("CN=Sales\\2BTrading,DC=corp", "CN=Sales,DC=corp"),
    ("CN=a\\,b,DC=corp", "CN=a,CN=b,DC=corp"),  # an escaped comma is part of the value
    ("CN=x,OU=a,DC=corp", "CN=x,OU=b,DC=corp"),
    ("CN=\\23x,DC=corp", "CN=x,DC=corp"),
])
def test_different_dns_stay_different(one, other):
    assert normalize_dn(one) != normalize_dn(other)


def test_the_normal_form_parses_back_to_itself():
    for text, _ in RFC_4514_EXAMPLES:
        normal = normalize_dn(text)
        assert normalize_dn(normal) == normal
    assert normalize_dn('CN=James \\"Jim\\" Smith\\, III,DC=example') == 'cn=james \\"jim\\" smith\\, iii,dc=example'


@pytest.mark.parametrize("text", ["Traders", "", "=x", "cn=a\\", "cn=#zz", "cn=#041", "cn=a,", "cn=\\C3"])
def test_text_that_is_no_dn_is_refused(text):
    with pytest.raises(InvalidDn):
        parse_dn(text)
    assert not same_dn(text, text)


def test_rdn_values_parents_and_subtrees():
    assert rdn_value("CN=Sales\\2BTrading,OU=Groups,DC=corp") == "Sales+Trading"
    assert rdn_value("Traders") is None
    assert parent_dn("CN=x,OU=Staff,DC=corp") == "ou=staff,dc=corp" and parent_dn("DC=corp") == ""
    assert is_within("CN=x,OU=Staff,DC=corp", "ou=STAFF, dc=corp") and is_within("OU=Staff,DC=corp", "OU=Staff,DC=corp")
    assert not is_within("CN=x,OU=Leavers,DC=corp", "OU=Staff,DC=corp")
    assert not is_within("CN=x\\,OU=Staff\\,DC=corp,DC=other", "OU=Staff,DC=corp")


@pytest.mark.parametrize("rule, groups, member", [
    ("Sales+Trading", ["CN=Sales\\2BTrading,OU=Groups,DC=corp"], True),
    ("Sales+Trading", ["cn=Sales\\+Trading,ou=Groups,dc=corp"], True),
    ("Réseau", ["CN=R\\C3\\A9seau,OU=Groups,DC=corp"], True),
    ("CN=R\\C3\\A9seau,OU=Groups,DC=corp", ["cn=réseau,ou=groups,dc=corp"], True),
    ("CN=Sales\\2BTrading,OU=Groups,DC=corp", ["CN=Sales\\+Trading, OU=Groups, DC=corp"], True),
    ("Smith, John", ["CN=Smith\\2C John,OU=People,DC=corp"], True),
    ("Traders", ["Traders"], True),  # SCIM sends names
    ("traders", ["CN=TRADERS,OU=Groups,DC=corp"], True),
    ("Sales", ["CN=Sales\\2BTrading,OU=Groups,DC=corp"], False),
    ("CN=Traders,OU=Groups,DC=corp", ["CN=Traders,OU=Old,DC=corp"], False),  # a DN names one group
    ("Groups", ["CN=Traders,OU=Groups,DC=corp"], False),  # only the CN counts, not the OU
    ("Traders", ["OU=Traders,DC=corp"], False),
])
def test_group_rules_compare_dns_in_one_form(rule, groups, member):
    assert in_group({"groups": groups}, rule) is member
