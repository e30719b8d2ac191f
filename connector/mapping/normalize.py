"""One canonical extension string, used for every lookup and every write.

Verba matches extensions as exact strings (`+12444` and `12444` are two extensions),
so every value goes through `normalize_extension` before it is compared or pushed.
"""

from __future__ import annotations

import re

import phonenumbers

NORMALIZE_MODES: tuple[str, ...] = ("e164", "digits", "sip", "none")

_PREFIX = re.compile(r"^\s*(?:sip|tel):\s*", re.IGNORECASE)


def normalize_extension(value: str, how: str, default_country: str | None = None) -> str:
    """Strip `sip:`/`tel:` and surrounding space, then apply `how`; raise ValueError saying why a value is unusable."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    text = value.strip()
    while _PREFIX.match(text):
        text = _PREFIX.sub("", text, count=1).strip()
    if not text:
        raise ValueError(f"{value!r} is empty once sip:/tel: and spaces are stripped")
    if how == "e164":
        return _e164(value, text, default_country)
    if how == "digits":
        digits = re.sub(r"[^0-9]", "", text)
        if not digits:
            raise ValueError(f"{value!r} has no digits")
        return digits
    if how == "sip":
        if "@" not in text or any(c.isspace() for c in text):
            raise ValueError(f"{value!r} is not a SIP address such as alice@corp.example")
        return text.lower()
    if how == "none":
        return text
    raise ValueError(f"normalize {how!r} is unknown; use one of {', '.join(NORMALIZE_MODES)}")


def _e164(value: str, text: str, default_country: str | None) -> str:
    try:
        number = phonenumbers.parse(text, default_country)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and default_country is None:
            raise ValueError(f"{value!r} has no +country code and no default_country is set") from None
        raise ValueError(f"{value!r} is not a phone number ({str(exc.args[0]).rstrip('.')})") from None
    if not phonenumbers.is_valid_number(number):
        where = f" for {default_country}" if default_country and not text.startswith("+") else ""
        raise ValueError(f"{value!r} is not a valid phone number{where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
