"""The call log: one entry per SOAP operation the simulator answered."""

from __future__ import annotations

import threading
import time
from typing import Any

from connector.simulator import soap
from connector.simulator.soap import Call, children, text

EXTENSION_WRITES = frozenset({"createExtension", "updateExtension"})


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._seq = 0

    def record(
        self, call: Call, status: str, token_valid: bool | None, *, started: float | None = None,
        agent: str | None = None,
    ) -> None:
        """Log one answered call: `started` is when the request arrived (default: now), `at` is now,
        when it is answered, after any injected latency; `agent` is its User-Agent header."""
        entry = summarize(call)
        with self._lock:
            self._seq += 1
            at = time.time()
            entry.update(
                seq=self._seq, started=at if started is None else started, at=at, operation=call.operation,
                status=status, token_valid=token_valid, agent=agent,
            )
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)


def summarize(call: Call) -> dict[str, Any]:
    """What the request said about the extension (listUsers: the filter's extension and loginName); flags and
    ids as sent when they do not parse."""
    summary: dict[str, Any] = dict.fromkeys(
        ("extension", "user_id", "eid", "recordingMode", "voice", "im", "video", "screenCaptureEnabled", "loginName")
    )
    if call.operation in EXTENSION_WRITES:
        fields = children(call.fields.get("extension"))
        summary["extension"] = text(fields, "extension")
        summary["eid"] = text(fields, "eid")
        summary["recordingMode"] = text(fields, "recordingMode")
        summary["user_id"] = _user_id(text(children(fields.get("user")), "id"))
        for name in ("voice", "im", "video", "screenCaptureEnabled"):
            summary[name] = _flag(text(fields, name))
    elif call.operation == "getExtension":
        summary["extension"] = text(call.fields, "extension")
        summary["eid"] = text(children(call.fields.get("environmentFilter")), "eid")
    elif call.operation == "listUsers":
        criteria = children(call.fields.get("filter"))
        summary["extension"] = text(criteria, "extension")
        summary["loginName"] = text(criteria, "loginName")
        summary["eid"] = text(children(criteria.get("environmentFilter")), "eid")
    return summary


def _user_id(raw: str | None) -> int | str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


def _flag(raw: str | None) -> bool | str | None:
    try:
        return soap.boolean(raw)
    except ValueError:
        return raw
