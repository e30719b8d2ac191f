"""The README's shell examples run as printed.

Convention: the line right before a README code fence (at the fence's indentation) says what this test does
with the block:

    <!-- readme-test: run -->            run it; it must exit 0 and print no traceback
    <!-- readme-test: skip (why) -->     leave it, for the reason given

A block whose lines start with `$ ` is a command with its output: only the `$ ` lines run. Any other block
runs whole, as one `bash -e -o pipefail` script (so a heredoc works). Every block without a language that
holds a command (a line starting with `connector`, `.venv/bin/`, `make`, `python`, `curl`, `cat >` or `$ `)
must carry one of the two markers, so that a new example is either run here or skipped on purpose.

The blocks run in README order, in a scratch directory holding copies of `config/`, `mappings/` and the
mapping samples, against one `connector run` started as `make run` starts it (`connector db upgrade`, then
`connector run`, both on `config/connector.toml`). `connector` and `.venv/bin/connector` there run this
checkout's code. The only change to the examples: the ports of the default config (simulator 7002, SCIM
8080, admin 8081) are moved to free ones, in the config copy and in the commands alike, so that the test
never collides with a `make run` or another test. Before the first block, one event of bob's is
dead-lettered with `error_illegal_argument` (a fault injected in the simulator once), as the on-call
runbook's examples assume; it is event 1, as there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.plugins.simulator import free_port

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(?P<indent> *)<!-- readme-test: (?P<what>run|skip \(.+\)) -->$")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\S*)$")
COMMAND = re.compile(r"^\s*(\$ |connector |\.venv/bin/|make |python |curl |cat >)")
DEFAULT_PORTS = {"7002": "simulator", "8080": "scim", "8081": "admin"}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, from 1
    text: str
    marker: str | None  # "run", "skip (...)" or None

    @property
    def script(self) -> str:
        lines = self.text.splitlines()
        prompted = [line[2:] for line in lines if line.startswith("$ ")]
        return "\n".join(prompted) if prompted else self.text


def blocks(readme: str) -> list[Block]:
    """The README's code blocks without a language (shell, or output), with the marker before each."""
    found, lines, i = [], readme.splitlines(), 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, end = fence["indent"], i + 1
        while lines[end].strip() != "```":
            end += 1
        marker = MARKER.match(lines[i - 1]) if i else None
        if not fence["lang"]:
            text = "\n".join(line.removeprefix(indent) for line in lines[i + 1:end])
            found.append(Block(i + 1, text, marker["what"] if marker else None))
        i = end + 1
    return found


README_BLOCKS = blocks((ROOT / "README.md").read_text())


def test_every_shell_example_is_marked_run_or_skip() -> None:
    unmarked = [b.line for b in README_BLOCKS
                if b.marker is None and any(COMMAND.match(line) for line in b.text.splitlines())]
    assert not unmarked, f"README.md code blocks at lines {unmarked} hold commands: mark each with " \
                         "<!-- readme-test: run --> or <!-- readme-test: skip (why) --> (see tests/test_readme.py)"
    assert len([b for b in README_BLOCKS if b.marker == "run"]) >= 8


@dataclass
class Site:
    """The scratch directory, its environment, and the ports standing in for the default ones."""

    root: Path
    env: dict[str, str]
    ports: dict[str, int]

    def localize(self, text: str) -> str:
        for default, name in DEFAULT_PORTS.items():
            text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{self.ports[name]}")
        return text

    def bash(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("readme")
    for folder in ("config", "mappings", "tests/mapping/samples"):
        shutil.copytree(ROOT / folder, root / folder)
    ports = {name: free_port() for name in DEFAULT_PORTS.values()}
    site = Site(root, {}, ports)
    config = root / "config" / "connector.toml"
    config.write_text(site.localize(config.read_text())
                      + f'\n[admin]\nlisten = "127.0.0.1:{ports["admin"]}"\n'
                        f'[scim]\nlisten = "127.0.0.1:{ports["scim"]}"\n')
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    shim = bin_dir / "connector"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m connector.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    site.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    site.env.pop("CONNECTOR_CONFIG", None)
    upgrade = site.bash("connector db upgrade --config config/connector.toml")
    assert upgrade.returncode == 0, upgrade.stderr
    log = (root / "run.log").open("w")
    running = subprocess.Popen([str(shim), "run", "--config", "config/connector.toml"], cwd=root, env=site.env,
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        admin = f"http://127.0.0.1:{ports['admin']}"
        deadline = time.monotonic() + 30
        while not _answers(f"{admin}/readyz"):
            assert running.poll() is None and time.monotonic() < deadline, (root / "run.log").read_text()
            time.sleep(0.1)
        _dead_letter_for_the_runbook(site)
        yield site
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(30)
        log.close()
    output = (root / "run.log").read_text()
    assert "Traceback" not in output, output


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _dead_letter_for_the_runbook(site: Site) -> None:
    """Event 1: bob's push, refused once by Verba with ERROR_ILLEGAL_ARGUMENT, so a dead letter."""
    with httpx.Client(base_url=f"http://127.0.0.1:{site.ports['simulator']}", timeout=10) as simulator:
        simulator.post("/_sim/faults", json=[{"operation": "createExtension", "status": "ERROR_ILLEGAL_ARGUMENT",
                                              "message": "Unknown recordingMode value", "times": 1}]
                       ).raise_for_status()
        bob = {"source": "hr", "external_id": "43", "kind": "upsert",
               "state": {"userName": "bob@example.com",
                         "phoneNumbers": [{"type": "work", "value": "(415) 555-0133"}]}}
        (site.root / "bob.jsonl").write_text(json.dumps(bob) + "\n")
        assert site.bash("connector events ingest bob.jsonl").returncode == 0
        deadline = time.monotonic() + 30
        while '"state": "dead"' not in site.bash("connector events show 1 --json").stdout:
            assert time.monotonic() < deadline, "bob's event did not become a dead letter"
            time.sleep(0.2)
        simulator.delete("/_sim/faults").raise_for_status()


def test_the_readme_examples_run_as_printed(site: Site) -> None:
    runnable = [b for b in README_BLOCKS if b.marker == "run"]
    for block in runnable:
        result = site.bash(site.localize(block.script))
        said = (f"README.md line {block.line}:\n{block.script}\n--- stdout:\n{result.stdout}\n"
                f"--- stderr:\n{result.stderr}")
        assert result.returncode == 0, said
        assert "Traceback" not in result.stdout + result.stderr, said
    [bob] = json.loads(site.bash("connector events list --json --user bob@example.com").stdout)["events"]
    assert bob["id"] == 1 and bob["state"] == "done", "the runbook's replay did not deliver event 1"
    state = httpx.get(f"http://127.0.0.1:{site.ports['simulator']}/_sim/state", timeout=10).json()
    assert "+14155550100" in json.dumps(state), "the walkthrough's alice is not in Verba"
