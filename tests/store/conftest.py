"""The `store` fixture runs every conformance test once per backend.

To add a backend, write a factory `(request, tmp_path) -> opener` (an opener returns a new,
unmigrated store on the same fresh database (or schema) each time it is called) and list it in BACKENDS.
"""

from __future__ import annotations

import pathlib
from typing import Callable, Iterator

import pytest

from connector.store import Store
from connector.store.postgres import PostgresStore
from connector.store.sqlite import SQLiteStore
from tests.postgres_server import PostgresServer

Opener = Callable[[], Store]


def sqlite_backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Opener:
    return lambda: SQLiteStore(str(tmp_path / "store" / "connector.db"))


def postgres_backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Opener:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    dsn = server.create_schema()
    return lambda: PostgresStore(dsn)


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, pathlib.Path], Opener]] = {
    "sqlite": sqlite_backend,
    "postgres": postgres_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def store_opener(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Opener]:
    """Opens stores on one fresh database of the backend; closes them all at the end."""
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


@pytest.fixture
def store(store_opener: Opener) -> Store:
    return store_opener()
