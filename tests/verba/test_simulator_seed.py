"""The simulator's seed is checked whole before anything listens: every problem one line naming the file, the key
and the fix (connector/simulator/seed.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connector.simulator.process import free_port
from connector.simulator.seed import seed_problems
from connector.simulator.state import DEFAULT_SEED, State
from tests.plugins.simulator import USERS, write_seed
from tests.verba.helpers import SEED

ROOT = Path(__file__).resolve().parents[2]
USERS_EXAMPLE = '{"id": 3, "loginName": "alice@example.com"}'
KEYS = "environments, api_users, users, extensions, recorders, tokens"


def connector(*args: str) -> subprocess.CompletedProcess[str]:
    """`connector ARGS` as a user runs it; a timeout, not a hang, if it serves."""
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def write(path: Path, seed: object) -> Path:
    path.write_text(json.dumps(seed))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "lines"), [
    ({"users": "x"}, [f'users is "x"; it must be a list of objects, e.g. [{USERS_EXAMPLE}]']),
    ({"userz": []}, [f"unknown key userz; the keys are {KEYS}"]),
    ({"users": [{"id": 3, "loginName": "alice@example.com"}, {"id": "4", "loginName": "bob@example.com"}, {"id": 5}],
      "extensions": [{"extension": "+15550100", "user_id": 9}], "tokens": "abc"},
     ['users[1].id is "4"; it must be a positive integer, or null for the next free one',
      f"users[2].loginName is missing; each of users needs one, e.g. {USERS_EXAMPLE}",
      'tokens is "abc"; it must be a list of strings, e.g. ["a-fixed-token"]',
      "extensions[0].user_id 9 is not a seeded user; use the id of one of users, or null"]),
], ids=["users-not-a-list", "unknown-key", "several-problems"])
def test_a_bad_seed_is_every_problem_one_line_and_nothing_listens(tmp_path: Path, seed: object,
                                                                  lines: list[str]) -> None:
    path = write(tmp_path / "seed.json", seed)
    result = connector("simulator", "--port", str(free_port()), "--seed", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"Error: {path}: {lines[0]}", *(f"{path}: {line}" for line in lines[1:])]
    assert result.stdout == ""  # no "simulator: http://..." banner: it stopped before listening
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_connector_run_refuses_a_bad_seed(tmp_path: Path) -> None:
    seed = write(tmp_path / "seed.json", {"users": "x"})
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                      f'[scim]\nlisten = "127.0.0.1:{free_port()}"\n[simulator]\nlisten = "127.0.0.1:{free_port()}"\n'
                      f'seed = "{seed}"\n')
    result = connector("run", "--config", str(config))
    assert result.returncode == 1
    assert f'{seed}: users is "x"; it must be a list of objects, e.g. [{USERS_EXAMPLE}]' in result.stderr
    assert "Traceback" not in result.stderr and "running;" not in result.stdout


@pytest.mark.slow
def test_validate_config_reports_a_bad_seed(tmp_path: Path) -> None:
    seed = write(tmp_path / "seed.json", {"users": "x", "userz": []})
    config = tmp_path / "c.toml"
    config.write_text(f'[simulator]\nseed = "{seed}"\n')
    result = connector("validate-config", "--config", str(config))
    assert result.returncode == 1
    where = f"{config}: simulator.seed {seed}"
    assert result.stderr.splitlines() == [
        f"Error: {where}: unknown key userz; the keys are {KEYS}",
        f'{where}: users is "x"; it must be a list of objects, e.g. [{USERS_EXAMPLE}]',
    ]
    assert "Traceback" not in result.stderr and "OK" not in result.stdout
    # With a [target] url the simulator is not used: its seed stops no command (status in an on-call shell).
    config.write_text(f'[target]\nurl = "http://verba:7002/provisioning"\nlogin = "api"\npassword_env = "X"\n'
                      f'[simulator]\nseed = "{tmp_path / "gone.json"}"\n')
    assert connector("validate-config", "--config", str(config)).stderr.count("simulator.seed") == 0


@pytest.mark.parametrize(("seed", "problems"), [
    ([1, 2], [f"is [1, 2]; a seed is a JSON object, e.g. {{\"users\": [{USERS_EXAMPLE}]}}"]),
    ({"environments": [{"eid": "1", "shortName": ""}], "recorders": {"location": "r"}},
     ["environments[0].eid is '1'; an eid has exactly 4 characters, such as \"0000\" (quote it)",
      'environments[0].shortName is ""; it must be a non-empty string',
      'recorders is {"location": "r"}; it must be a list of objects, e.g. [{"location": "recorder-1"}]']),
    ({"users": ["carol", {"loginName": "a", "displayname": "A", "id": True}]},
     [f'users[0] is "carol"; it must be an object, e.g. {USERS_EXAMPLE}',
      "unknown key users[1].displayname; an entry of users has the keys id, loginName, eid, displayName, email, "
      "externalId",
      "users[1].id is true; it must be a positive integer, or null for the next free one"]),
    ({"users": [{"loginName": "a"}, {"id": 1, "loginName": "b"}, {"loginName": "b", "eid": "0000"},
                {"loginName": "c", "eid": "0001"}],
      "extensions": [{"extension": "+15550100", "recordingMode": "ALWAYS", "voice": "yes"}]},
     ['extensions[0].recordingMode is "ALWAYS"; it must be one of FULL, ON_DEMAND, CONTROLLED or null',
      'extensions[0].voice is "yes"; it must be true, false or null',
      'users[3].eid "0001" is not a seeded environment; use one of 0000, or add it to environments',
      "users[1].id 1 is taken by users[0], which has no id and got the next free one; give each user its own id, or "
      "leave it out for the next free one",
      'users[2].loginName "b" is taken by users[1] in environment 0000; give each user of an environment its own '
      "loginName"]),
], ids=["not-an-object", "environments-and-recorders", "entries", "references"])
def test_every_problem_of_a_seed_is_found(seed: object, problems: list[str]) -> None:
    assert seed_problems(seed) == problems


def test_the_seeds_in_use_are_good(tmp_path: Path) -> None:
    users = State(SEED).to_json()["users"]  # as /_sim/state gives them, nulls and all (chaos/processes.py)
    seeds: list[Any] = [DEFAULT_SEED, SEED, {}, {"recorders": [], "tokens": ["t"]}, {"users": users},
                        json.loads(write_seed(tmp_path / "seed.json", USERS, []).read_text()),
                        json.loads((ROOT / "config" / "simulator-seed.json").read_text())]
    assert [seed_problems(seed) for seed in seeds] == [[]] * len(seeds)
