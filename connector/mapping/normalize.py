"""One canonical extension string, used for every lookup and every write.

Verba matches extensions as exact strings (`+12444` and `12444` are two extensions),
so every value goes through `normalize_extension` before it is compared or pushed.
"""

from __future__ import annotations

import re

import phonenumbers

NORMALIZE_MODES: tuple[str, ...] = ("e164", "digits", "sip", "none")
SUFFIX_MODES: tuple[str, ...] = ("keep", "extension_only", "drop")

_PREFIX = re.compile(r"^\s*(?:sips?|tel):\s*", re.IGNORECASE)
# RFC 3261 name-addr: an optional display name, then the URI in angle brackets: '"Alice" <sip:alice@example.com>'.
_NAME_ADDR = re.compile(r'(?:"(?:[^"\\]|\\.)*"\s*|[^"<>]*)<([^<>]*)>')
# A written suffix: "x101", "ext101", "ext. 101", "Ext: 101", "extension 101", "#101", "(ext. 101)";
# not inside a word ("BOX").
_MARKER = re.compile(r"(\(\s*)?(?<![a-z])(?:ext(?:ension|n)?|x|#)\.?\s*:?", re.IGNORECASE)
_SUFFIX_DIGITS = re.compile(r"\s*(\d{1,8})\s*")


