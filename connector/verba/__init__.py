"""The Verba target: a zeep client for Provisioning API v2 with the shipped WSDL."""

from __future__ import annotations

from connector.verba.client import VerbaClient
from connector.verba.errors import (
    MissingUserIdError,
    VerbaAuthError,
    VerbaError,
    VerbaHTTPError,
    VerbaMalformedResponse,
    VerbaStatusError,
    VerbaTransportError,
    VerbaUnreachable,
)

__all__ = [
    "MissingUserIdError",
    "VerbaAuthError",
    "VerbaClient",
    "VerbaError",
    "VerbaHTTPError",
    "VerbaMalformedResponse",
    "VerbaStatusError",
    "VerbaTransportError",
    "VerbaUnreachable",
]
