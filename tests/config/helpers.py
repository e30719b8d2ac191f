"""Config test helpers: a config file on a SQLite store with the tables given, and the problems loading it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import ConfigError, load_config


def config_with(tmp_path: Path, text: str) -> Path:
    """tmp_path/connector.toml: a [store] on tmp_path/c.db, then `text` (more TOML tables)."""
    path = tmp_path / "connector.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n' + text)
    return path


def problems(path: Path) -> list[str]:
    """The lines of the ConfigError that loading the config at `path` raises (the test fails if it loads)."""
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    return str(refused.value).splitlines()
