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

# "Extension not found", "The extension does not exist in the database: 0000:+1…", "No such extension"…:
# the not-found phrase must be about the extension (in the same clause), not "…extension +1…: user 7 not found".
_NOT_FOUND = re.compile(
    r"\bextension\b[^;:]{0,80}?\b(?:not\s+found|does\s*n[o']?t\s+exist|not\s+exist)|\b(?:no\s+such|unknown)\s+extension\b",
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
    updateExtension) as ERROR_GENERAL or ERROR_ILLEGAL_ARGUMENT whose message names the extension
    and says it is not found or does not exist. Any other message is not absence (for getExtension
    an ERROR_GENERAL is then ambiguous; see VerbaClient.get_extension).
    """
    return status.code in (GENERAL, ILLEGAL_ARGUMENT) and _NOT_FOUND.search(status.message or "") is not None


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
