"""One canonical extension string, used for every lookup and every write.

Verba matches extensions as exact strings (`+12444` and `12444` are two extensions),
so every value goes through `normalize_extension` before it is compared or pushed.
"""

from __future__ import annotations

import re

import phonenumbers

NORMALIZE_MODES: tuple[str, ...] = ("e164", "digits", "sip", "none")
SUFFIX_MODES: tuple[str, ...] = ("keep", "extension_only", "drop")

_PREFIX = re.compile(r"^\s*(?:sip|tel):\s*", re.IGNORECASE)
# RFC 3966 / tel: URI / Lync line URI parameter: "tel:+14255550100;ext=4142".
_EXT_PARAM = re.compile(r";\s*ext\s*=([^;]*)", re.IGNORECASE)
# A written suffix: "x101", "ext101", "ext. 101", "extension 101", "#101"; not inside a word ("BOX").
_MARKER = re.compile(r"(?<![a-z])(?:ext(?:ension|n)?|x|#)\.?", re.IGNORECASE)
_SUFFIX_DIGITS = re.compile(r"\s*(\d{1,8})\s*")


def normalize_extension(value: str, how: str, default_country: str | None = None, suffix: str = "keep") -> str:
    """Strip `sip:`/`tel:` and surrounding space, then apply `how`; raise ValueError saying why a value is unusable.

    For "e164" and "digits", `suffix` says what becomes of an extension suffix ("+1 212 555 0142 x101"):
    "keep" -> "+12125550142;ext=101", "extension_only" -> "101", "drop" -> "+12125550142".
    A value without a suffix is the number in every case.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    if suffix not in SUFFIX_MODES:
        raise ValueError(f"suffix {suffix!r} is unknown; use one of {', '.join(SUFFIX_MODES)}")
    text = value.strip()
    while _PREFIX.match(text):
        text = _PREFIX.sub("", text, count=1).strip()
    if not text:
        raise ValueError(f"{value!r} is empty once sip:/tel: and spaces are stripped")
    if how in ("e164", "digits"):
        main, ext = _split_suffix(value, text)
        number = _e164(value, main, default_country) if how == "e164" else _digits(value, main)
        if ext is None or suffix == "drop":
            return number
        return ext if suffix == "extension_only" else f"{number};ext={ext}"
    if how == "sip":
        if "@" not in text or any(c.isspace() for c in text):
            raise ValueError(f"{value!r} is not a SIP address such as alice@corp.example")
        return text.lower()
    if how == "none":
        return text
    raise ValueError(f"normalize {how!r} is unknown; use one of {', '.join(NORMALIZE_MODES)}")


def _split_suffix(value: str, text: str) -> tuple[str, str | None]:
    """`text` as (number, suffix digits or None): "+1 212 555 0142 x101" -> ("+1 212 555 0142", "101").

    Other tel: URI parameters stay on the number. A marker after some digits starts the suffix, which
    must be 1 to 8 digits ("+1 212 555 0142 x" raises ValueError); a marker before any digit ("x4567")
    is not a suffix.
    """
    param = _EXT_PARAM.search(text)
    if param:
        return text[: param.start()] + text[param.end() :], _suffix_digits(value, param.group(0), param.group(1))
    number = text.partition(";")[0]
    marker = _MARKER.search(number)
    if marker is None or not any(c.isdigit() for c in number[: marker.start()]):
        return text, None
    ext = _suffix_digits(value, number[marker.start() :], number[marker.end() :])
    return number[: marker.start()] + text[len(number) :], ext


def _suffix_digits(value: str, suffix: str, digits: str) -> str:
    """The 1 to 8 digits after a suffix marker; `suffix` is the whole suffix, for the message."""
    match = _SUFFIX_DIGITS.fullmatch(digits)
    if match is None:
        raise ValueError(f"{value!r} has the extension suffix {suffix.strip()!r}, which is not 1 to 8 digits "
                         "(write it as x101 or ;ext=101)")
    return match.group(1)


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
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
