"""Options and helpers shared by the `connector` subcommands."""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable
from typing import Any

import click

from connector.config import DEFAULT_PATH
from connector.ops.report import parse_since
from connector.records import not_xml
from connector.store.database import CONNECTOR

NEEDS_ATTENTION = 3  # the exit status of a command that worked and found something a person must look at
# What `printable` escapes: every control character (C0, DEL, C1) but newline and tab, and unpaired surrogates.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

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


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """click.echo of `message` made `printable`: what every command prints goes through here, so that text from
    sources and Verba (user names, ids, reasons, messages) never reaches the terminal as escape sequences."""
    click.echo(printable(message), err=err, nl=nl)


def printable(text: str) -> str:
    """`text` with every control character but newline and tab, and every unpaired surrogate, written as Python
    writes it in a string: ESC as \\x1b, CR as \\r, U+009B as \\x9b; the rest as it is."""
    return _UNPRINTABLE.sub(lambda found: ascii(found[0])[1:-1], text)


def refuse_unusable_text(command: click.Command) -> None:
    """Make every option and argument of `command` and its subcommands a usage error (exit 2, naming it, before the
    command does anything) when its text is `unusable`: the one place the CLI checks the text it is given, whether
    typed, taken from the environment or a default."""
    for param in command.params:
        param.callback = _usable_first(param.callback)
    for subcommand in getattr(command, "commands", {}).values():
        refuse_unusable_text(subcommand)


def unusable(text: str) -> str:
    """Why the connector cannot use `text` given on its command line, and what to do; "" when it can. A byte that is
    not UTF-8 (which Python turns into an unpaired surrogate): the terminal sends another encoding. Another character
    XML 1.0 cannot carry (`not_xml`: a control character such as ESC): neither the store nor Verba may be given it."""
    byte = next((ord(c) - 0xDC00 for c in text if 0xDC80 <= ord(c) <= 0xDCFF), None)
    if byte is not None:
        return (f"holds the byte 0x{byte:02X}, which is not UTF-8: this terminal sends another encoding (Latin-1?); "
                "set it to UTF-8 (`locale` shows LANG and LC_ALL: e.g. export LANG=C.UTF-8) and type it again; nothing "
                "was done")
    if problem := not_xml(text):
        return f"{problem}, so neither the store nor Verba may be given it: type it without it; nothing was done"
    return ""


def _usable_first(callback: Callable[[click.Context, click.Parameter, Any], Any] | None,
                  ) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A parameter callback that raises click.BadParameter for a value (a string, a path, or a tuple of them) whose
    text is `unusable`, and otherwise hands the value to `callback`, if any."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        for item in value if isinstance(value, (tuple, list)) else (value,):
            text = os.fspath(item) if isinstance(item, (str, os.PathLike)) else None
            if isinstance(text, str) and (problem := unusable(text)):
                raise click.BadParameter(problem, ctx, param)
        return value if callback is None else callback(ctx, param, value)

    return check
