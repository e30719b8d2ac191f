"""What went over the wire: the envelopes a thread sends while capturing, secrets masked."""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, Iterator

from lxml import etree
from zeep import Plugin

_SECRETS = re.compile(r"(<(?:[\w.-]+:)?(?:token|password)\b[^>]*>)[^<]*(</)")


def redacted(envelope: etree._Element) -> str:
    return _SECRETS.sub(r"\1***\2", etree.tostring(envelope, encoding="unicode"))


class SentLog(Plugin):
    """Records, per thread and only inside `capture()`, each envelope sent (token and password masked)."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[dict[str, Any]]]:
        sent: list[dict[str, Any]] = []
        self._local.sent = sent
        try:
            yield sent
        finally:
            self._local.sent = None

    def egress(self, envelope: Any, http_headers: dict, operation: Any, binding_options: dict) -> tuple[Any, dict]:
        sent = getattr(self._local, "sent", None)
        if sent is not None:
            sent.append({"operation": operation.name, "envelope": redacted(envelope)})
        return envelope, http_headers

    def answered(self, operation: str, status: str) -> None:
        """Note the answer of the call this thread sent last."""
        sent = getattr(self._local, "sent", None)
        if sent and sent[-1]["operation"] == operation and "status" not in sent[-1]:
            sent[-1]["status"] = status
