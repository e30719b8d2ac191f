"""The `connector` command: one click group; each module here holds one group of its subcommands."""

from __future__ import annotations

from typing import Any

import click

from connector.cli import db, drift, events, init, instances, ldap, mapping, run, simulator, status
from connector.cli.options import printable, refuse_unusable_text
from connector.errors import ConnectorError
from connector.version import VERSION


class ConnectorGroup(click.Group):
    """Prints a ConnectorError as one clear line, `printable` as everything commands print, and exits 1, never with
    a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectorError as exc:
            raise click.ClickException(printable(str(exc))) from exc


@click.group(cls=ConnectorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="connector", message="%(prog)s %(version)s")
def main() -> None:
    """Keep Verba extensions in step with your directory: SCIM and LDAP changes in, extensions out."""


for command in (run.run, run.validate_config, events.events, status.audit, status.status, ldap.ldap,
                mapping.mapping, db.db, simulator.simulator, drift.drift, init.init, instances.instances):
    main.add_command(command)
refuse_unusable_text(main)
