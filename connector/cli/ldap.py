"""`connector ldap sync NAME [--full] [--force] [--dry-run]` and `connector ldap status`."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import click
import ldap3

from connector.cli.options import NEEDS_ATTENTION, config_option, echo, json_option
from connector.config import LDAP_ID_ATTRIBUTES, Config, LdapConfig, load_config
from connector.errors import ConnectorError, counted
from connector.mapping import load_mapping
from connector.ops.preview import ALWAYS_LISTED, OUTCOMES, USER_OUTCOMES, DryRun, PreviewReport
from connector.ops.report import to_json, when
from connector.passwords import one_shot_command
from connector.runtime import open_client, open_configured_store, preview_store
from connector.sources.ldap import watcher as watcher_module
from connector.sources.ldap.connection import close, open_connection, root_dse
from connector.sources.ldap.dialects import SUBSCHEMA, Dialect, UnknownAttributes, dialect_for
from connector.sources.ldap.watcher import DN_IDENTITY_WARNING, Preview, RunResult, Watcher
from connector.store import LdapWatermark
from connector.verba.errors import VerbaError

GUARD_TRIPPED = "mass-change guard tripped"  # in the watcher's message when the guard holds events


@click.group()
def ldap() -> None:
    """Watch LDAP directories (OpenLDAP, Active Directory): sync now, show watermarks."""


@ldap.command("sync")
@config_option
@click.argument("name")
@click.option("--full", is_flag=True, help="Reconcile every entry: missed changes, and deletes for vanished users.")
@click.option("--force", is_flag=True, help="Let the mass-change guard pass: deactivations and deletes are not held.")
@click.option("--dry-run", is_flag=True, help="Read every user, map them and ask Verba (read only) what pushing "
                                              "them would do; store nothing, write nothing to Verba.")
@click.option("--samples", type=click.IntRange(0), help="With --dry-run: examples printed per outcome  [default: 3]")
@click.option("--concurrency", type=click.IntRange(1, 64),
              help="With --dry-run: calls to Verba at a time  [default: delivery.workers]")
@json_option
@one_shot_command()
def sync(config_path: str, name: str, full: bool, force: bool, dry_run: bool, samples: int | None,
         concurrency: int | None, as_json: bool) -> None:
    """Run the watcher of directory NAME once, now (a full sync if it has no watermark yet).

    With --dry-run, preview going live instead: read every user in scope, map each, resolve their
    Verba users (listUsers, never createUser) and ask Verba what it holds (listUsers, getExtension),
    then print how many extensions would be created, updated, stopped or left unchanged, which users
    have no Verba user, which extensions another Verba user holds, and which states cannot be mapped,
    with examples. Nothing is stored (no watermark, events or entries) and nothing is written to Verba.

    Exit status: 0 when the run stored its events (or the dry run ended); 3 when the mass-change guard
    held some (its message says what to do); 1 on an error.
    """
    dry_run_only = [option for option, given in (("--samples", samples), ("--concurrency", concurrency))
                    if given is not None]
    if dry_run_only and not dry_run:
        raise click.UsageError(f"{' and '.join(dry_run_only)} only go{'es' if len(dry_run_only) == 1 else ''} with "
                               "--dry-run")
    if force and dry_run:
        raise click.UsageError("--force only goes with a sync, not with --dry-run (which holds nothing)")
    config = load_config(config_path, secrets={f"ldap.{name}", "target"} if dry_run else {f"ldap.{name}"})
    directory = directory_config(config, name)
    if dry_run:
        _dry_run(config, directory, 3 if samples is None else samples, concurrency, as_json)
        return
    # The directory's poll, run now: as `connector run` would, it makes the store (a first sync before the first run).
    with open_configured_store(config, create=True) as store, closing(Watcher(store, directory)) as watcher, \
            _guard_warning_withheld():
        watermark = store.ldap_watermark(name)
        known = watermark.known if watermark and watermark.cursor else 0
        expected = known if full or not (watermark and watermark.cursor) else 0
        with click.progressbar(length=max(expected, 1), label=f"ldap {name}: reading entries", file=None,
                               show_pos=True, hidden=expected == 0) as bar:
            try:
                result = watcher.run(full=full, force=force, progress=bar.update)
            except UnknownAttributes as exc:  # the run checks the names before it reads a user
                raise ConnectorError("\n".join(_in_file(config, exc))) from None
    echo(_summary(result))
    if result.guard_message:
        echo(result.guard_message, err=True)
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


def _dry_run(config: Config, directory: LdapConfig, samples: int, concurrency: int | None, as_json: bool) -> None:
    name = directory.name
    mapping = load_mapping(config.mapping_file)
    quiet = as_json or not sys.stderr.isatty()
    with preview_store(config) as store, closing(Watcher(store, directory)) as watcher:
        _check_names(config, directory, watcher.dialect)
        watermark = store.ldap_watermark(name)
        with click.progressbar(length=max(watermark.known if watermark else 0, 1), file=sys.stderr, show_pos=True,
                               label=f"ldap {name}: reading entries", hidden=quiet) as bar:
            found = watcher.preview(progress=bar.update)
        with open_client(config) as client:
            dry = DryRun(store, client, mapping, concurrency or config.delivery.workers)
            with click.progressbar(length=max(len(found.users), 1), file=sys.stderr, show_pos=True,
                                   label=f"ldap {name}: asking Verba", hidden=quiet) as bar:
                try:
                    report = dry.preview(found.users, bar.update, found.login_from, found.without_login)
                except VerbaError as exc:
                    # A call that got no answer says what to check (the built-in simulator: connector run).
                    raise ConnectorError(f"dry run: Verba could not be read at {config.target_url}: {exc}") from None
    hints = _login_hints(config, directory, watcher.dialect, report, mapping.create_missing_users)
    if as_json:
        echo(to_json({"directory": name, "dry_run": True, **_directory_counts(found), "users": report.users,
                      "no_extension": report.no_extension, "counts": report.counts, "items": report.items,
                      "hints": hints}))
        return
    for line in _dry_run_lines(found, report, samples, mapping.create_missing_users):
        echo(line)
    for hint in hints:
        echo(f"hint: {hint}")


def _check_names(config: Config, directory: LdapConfig, dialect: Dialect) -> None:
    """Check the attribute names `directory` gives against its schema, as a sync's first run does, over a
    connection of its own. Raises ConnectorError with a line per name the schema does not define (file, key,
    a did-you-mean); prints a warning when the schema cannot be read."""
    conn = open_connection(directory)
    try:
        problems, warning = schema_problems(config, directory, conn, dialect)
    finally:
        close(conn)
    if problems:
        raise ConnectorError("\n".join(problems))
    if warning:
        echo(f"ldap {directory.name}: WARNING: {warning}", err=True)


def schema_problems(config: Config, directory: LdapConfig, conn: ldap3.Connection,
                    dialect: Dialect | None = None) -> tuple[list[str], str | None]:
    """The attribute names `directory` gives, against the schema of its directory over the bound `conn`
    (`Dialect.check_names`; `dialect`: the one that then reads, to learn the names the server answers with):
    (a line per name the schema does not define, naming the config file and key, then what to do; [] when all are
    defined) and a warning when the schema cannot be read. Raises DirectoryError if the rootDSE cannot be read."""
    try:
        return [], (dialect or dialect_for(directory)).check_names(conn, root_dse(conn, [SUBSCHEMA]))
    except UnknownAttributes as exc:
        return _in_file(config, exc), None


def _in_file(config: Config, exc: UnknownAttributes) -> list[str]:
    """The names the schema does not define, a line each after the config file's path, then what to do."""
    return [*(f"{config.path}: {problem}" for problem in exc.problems), exc.advice]


