"""The `connector` command's entry point: a Ctrl-C during start-up ends quietly, like one after it."""

from __future__ import annotations

import builtins
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from connector.__main__ import INTERRUPTED, main

ROOT = Path(__file__).resolve().parents[2]


def test_the_connector_command_is_the_quiet_entry_point():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"connector": "connector.__main__:main"}


def test_ctrl_c_while_the_cli_is_imported_exits_130_without_a_traceback(monkeypatch, capsys):
    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "connector.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == INTERRUPTED == 130
    assert capsys.readouterr() == ("", "")


def test_python_m_connector_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "connector", "--version"], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    assert (done.returncode, done.stdout.split()[0]) == (0, "connector"), done.stderr
