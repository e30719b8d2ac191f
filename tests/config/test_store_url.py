"""A PostgreSQL password written in [store] url is warned of (validate-config --connect, the log of connector run),
never shown: the README keeps it in ~/.pgpass or PGPASSFILE, as anyone who reads the config reads the url."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli.run import _check_store
from connector.config import load_config
from connector.store import open_store


def config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(f'[store]\nurl = "{store_url}"\n')
    return path


@pytest.mark.parametrize("url, warned", [
    ("postgresql://connector:s3cret@db.example.com:5432/connector", True),
    ("postgresql://connector@db.example.com:5432/connector", False),
    ("sqlite:///var/connector.db", False),
])
def test_only_a_password_in_the_url_is_warned_of(tmp_path: Path, url: str, warned: bool) -> None:
    warnings = load_config(config(tmp_path, url)).store.warnings
    assert bool(warnings) is warned
    assert all("~/.pgpass" in warning and "s3cret" not in warning for warning in warnings)


def test_validate_config_connect_warns_of_it_on_a_reachable_store(tmp_path: Path, postgres_server) -> None:
    url = postgres_server.create_schema()  # the test cluster's url holds its password
    loaded = load_config(config(tmp_path, url))
    [(ok, what, said)] = _check_store(loaded)
    assert ok and said.startswith("none yet: `connector run` creates it") and "; WARNING: the PostgreSQL" in said
    with open_store(url) as store:
        store.migrate()
    [(ok, what, said)] = _check_store(loaded)
    assert ok and "connector-test-password" not in what + said
    assert said.endswith("; WARNING: the PostgreSQL password is written in [store] url, where whoever can read the "
                         "config reads it: take it out and give it to libpq in a file of mode 0600 (~/.pgpass, or "
                         "PGPASSFILE) or in PGPASSWORD"), said
