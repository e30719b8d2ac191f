"""Store backends for tests: `store_opener` opens fresh stores of each backend in BACKENDS.

To add a backend, write a factory `(request, tmp_path) -> opener` (an opener returns a new,
unmigrated store on the same fresh database (or schema) each time it is called) and list it in BACKENDS.
The PostgreSQL backend imports connector.store.postgres (and so psycopg) only when a test uses it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from connector.store import Store
from connector.store.sqlite import SQLiteStore

Opener = Callable[[], Store]


def sqlite_backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Opener:
    return lambda: SQLiteStore(str(tmp_path / "store" / "connector.db"))


def postgres_backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Opener:
    from connector.store.postgres import PostgresStore  # psycopg, only for the tests that use it

    server = request.getfixturevalue("postgres_server")
    dsn = server.create_schema()
    return lambda: PostgresStore(dsn)


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, pathlib.Path], Opener]] = {
    "sqlite": sqlite_backend,
    "postgres": postgres_backend,
}


@pytest.fixture
def sqlite_store(tmp_path: pathlib.Path) -> Iterator[Store]:
    """A migrated SQLite store of its own, closed after the test: for tests of what lies above the store."""
    opened = SQLiteStore(str(tmp_path / "store" / "connector.db"))
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture(params=sorted(BACKENDS))
def store_opener(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Opener]:
    """Opens migrated stores on one fresh database of the backend; closes them all at the end."""
    opener = BACKENDS[request.param](request, tmp_path)
    opened: list[Store] = []

    def open_migrated() -> Store:
        store = opener()
        store.migrate()
        opened.append(store)
        return store

    yield open_migrated
    for store in opened:
        store.close()
