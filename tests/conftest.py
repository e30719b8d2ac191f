"""Fixtures shared by several test folders are plugins in tests/plugins, registered here only.

Neither this file nor the plugins import psycopg: only the tests that use PostgreSQL need it
(tests/test_isolation.py runs tests/unit and tests/mapping without it).
"""

from __future__ import annotations

pytest_plugins = [
    "tests.plugins.postgres",  # postgres_server: the private PostgreSQL cluster, once per session
    "tests.plugins.stores",  # store_opener: fresh stores of each backend (sqlite, postgres)
    "tests.plugins.simulator",  # simulator (a uvicorn subprocess), make_config, deliverer, seed_*
]
