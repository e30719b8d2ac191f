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

    `connector run` creates the schema of an empty store by itself but refuses an older one: stop the connectors on
    the store, back it up (an older connector refuses an upgraded store), run this, then start the new version. An
    upgrade is refused while a connector runs on the store (heard from within [instance] liveness_seconds, or
    holding its SQLite file); a store already up to date is left as it is.
    """
    config = load_config(config_path, secrets=())
    with open_store(config.store.url, synchronous=config.store.synchronous) as store:
        ran = store.migrate(alone_within=config.instance.liveness_seconds)
    done = f"{ran} migration(s) applied" if ran else "schema is up to date"
    echo(f"store {without_password(config.store.url)}: {done}")
