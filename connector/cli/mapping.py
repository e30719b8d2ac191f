"""`connector mapping test`: the extension records a user state maps to."""

from __future__ import annotations

import json
from pathlib import Path

import click

from connector.errors import ConnectorError
from connector.events import UserChange, parse_user_change
from connector.mapping import Mapping, MappingFailure, load_mapping


@click.group()
def mapping() -> None:
    """Work with mapping files."""


@mapping.command("test")
@click.option("--mapping", "mapping_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--user", "user_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON user state (or a whole event with a 'state').")
@click.option("--user-id", type=int, help="The Verba user id to use when the mapping looks it up by login name.")
@click.option("--kind", type=click.Choice(["upsert", "deactivate", "delete"]), default="upsert", show_default=True)
def mapping_test(mapping_file: str, user_file: Path, user_id: int | None, kind: str) -> None:
    """Print the extension records that a user state maps to."""
    loaded = load_mapping(mapping_file)
    change = _read_change(user_file, kind)
    resolved = user_id if user_id is not None else _user_id_from_state(loaded, change)
    try:
        mapped = loaded.map_user(change, resolved, [])
    except MappingFailure as exc:
        raise ConnectorError(f"{user_file}: {exc}") from None
    click.echo(json.dumps({
        "user_id": resolved,
        "upserts": [r.to_dict() for r in mapped.upserts],
        "deprovisions": [r.to_dict() for r in mapped.deprovisions],
    }, indent=2))


def _read_change(user_file: Path, kind: str) -> UserChange:
    """The `kind` change of the user state (or whole event) in `user_file`; ConnectorError if it is malformed."""
    try:
        data = json.loads(user_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConnectorError(f"{user_file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    event = data if "state" in data else {"source": "test", "external_id": "test", "state": data}
    try:
        return parse_user_change({**event, "kind": kind})
    except ValueError as exc:
        raise ConnectorError(f"{user_file}: {exc}") from None


def _user_id_from_state(loaded: Mapping, change: UserChange) -> int:
    try:
        found = loaded.user_id_or_login(change, None)
    except MappingFailure as exc:
        raise ConnectorError(str(exc)) from None
    if isinstance(found, str):
        raise ConnectorError(f"this mapping looks the Verba user id up by login name ({found!r}) at push time; "
                             "pass --user-id N to see the records")
    return found
