"""The `connector` command."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import click

from connector.config import load_config
from connector.errors import ConnectorError
from connector.events import UserChange, parse_user_change
from connector.options import config_option
from connector.ops.commands import audit, events, status
from connector.sources.ldap.commands import ldap


class ConnectorGroup(click.Group):
    """Prints a ConnectorError as one clear line and exits 1, never with a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectorError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=ConnectorGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keep Verba extensions in step with your directory: SCIM and LDAP changes in, extensions out."""


@main.command()
@config_option
def run(config_path: str) -> None:
    """Start the connector: store, delivery workers and, with no target configured, the built-in simulator."""
    from connector.ops.logs import setup_logging
    from connector.runtime import Connector

    config = load_config(config_path)
    json_lines = {"json": True, "text": False}.get(config.logging.format)
    setup_logging(config.secrets(), json_lines=json_lines, level=getattr(logging, config.logging.level))
    connector = Connector(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    connector.start()
    target = f"{config.target_url} (built-in simulator)" if config.uses_simulator else config.target_url
    click.echo(f"connector: store {config.store.url}")
    click.echo(f"connector: pushing to {target} with {config.delivery.workers} workers")
    clients = ", ".join(c.name for c in config.scim.clients) or "none configured: every request gets 401"
    click.echo(f"connector: SCIM {config.scim.url} (clients: {clients})")
    admin = f"http://{config.admin.host}:{config.admin.port}"
    click.echo(f"connector: health {admin}/livez {admin}/readyz, metrics {admin}/metrics")
    click.echo("connector: running; stop with Ctrl-C or SIGTERM (in-flight pushes finish first)")
    stop.wait()
    click.echo("connector: stopping; letting in-flight pushes finish")
    connector.stop()
    click.echo("connector: stopped")


@main.command("validate-config")
@config_option
def validate_config(config_path: str) -> None:
    """Check the config and its mapping file; exit 1 with the file, key and fix of every config problem."""
    from connector.mapping import load_mapping

    config = load_config(config_path)
    load_mapping(config.mapping_file)
    click.echo(f"{config_path}: OK (mapping {config.mapping_file}, target {config.target_url})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7002, show_default=True, type=int)
@click.option("--seed", type=click.Path(exists=True, dir_okay=False), help="JSON file of environments, users, extensions.")
@click.option("--token-ttl", default=3600.0, show_default=True, help="Seconds before an issued token expires.")
# The choices are connector.simulator.operations.MISSING_EXTENSION_SHAPES, spelled out so that
# the CLI does not import the simulator before it runs (tests check that the two agree).
@click.option("--missing-extension", type=click.Choice(["ok_empty", "error_general", "error_illegal_argument"]),
              default="ok_empty", show_default=True,
              help="How getExtension/updateExtension answer for a missing extension; change it at run time "
                   "with POST /_sim/behaviour.")
def simulator(host: str, port: int, seed: str | None, token_ttl: float, missing_extension: str) -> None:
    """Serve the Verba Provisioning API v2 simulator (WSDL at /provisioning?wsdl)."""
    from connector.simulator.app import serve

    click.echo(f"simulator: http://{host}:{port}/provisioning (WSDL: ?wsdl, test control: /_sim/); stop with Ctrl-C")
    try:
        serve(host, port, seed, token_ttl, missing_extension)
    except ValueError as exc:
        raise ConnectorError(f"{exc}; fix the seed file") from None


@main.group()
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
    from connector.mapping import load_mapping

    loaded = load_mapping(mapping_file)
    try:
        data = json.loads(user_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConnectorError(f"{user_file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    event = data if "state" in data else {"source": "test", "external_id": "test", "state": data}
    event = {**event, "kind": kind}
    try:
        change = parse_user_change(event)
    except ValueError as exc:
        raise ConnectorError(f"{user_file}: {exc}") from None
    from connector.mapping import MappingFailure

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


def _user_id_from_state(loaded: Any, change: UserChange) -> int:
    from connector.mapping import MappingFailure

    try:
        found = loaded.user_id_or_login(change, None)
    except MappingFailure as exc:
        raise ConnectorError(str(exc)) from None
    if isinstance(found, str):
        raise ConnectorError(f"this mapping looks the Verba user id up by login name ({found!r}) at push time; "
                             "pass --user-id N to see the records")
    return found


for command in (events, audit, status, ldap):
    main.add_command(command)


if __name__ == "__main__":
    main()