def _login_hints(config: Config, directory: LdapConfig, dialect: Dialect, report: PreviewReport,
                 create_missing: bool) -> list[str]:
    """What to check when most users looked up in Verba have a login name no Verba user has (Verba may have it with
    a domain or without one): username_attribute, the one key to fix when Verba's login names are another attribute
    of the directory (with the defaults, OpenLDAP's uid while Verba's logins are email addresses), or the mapping's
    [user_id] login_name when it reads them elsewhere. None otherwise."""
    unknown = sum(report.unknown_logins.values())
    if not unknown or unknown <= report.resolved:
        return []
    origin, _ = report.unknown_logins.most_common(1)[0]
    notes = [f"Verba has {report.with_domain} of them with a domain or without one"] if report.with_domain else []
    if create_missing and unknown > report.with_domain:
        notes.append("create_missing = true: a push creates a Verba user for " + (
            f"the {counted(unknown - report.with_domain, 'other')}" if report.with_domain else "each"))
    said = (f"no Verba user has the login name of {unknown} of the {counted(unknown + report.resolved, 'user')} "
            f"looked up, read from {origin}" + (f" ({'; '.join(notes)})" if notes else ""))
    return [f"{said}: {login_attribute_fix(config, directory, dialect, origin)}, then run the dry run again"]


def login_attribute_fix(config: Config, directory: LdapConfig, dialect: Dialect, origin: str) -> str:
    """What to change when Verba's login names are another attribute than `origin`, where the login names of
    `directory`'s users are read from ("uid", or a mapping's path): its username_attribute, with an example, or
    the mapping's [user_id] login_name when that reads them elsewhere."""
    names = [directory.username_attribute] if directory.username_attribute else list(dialect.username_attributes)
    if origin.lower() not in {name.lower() for name in names}:  # the mapping reads it from elsewhere
        return f"check [user_id] login_name in {config.mapping_file}"
    other = next(name for name in (*dialect.username_attributes, "mail") if name.lower() != origin.lower())
    example = f'username_attribute = "{other}"' + (" for email addresses" if other == "mail" else "")
    return (f"if Verba's login names are in another attribute, set it in [ldap.{directory.name}] of {config.path}, "
            f"e.g. {example}")