def normalize_extension(value: str, how: str, default_country: str | None = None, suffix: str = "keep") -> str:
    """Strip `sip:`/`sips:`/`tel:` and surrounding space, then apply `how`; a ValueError says why a value is unusable.

    "sip", "e164" and "digits" first take the URI out of a name-addr ('"Alice" <sip:alice@example.com>');
    "none" keeps it. "sip" gives the user@host of the URI (see `_sip_address`); "e164" and "digits" read
    the number in the user part of a SIP URI ("sip:+14155550100@example.com;user=phone" -> "+14155550100").
    For "e164" and "digits", `suffix` says what becomes of an extension suffix ("+1 212 555 0142 x101"):
    "keep" -> "+12125550142;ext=101", "extension_only" -> "101", "drop" -> "+12125550142".
    A value without a suffix is the number in every case.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    if suffix not in SUFFIX_MODES:
        raise ValueError(f"suffix {suffix!r} is unknown; use one of {', '.join(SUFFIX_MODES)}")
    text = value.strip()
    name_addr = _NAME_ADDR.fullmatch(text)
    if name_addr and how != "none":
        text = name_addr.group(1).strip()
    while _PREFIX.match(text):
        text = _PREFIX.sub("", text, count=1).strip()
    if not text:
        raise ValueError(f"{value!r} is empty once sip:/sips:/tel: and spaces are stripped")
    if how in ("e164", "digits"):
        main, ext = _split_suffix(value, text.partition("@")[0])
        number = _e164(value, main, default_country) if how == "e164" else _digits(value, main)
        if ext is None or suffix == "drop":
            return number
        return ext if suffix == "extension_only" else f"{number};ext={ext}"
    if how == "sip":
        return _sip_address(value, text)
    if how == "none":
        return text
    raise ValueError(f"normalize {how!r} is unknown; use one of {', '.join(NORMALIZE_MODES)}")


def _sip_address(value: str, text: str) -> str:
    """The user@host of a SIP URI (no scheme), lower-cased: "Alice@Example.COM;transport=tls" -> "alice@example.com".

    RFC 3261 19.1.1: URI parameters (";transport=tls", ";user=phone") and headers ("?subject=x") follow the
    host and say how to reach the user, not who it is: they are dropped. The port stays ("alice@example.com:5061";
    RFC 3261 19.1.4 compares it), and so does a ";" in the user part ("alice;day=tuesday@atlanta.com").
    With ";user=phone" the user part is a number, kept as written: "+14155550100@example.com".
    The whole address is lower-cased, as it always was here: RFC 3261 compares the user part case-sensitively,
    but directories write one user's address in any case ("Jane.Doe@Corp.Example") and extensions are
    matched as exact strings.
    """
    user, _, host = text.partition("@")
    address = f"{user}@{re.split(r'[;?]', host, maxsplit=1)[0]}"
    if not user or address.endswith("@") or any(c.isspace() or c in '<>"' for c in address):
        raise ValueError(f"{value!r} is not a SIP address such as alice@corp.example")
    return address.lower()


def _split_suffix(value: str, text: str) -> tuple[str, str | None]:
    """`text` as (number, suffix digits or None): "+1 212 555 0142 x101" -> ("+1 212 555 0142", "101").

    Of the RFC 3966 parameters, ";ext=" is the suffix and ";phone-context=" stays on the number, which it
    completes ("5550142;phone-context=+1212"). Every other parameter (";user=phone", ";isub=1", a vendor's)
    says how to reach the line, not which line it is, and is dropped: one line is one extension string
    whatever a directory appends to it. A marker after some digits starts a written suffix ("x101",
    "Ext: 101", "(ext. 101)"); a marker before any digit ("x4567") is not a suffix.
    """
    number, *params = text.split(";")
    names = [param.partition("=")[0].strip().lower() for param in params]
    context = "".join(f";{param}" for param, name in zip(params, names, strict=True) if name == "phone-context")
    if "ext" in names:
        param = params[names.index("ext")]
        return number + context, _suffix_digits(value, f";{param}", param.partition("=")[2])
    marker = _MARKER.search(number)
    if marker is None or not any(c.isdigit() for c in number[: marker.start()]):
        return number + context, None
    digits = number[marker.end() :]
    if marker.group(1):  # "(ext. 101)"
        if not digits.rstrip().endswith(")"):
            raise _bad_suffix(value, number[marker.start() :], "')' is missing")
        digits = digits.rstrip()[:-1]
    return number[: marker.start()] + context, _suffix_digits(value, number[marker.start() :], digits)


def _suffix_digits(value: str, suffix: str, digits: str) -> str:
    """The 1 to 8 digits after a suffix marker; `suffix` is the whole suffix, for the message.

    Leading zeros are kept ("x0012" -> "0012", not "12"): a PBX dials 0012 and 12 as two extensions, and
    Verba matches the string the PBX reports.
    """
    match = _SUFFIX_DIGITS.fullmatch(digits)
    if match is None:
        stray = [c for c in digits.strip() if not c.isdigit()]
        count = sum(c.isdigit() for c in digits)
        raise _bad_suffix(value, suffix, f"{stray[0]!r} is not a digit" if stray else f"it has {count or 'no'} digits")
    return match.group(1)


def _bad_suffix(value: str, suffix: str, why: str) -> ValueError:
    return ValueError(f"{value!r} has the extension suffix {suffix.strip()!r}, which is not 1 to 8 digits ({why}); "
                      "write it as x101, ext. 101 or ;ext=101")


def _digits(value: str, text: str) -> str:
    digits = re.sub(r"[^0-9]", "", text.partition(";")[0])
    if not digits:
        raise ValueError(f"{value!r} has no digits")
    return digits


def _e164(value: str, text: str, default_country: str | None) -> str:
    try:
        number = phonenumbers.parse(text, default_country)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and default_country is None:
            raise ValueError(f"{value!r} has no +country code and no default_country is set") from None
        raise ValueError(f"{value!r} is not a phone number ({str(exc.args[0]).rstrip('.')})") from None
    if number.extension:
        # A suffix form _split_suffix does not read (",,101", "anexo 5"): never drop it silently.
        raise ValueError(f"{value!r} has an extension suffix {number.extension!r} in a form not understood; "
                         "write it as x101 or ;ext=101")
    if not phonenumbers.is_valid_number(number):
        where = f" for {default_country}" if default_country and not text.startswith("+") else ""
        raise ValueError(f"{value!r} is not a valid phone number{where}")
    letters = "".join(c for c in text.partition(";")[0] if c.isalpha())
    if letters:
        # phonenumbers reads keypad letters as digits ("1-800-FLOWERS" -> +18003569377) and drops a stray one;
        # in a directory they are far more often a typing error than a vanity number.
        raise ValueError(f"{value!r} has letters ({letters!r}) where a phone number has digits; "
                         "write the number in digits")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
