"""`connector drift [--repair]`: compare Verba with what the connector wants it to hold."""

from __future__ import annotations

import sys

import click

from connector.cli.options import config_option, json_option, operator_option
from connector.config import load_config
from connector.errors import ConnectorError
from connector.mapping import load_mapping
from connector.ops.drift import KINDS, DriftCheck, DriftReport
from connector.ops.report import to_json
from connector.runtime import open_client, open_configured_store
from connector.store import EventLog

DRIFT_FOUND = 3  # the exit status when Verba differs
NOT_RECORDED = ("not recorded as the last check (only some users were checked): `connector status`, the metrics and "
                "`connector status --check` still show the last check of every user; `connector drift` without "
                "--user records a new one")


@click.command()
@config_option
@click.option("--repair", is_flag=True, help="Queue a push of every user with drift (ownership rules and guards "
                                             "apply); the running connector delivers them.")
@click.option("--user", "users", multiple=True, metavar="USER",
              help="Only this user: external id, userName or source/external_id (repeatable). A check of some "
                   "users is not recorded as the last check: `connector status`, the metrics and `status --check` "
                   "keep the last check of every user.")
@click.option("--reason", default="", help="Why, for the audit (with --repair).")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Calls to Verba at a time  [default: delivery.workers]")
@operator_option
@json_option
def drift(config_path: str, repair: bool, users: tuple[str, ...], reason: str, concurrency: int | None,
          operator: str, as_json: bool) -> None:
    """Compare what Verba holds (getExtension, listUsers) with the records each user's current state maps to;
    report missing, unlinked, other-user, settings and extra extensions. Writes nothing to Verba.

    A check of every user is recorded as the last check (`connector status`, the metrics, `status --check`); one
    limited by --user is not, so that it never hides what the last check of every user found.

    Exit status: 0 when Verba is in step, 3 when drift was found (repaired or not), 1 on an error.
    """
    config = load_config(config_path, secrets={"target"})
    with open_configured_store(config) as store, open_client(config) as client:
        targets = _users(store, users) if users else store.user_keys()
        check = DriftCheck(store, client, load_mapping(config.mapping_file), concurrency or config.delivery.workers)
        with click.progressbar(length=len(targets), label="drift: checking users", file=sys.stderr, show_pos=True,
                               hidden=as_json or not sys.stderr.isatty()) as bar:
            report = check.check(targets, progress=bar.update, every_user=not users)
        ids = check.repair(report, actor=operator, reason=reason) if repair and report.drifts else []
        if not users:
            store.add_drift_run(report.run("cli"))
    if as_json:
        click.echo(to_json({"users": report.users, "extensions": report.extensions, "counts": report.counts,
                            "drifts": report.drifts, "unchecked": report.unchecked,
                            "in_conflict": report.in_conflict, "repaired": report.repaired,
                            "event_ids": ids, "seconds": report.finished_at - report.started_at,
                            "recorded": not users}))
    else:
        for line in lines(report, ids):
            click.echo(line)
        if users:
            click.echo(NOT_RECORDED)
    if report.drifts:
        sys.exit(DRIFT_FOUND)


def lines(report: DriftReport, ids: list[int]) -> list[str]:
    """The report for a terminal: a summary line, then the drift grouped by kind, then what was not checked."""
    seconds = report.finished_at - report.started_at
    if report.drifts:
        found = f"{len(report.drifts)} differ"
    elif report.unchecked:
        found = ("nothing checked: see why below" if not report.users
                 else f"in step, but {len(report.unchecked)} users were not checked: see why below")
    else:
        found = "in step"
    out = [f"drift: checked {report.extensions} extensions of {report.users} users in {seconds:.1f} s: {found}"]
    for kind, title in KINDS.items():
        drifts = [d for d in report.drifts if d.kind == kind]
        if drifts:
            out.append(f"{title} ({len(drifts)}):")
            out.extend(f"  {d.extension}  {d.user} (Verba user {d.user_id}): {d.detail}" for d in drifts)
    if report.in_conflict:
        out.append(f"in an open extension conflict, not drift ({len(report.in_conflict)}): `connector status` says why "
                   "and what resolves it")
        out.extend(f"  {waiting['extension']}  {waiting['user']}" for waiting in report.in_conflict)
    if report.unchecked:
        out.append(f"not checked ({len(report.unchecked)}):")
        out.extend(f"  {line}" for line in report.unchecked)
    if report.repaired is not None:
        out.append(f"repair: queued {report.repaired} users (events {', '.join(map(str, ids))}); the running "
                   "connector pushes them: follow them with `connector events list`")
    elif report.drifts:
        out.append("nothing was written; run again with --repair to queue the fixes")
    return out


def _users(store: EventLog, wanted: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (source, external_id) of each USER: source/external_id, an external id or a userName."""
    known = store.user_keys()
    keys: dict[tuple[str, str], None] = {}
    for name in wanted:
        source, slash, external_id = name.partition("/")
        matches = [(source, external_id)] if slash and (source, external_id) in known else [
            (e.change.source, e.change.external_id) for e in store.list_events(user=name, limit=10_000)]
        if not matches:
            raise ConnectorError(f"no user {name!r} is known to the connector; give an external id, a userName or "
                                 "source/external_id (see `connector events list`)")
        keys.update(dict.fromkeys(matches))
    return list(keys)
