"""`connector db upgrade`: create or upgrade the store's schema."""

from __future__ import annotations

import click

from connector.cli.options import config_option, echo
from connector.config import load_config
from connector.store import open_store, without_password


@click.group()
def db() -> None:
    """Manage the connector's store (its database)."""


@db.command("upgrade")
@config_option
def upgrade(config_path: str) -> None:
    """Create the configured store's schema, or upgrade it to this connector's version; safe to run again.

    `connector run` creates the schema of an empty store by itself but refuses an older one: stop
    the connectors on the store, run this, then start the new version.
    """
    config = load_config(config_path, secrets=())
    with open_store(config.store.url, synchronous=config.store.synchronous) as store:
        ran = store.migrate()
    done = f"{ran} migration(s) applied" if ran else "schema is up to date"
    echo(f"store {without_password(config.store.url)}: {done}")