def _directory_counts(found: Preview) -> dict[str, Any]:
    kinds = [change.kind for change in found.users]
    return {"active": kinds.count("upsert"), "inactive": kinds.count("deactivate"), "vanished": kinds.count("delete"),
            "would_store": found.would_store, "held": found.held, "guard": found.guard_message,
            "no_login": len(found.without_login)}


def _dry_run_lines(found: Preview, report: PreviewReport, samples: int, create_missing: bool) -> list[str]:
    """The preview for a terminal: what was read, then each outcome's count and a few examples."""
    c = _directory_counts(found)
    out = [f"ldap {found.directory} dry run: read {counted(c['active'] + c['inactive'], 'user')} ({c['active']} "
           f"active, {c['inactive']} inactive), {counted(c['vanished'], 'known user')} gone from the directory; "
           "nothing stored, nothing written to Verba",
           f"a full sync now would store {counted(found.would_store, 'event')} (users new or changed since the last "
           "sync, and those gone)"
           + (f"; {found.guard_message}" if found.guard_message else "")
           + (f"; but it stops at the {_stops_at(c['no_login'])} with no login name (below)" if c["no_login"] else "")]
    everyone = "the 1 user" if report.users == 1 else f"all {report.users} users"
    out.append(f"pushing {everyone} would do, as Verba holds things now (read with listUsers and getExtension):")
    counts = report.counts
    titles = dict(OUTCOMES)
    if create_missing:
        titles["unresolved"] = "no Verba user yet (create_missing: the push creates them)"
    shown = {outcome: title for outcome, title in titles.items() if outcome in ALWAYS_LISTED or counts[outcome]}
    width = max(len(title) for title in shown.values())
    for outcome, title in shown.items():
        unit = "users" if outcome in USER_OUTCOMES else "extensions"
        out.append(f"  {title:<{width}}  {counts[outcome]:>6} {unit}")
        items = report.of(outcome)
        for item in items[:samples]:
            where = f"{item.extension}  " if item.extension else ""
            out.append(f"      {where}{item.user}: {item.detail}")
        if len(items) > samples > 0:
            out.append(f"      ... and {len(items) - samples} more (--samples N, or --json for all)")
    if report.no_extension:
        out.append(f"  ({counted(report.no_extension, 'user')} map{'s' if report.no_extension == 1 else ''} to no "
                   "extension)")
    return out


def _stops_at(n: int) -> str:
    """"user", "first of the 2 users"."""
    return "user" if n == 1 else f"first of the {n} users"


@ldap.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per directory.")
def status(config_path: str, as_json: bool) -> None:
    """Each directory's watermark, last run, counts and last error (read from the store: no secret needed)."""
    config = load_config(config_path, secrets=())
    with open_configured_store(config) as store:
        stored = {w.directory: w for w in store.ldap_watermarks()}
    names = sorted(set(config.ldap) | set(stored))
    if not names:
        echo(f"no directories: add an [ldap.NAME] section to {config.path}")
    for name in names:
        watermark = stored.get(name)
        if as_json:
            echo(json.dumps({"directory": name, "configured": name in config.ldap,
                             **({} if watermark is None else _as_dict(watermark))}))
        else:
            echo(_describe(name, config.ldap.get(name), watermark))


def directory_config(config: Config, name: str) -> LdapConfig:
    """The [ldap.NAME] section; ConnectorError naming the configured ones if there is none."""
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
    counts = ", ".join(f"{kind} {n}" for kind, n in watermark.counts.items())
    lines.append(f"  last ok     {_when(watermark.last_success_at)}" + (f"  ({counts})" if counts else ""))
    if watermark.last_error:
        lines.append(f"  last error  {watermark.last_error}")
    if config is not None:
        lines.append(f"  identity    {_identity(config)}")
    lines.extend(f"  note        {note}" for note in watermark.cursor.get("notes") or ())
    return "\n".join(lines)


_LISTED_APART = ("notes", "rule_groups", "newest")  # newest: the users `Dialect.went_back` reads again


def _identity(config: LdapConfig) -> str:
    if config.id_attribute and config.id_attribute.lower() == "dn":
        return f"DN (id_attribute = \"dn\"): WARNING: {DN_IDENTITY_WARNING}"
    return config.id_attribute or LDAP_ID_ATTRIBUTES[config.dialect]


def _as_dict(watermark: LdapWatermark) -> dict[str, object]:
    return {"cursor": watermark.cursor, "known": watermark.known, "last_run_at": watermark.last_run_at,
            "last_success_at": watermark.last_success_at, "last_error": watermark.last_error,
            "counts": watermark.counts}


def _when(at: float | None) -> str:
    return "never" if at is None else when(at)
