"""The `store` fixture runs every conformance test once per backend.

To add a backend, write a factory `(tmp_path) -> opener` (an opener returns a new,
unmigrated store on the same database each time it is called) and list it in BACKENDS.
"""

from __future__ import annotations

import pathlib
from typing import Callable, Iterator

import pytest

from connector.store import Store
from connector.store.sqlite import SQLiteStore

Opener = Callable[[], Store]


def sqlite_backend(tmp_path: pathlib.Path) -> Opener:
    return lambda: SQLiteStore(str(tmp_path / "store" / "connector.db"))


BACKENDS: dict[str, Callable[[pathlib.Path], Opener]] = {"sqlite": sqlite_backend}


@pytest.fixture(params=sorted(BACKENDS))
def store_opener(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Opener]:
    """Opens stores on one fresh database of the backend; closes them all at the end."""
    opened: list[Store] = []

    def open_migrated() -> Store:
        store = BACKENDS[request.param](tmp_path)()
        store.migrate()
        opened.append(store)
        return store

    yield open_migrated
    for store in opened:
        store.close()


@pytest.fixture
def store(store_opener: Opener) -> Store:
    return store_opener()
