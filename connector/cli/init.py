"""`connector init DIR`: a starter config and the shipped mappings, for a connector installed from its wheel."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import click

from connector import shipped
from connector.cli.options import echo
from connector.errors import ConnectorError

PLACEHOLDER = "@DIR@"


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the config.  [default: DIRECTORY/connector.toml]")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(directory: Path, config_file: Path | None, force: bool) -> None:
    """Write a starter config and the shipped mappings into DIRECTORY.

    The config keeps a SQLite store under DIRECTORY and has the built-in Verba simulator as the target,
    with the real target commented out; every path in it is absolute. DIRECTORY gets mappings/ (default,
    ad, entra, okta) and the simulator's seed. Existing files are left alone unless --force: init run again over
    files identical to what it writes does nothing (exit 0); any that differs is refused (exit 1).
    """
    home = Path(os.path.abspath(directory.expanduser()))
    config = Path(os.path.abspath(config_file.expanduser())) if config_file else home / "connector.toml"
    files = {config: _starter_config(home),
             home / "simulator-seed.json": shipped.SIMULATOR_SEED.read_bytes(),
             **{home / "mappings" / m.name: m.read_bytes() for m in shipped.mapping_files()}}
    differ = [str(path) for path, content in files.items() if path.exists() and not _holds(path, content)]
    if differ and not force:
        raise ConnectorError(f"{len(differ)} of the files to write exist already and differ from what init writes "
                             f"({', '.join(differ)}); nothing was written: pass --force to overwrite them, or choose "
                             "another directory")
    if not force and all(path.exists() for path in files):  # init run again: nothing to do
        echo(f"connector: {config}, {home / 'simulator-seed.json'} and {home / 'mappings'} are in place "
             "already, identical to what init writes: nothing written")
        _next_steps(config, home)
        return
    for path, content in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        except OSError as exc:
            raise ConnectorError(f"cannot write {path} ({exc.strerror}); choose a directory you can write to") \
                from None
    mappings = ", ".join(m.name for m in shipped.mapping_files())
    echo(f"connector: wrote {config}, {home / 'simulator-seed.json'} and {home / 'mappings'} ({mappings})")
    _next_steps(config, home)


def _holds(path: Path, content: bytes) -> bool:
    """Whether the file at `path` holds exactly `content` (a file it cannot read does not)."""
    try:
        return path.read_bytes() == content
    except OSError:
        return False


def _starter_config(home: Path) -> bytes:
    """The shipped starter config with its directory filled in, escaped for a TOML string."""
    text = shipped.STARTER_CONFIG.read_text(encoding="utf-8")
    return text.replace(PLACEHOLDER, json.dumps(str(home))[1:-1]).encode()


def _next_steps(config: Path, home: Path) -> None:
    option = f"--config {shlex.quote(str(config))}"
    echo(f"""
Next steps:
  1. Check it:               connector validate-config {option}
  2. Create the store:       connector db upgrade {option}
  3. Try it out:             connector run {option}
     (the built-in Verba simulator is the target; stop with Ctrl-C), and in another terminal
     connector events ingest {option} FILE.jsonl   (see the README's first example)
  4. Go live: in {config.name}, fill in [target] for Verba and add [[scim.clients]] or an [ldap.NAME]
     directory; choose or adapt a mapping in {shlex.quote(str(home / 'mappings'))}, then
     connector mapping test --mapping {shlex.quote(str(home / 'mappings' / 'default.toml'))} --user USER.json
  5. On a server: the sample systemd unit is {shlex.quote(str(shipped.SYSTEMD_UNIT.resolve()))}
     (README: "Installing on a server").
Every command takes {option}, or set CONNECTOR_CONFIG={shlex.quote(str(config))} once.""")
