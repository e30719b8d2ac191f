"""The sample systemd unit, config/connector@.service, as `systemd-analyze verify` sees it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "config" / "connector@.service"
INSTALLED = "/opt/connector/.venv/bin/connector"


def test_the_sample_unit_verifies_cleanly(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing: install the Debian package systemd (it is in .ci/apt-packages)")
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} run --config /etc/connector/%i.toml" in text
    # verify checks that ExecStart's program exists: this test's connector stands in for /opt/connector's.
    connector = Path(sys.executable).parent / "connector"
    unit = tmp_path / "connector@a.service"
    unit.write_text(text.replace(INSTALLED, str(connector if connector.exists() else shutil.which("true"))))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "System has not been booted with systemd" in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()}")
    # verify exits 0 on mere warnings (an unknown key, a bad value it ignores): any output is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_verify_does_catch_a_broken_unit(tmp_path):
    """So that the test above would see a mistake: a misspelt key is reported."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing: install the Debian package systemd (it is in .ci/apt-packages)")
    unit = tmp_path / "connector@a.service"
    unit.write_text(UNIT.read_text().replace("ExecStart=/opt/connector/.venv/bin/connector", "ExecStart=/bin/true")
                    .replace("Restart=", "Restrat="))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'Restrat'" in result.stdout + result.stderr


def unit_settings() -> dict[str, list[str]]:
    """The [Service] section's settings, each key's values in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_keeps_the_store_private_and_everything_else_read_only():
    service = unit_settings()
    state = f"/var/lib/{service['StateDirectory'][0]}"
    assert service["UMask"] == ["0077"] and service["StateDirectoryMode"] == ["0700"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["WorkingDirectory"] == [state] and service["ReadWritePaths"] == [state]
