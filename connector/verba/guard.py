"""The wire-level guard: no extension leaves without <user><id>.

Verba's updateExtension silently removes the extension-user link when <user> is missing
(vendor comment in the UpdateExtension v2 example). The guard reads the envelope that is
about to be sent, not the Python call, so it also catches a bug anywhere upstream.
"""

from __future__ import annotations

from typing import Any, cast

from lxml import etree
from zeep import Plugin

from connector.verba.errors import MissingUserIdError

EXTENSION_WRITES = frozenset({"createExtension", "updateExtension"})  # each must carry <user><id>

_extensions = etree.XPath("./*[local-name()='Body']/*/*[local-name()='extension']")
_user_ids = etree.XPath("./*[local-name()='user']/*[local-name()='id']")
_numbers = etree.XPath("./*[local-name()='extension']")


class UserIdGuard(Plugin):
    """Refuses createExtension / updateExtension envelopes whose extension has no non-empty user/id."""

    def egress(
        self, envelope: Any, http_headers: dict[str, str], operation: Any, binding_options: dict[str, Any]
    ) -> tuple[Any, dict[str, str]]:
        if operation.name in EXTENSION_WRITES:
            check_user_ids(envelope, operation.name)
        return envelope, http_headers


def check_user_ids(envelope: etree._Element, operation: str) -> None:
    extensions = _elements(_extensions, envelope)
    if not extensions:
        raise MissingUserIdError(f"refusing to send {operation} without an <extension> element")
    for extension in extensions:
        if not any((node.text or "").strip() for node in _elements(_user_ids, extension)):
            numbers = _elements(_numbers, extension)
            number = numbers[0].text if numbers else None
            raise MissingUserIdError(
                f"refusing to send {operation} for extension {number!r} without <user><id>: Verba would unlink "
                "the extension from its user; resolve the Verba user id first (listUsers by login name)"
            )


def _elements(path: etree.XPath, node: etree._Element) -> list[etree._Element]:
    """What `path` selects: always elements, as its expression selects nothing else."""
    return cast(list[etree._Element], path(node))
