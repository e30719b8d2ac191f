"""The store's SQL, read from named blocks in `sql/*.sql` (procrastinate's `queries.sql` layout).

A block starts with a line `-- name --`; comment lines under it are its documentation. Every
dialect gets `queries.sql` plus its own file (`sqlite.sql` or `postgres.sql`, which define the
same names), with psycopg's placeholders turned into the dialect's by `placeholders`.
"""

from __future__ import annotations

import functools
import pathlib
import re

SQL = pathlib.Path(__file__).parent / "sql"
MIGRATIONS = pathlib.Path(__file__).parent / "migrations"

_BLOCK = re.compile(r"^-- (\w+) --$", re.MULTILINE)
_PSYCOPG_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def parse(text: str) -> dict[str, str]:
    """Named blocks of `text`, without their comment lines: {"name": "SELECT ..."}."""
    parts = _BLOCK.split(text)[1:]  # [name, body, name, body, ...]
    blocks = {}
    for name, body in zip(parts[::2], parts[1::2], strict=True):
        assert name not in blocks, f"the query {name} is defined twice"
        blocks[name] = "\n".join(line for line in body.strip().splitlines() if not line.startswith("--")).strip()
    return blocks


def named(dialect: str) -> dict[str, str]:
    """Every query of `dialect` ("sqlite" or "postgres") by name, in the dialect's placeholders."""
    shared = parse((SQL / "queries.sql").read_text())
    own = parse((SQL / f"{dialect}.sql").read_text())
    assert not set(shared) & set(own), f"{dialect}.sql redefines shared queries: {sorted(set(shared) & set(own))}"
    return {name: placeholders(dialect, text) for name, text in {**shared, **own}.items()}


@functools.lru_cache(maxsize=512)
def placeholders(dialect: str, text: str) -> str:
    """`text` written with psycopg's %s, %(name)s and %% in `dialect`'s style (SQLite: ?, :name, %)."""
    if dialect == "postgres":
        return text
    return _PSYCOPG_PLACEHOLDER.sub(lambda m: f":{m[1]}" if m[1] else "?" if m[0] == "%s" else "%", text)


def migrations(dialect: str) -> list[tuple[int, list[str]]]:
    """(version, statements) of every migration of `dialect`, oldest first.

    A version is the files `NNNN_what.sql` of that number: the one in `migrations/` (DDL both dialects
    read alike) first, then the one in `migrations/<dialect>/`. Statements end with a `;` at the end of a line.
    """
    versions: dict[int, list[str]] = {}
    for path in [*sorted(MIGRATIONS.glob("*.sql")), *sorted((MIGRATIONS / dialect).glob("*.sql"))]:
        text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("--"))
        statements = [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]
        versions.setdefault(int(path.name[:4]), []).extend(statements)
    assert sorted(versions) == list(range(1, len(versions) + 1)), f"{dialect} migrations skip a number"
    return sorted(versions.items())
