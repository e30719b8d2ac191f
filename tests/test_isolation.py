"""The pure tests need nothing but the connector's own dependencies: tests/unit and tests/mapping pass
with psycopg unimportable, so neither tests/conftest.py nor the plugins it registers may import it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_unit_and_mapping_tests_pass_without_psycopg(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "psycopg.py").write_text(
        'raise ImportError("psycopg is made unimportable by tests/test_isolation.py")\n'
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

    blocked = subprocess.run([sys.executable, "-c", "import psycopg"], env=env, capture_output=True, text=True,
                             timeout=30)
    assert "made unimportable" in blocked.stderr, blocked.stderr

    # The 400-example property test is left out to keep this fast; its module is still imported.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit", "tests/mapping",
         "--deselect", "tests/mapping/test_properties.py::test_map_user_properties"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "psycopg" not in result.stdout, result.stdout[-4000:]
