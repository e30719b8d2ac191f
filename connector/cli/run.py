"""`connector run` and `connector validate-config`."""

from __future__ import annotations

import logging
import signal
import threading

import click

from connector.cli.options import config_option
from connector.config import Config, load_config
from connector.mapping import load_mapping
from connector.ops.logs import setup_logging
from connector.runtime import Connector
from connector.store import without_password


@click.command()
@config_option
def run(config_path: str) -> None:
    """Start the connector: store, delivery workers and, with no target configured, the built-in simulator."""
    config = load_config(config_path)
    json_lines = {"json": True, "text": False}.get(config.logging.format)
    setup_logging(config.secrets(), json_lines=json_lines, level=getattr(logging, config.logging.level))
    connector = Connector(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: connector.reload())  # systemctl reload: SCIM token files now
    connector.start()
    _announce(config)
    stop.wait()
    click.echo("connector: stopping; letting in-flight pushes finish")
    connector.stop()
    click.echo("connector: stopped")


def _announce(config: Config) -> None:
    target = f"{config.target_url} (built-in simulator)" if config.uses_simulator else config.target_url
    click.echo(f"connector: store {without_password(config.store.url)}, instance {config.instance.name}")
    click.echo(f"connector: pushing to {target} with {config.delivery.workers} workers")
    clients = ", ".join(c.name for c in config.scim.clients) or "none configured: every request gets 401"
    click.echo(f"connector: SCIM {config.scim.url} (clients: {clients})")
    admin = f"http://{config.admin.host}:{config.admin.port}"
    click.echo(f"connector: health {admin}/livez {admin}/readyz, metrics {admin}/metrics")
    click.echo("connector: running; stop with Ctrl-C or SIGTERM (in-flight pushes finish first)")


@click.command("validate-config")
@config_option
def validate_config(config_path: str) -> None:
    """Check the config and its mapping file; exit 1 with the file, key and fix of every config problem."""
    config = load_config(config_path)
    load_mapping(config.mapping_file)
    click.echo(f"{config_path}: OK (mapping {config.mapping_file}, target {config.target_url})")
