"""The `postgres_server` session fixture: one private PostgreSQL cluster, started on first use.

Does not import psycopg: tests that never ask for a PostgreSQL schema run without it installed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.postgres_server import PostgresServer, ServerUnavailable


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One cluster for the session; skipped without server binaries, except in CI (where CI is set)."""
    started = time.perf_counter()
    try:
        server = PostgresServer.start()
    except ServerUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests, but {error}")
        pytest.skip(str(error))
    print(f"\nprivate PostgreSQL cluster on port {server.port} ready in {time.perf_counter() - started:.2f} s")
    with server:
        yield server
