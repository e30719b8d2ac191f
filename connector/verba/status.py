"""The status of a Verba answer, read from either documented shape."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from lxml import etree

from connector.verba.errors import VerbaMalformedResponse, VerbaStatusError

OK = "OK"
ALREADY_EXISTS = "ERROR_ALREADY_EXISTS"
UNAUTHORIZED = "ERROR_UNAUTHORIZED"
GENERAL = "ERROR_GENERAL"
ILLEGAL_ARGUMENT = "ERROR_ILLEGAL_ARGUMENT"

# Absence, as a vendor that documents no not-found code may word it. Something else not found (the user, a record,
# a group...) is not the extension's absence, even in an answer that names the extension.
_OTHER = (r"users?|owners?|records?|groups?|recorders?|environments?|eid|tenants?|roles?|logins?|accounts?|agents?|"
          r"servers?|polic(?:y|ies)|storage|folders?|locations?|sites?|rules?|profiles?|members?|memberships?|links?|"
          r"tokens?|sessions?|licen[cs]es?|configurations?|configs?|settings?|database|table|types?|formats?|"
          r"fields?|attributes?|handlers?|providers?|mappings?|data|sources?|services?|endpoints?|index(?:es)?|"
          r"recording|modes?|caches?")
# Words of a Verba that is failing, not of an extension that is gone ("No extension found: service starting",
# "extension … could not be found in time", "… not found (replica lagging)"): such an answer is never absence.
_FAILING = re.compile(r"time\s*-?out|timed\s+out|in\s+time|unavailable|temporar|starting|start-?up|in\s+progress|"
                      r"rebuild|reload|pending|retry|try\s+again|busy|overload|lagging|replica|connection|lost",
                      re.IGNORECASE)
# The codes a missing extension may be answered with: the two the vendor documents for errors, and a code named for
# absence (ERROR_NOT_FOUND, ERROR_EXTENSION_NOT_FOUND, NO_SUCH_EXTENSION); ERROR_DATABASE, ERROR_INTERNAL... are not.
_ABSENCE_CODE = re.compile(r"NOT_?FOUND|NO_?SUCH|DOES_?NOT_?EXIST|NOT_?EXISTS?|UNKNOWN", re.IGNORECASE)
_NOT_ANOTHER = rf"(?!'s\b|\s+(?:{_OTHER})\b)"  # "extension" not followed by another entity: "extension owner"
# An extension's number or address as a message quotes it: quoted, or holding a digit, @, : or + (0000:+1…, 4567,
# alice@corp.example); a bare word is not one ("Extension user not found").
_NUMBER = r"""(?:'[^']*'|"[^"]*"|\S*[\d@:+]\S*)"""
_GONE = (r"(?:(?:is|was|has\s+been)\s+|(?:could|can)\s*)?(?:not\s+found|n[o']?t\s+be\s+found|does\s*n[o']?t\s+exist|"
         r"not\s+exists?|no\s+longer\s+exists?)\b")
_EXTENSION_ABSENT = re.compile(
    # the extension itself, starting a clause, maybe its number, then the phrase: "Extension 0000:+1… not
    # found", "The extension does not exist in the database: …", "Extension with number +1… does not exist"
    r"(?:^|[:;,.!?()\[\]\"'>-]|\b(?:because|since|but)\b)\s*(?:(?:the|this|that|an?)\s+)?(?:(?:given|requested|specified)\s+)?extension"
    rf"(?:\s+(?:(?:with\s+)?(?:number|id|extension|address)\s+)?{_NUMBER})?\s+{_GONE}"
    # "No extension found", "No such extension: 4567", "Unknown extension 4567"
    rf"|\b(?:no(?:\s+(?:such|matching))?|unknown|non-?existent)\s+extensions?\b{_NOT_ANOTHER}"
    # "Could not find extension 0000:+1…", "Unable to find com.verba.model.Extension with id 56"
    r"|\b(?:could\s*n[o']?t|can\s*n[o']?t|can't|unable\s+to|failed\s+to)\s+(?:find|locate)\s+(?:the\s+)?"
    rf"(?:[\w$]+\.)*extensions?\b{_NOT_ANOTHER}"
    # a Java exception named for it: com.verba.web.extension.ExtensionNotFoundException, NoSuchExtensionException
    r"|\b(?:[\w$]+\.)*(?:extension(?:notfound|doesnotexist|notexists?)|nosuchextension|"
    r"unknownextension|non-?existentextension)(?:exception|error|fault)?\b",
    re.IGNORECASE,
)
# A status code named for it (undocumented): ERROR_EXTENSION_NOT_FOUND, NO_SUCH_EXTENSION...
_EXTENSION_ABSENT_CODE = re.compile(r"EXTENSION_?(?:NOT_?FOUND|DOES_?NOT_?EXIST|NOT_?EXISTS?)|NO_?SUCH_?EXTENSION|"
                                    r"UNKNOWN_?EXTENSION", re.IGNORECASE)
