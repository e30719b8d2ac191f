"""Distinguished names in one comparable form (RFC 4514), the only place DNs are parsed or compared.

A server may send one DN in several spellings: `CN=Sales\\+Trading`, `cn=Sales\\2BTrading`,
`CN=R\\C3\\A9seau` and `CN=Réseau`, `cn=a,  ou=b` (RFC 2253 allowed spaces after a separator).
`normalize_dn` turns each into one string: attribute types lower-cased, values unescaped (pairs
and hex pairs, UTF-8 decoded as a whole) and compared as LDAP's caseIgnoreMatch does (RFC 4518:
NFKC, case folded, insignificant spaces removed), the AVAs of a multi-valued RDN sorted.

ldap3's `parse_dn` is not used: it refuses numeric-OID attribute types (RFC 4514's own example
`1.3.6.1.4.1.1466.0=#04024869`), refuses a space after a comma unless told to strip, and then
strips escaped trailing spaces too (`cn=x\\ ` becomes invalid); it also leaves hex escapes as they
are, so `\\2B` and `\\+` would still differ.
"""

from __future__ import annotations

import string
import unicodedata

_HEX = set(string.hexdigits)
_SPECIAL = set(' "#+,;<=>\\')
# BER tags of string types whose hexstring form (`#04024869`) decodes to text (RFC 4514, 2.4)
_BER_STRINGS = {0x04, 0x0C, 0x13, 0x14, 0x16, 0x1E}

Ava = tuple[str, str]  # (attribute type lower-cased, value unescaped)


class InvalidDn(ValueError):
    """The text is not a distinguished name."""


def parse_dn(text: str) -> list[list[Ava]]:
    """The RDNs of `text`, most specific first; each a list of (type, unescaped value).

    Raises InvalidDn for text that is not a DN ("Traders", "cn=", "=x").
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidDn(f"{text!r} is not a DN")
    rdns: list[list[Ava]] = [[]]
    position = 0
    while True:
        attribute, value, position = _ava(text, position)
        rdns[-1].append((attribute, value))
        if position >= len(text):
            return rdns
        if text[position] == ",":
            rdns.append([])
        position += 1


def normalize_dn(text: str) -> str:
    """One comparable form of a DN: equal DNs in any spelling give equal strings."""
    return ",".join(_canonical(parse_dn(text)))


def _canonical(rdns: list[list[Ava]]) -> list[str]:
    """Each RDN as a comparable string: values folded and escaped, the AVAs of a multi-valued RDN sorted."""
    return ["+".join(f"{attribute}={escape_value(value)}"
                     for attribute, value in sorted((a, fold(v)) for a, v in rdn)) for rdn in rdns]


def dn_key(text: str) -> str:
    """The normal form of a DN to compare or store; text that is no DN is compared case-folded."""
    try:
        return normalize_dn(text)
    except InvalidDn:
        return fold(text)


def is_dn(text: str) -> bool:
    """Whether `text` parses as a DN (a rule's group may be a DN or a plain name)."""
    try:
        parse_dn(text)
    except InvalidDn:
        return False
    return True


def same_dn(one: str, other: str) -> bool:
    """Whether two DN strings name the same entry, however each is spelled; False if either is no DN."""
    try:
        return normalize_dn(one) == normalize_dn(other)
    except InvalidDn:
        return False


def rdn_value(text: str) -> str | None:
    """The unescaped value of the first RDN (`Sales+Trading` of `CN=Sales\\2BTrading,OU=G`); None if no DN."""
    try:
        return parse_dn(text)[0][0][1]
    except InvalidDn:
        return None


def parent_dn(text: str) -> str:
    """The normalized DN of the entry above `text` ("" for a top entry)."""
    return ",".join(_canonical(parse_dn(text))[1:])


def is_within(text: str, base: str) -> bool:
    """True if `text` is `base` or below it."""
    entry, top = _canonical(parse_dn(text)), _canonical(parse_dn(base))
    return len(entry) >= len(top) and entry[len(entry) - len(top):] == top


def fold(value: str) -> str:
    """An attribute value as caseIgnoreMatch compares it: NFKC, case folded, runs of spaces as one, trimmed."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def escape_value(value: str) -> str:
    """An attribute value escaped for a DN string (RFC 4514, 2.4)."""
    escaped = "".join("\\" + c if c in '"+,;<=>\\' else "\\00" if c == "\0" else c for c in value)
    if escaped.startswith((" ", "#")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def _ava(text: str, position: int) -> tuple[str, str, int]:
    """Read `type=value` from `position`; return it and the position of the separator after it (or the end)."""
    equals = text.find("=", position)
    if equals < 0:
        raise InvalidDn(f"{text!r} is not a DN: no '=' after position {position}")
    attribute = text[position:equals].strip()
    if not _valid_type(attribute):
        raise InvalidDn(f"{text!r} is not a DN: {attribute!r} is not an attribute type")
    position = equals + 1
    while position < len(text) and text[position] == " ":
        position += 1
    if text.startswith("#", position):
        value, position = _hexstring(text, position + 1)
    else:
        value, position = _string(text, position)
    return attribute.lower(), value, position


def _valid_type(attribute: str) -> bool:
    if not attribute:
        return False
    if attribute[0].isdigit():  # numericoid: 1.3.6.1.4.1.1466.0
        return all(part.isdigit() for part in attribute.split("."))
    return attribute[0].isascii() and attribute[0].isalpha() and all(
        c.isascii() and (c.isalnum() or c == "-") for c in attribute)


def _string(text: str, position: int) -> tuple[str, int]:
    """An escaped string value up to an unescaped `,` or `+`; hex escapes are bytes, decoded as UTF-8 together."""
    out = bytearray()
    trailing = 0  # unescaped spaces at the end, which are not part of the value
    while position < len(text):
        c = text[position]
        if c in ",+":
            break
        if c == "\\":
            pair = text[position + 1:position + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                out.append(int(pair, 16))
                position += 3
            elif pair[:1] and pair[0] in _SPECIAL:
                out.extend(pair[0].encode())
                position += 2
            else:
                raise InvalidDn(f"{text!r} is not a DN: a backslash at position {position} escapes nothing")
            trailing = 0
            continue
        trailing = trailing + 1 if c == " " else 0
        out.extend(c.encode())
        position += 1
    if trailing:
        del out[-trailing:]
    try:
        return out.decode("utf-8"), position
    except UnicodeDecodeError:
        raise InvalidDn(f"{text!r} is not a DN: its hex escapes are not UTF-8") from None


def _hexstring(text: str, position: int) -> tuple[str, int]:
    """`#04024869`: the BER encoding of the value; a string type decodes to its text, anything else stays `#hex`."""
    end = position
    while end < len(text) and text[end] in _HEX:
        end += 1
    digits = text[position:end]
    rest = end
    while rest < len(text) and text[rest] == " ":
        rest += 1
    if not digits or len(digits) % 2 or (rest < len(text) and text[rest] not in ",+"):
        raise InvalidDn(f"{text!r} is not a DN: '#' must start pairs of hex digits")
    encoded = bytes.fromhex(digits)
    if len(encoded) >= 2 and encoded[0] in _BER_STRINGS and encoded[1] == len(encoded) - 2:
        try:
            return encoded[2:].decode("utf-8"), rest
        except UnicodeDecodeError:
            pass
    return "#" + digits.lower(), rest
