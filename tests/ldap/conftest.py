"""LDAP fixtures: one private slapd and one Samba AD DC per session, a fresh subtree and SQLite store per test.

The simulator fixtures of tests/plugins/simulator.py serve the end-to-end tests; helpers are in tests/ldap/helpers.py.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from connector.config import Config, LdapConfig, parse_config
from connector.delivery.worker import Deliverer
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.sources.ldap.watcher import RunResult, Watcher
from connector.store import Store
from connector.store.sqlite import SQLiteStore
from tests.ldap.helpers import events_of, slapd_section
from tests.ldap.samba_server import SambaDC
from tests.ldap.samba_server import ServerUnavailable as SambaUnavailable
from tests.ldap.slapd_server import ServerUnavailable, SlapdServer
from tests.plugins.simulator import Simulator, drain

_subtrees = itertools.count(1)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "samba" in getattr(item, "fixturenames", ()):
            # Samba's LDAP port is fixed (389), so one DC serves the whole run: under pytest-xdist
            # (`make test` runs two workers with --dist loadgroup) every AD test goes to the same worker.
            item.add_marker(pytest.mark.xdist_group("samba"))


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
    """An [ldap.corp] section for the test's subtree, bound as the admin; keywords override keys (None drops one)."""

    def make(**keys: Any) -> LdapConfig:
        section = {**slapd_section(tmp_path, slapd.url, base), "dialect": "openldap", "overlap_seconds": 5,
                   "guard_max_share": 1.0, **keys}
        section = {key: value for key, value in section.items() if value is not None}
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


# --- Samba AD DC ----------------------------------------------------------
@pytest.fixture(scope="session")
def samba() -> Iterator[SambaDC]:
    """One DC for the session (its ports are fixed): tests make their own OU and unique names."""
    try:
        dc = SambaDC.start()
    except SambaUnavailable as error:
        unavailable(error)
    with dc:
        yield dc


@pytest.fixture
def ad_admin(samba: SambaDC) -> Iterator[ldap3.Connection]:
    """An ldap3 connection bound as the DC's Administrator, unbound after the test."""
    conn = samba.admin()
    yield conn
    conn.unbind()


# --- end to end: directory -> watcher -> store -> deliverer -> simulator -----
class Pipeline:
    """[ldap.corp] of `config` watched into its store and pushed to the simulator by one deliverer."""

    def __init__(self, config: Config, simulator: Simulator) -> None:
        self.simulator = simulator
        self.store = open_configured_store(config, create=True)
        self.watcher = Watcher(self.store, config.ldap["corp"])
        self.client = open_client(config)
        self.deliverer = Deliverer(self.store, self.client, load_mapping(config.mapping_file), config.delivery)
        self.last: RunResult | None = None

    def poll(self, *, full: bool = False) -> list[UserChange]:
        """One watcher run, then delivery until nothing is pending; the changes the run stored."""
        mark = max((e.id for e in events_of(self.store)), default=0)
        self.last = self.watcher.run(full=full)
        drain(self.deliverer)
        return [e.change for e in events_of(self.store, mark)]

    def extension(self, number: str) -> dict[str, Any]:
        """The extension as Verba (the simulator) holds it now."""
        return self.simulator.extensions()[number]

    def close(self) -> None:
        self.watcher.close()
        self.client.close()
        self.store.close()


@pytest.fixture
def pipeline(make_config: Callable[..., Config], simulator: Simulator) -> Iterator[Callable[..., Pipeline]]:
    """pipeline(mapping, section): a Pipeline for an [ldap.corp] section and a mapping file."""
    opened: list[Pipeline] = []

    def make(mapping: str, section: dict[str, Any]) -> Pipeline:
        opened.append(Pipeline(make_config(mapping, ldap={"corp": section}), simulator))
        return opened[-1]

    yield make
    for each in opened:
        each.close()
