"""Fixtures shared by every suite: the private PostgreSQL cluster (started once per session)."""

from __future__ import annotations

from tests.postgres_server import postgres_server  # noqa: F401 (a session fixture)