# A status code named for something else's absence: ERROR_USER_NOT_FOUND...
_OTHER_CODE = re.compile(rf"(?:^|_)(?:{_OTHER})(?:_|$)", re.IGNORECASE)
# Generic not-found exceptions that name no entity (javax.persistence.EntityNotFoundException): the rest decides.
_GENERIC = re.compile(r"\b(?:[\w$]+\.)*(?:entity|object|resource)notfound(?:exception|error)?\b", re.IGNORECASE)
# Any not-found phrase: one left once the extension's are taken out is about something else.
_ANY_ABSENT = re.compile(
    r"not\s*found|n[o']?t\s+be\s+found|does\s*n[o']?t\s*exist|not\s*exists?|no\s+longer\s+exists?|"
    r"\bno\s*such\b|\bno\s+[\w.-]+\s+(?:was\s+|were\s+)?found|"
    r"(?:could\s*n[o']?t|can\s*n[o']?t|can't|unable\s+to|failed\s+to)\s+(?:find|locate)|"
    rf"\b(?:unknown|missing)\s+(?:{_OTHER})\b|\b(?:{_OTHER})\s+(?:is\s+|was\s+)?missing\b",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class Status:
    code: str
    message: str | None = None

    def check(self, operation: str) -> None:
        if self.code != OK:
            raise VerbaStatusError(self.code, self.message, operation)


def says_extension_absent(status: Status) -> bool:
    """Whether a non-OK status means "no such extension": the one place that decides it.

    The vendor documents no not-found code. A missing extension is answered (by getExtension or
    updateExtension) with ERROR_GENERAL, ERROR_ILLEGAL_ARGUMENT or an undocumented code named for absence
    (ERROR_NOT_FOUND) whose message says that the extension itself is not found or does not exist ("Extension
    0000:+1… not found", "No extension found", "Could not find extension …",
    com.verba.web.extension.ExtensionNotFoundException), or with a code named for it (ERROR_EXTENSION_NOT_FOUND).
    It is not absence with any other code (ERROR_DATABASE, ERROR_SERVICE_UNAVAILABLE...), when the message does not
    say so, when it says Verba is failing ("service starting", "could not be found in time", "replica lagging"), or
    when the message or code also says something else is not found ("Extension lookup failed, linked user record
    not found", "Unknown extension type", ERROR_USER_NOT_FOUND): such an answer is unclear (for getExtension an
    ERROR_GENERAL is then cross-checked, see VerbaClient.get_extension; any other stays an error with its bounded
    retries).
    """
    if status.code not in (GENERAL, ILLEGAL_ARGUMENT) and not _ABSENCE_CODE.search(status.code):
        return False
    if _OTHER_CODE.search(status.code):
        return False
    message = status.message or ""
    if _FAILING.search(message):
        return False
    if not (_EXTENSION_ABSENT.search(message) or _EXTENSION_ABSENT_CODE.search(status.code)):
        return False
    rest = _GENERIC.sub(" ", _EXTENSION_ABSENT.sub(" ", message))
    return _ANY_ABSENT.search(rest) is None


# A status code as the vendor writes them (OK, ERROR_GENERAL…): anything else is not a status but garbage.
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,79}")
MESSAGE_LIMIT = 500


def read_status(value: Any, operation: str) -> Status:
    """Read the status wherever the vendor's shapes put it.

    Documented: return/statusCode (extension writes, releaseToken) and return/status/statusCode (the
    others); the vendor uses either shape, so both are read for every operation, the documented one
    first. The shape the WSDL does not give an operation reaches here as raw XML (the client parses
    with zeep's strict=False, which keeps unknown elements in `_raw_elements`). `value` may also be an
    extension write's <return> element, which zeep does not read: its documented shape is read first.
    The message is made one line (vendor messages can hold Java stack traces) of at most MESSAGE_LIMIT
    characters.
    """
    code = None
    holder: Any = None
    raw = isinstance(value, etree._Element)  # an answer's <return> element, not read by zeep
    for holder in (value, _named(value, "status")) if raw else (field(value, "status"), value, _raw(value, "status")):
        code = _child(holder, "statusCode")
        if code is not None:
            break
    if code is None:
        raise VerbaMalformedResponse(
            f"{operation} answered no statusCode (missing or empty); check that target.url points at Verba "
            "Provisioning API v2"
        )
    if not isinstance(code, str) or not _CODE.fullmatch(code.strip()):
        shown = one_line(code if isinstance(code, str) else etree.tostring(code, encoding="unicode"), 60)
        raise VerbaMalformedResponse(f"{operation} answered a statusCode that is not a status code: {shown!r}")
    message = _child(holder, "message")
    return Status(code.strip(), one_line(message, MESSAGE_LIMIT) if isinstance(message, str) else None)


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` on one line, whitespace runs made one space, cut to `limit` characters (ending "…")."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _child(holder: Any, name: str) -> Any:
    """A child of a zeep value or of a raw element: the zeep field, else the raw element of that name."""
    if holder is None:
        return None
    if isinstance(holder, etree._Element):
        return _named(holder, name)
    found = field(holder, name)
    return found if found is not None else _raw(holder, name)


def _raw(value: Any, name: str) -> Any:
    """An element the WSDL does not list in this value, which zeep kept as raw XML."""
    return _named(field(value, "_raw_elements") or (), name)


def _named(elements: Any, name: str) -> Any:
    """The first element of that local name: its text when it has no children, else the element."""
    element = element_named(elements, name)
    if element is None:
        return None
    return element.text if len(element) == 0 else element


def element_named(elements: Any, name: str) -> Any:
    """The first element of that local name among `elements` (an element's children, or a list), or None."""
    for element in elements:
        if (
            isinstance(element, etree._Element)
            and isinstance(element.tag, str)
            and etree.QName(element).localname == name
        ):
            return element
    return None


def field(value: Any, name: str) -> Any:
    """A field of a zeep value, or None when the value is missing or has no such field."""
    try:
        return value[name]
    except (KeyError, TypeError, IndexError):
        return None
