"""The status of a Verba answer, read from either documented shape."""

from __future__ import annotations

import dataclasses
from typing import Any

from connector.target.verba.errors import VerbaMalformedResponse, VerbaStatusError

OK = "OK"
ALREADY_EXISTS = "ERROR_ALREADY_EXISTS"
UNAUTHORIZED = "ERROR_UNAUTHORIZED"


@dataclasses.dataclass(frozen=True)
class Status:
    code: str
    message: str | None = None

    def check(self, operation: str) -> None:
        if self.code != OK:
            raise VerbaStatusError(self.code, self.message, operation)


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
