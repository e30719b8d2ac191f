"""Expected failures of the `connector` command end in one clear line that says what to do, never a traceback.

Each case runs the command in this process (click's runner) and checks that it ended by `sys.exit` with a
non-zero status, not by an exception, and that its last line of output says what to do.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from tests.plugins.simulator import free_port


def config_file(tmp_path: Path, store: str | None = None, target: str | None = None, extra: str = "") -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{store or tmp_path / "c.db"}"\n'
                    f'[target]\nurl = "{target or f"http://127.0.0.1:{free_port()}/provisioning"}"\n'
                    f'token_file = "{tmp_path / "token"}"\n{extra}')
    (tmp_path / "token").write_text("t")
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def with_dead_letter(tmp_path: Path, target: str | None = None) -> Path:
    """A config whose store holds one dead letter; `target`: its config instead of a [target] url no one answers."""
    from connector.config import load_config
    from connector.events import UserChange
    from connector.runtime import open_configured_store

    config = config_file(tmp_path)
    if target is not None:
        config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n{target}')
    with open_configured_store(load_config(config), create=True) as store:
        store.enqueue([UserChange("hr", "1", "upsert", {"userName": "a@example.com"})])
        claim = store.claim("test", 1e12, 60)
        assert claim is not None
        store.dead_letter(claim, "mapping", "no number")
    return config


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "a config that is a directory": (lambda tmp: ["status", "--config", str(tmp)], "cannot read the config"),
    "a config that is not UTF-8": (
        lambda tmp: (tmp / "c.toml").write_bytes(b"\xff\xfe[store]\n") and ["status", "--config", str(tmp / "c.toml")],
        "save it as UTF-8"),
    "a config that is not TOML": (
        lambda tmp: (tmp / "c.toml").write_text("[store\n") and ["events", "list", "--config", str(tmp / "c.toml")],
        "fix the syntax"),
    "a store that is a directory": (
        lambda tmp: ["events", "list", "--config", str(config_file(tmp, store=str(tmp)))], "point [store] url"),
    "a store that is not SQLite": (
        lambda tmp: (tmp / "x.db").write_text("not a database") and [
            "status", "--check", "--config", str(config_file(tmp, store=str(tmp / "x.db")))],
        "restore it from a backup"),
    "an unknown event": (lambda tmp: ["events", "show", "77", "--config", str(with_dead_letter(tmp))],
                         "see `connector events list`"),
    "a replay while the built-in simulator is not running": (
        lambda tmp: ["events", "replay", "--state", "dead", "--reason", "x", "--config", str(with_dead_letter(
            tmp, target=f'[simulator]\nlisten = "127.0.0.1:{free_port()}"\n'))],
        "runs inside `connector run`: start it (`connector run --config "),
    "a store that does not exist": (
        lambda tmp: ["status", "--check", "--config", str(config_file(tmp, store=str(tmp / "typo.db")))],
        "check [store] url, which may name the wrong store"),
    "a malformed --since": (lambda tmp: ["events", "list", "--since", "yesterday", "--config", str(config_file(tmp))],
                            "write it like 90s, 30m, 1h or 2d"),
    "a replay while Verba is unreachable": (
        lambda tmp: ["events", "replay", "--state", "dead", "--reason", "x", "--config", str(with_dead_letter(tmp))],
        "nothing was replayed"),
    "an unknown directory": (lambda tmp: ["ldap", "sync", "corp", "--config", str(config_file(tmp))],
                             "check the name or add the section"),
    "a login with a fixed token": (
        lambda tmp: ["drift", "--config", str(config_file(tmp, extra='login = "api"\n'))], "remove target.login"),
    "a drift check while Verba is unreachable": (
        lambda tmp: ["drift", "--config", str(with_dead_letter(tmp))], "check target.url"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_expected_failure_is_one_clear_line(case: str, tmp_path: Path) -> None:
    arguments, advice = CASES[case]
    result = CliRunner().invoke(main, arguments(tmp_path))
    assert isinstance(result.exception, SystemExit) and result.exit_code in (1, 2), (result.output, result.exception)
    assert "Traceback" not in result.output
    error = result.output[result.output.rfind("Error: "):]  # a TOML error goes on with the line it stopped at
    assert advice in error and error.count("\n") <= 2, result.output


def test_the_simulator_on_a_busy_port_says_so(busy_port: int) -> None:
    result = CliRunner().invoke(main, ["simulator", "--port", str(busy_port)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output == f"Error: cannot listen on 127.0.0.1:{busy_port} (Address already in use); free the port, " \
                            "or pass --host / --port\n"


def test_validate_config_lists_every_problem_of_the_mapping_file(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text('[environment]\neid = "12"\n[[extensions]]\nfrom = "userName"\nnormalize = "E.164"\n')
    config = config_file(tmp_path, extra=f'[mapping]\nfile = "{mapping}"\n')
    plain = CliRunner().invoke(main, ["validate-config", "--config", str(config)])
    eid = f"{mapping}: environment.eid is '12'; an eid has exactly 4 characters"
    normalize = f"{mapping}: extensions[0].normalize is 'E.164'; use one of e164, digits, sip, none"
    assert plain.exit_code == 1 and eid in plain.output and normalize in plain.output
    connected = CliRunner().invoke(main, ["validate-config", "--connect", "--config", str(config)])
    lines = connected.output.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("  FAILED  mapping: "))
    assert lines[at].startswith(f"  FAILED  mapping: {eid}")  # one problem a line, the others under the first
    assert lines[at + 1] == " " * 10 + normalize


def test_the_simulator_given_a_config_says_what_it_takes_instead() -> None:
    result = CliRunner().invoke(main, ["simulator", "--config", "x.toml"])
    assert result.exit_code == 2, result.output
    assert ("Error: connector simulator reads no config, so it takes no --config: choose its address with --host and "
            "--port, and its environments, users and extensions with --seed. `connector run --config F` (and `make "
            "run`) starts it from a config itself") in result.output
    shown = CliRunner().invoke(main, ["simulator", "--help"]).output
    assert "--config" not in shown.split("reads no config")[0]  # not offered as an option
    assert "make run" in " ".join(shown.split()) and '"status": "ERROR_NOT_FOUND"' in " ".join(shown.split())


@pytest.mark.parametrize("args, says", [
    (["events", "list", "--limit", "0"], "Invalid value for '--limit': 0 is not in the range x>=1."),
    (["events", "list", "--limit", "-1"], "Invalid value for '--limit': -1 is not in the range x>=1."),
    (["audit", "--limit", "0"], "Invalid value for '--limit': 0 is not in the range x>=1."),
    (["instances", "forget", "a"], "Missing option '--reason'."),
    (["instances", "forget", "a", "--reason", " "], "Invalid value for '--reason': say why, for the audit (it is "
                                                    "blank); nothing was changed"),
    (["drift", "--repair"], "say why with --reason R, for the audit of the repair; nothing was checked"),
    (["drift", "--repair", "--reason", ""], "Invalid value for '--reason': say why, for the audit (it is blank)"),
])
def test_a_value_an_option_does_not_take_is_a_usage_error(tmp_path: Path, args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, [*args, "--config", str(config_file(tmp_path))])
    assert result.exit_code == 2 and says in result.output, result.output
