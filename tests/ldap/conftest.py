"""LDAP fixtures: one private slapd per session, a fresh subtree and SQLite store per test.

The simulator fixtures of tests/integration are reused for the end-to-end tests.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import ldap3
import pytest

from connector.config import LdapConfig, parse_config
from connector.sources.ldap.watcher import Watcher
from connector.store.base import Store
from connector.store.sqlite import SQLiteStore
from tests.integration.conftest import deliverer, make_config, seed_extensions, seed_users, simulator  # noqa: F401
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD, ServerUnavailable, SlapdServer

_subtrees = itertools.count(1)


def unavailable(error: Exception) -> None:
    """Skip without the server's packages, except in CI (where CI is set), which must run every test."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the LDAP tests, but {error}")
    pytest.skip(str(error))


@pytest.fixture(scope="session")
def slapd() -> Iterator[SlapdServer]:
    try:
        server = SlapdServer.start()
    except ServerUnavailable as error:
        unavailable(error)
    with server:
        yield server


@pytest.fixture
def admin(slapd: SlapdServer) -> Iterator[ldap3.Connection]:
    conn = slapd.admin()
    yield conn
    conn.unbind()


@pytest.fixture
def base(slapd: SlapdServer, admin: ldap3.Connection) -> str:
    """A fresh subtree for this test: ou=tN,dc=example,dc=test with ou=people and ou=groups."""
    return slapd.add_ou(admin, f"t{next(_subtrees)}")


@pytest.fixture
def ldap_config(slapd: SlapdServer, base: str, tmp_path: Path) -> Callable[..., LdapConfig]:
    """An [ldap.corp] section for the test's subtree, bound as the admin; keywords override keys."""
    (tmp_path / "ldap-password").write_text(ADMIN_PASSWORD)

    def make(**keys: Any) -> LdapConfig:
        section = {"url": slapd.url, "dialect": "openldap", "base": base, "bind_dn": ADMIN_DN,
                   "password_file": str(tmp_path / "ldap-password"), "overlap_seconds": 5,
                   "guard_max_share": 1.0, **keys}
        return parse_config({"ldap": {"corp": section}}, str(tmp_path / "connector.toml")).ldap["corp"]

    return make


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = SQLiteStore(str(tmp_path / "ldap.db"))
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def watcher(store: Store, ldap_config: Callable[..., LdapConfig]) -> Iterator[Watcher]:
    opened = Watcher(store, ldap_config())
    yield opened
    opened.close()


def events_of(store: Store, since: int = 0) -> list[Any]:
    """Stored events with id above `since`, oldest first."""
    return sorted((e for e in store.list_events(limit=100_000) if e.id > since), key=lambda e: e.id)
