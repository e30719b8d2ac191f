"""One canonical extension string, used for every lookup and every write.

Verba matches extensions as exact strings (`+12444` and `12444` are two extensions),
so every value goes through `normalize_extension` before it is compared or pushed.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from connector.events import REPLACEMENT_CHARACTER
from connector.records import not_xml

NORMALIZE_MODES: tuple[str, ...] = ("e164", "digits", "sip", "none")
SUFFIX_MODES: tuple[str, ...] = ("keep", "extension_only", "drop")

_PREFIX = re.compile(r"^\s*(?:sips?|tel):\s*", re.IGNORECASE)
# RFC 3261 name-addr: an optional display name, then the URI in angle brackets: '"Alice" <sip:alice@example.com>'.
_NAME_ADDR = re.compile(r'(?:"(?:[^"\\]|\\.)*"\s*|[^"<>]*)<([^<>]*)>')
# A written suffix: "x101", "ext101", "ext. 101", "Ext: 101", "extension 101", "#101", "(ext. 101)";
# not inside a word ("BOX").
_MARKER = re.compile(r"(\(\s*)?(?<![a-z])(?:ext(?:ension|n)?|x|#)\.?\s*:?", re.IGNORECASE)
_SUFFIX_DIGITS = re.compile(r"\s*([0-9]{1,8})\s*", re.ASCII)
# An RFC 3966 parameter after a ";": a name, "=" and a value ("phone-context=+1212", "user=phone", "isub=1").
_PARAM = re.compile(r"\s*([A-Za-z0-9-]+)\s*(?:=\s*(.*?)\s*)?", re.ASCII | re.DOTALL)
_PARAM_VALUE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+", re.ASCII)
_PARAM_FLAGS = frozenset({"npdi"})  # RFC 4694: the one parameter written without a value
# What a number is written with, besides digits and spaces: "+1 (415) 555-0100", "+44 (0) 20 7946 0018", "415.555.0100".
_PLAIN_NUMBER = frozenset("0123456789 +-.()")  # what a number is written with, in ASCII
# "030/1234567", "+49 (0)30 / 1234567": the one slash that may separate an area code from the rest (DIN 5008's older
# form), read in E.164 mode; a slash anywhere else ("030 1234 / 5678", "030 12345 / 030 12346") is refused.
_AREA_CODE_SLASH = re.compile(r"(\s*(?:(?:\+|00)[0-9]{1,3}\s*(?:\(0\)\s*)?)?\(?[0-9]{1,6}\)?\s*)/([^/]*)")
# "+49 30 1234567.0": a spreadsheet that stored the number as a decimal; read, the ".0" would be a digit more.
_SPREADSHEET_DECIMAL = re.compile(r"[0-9]\.0$")
# Written for a hyphen: a katakana long vowel mark, as a Japanese keyboard types it ("03ー1234ー5678").
_LOOKS_LIKE_A_DASH = "\u30fc"
_PARENTHESES = re.compile(r"\(([^()]*)\)|[()]")  # a group in parentheses, or a lone one
_AREA_CODE = re.compile(r"\s*\+?[0-9][0-9 ]*")  # what a group in parentheses may hold: (415), (0), (+44)
_DASHES = "\u2212"  # MINUS SIGN, written for a hyphen; every dash (Unicode category Pd) is one too


def normalize_extension(value: str, how: str, default_country: str | None = None, suffix: str = "keep") -> str:
    r"""Strip `sip:`/`sips:`/`tel:` and surrounding space, then apply `how`; a ValueError says why a value is unusable.

    "sip", "e164" and "digits" first take the URI out of a name-addr ('"Alice" <sip:alice@example.com>');
    "none" keeps it. "sip" gives the user@host of the URI (see `_sip_address`); "e164" and "digits" read
    the number in the user part of a SIP URI ("sip:+14155550100@example.com;user=phone" -> "+14155550100").
    For "e164" and "digits", `suffix` says what becomes of an extension suffix ("+1 212 555 0142 x101"):
    "keep" -> "+12125550142;ext=101", "extension_only" -> "101", "drop" -> "+12125550142".
    A value without a suffix is the number in every case.

    Every mode reads the value in Unicode NFC ("jose\u0301" and "jos\u00e9" are one address) and strips
    invisible characters (a byte order mark, a zero-width space) at both ends; one inside is refused, and so is a
    character no SOAP call can carry ("\uffff") or U+FFFD (a character the source lost) anywhere.
    "e164" and "digits" read any decimal digits ("\uff14\uff15\uff16\uff17" is "4567") and refuse a number
    written with anything but digits, spaces and + - . ( ): two numbers in one value ("4567, 4568",
    "4567;4568") or a letter in place of a digit ("4l42") is invalid, never glued or cut into another number.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    if suffix not in SUFFIX_MODES:
        raise ValueError(f"suffix {suffix!r} is unknown; use one of {', '.join(SUFFIX_MODES)}")
    text = _visible(value)
    name_addr = _NAME_ADDR.fullmatch(text)
    if name_addr and how != "none":
        text = name_addr.group(1).strip()
    while _PREFIX.match(text):
        text = _PREFIX.sub("", text, count=1).strip()
    if not text:
        raise ValueError(f"{value!r} is empty once sip:/sips:/tel: and spaces are stripped")
    if how in ("e164", "digits"):
        main, ext = _split_suffix(value, _ascii_digits(text).partition("@")[0])
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
    whatever a directory appends to it. What follows a ";" must be a parameter (name=value): "4567;4568" is
    two numbers, refused rather than cut to the first. A marker after some digits starts a written suffix
    ("x101", "Ext: 101", "(ext. 101)"); a marker before any digit ("x4567") is not a suffix, and is dropped.
    `text` has ASCII digits (`_ascii_digits`).
    """
    number, *params = text.split(";")
    params = [param for param in params if param.strip()]  # "4567;": an empty parameter is none
    names = [_param_name(value, param) for param in params]
    context = "".join(f";{param}" for param, name in zip(params, names, strict=True) if name == "phone-context")
    marker = _MARKER.search(number)
    if marker is not None and not re.search("[0-9]", number[: marker.start()]):
        if number[: marker.start()].strip():
            marker = None  # "BOX 12": no marker of a suffix
        else:  # "x4567", "ext. 4567": the value is the extension itself
            number = number[marker.end() :]
            if marker.group(1):  # "(ext. 4567)"
                number = _closed(value, text.split(";")[0], number)
            marker = None  # a second marker ("x4567 x12") is refused with the letters of the number
    if "ext" in names:
        if names.count("ext") > 1:
            raise ValueError(f"{value!r} has {names.count('ext')} extension suffixes (;ext=); "
                             "keep one, or put each number in a value of its own")
        param = params[names.index("ext")]
        if marker is not None:
            raise ValueError(f"{value!r} has two extension suffixes ({number[marker.start() :].strip()!r} and "
                             f"{';' + param.strip()!r}); keep one, or put each number in a value of its own")
        return number + context, _suffix_digits(value, f";{param}", param.partition("=")[2])
    if marker is None:
        return number + context, None
    digits = number[marker.end() :]
    if marker.group(1):  # "(ext. 101)"
        digits = _closed(value, number[marker.start() :], digits)
    return number[: marker.start()] + context, _suffix_digits(value, number[marker.start() :], digits)


def _closed(value: str, suffix: str, text: str) -> str:
    """`text`, what follows a "(ext." marker, without its closing ")"; a ValueError naming `suffix` if it has none."""
    if not text.rstrip().endswith(")"):
        raise _bad_suffix(value, suffix, "')' is missing")
    return text.rstrip()[:-1]


def _param_name(value: str, param: str) -> str:
    """The lower-cased name of one RFC 3966 parameter (the text after a ";"); a ValueError if it is none.

    A parameter is name=value ("user=phone", "phone-context=+1212", "ext=101"), or a flag this module knows
    ("npdi"). Anything else after a ";" is most often a second number ("+1 212 555 0142; +1 212 555 0199"):
    taking the first and dropping the rest would stop recording the second.
    """
    match = _PARAM.fullmatch(param)
    if match is not None:
        name, given = match.group(1).lower(), match.group(2)
        if name == "ext" and given is not None:
            return name  # its value is read by _suffix_digits, which says what is wrong with it
        if given is None and name in _PARAM_FLAGS or given is not None and _PARAM_VALUE.fullmatch(given):
            return name
    raise ValueError(f"{value!r} has {';' + param.strip()!r}, which is not a parameter (name=value, such as "
                     ";ext=101 or ;phone-context=+1212); "
                     "if the value holds two numbers, put each in a value of its own")


def _suffix_digits(value: str, suffix: str, digits: str) -> str:
    """The 1 to 8 digits after a suffix marker; `suffix` is the whole suffix, for the message.

    Leading zeros are kept ("x0012" -> "0012", not "12"): a PBX dials 0012 and 12 as two extensions, and
    Verba matches the string the PBX reports. `digits` are ASCII already (`_split_suffix` reads `_ascii_digits`).
    """
    match = _SUFFIX_DIGITS.fullmatch(digits)
    if match is None:
        stray = [c for c in digits.strip() if c not in "0123456789"]
        count = sum(c in "0123456789" for c in digits)
        raise _bad_suffix(value, suffix, f"{stray[0]!r} is not a digit" if stray else f"it has {count or 'no'} digits")
    return match.group(1)


def _bad_suffix(value: str, suffix: str, why: str) -> ValueError:
    return ValueError(f"{value!r} has the extension suffix {suffix.strip()!r}, which is not 1 to 8 digits ({why}); "
                      "write it as x101, ext. 101 or ;ext=101")


def _digits(value: str, text: str) -> str:
    number = text.partition(";")[0]
    if not re.search("[0-9]", number):
        raise ValueError(f"{value!r} has no digits")
    return re.sub("[^0-9]", "", _number_text(value, number))


def _e164(value: str, text: str, default_country: str | None) -> str:
    number_part, params = text.partition(";")[::2]
    if slash := _AREA_CODE_SLASH.fullmatch(number_part):
        number_part = f"{slash[1]} {slash[2]}"
        text = f"{number_part};{params}" if params else number_part
    try:
        number = phonenumbers.parse(text, default_country)
    except phonenumbers.NumberParseException as exc:
        _number_text(value, number_part)  # a character it names says more than the library's message
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and default_country is None:
            raise ValueError(f"{value!r} has no +country code and no default_country is set") from None
        raise ValueError(f"{value!r} is not a phone number ({str(exc.args[0]).rstrip('.')})") from None
    if number.extension:
        # A suffix form _split_suffix does not read (",,101", "anexo 5"): never drop it silently.
        raise ValueError(f"{value!r} has an extension suffix {number.extension!r} in a form not understood; "
                         "write it as x101 or ;ext=101")
    # Before the validity check, whose message would hide the cause ("+1 917 555 04O2").
    _number_text(value, number_part)
    if not phonenumbers.is_valid_number(number):
        where = f" for {default_country}" if default_country and not text.strip().startswith(("+", "(+")) else ""
        raise ValueError(f"{value!r} is not a valid phone number{where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _visible(value: str) -> str:
    r"""`value` in NFC, without spaces and invisible characters (Unicode Cc, Cf) at either end; a ValueError for
    an invisible character or line break inside ("sip:jane\u200b@corp.example", "4567\n4568"), and for a character
    XML 1.0 cannot carry (connector.records.not_xml: "\uffff", an unpaired surrogate) or U+FFFD anywhere.

    A directory may hold a byte order mark before "sip:", a zero-width space or soft hyphen pasted with the
    value, and either spelling of "josé" (NFC or NFD): kept, each would make an extension Verba matches to no
    call, or a second extension for one address. A tab inside counts as a space. No SOAP call can send a
    character XML cannot carry: kept, the user's every push would fail. U+FFFD stands for a character lost before
    the value reached us (connector.events.storable writes it for a NUL an LDAP value held): what it was cannot
    be told.
    """
    if value.isascii() and value.strip().isprintable():  # the common case: nothing to normalize or refuse inside
        return value.strip()
    text = unicodedata.normalize("NFC", value)
    start, end = 0, len(text)
    while start < end and _blank(text[start]):
        start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    text = text[start:end]
    for c in text:
        category = unicodedata.category(c)
        if c != "\t" and category in ("Cc", "Cf", "Zl", "Zp"):
            name = unicodedata.name(c, "")
            what = f"U+{ord(c):04X}{' ' + name if name else ''}"
            if category in ("Zl", "Zp") or c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85":
                raise ValueError(f"{value!r} has a line break ({what}) inside; "
                                 "put each number or address in a value of its own")
            raise ValueError(f"{value!r} has the invisible character {what} inside; remove it at the source")
        if c == REPLACEMENT_CHARACTER:
            raise ValueError(f"{value!r} holds U+FFFD REPLACEMENT CHARACTER, written for a character the source "
                             "could not give (a NUL, bytes that are not UTF-8): the value is broken")
        if problem := not_xml(c):
            raise ValueError(f"{value!r} {problem}, so no SOAP call to Verba can send it")
    return text


def _blank(c: str) -> bool:
    return c.isspace() or unicodedata.category(c) in ("Cc", "Cf")


def _ascii_digits(text: str) -> str:
    r"""`text` with every decimal digit in ASCII ("\u0664\u0665" -> "45"), the fullwidth forms of ASCII
    ("\uff0b\uff11", "\uff58\uff11\uff10\uff11") as ASCII, every space (a narrow no-break or thin space between
    groups, "01\u202f23\u202f45\u202f67\u202f89") as " " and a katakana long vowel mark typed for a dash as "-";
    digits of other kinds ("\u00b2", "\u2460") stay."""
    if text.isascii():
        return text
    return "".join(
        chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else str(unicodedata.decimal(c)) if c.isdecimal()
        else " " if unicodedata.category(c) == "Zs" else "-" if c in _LOOKS_LIKE_A_DASH else c
        for c in text)


def _number_text(value: str, text: str) -> str:
    """`text`, the number part of `value` (no suffix, no parameters), with its dashes and spaces in ASCII; a
    ValueError unless it is written with digits, spaces and + - . ( ) only, and does not end with a spreadsheet's
    ".0".

    Taking the digits out of anything else makes another number: "4567, 4568" is not 45674568, "4l42" not 442,
    "sip:alice2@corp" not 2. A "+" only starts the number ("+44", "(+44)"), and a group in parentheses comes
    before more digits ("(415) 555-0100", "+44 (0) 20 7946 0018"): "ext. 101 +1 212 555 0142" and
    "4567 (4568)" are two numbers.
    """
    if set(text) <= _PLAIN_NUMBER:  # the common case: nothing to translate or refuse
        return _checked_groups(value, text, text.strip())
    letters = "".join(c for c in text if c.isalpha())
    if letters:
        # phonenumbers reads keypad letters as digits ("1-800-FLOWERS" -> +18003569377) and drops a stray one;
        # in a directory they are far more often a typing error than a vanity number.
        raise ValueError(f"{value!r} has letters ({letters!r}) where a phone number has digits; "
                         "write the number in digits")
    chars = []
    for c in text:
        if c in _PLAIN_NUMBER:
            chars.append(c)
        elif c.isspace():
            chars.append(" ")
        elif c in _DASHES or unicodedata.category(c) == "Pd":
            chars.append("-")
        else:
            raise ValueError(f"{value!r} has {c!r} in the number {text.strip()!r}, where only digits, spaces and "
                             "+ - . ( ) belong; if the value holds two numbers, put each in a value of its own, "
                             f"else write the number without {c!r}")
    return _checked_groups(value, text, "".join(chars).strip())


def _checked_groups(value: str, text: str, number: str) -> str:
    """`number` (`text` in digits, spaces and punctuation) if its "+" and parentheses are where a number has them
    and it does not end with a spreadsheet's ".0" (see `_number_text`); else a ValueError."""
    if _SPREADSHEET_DECIMAL.search(number):
        raise ValueError(f"{value!r} ends with '.0', as a number a spreadsheet stored as a decimal: the 0 is no digit "
                         "of it; write the number as text, without '.0'")
    if "+" in number.lstrip("(").lstrip()[1:] or "+" in number and not number.lstrip("( ").startswith("+"):
        raise ValueError(f"{value!r} has a '+' inside the number {text.strip()!r}; a + only starts a number "
                         "(+1 212 555 0142): if the value holds two numbers, put each in a value of its own")
    for group in _PARENTHESES.finditer(number):
        if group.group(1) is None:
            raise ValueError(f"{value!r} has an unmatched {group.group(0)!r} in the number {text.strip()!r}")
        if not _AREA_CODE.fullmatch(group.group(1)):
            raise ValueError(f"{value!r} has {group.group(0)!r} in the number {text.strip()!r}; parentheses "
                             "hold only an area code or country code, such as (415) or (0)")
        if not re.search("[0-9]", number[group.end() :]):
            raise ValueError(f"{value!r} ends with {group.group(0)!r}, which is no part of the number (an area code "
                             "in parentheses comes before the rest); if it is a second number, put it in a value "
                             "of its own")
    return number
