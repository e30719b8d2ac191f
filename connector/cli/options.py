"""Options and helpers shared by the `connector` subcommands."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import Any

import click

from connector.config import DEFAULT_PATH
from connector.ops.report import parse_since
from connector.store.database import CONNECTOR

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


def not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --reason that says something: a blank one is a usage error (exit 2), as a missing required one is."""
    if value is not None and not value.strip():
        raise click.BadParameter("say why, for the audit (it is blank); nothing was changed")
    return value


def os_operator() -> str:
    """Who runs the command: the user who ran sudo (SUDO_USER; the README runs commands on a server as
    `sudo -u connector connector ...`, which sets LOGNAME and USER to connector), else the OS user."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _a_person(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An --operator that names a person: a blank one, or the actor of the connector's own decisions
    (CONNECTOR), is a usage error (exit 2), given or taken from the OS user."""
    given = ctx.get_parameter_source(param.name or "operator") is not click.core.ParameterSource.DEFAULT
    if not value.strip():
        raise click.BadParameter("say who is acting, for the audit (it is blank); nothing was changed")
    if value.strip() == CONNECTOR:
        whose = f"{CONNECTOR!r} is" if given else f"your OS user is {CONNECTOR!r} (no --operator given, no sudo),"
        raise click.BadParameter(f"{whose} the name the audit gives the connector's own decisions, so it would not "
                                 "say who acted: pass your own name, e.g. --operator alice; nothing was changed")
    return value


operator_option = click.option(
    "--operator", default=os_operator, callback=_a_person, show_default="the user who ran sudo, else your OS user",
    help=f"Who is acting, for the audit (not {CONNECTOR!r}: that is the connector itself).")
