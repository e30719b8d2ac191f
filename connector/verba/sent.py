"""What went over the wire: the envelopes a thread sends while capturing, secrets masked."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from lxml import etree
from zeep import Plugin

_SECRETS = re.compile(r"(<(?:[\w.-]+:)?(?:token|password)\b[^>]*>)[^<]*(</)")


def redacted(envelope: etree._Element, mask: Callable[[str], str] | None = None) -> str:
    """The envelope as text, <token> and <password> values masked, and `mask` (the client's known
    secrets, wherever they appear) applied to the rest."""
    text = _SECRETS.sub(r"\1***\2", etree.tostring(envelope, encoding="unicode"))
    return mask(text) if mask is not None else text


class SentLog(Plugin):
    """Records, per thread and only inside `capture()`, each envelope sent (token and password masked,
    and every secret `mask` knows); and whether the call this thread started last went out (`went_out`)."""

    def __init__(self, mask: Callable[[str], str] | None = None) -> None:
        self._local = threading.local()
        self._mask = mask

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[dict[str, Any]]]:
        sent: list[dict[str, Any]] = []
        self._local.sent = sent
        try:
            yield sent
        finally:
            self._local.sent = None

    def start(self) -> None:
        """A call begins on this thread: it has not gone out until its envelope is built and handed on."""
        self._local.went_out = False

    @property
    def went_out(self) -> bool:
        """Whether the envelope of the call this thread started last was built, passed the guard and was
        handed to the transport (False: nothing can have reached Verba)."""
        return getattr(self._local, "went_out", False)

    def egress(
        self, envelope: Any, http_headers: dict[str, str], operation: Any, binding_options: dict[str, Any]
    ) -> tuple[Any, dict[str, str]]:
        self._local.went_out = True
        sent = getattr(self._local, "sent", None)
        if sent is not None:
            sent.append({"operation": operation.name, "envelope": redacted(envelope, self._mask)})
        return envelope, http_headers

    def answered(self, operation: str, status: str, message: str | None = None) -> None:
        """Note the answer of the call this thread sent last: its status and Verba's message, if it gave one (one
        line, secrets masked: "Extension not found: +12125550107")."""
        sent = getattr(self._local, "sent", None)
        if sent and sent[-1]["operation"] == operation and "status" not in sent[-1]:
            sent[-1]["status"] = status
            if message:
                sent[-1]["message"] = message
