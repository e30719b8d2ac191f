"""`connector ldap sync NAME [--full] [--force]` and `connector ldap status`."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import closing

import click

from connector.cli.options import NEEDS_ATTENTION, config_option
from connector.config import LDAP_ID_ATTRIBUTES, Config, LdapConfig, load_config
from connector.errors import ConnectorError
from connector.runtime import open_configured_store
from connector.sources.ldap import watcher as watcher_module
from connector.sources.ldap.watcher import DN_IDENTITY_WARNING, RunResult, Watcher
from connector.store import LdapWatermark

GUARD_TRIPPED = "mass-change guard tripped"  # in the watcher's message when the guard holds events


@click.group()
def ldap() -> None:
    """Watch LDAP directories (OpenLDAP, Active Directory): sync now, show watermarks."""


@ldap.command("sync")
@config_option
@click.argument("name")
@click.option("--full", is_flag=True, help="Reconcile every entry: missed changes, and deletes for vanished users.")
@click.option("--force", is_flag=True, help="Let the mass-change guard pass: deactivations and deletes are not held.")
def sync(config_path: str, name: str, full: bool, force: bool) -> None:
    """Run the watcher of directory NAME once, now (a full sync if it has no watermark yet).

    Exit status: 0 when the run stored its events; 3 when the mass-change guard held some (its
    message says what to do); 1 on an error.
    """
    config = load_config(config_path)
    directory = _directory(config, name)
    with open_configured_store(config) as store, closing(Watcher(store, directory)) as watcher, \
            _guard_warning_withheld():
        watermark = store.ldap_watermark(name)
        known = watermark.known if watermark and watermark.cursor else 0
        expected = known if full or not (watermark and watermark.cursor) else 0
        with click.progressbar(length=max(expected, 1), label=f"ldap {name}: reading entries", file=None,
                               show_pos=True, hidden=expected == 0) as bar:
            result = watcher.run(full=full, force=force, progress=bar.update)
    click.echo(_summary(result))
    if result.guard_message:
        click.echo(result.guard_message, err=True)
        sys.exit(NEEDS_ATTENTION)


@contextlib.contextmanager
def _guard_warning_withheld() -> Iterator[None]:
    """The watcher logs the mass-change guard's message for `connector run`; here the command prints it
    itself, once, after its summary, so the log's copy (Python's last-resort handler on stderr) is dropped."""
    def other(record: logging.LogRecord) -> bool:
        return GUARD_TRIPPED not in record.getMessage()

    logger = logging.getLogger(watcher_module.log.name)
    logger.addFilter(other)
    try:
        yield
    finally:
        logger.removeFilter(other)


@ldap.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per directory.")
def status(config_path: str, as_json: bool) -> None:
    """Each directory's watermark, last run, counts and last error."""
    config = load_config(config_path)
    with open_configured_store(config) as store:
        stored = {w.directory: w for w in store.ldap_watermarks()}
    names = sorted(set(config.ldap) | set(stored))
    if not names:
        click.echo(f"no directories: add an [ldap.NAME] section to {config.path}")
    for name in names:
        watermark = stored.get(name)
        if as_json:
            click.echo(json.dumps({"directory": name, "configured": name in config.ldap,
                                   **({} if watermark is None else _as_dict(watermark))}))
        else:
            click.echo(_describe(name, config.ldap.get(name), watermark))


def _directory(config: Config, name: str) -> LdapConfig:
    if name not in config.ldap:
        known = ", ".join(sorted(config.ldap)) or "none"
        raise ConnectorError(f"{config.path} has no [ldap.{name}] section (directories: {known}); "
                             "check the name or add the section")
    return config.ldap[name]


def _summary(result: RunResult) -> str:
    c = result.counts
    return (f"ldap {result.directory}: {'full' if result.full else 'incremental'} run read {c['seen']} entries: "
            f"{c['upsert']} upserts, {c['deactivate']} deactivations, {c['delete']} deletes "
            f"({c['held']} held); {len(result.event_ids)} events stored")


def _describe(name: str, config: LdapConfig | None, watermark: LdapWatermark | None) -> str:
    where = f"{config.dialect} {config.url}" if config else "no longer configured"
    lines = [f"{name} ({where})"]
    if watermark is None:
        return "\n".join([*lines, "  never run"])
    cursor = {k: v for k, v in watermark.cursor.items() if k not in _LISTED_APART}
    lines.append(f"  watermark   {json.dumps(cursor) if cursor else 'none (next run is a full sync)'}")
    lines.append(f"  known users {watermark.known}")
    lines.append(f"  last run    {_when(watermark.last_run_at)}"
                 + ("  FAILED" if watermark.last_error else "  ok"))
    lines.append(f"  last ok     {_when(watermark.last_success_at)}  {watermark.counts or ''}")
    if watermark.last_error:
        lines.append(f"  last error  {watermark.last_error}")
    if config is not None:
        lines.append(f"  identity    {_identity(config)}")
    lines.extend(f"  note        {note}" for note in watermark.cursor.get("notes") or ())
    return "\n".join(lines)


_LISTED_APART = ("notes", "rule_groups")


def _identity(config: LdapConfig) -> str:
    if config.id_attribute and config.id_attribute.lower() == "dn":
        return f"DN (id_attribute = \"dn\"): WARNING: {DN_IDENTITY_WARNING}"
    return config.id_attribute or LDAP_ID_ATTRIBUTES[config.dialect]


def _as_dict(watermark: LdapWatermark) -> dict[str, object]:
    return {"cursor": watermark.cursor, "known": watermark.known, "last_run_at": watermark.last_run_at,
            "last_success_at": watermark.last_success_at, "last_error": watermark.last_error,
            "counts": watermark.counts}


def _when(at: float | None) -> str:
    return "never" if at is None else datetime.datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")
