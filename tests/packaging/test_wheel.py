"""`python -m build`, then the wheel installed in a fresh virtualenv: a working `connector` command that finds its
shipped files (config, mappings, SQL, WSDL) where it is installed, run from a directory that is not the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What is not part of the source: the build copies the rest, uncommitted changes included.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache")


def run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_the_wheel_installs_and_runs_from_anywhere(tmp_path):
    pytest.importorskip("build", reason="the test extras install `build`: pip install -e '.[test]'")
    # No PYTHONPATH: the installed connector must not see the source tree.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONNECTOR_CONFIG", "VIRTUAL_ENV")
           and not k.startswith("PYTEST_")}
    # 1. Build from a copy of the source tree (symbolic links kept, as in a checkout), sdist then wheel from it.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    run(sys.executable, "-m", "build", "--outdir", tmp_path / "dist", source, cwd=tmp_path, env=env, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("connector-*.whl")

    # 2. A fresh virtualenv gets the wheel; its dependencies come from this environment (no download), after the
    #    wheel's own files on sys.path and without this environment's .pth files (the editable install).
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    bin_dir = target / "bin"
    python = bin_dir / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel,
        cwd=tmp_path, env=env, timeout=180)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path,
                    env=env).strip())
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(here)))

    # 3. From another directory: help, init, validate-config, db upgrade (the shipped SQL), the WSDL.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    connector = bin_dir / "connector"
    installed = run(python, "-c", "import connector, connector.verba.client as c, connector.shipped as s; "
                    "c._wsdl(); print(connector.__file__); print(s.default_mapping())", cwd=elsewhere, env=env)
    assert all(line.startswith(str(site)) for line in installed.split()), installed
    assert "Usage: connector" in run(connector, "--help", cwd=elsewhere, env=env)
    out = run(connector, "init", "home", cwd=elsewhere, env=env)
    config = elsewhere / "home" / "connector.toml"
    assert f"validate-config --config {config}" in out
    assert (elsewhere / "home" / "mappings" / "default.toml").read_bytes() == \
        (ROOT / "mappings" / "default.toml").read_bytes()
    another = tmp_path / "another"
    another.mkdir()
    assert "OK (mapping" in run(connector, "validate-config", "--config", config, cwd=another, env=env)
    assert "migration(s) applied" in run(connector, "db", "upgrade", "--config", config, cwd=another, env=env)
    # A config that names no mapping file gets the shipped default from the installed package.
    bare = another / "bare.toml"
    bare.write_text(f'[store]\nurl = "sqlite:///{another / "bare.db"}"\n')
    assert f"OK (mapping {site}" in run(connector, "validate-config", "--config", bare, cwd=another, env=env)
