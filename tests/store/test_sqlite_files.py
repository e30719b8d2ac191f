"""The files a SQLite store lives in: its directory and its instance lock file, as a new install finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.store import StoreError, StoreMissing
from connector.store.sqlite import SQLiteStore
from tests.plugins.simulator import free_port


def connector(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[store]\nurl = "{url}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                    f'[scim]\nlisten = "127.0.0.1:{free_port()}"\n[simulator]\nlisten = "127.0.0.1:{free_port()}"\n')
    return path


# --- the instance lock file ------------------------------------------------------------------


def test_a_lock_file_that_cannot_be_opened_names_it_and_the_fix(tmp_path):
    """A directory where the lock file should be: open() fails even for root, as another user's file fails for us."""
    path = tmp_path / "connector.db"
    lock = tmp_path / "connector.db.instance"
    lock.mkdir()
    with SQLiteStore(str(path)) as store:
        store.migrate()
        with pytest.raises(StoreError) as error:
            store.start_instance()
    message = str(error.value)
    assert str(lock) in message and str(path) in message
    assert "sudo chown" in message and "delete it" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens a file whatever its mode")
def test_a_lock_file_of_another_user_names_it_and_the_fix(tmp_path):
    path = tmp_path / "connector.db"
    lock = tmp_path / "connector.db.instance"
    lock.write_text("123")
    lock.chmod(0)
    try:
        with SQLiteStore(str(path)) as store, pytest.raises(StoreError, match="Permission denied") as error:
            store.start_instance()
    finally:
        lock.chmod(0o600)
    assert str(lock) in str(error.value) and "sudo chown" in str(error.value)


def test_connector_run_with_an_unusable_lock_file_is_an_error_without_a_traceback(tmp_path):
    config = config_file(tmp_path, f"sqlite:///{tmp_path / 'c.db'}")
    assert connector("db", "upgrade", "--config", str(config)).returncode == 0
    (tmp_path / "c.db.instance").mkdir()

    result = connector("run", "--config", str(config))

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot open {tmp_path / 'c.db.instance'}" in result.stderr and "sudo chown" in result.stderr


# --- the store's directory -------------------------------------------------------------------


def test_the_store_directory_is_made_when_its_parent_exists(tmp_path):
    path = tmp_path / "var" / "connector.db"
    with SQLiteStore(str(path)) as store:
        store.migrate()
    assert path.is_file()


def test_a_store_path_whose_parent_directory_is_missing_is_refused_and_nothing_is_made(tmp_path):
    path = tmp_path / "no" / "such" / "x.db"

    with pytest.raises(StoreError) as error:
        SQLiteStore(str(path))

    message = str(error.value)
    assert f"the directory {path.parent} for the store {path} does not exist" in message
    assert "check [store] url for a typo" in message and f"mkdir -p {path.parent}" in message
    assert list(tmp_path.iterdir()) == []


def test_commands_that_create_no_store_tell_a_mistyped_path_from_a_missing_store(tmp_path):
    """validate-config said "none yet: connector run creates it" for a path `connector run` refuses."""
    with pytest.raises(StoreError, match="check \\[store\\] url for a typo"):
        SQLiteStore(str(tmp_path / "no" / "such" / "x.db"), create=False)
    with pytest.raises(StoreMissing):  # `connector run` will make var/ and the store: a first start
        SQLiteStore(str(tmp_path / "var" / "x.db"), create=False)
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_on_a_mistyped_path_creates_nothing(tmp_path):
    config = config_file(tmp_path, f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}")

    result = connector("db", "upgrade", "--config", str(config))

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{tmp_path / 'no' / 'such'}" in result.stderr and "typo" in result.stderr
    assert not (tmp_path / "no").exists()


def test_the_default_relative_store_works_in_a_fresh_directory(tmp_path):
    """`make run` on a fresh clone: the default url sqlite:///var/connector.db, and no var/ yet."""
    config = config_file(tmp_path, "sqlite:///var/connector.db")

    result = connector("db", "upgrade", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "connector.db").is_file()
