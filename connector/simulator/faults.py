"""Injected faults: rules applied in order to matching calls; the first live match wins.

A rule fails the call with `http_status` (a plain-text body, not SOAP, unless `body` is
given), `body` (this exact answer, HTTP 200 unless `http_status`), `malformed` (a cut-off
XML answer) or `status` (+ `message`), after `latency_ms`, with `headers` added to the
answer (e.g. Retry-After, Location); a rule with only `latency_ms` delays the call and lets
it run, and one with `trickle_ms` lets it run and sends its answer a few bytes at a time,
waiting that long between pieces. A failed call never changes state.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

RULE_KEYS = ("operation", "status", "message", "http_status", "body", "latency_ms", "malformed", "times", "headers",
             "trickle_ms")


@dataclasses.dataclass
class FaultRule:
    operation: str = "*"
    status: str | None = None
    message: str | None = None
    http_status: int | None = None
    body: str | None = None
    latency_ms: float = 0.0
    malformed: bool = False
    times: int | None = None  # None: every matching call
    headers: dict[str, str] | None = None
    trickle_ms: float = 0.0

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError(f"a fault rule is a JSON object with keys {', '.join(RULE_KEYS)}, got {data!r}")
        unknown = set(data) - set(RULE_KEYS)
        if unknown:
            raise ValueError(f"unknown fault rule keys {sorted(unknown)}; use {', '.join(RULE_KEYS)}")
        rule = cls(**data)
        if not rule.fails and not rule.latency_ms and not rule.trickle_ms:
            raise ValueError("a fault rule needs at least one of status, http_status, body, malformed, latency_ms "
                             "or trickle_ms")
        if rule.headers is not None and not (isinstance(rule.headers, dict)
                                             and all(isinstance(v, str) for v in rule.headers.values())):
            raise ValueError(f"headers must be an object of header names and string values, got {rule.headers!r}")
        if not isinstance(rule.trickle_ms, (int, float)) or rule.trickle_ms < 0:
            raise ValueError(f"trickle_ms must be a number >= 0, got {rule.trickle_ms!r}")
        if rule.http_status is not None and not (isinstance(rule.http_status, int) and 200 <= rule.http_status <= 599):
            raise ValueError(f"http_status must be an HTTP status code, got {rule.http_status!r}")
        if rule.times is not None and (not isinstance(rule.times, int) or rule.times < 1):
            raise ValueError(f"times must be a positive integer or left out (unlimited), got {rule.times!r}")
        if not isinstance(rule.latency_ms, (int, float)) or rule.latency_ms < 0:
            raise ValueError(f"latency_ms must be a number >= 0, got {rule.latency_ms!r}")
        return rule

    @property
    def fails(self) -> bool:
        return self.http_status is not None or self.body is not None or self.malformed or self.status is not None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, operation: str) -> FaultRule | None:
        """The first rule for this operation, counting one use of it."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.operation in ("*", operation):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]
