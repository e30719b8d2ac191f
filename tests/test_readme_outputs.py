"""README example outputs that tests/test_readme.py cannot run as printed (they need a real Verba), held to what
the connector prints for the same mistake against the simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.plugins.simulator import Simulator, free_port

ROOT = Path(__file__).resolve().parent
README = (ROOT.parent / "README.md").read_text()
README_PASSWORD_FILE = "/etc/connector/verba-password"


def readme_line(start: str) -> str:
    [line] = [line.strip() for line in README.splitlines() if line.strip().startswith(start)]
    return line


def test_a_wrong_verba_password_is_reported_as_the_readme_shows(tmp_path: Path, simulator: Simulator) -> None:
    password = tmp_path / "verba-password"
    password.write_text("not-the-password\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
                      f'[target]\nurl = "{simulator.url}"\neid = "0000"\nlogin = "connector"\n'
                      f'password_file = "{password}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n')

    result = subprocess.run([sys.executable, "-m", "connector.cli", "validate-config", "--connect", "--config",
                             str(config)], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 1, result.stdout + result.stderr
    printed = [line.strip() for line in result.stdout.splitlines() if "verba requestToken" in line]
    shown = readme_line("FAILED  verba requestToken:").replace(README_PASSWORD_FILE, str(password))
    # What Verba answered, word for word; the advice after it may be worded anew.
    assert [line.split("; ")[0] for line in printed] == [shown.split("; ")[0]]


def test_the_schema_version_the_readme_shows_is_this_connectors() -> None:
    from connector.store.queries import migrations

    shown = readme_line("ok      store postgresql://")
    assert f"schema version {len(migrations('postgres'))} (this connector's)" in shown, shown
