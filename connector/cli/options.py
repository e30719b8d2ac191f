"""Options and helpers shared by the `connector` subcommands."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

import click

from connector.config import DEFAULT_PATH
from connector.ops.report import parse_since

NEEDS_ATTENTION = 3  # the exit status of a command that worked and found something a person must look at

config_option = click.option(
    "--config",
    "config_path",
    envvar="CONNECTOR_CONFIG",
    default=DEFAULT_PATH,
    show_default=True,
    show_envvar=True,
    help="The connector's TOML config.",
)


def since_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--since", metavar="DURATION", help=help + " (90s, 30m, 1h, 2d).")


def since_time(since: str | None) -> float | None:
    """The epoch time `since` ("90s", "30m", "1h", "2d") ago, or None; click.BadParameter if it is malformed."""
    try:
        return None if since is None else parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
operator_option = click.option("--operator", default=getpass.getuser, show_default="your OS user",
                               help="Who is acting, for the audit.")
