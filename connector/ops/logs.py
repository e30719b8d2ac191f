"""Logs: JSON lines (or readable lines on a terminal), a correlation id per event, secrets masked.

The correlation id of an event is `evt-<id>`; it is bound with `correlation(...)` while an
event is accepted, mapped and pushed, so every line about it carries the same id.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator

MASK = "***"
MAX_REGISTERED = 64  # secrets learnt at run time (Verba tokens), newest kept
_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def correlation_id(event_ids: Iterable[int]) -> str:
    """One id for a batch of coalesced events: that of the newest, which is the state pushed."""
    return f"evt-{max(event_ids)}"


@contextlib.contextmanager
def correlation(value: str) -> Iterator[None]:
    token = _correlation.set(value)
    try:
        yield
    finally:
        _correlation.reset(token)


class _Registry:
    """Secrets the process learns while it runs (the token requestToken answers): every SecretFilter masks
    them as well as its configured ones. Bounded: the newest MAX_REGISTERED are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, None] = {}  # insertion-ordered set
        self.snapshot: tuple[str, ...] = ()

    def add(self, secret: str) -> None:
        with self._lock:
            if not secret or secret in self._secrets:
                return
            self._secrets[secret] = None
            while len(self._secrets) > MAX_REGISTERED:
                del self._secrets[next(iter(self._secrets))]
            self.snapshot = tuple(self._secrets)


_registry = _Registry()


def register_secret(secret: str) -> None:
    """Mask this value in every log line from now on, whichever handler's SecretFilter sees it."""
    _registry.add(secret)


class SecretFilter(logging.Filter):
    """Masks every known secret (configured, or registered at run time with `register_secret`) in the
    message, the traceback and the string extra fields, whatever logged it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.configured = frozenset(s for s in secrets if s)
        self._all: list[str] = sorted(self.configured, key=len, reverse=True)
        self._seen: tuple[str, ...] | None = None

    @property
    def secrets(self) -> list[str]:
        """Configured and registered secrets, longest first (a secret inside another is masked with it)."""
        registered = _registry.snapshot
        if registered is self._seen:
            return self._all
        merged = sorted(self.configured.union(registered), key=len, reverse=True)
        self._all, self._seen = merged, registered
        return merged

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.mask(value))
        record.correlation_id = _correlation.get()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line; `instance` ([instance] name) is in every line, for logs of several instances
    gathered in one place."""

    def __init__(self, instance: str | None = None) -> None:
        super().__init__()
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.instance is not None:
            line["instance"] = self.instance
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and v is not None})
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


class ReadableFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        correlation_id = getattr(record, "correlation_id", None)
        return f"{text} [{correlation_id}]" if correlation_id else text


def setup_logging(secrets: Iterable[str], *, json_lines: bool | None = None, level: int = logging.INFO,
                  instance: str | None = None) -> bool:
    """Log to stderr: JSON lines (naming `instance` in each) unless stderr is a terminal (or `json_lines` says
    otherwise). Whether the lines are JSON."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler.setFormatter(JSONFormatter(instance) if use_json else ReadableFormatter())
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "zeep", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return use_json
