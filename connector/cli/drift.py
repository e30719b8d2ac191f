"""`connector drift [--repair]`: compare Verba with what the connector wants it to hold."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

import click

from connector.cli.options import config_option, echo, json_option, not_blank, operator_option
from connector.cli.status import older_mapping
from connector.config import load_config
from connector.errors import ConnectorError, counted
from connector.mapping import load_mapping
from connector.ops.drift import KINDS, Drift, DriftCheck, DriftReport, Unchecked
from connector.ops.report import to_json
from connector.passwords import one_shot_command
from connector.runtime import open_client, open_configured_store
from connector.store import EventLog

DRIFT_FOUND = 3  # the exit status when Verba differs, or when no user could be checked
NOT_RECORDED = ("not recorded as the last check (only some users were checked): `connector status`, the metrics and "
                "`connector status --check` still show the last check of every user; `connector drift` without "
                "--user records a new one")
NOTHING_RECORDED = ("not recorded as the last check (no user could be checked): `connector status`, the metrics and "
                    "`connector status --check` still show the last check that checked someone; run `connector drift` "
                    "again once the users above can be checked")
SHOWN = 10  # users shown for each reason a user was not checked, and event ids of a repair that are not one range
# After an `older_mapping` line, when drift was found: what that means for a repair, which the running connector
# delivers (a plain check that advises one, and --repair that queued one).
REPAIR_AFTER_RESTART = ("The running connector delivers a repair, so it would map it with the file as it was (this "
                        "check maps with the file as it is now): restart it first (`systemctl restart "
                        "connector@NAME`), then repair")
REPAIRED_BEFORE_RESTART = ("The running connector delivers this repair, so it maps it with the file as it was (this "
                           "check maps with the file as it is now) and may leave Verba as it is: restart it "
                           "(`systemctl restart connector@NAME`), then run `connector drift --repair` again")


@click.command()
@config_option
@click.option("--repair", is_flag=True, help="Queue a push of every user with drift (ownership rules and guards "
                                             "apply); the running connector delivers them.")
@click.option("--user", "users", multiple=True, metavar="USER",
              help="Only this user: external id, userName or source/external_id (repeatable). A check of some "
                   "users is not recorded as the last check: `connector status`, the metrics and `status --check` "
                   "keep the last check of every user.")
@click.option("--reason", callback=not_blank, help="Why, for the audit (required with --repair).")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Calls to Verba at a time  [default: delivery.workers]")
@operator_option
@json_option
@one_shot_command()
def drift(config_path: str, repair: bool, users: tuple[str, ...], reason: str | None, concurrency: int | None,
          operator: str, as_json: bool) -> None:
    """Compare what Verba holds (getExtension, listUsers) with the records each user's current state maps to;
    report users no Verba user has the loginName of, and missing, unlinked, other-user, settings and extra
    extensions. Writes nothing to Verba. A repair stops recording on each extra extension (Verba holds it for the
    user, their source does not give it): the check says which, and the repair which it queued to stop (--json:
    stops_recording).

    A check of every user is recorded as the last check (`connector status`, the metrics, `status --check`); one
    limited by --user is not, so that it never hides what the last check of every user found, nor is one that
    could check no user (each waits for a push, say).

    A check that finds drift warns (stderr) when a running instance started before the mapping file last changed:
    it delivers a repair with the mapping as it was, so restart it first.

    Exit status: 0 when Verba is in step for the users checked, 3 when drift was found (repaired or not) or no user
    could be checked, 1 on an error.
    """
    if repair and reason is None:
        raise click.UsageError("say why with --reason R, for the audit of the repair; nothing was checked")
    config = load_config(config_path, secrets={"target"})
    with open_configured_store(config) as store, open_client(config) as client:
        targets = _users(store, users) if users else None
        check = DriftCheck(store, client, load_mapping(config.mapping_file), concurrency or config.delivery.workers)
        with _Progress(hidden=as_json or not sys.stderr.isatty()) as bar:
            report = check.check(targets, progress=bar.step, begin=bar.begin)
        for line in older_mapping(config, store.live_instances()[1]) if report.drifts else []:
            echo(f"WARNING: {line}. {REPAIRED_BEFORE_RESTART if repair else REPAIR_AFTER_RESTART}", err=True)
        ids = check.repair(report, actor=operator, reason=reason or "") if repair and report.drifts else []
        recorded = not users and check.record(report, "cli")
    if as_json:
        echo(to_json({"users_total": report.total, "users": report.users,
                      "users_with_no_extension": report.needing_nothing, "extensions": report.extensions,
                      "counts": report.counts, "drifts": report.drifts, "unchecked": report.unchecked,
                      "unchecked_by_reason": {reason: len(group)
                                              for reason, group in report.unchecked_by_reason().items()},
                      "discarded": report.discarded,
                      "in_conflict": report.in_conflict, "repaired": report.repaired,
                      "stops_recording": report.stopping,
                      "event_ids": ids, "seconds": report.finished_at - report.started_at,
                      "recorded": recorded}))
    else:
        for line in lines(report, ids):
            echo(line)
        if users:
            echo(NOT_RECORDED)
        elif not recorded:
            echo(NOTHING_RECORDED)
    if report.drifts or report.nothing_checked:
        sys.exit(DRIFT_FOUND)


class _Progress(contextlib.ExitStack):
    """The progress bar of a check on standard error, opened by `begin(total)` once the reads up front (the store's
    users, Verba's list of every user) are done: click's time estimate averages from the bar's start and keeps its
    first samples, so a bar opened before those reads estimated hours for a check of seconds."""

    def __init__(self, hidden: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.update: Callable[[int], None] = lambda n: None  # the bar's, once begun
        if not hidden:
            echo("drift: reading the users to check and what Verba holds ...", err=True)

    def begin(self, total: int) -> None:
        self.update = self.enter_context(click.progressbar(length=total, label="drift: checking users",
                                                           file=sys.stderr, show_pos=True, hidden=self.hidden)).update

    def step(self, n: int) -> None:
        """Move the bar on by `n` users checked: `check` is given this before `begin` opens the bar (given the
        bar's `update` then, every step went to the no-op before it, and the bar stayed at 0)."""
        self.update(n)


def lines(report: DriftReport, ids: list[int]) -> list[str]:
    """The report for a terminal: a summary line, then the drift grouped by kind, then what was not checked."""
    seconds = report.finished_at - report.started_at
    why = ": see why below" if report.unchecked else ""
    out = [f"drift: {report.figures()}, in {seconds:.1f} s: {report.verdict()}{why}"]
    for kind, title in KINDS.items():
        drifts = [d for d in report.drifts if d.kind == kind]
        if drifts:
            out.append(f"{title} ({len(drifts)}):")
            out.extend(_drift_line(d) for d in drifts)
    if report.in_conflict:
        out.append(f"in an open extension conflict, not drift ({len(report.in_conflict)}): `connector status` says why "
                   "and what resolves it")
        out.extend(f"  {waiting['extension']}  {waiting['user']}" for waiting in report.in_conflict)
    if report.unchecked:
        out.append(f"not checked ({counted(len(report.unchecked), 'user')}; `--json` lists every one):")
        for reason, group in report.unchecked_by_reason().items():
            out.extend(_unchecked_lines(reason, group))
    if report.discarded:
        out.append(f"left out, every change of theirs discarded ({counted(len(report.discarded), 'user')}; `events "
                   "replay ID` of a discarded one undoes its discard, and a check then compares the user again)")
    stops = report.stops_recording()
    if report.repaired is not None:
        out.append(f"repair: queued {counted(report.repaired, 'user')} ({_event_ids(ids)}); the running connector "
                   "pushes them: follow them with `connector events list`")
        if stops:
            out.append(f"repair: it stops recording on {stops}")
    elif report.drifts:
        out.append("nothing was written; run again with --repair to queue the fixes")
        if stops:
            out.append(f"a repair stops recording on {stops}; if one must stay recorded, give it to its user at the "
                       "source first")
    return out


def _drift_line(drift: Drift) -> str:
    """One drift, e.g. "  +14155550100  test/u-alice (Verba user 3): voice: Verba has False, wanted True"; a user
    without a Verba user has no extension or Verba user to name: "  test/u-bob: no Verba user has loginName ..."."""
    if drift.user_id is None:
        return f"  {drift.user}: {drift.detail}"
    return f"  {drift.extension}  {drift.user} (Verba user {drift.user_id}): {drift.detail}"


def _unchecked_lines(reason: str, group: list[Unchecked]) -> list[str]:
    """The users not checked for one reason: a line with the reason and their count, then the first SHOWN users (with
    what is particular to each) and how many more, e.g. ["  a change of this user waits to be pushed (12):",
    "    test/u-1", ..., "    ... and 2 more"]."""
    out = [f"  {reason} ({len(group)}):"]
    out.extend(f"    {user.user}" + (f": {user.detail}" if user.detail else "") for user in group[:SHOWN])
    if len(group) > SHOWN:
        out.append(f"    ... and {len(group) - SHOWN} more")
    return out


def _event_ids(ids: list[int]) -> str:
    """The events a repair queued, short: "event 7", "events 7 to 3007" when one range (as `events ingest` says what
    it accepted), else the first SHOWN ids and how many in all, e.g. "events 7, 9, ... (3001 in all)"."""
    ids = sorted(ids)
    if not ids:
        return "no events"
    if len(ids) == 1:
        return f"event {ids[0]}"
    if ids[-1] - ids[0] == len(ids) - 1:
        return f"events {ids[0]} to {ids[-1]}"
    shown = ", ".join(map(str, ids[:SHOWN]))
    return f"events {shown}" + (f", ... ({len(ids)} in all; `--json` lists every one)" if len(ids) > SHOWN else "")


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
