"""`connector db upgrade`: create or upgrade the store's schema."""

from __future__ import annotations

import click

from connector.cli.options import config_option
from connector.config import load_config
from connector.runtime import open_migrated_store
from connector.store import _without_password


@click.group()
def db() -> None:
    """Manage the connector's store (its database)."""


@db.command("upgrade")
@config_option
def upgrade(config_path: str) -> None:
    """Create the configured store's schema, or upgrade it to this version's; safe to run again.

    Every command does this when it opens the store; run it on its own to prepare a new
    database, or to upgrade the schema before starting a new version of the connector.
    """
    config = load_config(config_path)
    open_migrated_store(config).close()  # opening it creates or upgrades the schema
    click.echo(f"store {_without_password(config.store.url)}: schema is up to date")
