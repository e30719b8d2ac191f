"""The status of a Verba answer, read from either documented shape."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from connector.target.verba.errors import VerbaMalformedResponse, VerbaStatusError

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


def read_status(value: Any, operation: str) -> Status:
    """Read return/statusCode (extension writes, releaseToken) or return/status/statusCode (the others)."""
    holder = field(value, "status")
    if holder is None:
        holder = value
    code = field(holder, "statusCode")
    if not isinstance(code, str) or not code.strip():
        raise VerbaMalformedResponse(
            f"{operation} answered without a statusCode; check that target.url points at Verba Provisioning API v2"
        )
    return Status(code.strip(), field(holder, "message"))


def field(value: Any, name: str) -> Any:
    """A field of a zeep value, or None when the value is missing or has no such field."""
    try:
        return value[name]
    except (KeyError, TypeError, IndexError):
        return None
