"""Durable state behind one interface; `open_store(url)` picks the backend."""

from __future__ import annotations

from connector.store.base import AuditEntry, Claim, EventState, Store, StoredEvent

__all__ = ["AuditEntry", "Claim", "EventState", "Store", "StoredEvent", "open_store"]


def open_store(url: str, *, synchronous: str = "FULL") -> Store:
    """Open the store named by `url`: `sqlite:///relative/path.db` or `sqlite:////absolute/path.db`."""
    if url.startswith("sqlite:///"):
        from connector.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), synchronous=synchronous)
    raise ValueError(f"store url {url!r} is not supported; use sqlite:///path/to/connector.db")
