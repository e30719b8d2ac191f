"""`connector status` and `connector audit`: what an on-call engineer looks at first."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from connector.cli.options import NEEDS_ATTENTION, config_option, echo, json_option, since_option, since_time
from connector.config import Config, load_config
from connector.errors import counted
from connector.mapping import mapping_digest
from connector.ops.health import answered_since, attempts_since, recorded_target_state
from connector.ops.report import (
    age,
    audit_line,
    behind_held_lines,
    behind_held_text,
    breaker_state,
    counts_line,
    dead_instance_advice,
    dead_instance_line,
    dead_letters_json,
    drift_found,
    held_json,
    held_lines,
    instance_line,
    instances_json,
    ownership_lines,
    recorder_lines,
    retry_lines,
    silence_text,
    silent_for,
    source_states,
    summary_lines,
    to_json,
    when,
)
from connector.runtime import open_configured_store
from connector.store import (
    DeadInstance,
    DriftFailure,
    DriftRun,
    Instance,
    LdapWatermark,
    OpenBreaker,
    StoreError,
    TargetProbe,
    without_password,
)

DEFAULT_MAX_PENDING_AGE = 900.0  # seconds; the README's alert on connector_queue_oldest_pending_age_seconds


@click.command()
@config_option
@since_option("Only entries from this time")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Show at most this many entries, the newest.")
@json_option
def audit(config_path: str, since: str | None, limit: int, as_json: bool) -> None:
    """Who replayed, discarded or approved what, when and why; newest first."""
    with open_configured_store(load_config(config_path, secrets=())) as store:
        entries = store.list_audit(limit, since=since_time(since))
    if as_json:
        echo(to_json(entries))
        return
    for entry in entries:
        echo(audit_line(entry))
    if not entries:
        echo("no audit entries")


@click.command()
@config_option
@json_option
@click.option("--check", is_flag=True,
              help=f"For cron and monitoring: print only the verdict; exit {NEEDS_ATTENTION} when someone may not "
                   "be recorded (dead letters, held events, extension conflicts, a pending event older than "
                   "--max-pending-age, a recording server that did not take the extension table, drift the last "
                   "drift check found and did not repair) or the running connector cannot do its job (none runs, "
                   "Verba down, an instance silent or counted dead or started before the mapping file changed, an "
                   "LDAP directory failing or not polled), else 0.")
@click.option("--max-pending-age", "max_pending_age", type=click.FloatRange(min=0), default=DEFAULT_MAX_PENDING_AGE,
              show_default=True, metavar="SECONDS", help="With --check: how old the oldest undelivered event may be.")
def status(config_path: str, as_json: bool, check: bool, max_pending_age: float) -> None:
    """Queue depth by state, the oldest undelivered event's age, the events retrying after a failure and the dead
    letters by cause, the target's state as the
    running connector last probed it, the recording servers' last answers ([target] apply_configuration), and the
    connector instances sharing the store with the one polling each directory (and those counted dead, until
    started or forgotten); an instance silent for [instance] liveness_seconds is flagged SILENT, and a store no
    connector runs on says so, as --check judges them.

    Reads the store only: it needs none of the config's secrets and calls nothing.

    With --check, exit status 0 when all is well, 3 when something needs someone (each reason printed, one a line),
    1 on an error. The reasons: dead letters; events held by a guard; open extension conflicts; an undelivered event
    (pending or in flight) older than --max-pending-age; a recording server named in the last
    applyExtensionConfiguration answer that did not take the extension table; drift of any kind that the last drift
    check of every user found and did not repair (a check that repaired queued ordinary events, whose failures are
    dead letters); an open circuit breaker on Verba, or a failed last probe of it (unless Verba answered a push
    since); no connector instance running on the store (none registered: one stopped cleanly leaves none); a
    connector instance not heard from for [instance] liveness_seconds, or counted dead (until it starts again or
    `connector instances forget NAME`), or started before the config's mapping file last changed (it maps with the
    old file until restarted); an LDAP directory whose last poll failed and none succeeded in the two poll intervals
    before (a single failure a retry fixes is not counted), or that no poll has read for --max-pending-age (or ten
    poll intervals, if longer).
    """
    config = load_config(config_path, secrets=())
    if check:
        _check(config, max_pending_age, as_json)
        return
    with open_configured_store(config) as store:
        counts = store.count_by_state()
        oldest = store.oldest_pending_at()
        summary = store.dead_letter_summary()
        retrying = store.retrying_summary()
        leaders = store.leaders()
        sources = source_states(config, {w.directory: w for w in store.ldap_watermarks()}, leaders)
        now, instances = store.live_instances()
        dead = store.dead_instances()
        drift, failure = store.last_drift_run(), store.last_drift_failure()
        conflicts = store.open_conflicts()
        clashes = store.extension_clashes()
        held = store.held_summary()
        behind = store.waiting_behind_held()
        breakers = store.open_breakers()
        probes = store.target_probes()
        answered_at = answered_since(probes, lambda since: attempts_since(store, since))
        recorders = store.recorders()
    pending_age = None if oldest is None else max(0.0, time.time() - oldest)
    # What the running connector found, from the store: this command calls nothing and needs no secret.
    limit = config.instance.liveness_seconds
    live = {i.name for i in instances if silent_for(i, now, limit) is None}
    target = recorded_target_state(probes, breakers, live, now, answered_at)
    misconfigured = next((g.sample for g in summary if g.cause == "target_misconfigured"), None)
    if misconfigured is not None:  # it answers, but not as Provisioning API v2: what the dead letters say
        target = f"MISCONFIGURED: {misconfigured}"
    if as_json:
        echo(to_json({"counts": {s.value: n for s, n in counts.items()},
                      "oldest_pending_age_seconds": pending_age,
                      "dead_letters_by_cause": dead_letters_json(summary),
                      "retrying_by_cause": dead_letters_json(retrying),
                      "held_by_cause": held_json(held),
                      "waiting_behind_held": {"events": behind[0], "users": behind[1]},
                      "extension_conflicts": conflicts,
                      "extension_clashes": [{"extension": x, "claimants": c} for x, c in clashes],
                      "sources": sources,
                      "instances": instances_json(instances, dead, now, limit),
                      "nothing_runs": not instances,  # dead ones have their own entries (dead: true)
                      "leaders": leaders,
                      "drift": drift,
                      "drift_failure": failure,
                      "target": {"url": config.target_url, "state": target, "breakers": breakers,
                                 "probes": [{**dataclasses.asdict(p), "age_seconds": max(0.0, now - p.probed_at)}
                                            for p in probes]},
                      "recorders": [dataclasses.asdict(r) for r in recorders]}))
        return
    echo(f"queue: {counts_line(counts)}")
    echo(f"oldest undelivered (pending or in flight): {'none' if pending_age is None else age(pending_age)}")
    for name, state in sources.items():
        echo(f"source {name}: {state}")
    for instance in instances:
        echo(instance_line(instance, now, limit))
    for line in _nothing_runs(config, instances, dead):
        echo(f"instances: NONE: {line}")
    for gone in dead:
        echo(dead_instance_line(gone))
    for line in older_mapping(config, instances):
        echo(f"WARNING: {line}")
    echo(_drift_line(drift, time.time(), leaders.get("drift")))
    if failure is not None:
        echo(f"drift: FAILED: {_failure_text(failure, time.time())}")
    echo(f"target: {config.target_url} {target}")
    for line in recorder_lines(recorders):
        echo(line)
    for line in retry_lines(retrying, config.delivery.max_attempts, waiting=bool(breakers)):
        echo(line)
    for line in [*summary_lines(summary), *held_lines(held), *behind_held_lines(*behind),
                 *ownership_lines(conflicts, clashes)]:
        echo(line)


def _check(config: Config, max_pending_age: float, as_json: bool) -> None:
    """`status --check`: the store alone (no call to Verba), a verdict, and exit status 3 if it needs someone."""
    try:
        with open_configured_store(config) as store:
            summary = store.dead_letter_summary()
            held = store.held_summary()
            behind = store.waiting_behind_held()
            conflicts, _ = store.ownership_counts()
            oldest = store.oldest_pending_at()
            recorders = store.recorders()
            now, instances = store.live_instances()
            dead = store.dead_instances()
            breakers, probes = store.open_breakers(), store.target_probes()
            answered_at = answered_since(probes, lambda since: attempts_since(store, since))
            marks = {mark.directory: mark for mark in store.ldap_watermarks()}
            drift, failure = store.last_drift_run(), store.last_drift_failure()
    except StoreError as exc:  # a monitor that reads the JSON gets a verdict too (and exit status 1)
        if as_json:
            echo(to_json({"ok": False, "error": str(exc)}))
        raise
    pending_age = None if oldest is None else max(0.0, time.time() - oldest)
    problems = []
    last = max((r.applied_at for r in recorders), default=None)  # a server the last answer no longer names is gone
    failing = [r for r in recorders if not r.took_table and r.applied_at == last]
    if failing:
        names = ", ".join(f"{r.location} ({r.answer})" for r in failing)
        problems.append(f"{len(failing)} recording server(s) did not take the extension table at the last "
                        f"applyExtensionConfiguration: {names}; check them in Verba (the connector tries again)")
    if summary:
        causes = ", ".join(f"{g.cause} {g.size}" for g in summary)
        problems.append(f"{sum(g.size for g in summary)} dead letter(s) ({causes}): see `connector status`, then "
                        "`connector events list --state dead --cause CAUSE`")
    if held:
        causes = ", ".join(f"{g.cause} {g.size} (source {g.source})" for g in held)
        waiting = f"; {behind_held_text(*behind)}" if behind[0] else ""
        problems.append(f"{sum(g.size for g in held)} event(s) held by a guard ({causes}): review them with "
                        f"`connector events list --state held`, then approve or discard them{waiting}")
    if conflicts:
        problems.append(f"{conflicts} extension conflict(s): an extension a user should be recorded on is held by "
                        "another Verba user, or kept with another source's settings for the same Verba user; see "
                        "`connector status`")
    if pending_age is not None and pending_age > max_pending_age:
        problems.append(f"the oldest undelivered event (pending or in flight) is {age(pending_age)} old (more than "
                        f"{age(max_pending_age)}): is the connector running and Verba answering? see `connector "
                        "status`")
    problems += _drift_problems(drift)
    if failure is not None:
        problems.append(f"{_failure_text(failure, time.time())}: see `connector status`, and once what failed is fixed "
                        "run `connector drift` (or wait for the next scheduled check)")
    problems += _running_problems(config, now, instances, dead, breakers, probes, answered_at)
    problems += older_mapping(config, instances)
    problems += _directory_problems(config, marks, max_pending_age)
    if as_json:
        echo(to_json({"ok": not problems, "problems": problems, "oldest_pending_age_seconds": pending_age,
                      "max_pending_age_seconds": max_pending_age,
                      "waiting_behind_held": {"events": behind[0], "users": behind[1]},
                      "dead_letters_by_cause": dead_letters_json(summary)}))
    elif problems:
        for problem in problems:
            echo(f"CHECK FAILED: {problem}")
    else:
        oldest_text = "none" if pending_age is None else age(pending_age)
        echo(f"check ok: no dead letters; oldest undelivered {oldest_text} (at most {age(max_pending_age)})")
    if problems:
        sys.exit(NEEDS_ATTENTION)


def _drift_line(run: DriftRun | None, now: float, leader: str | None = None) -> str:
    """The last drift check (connector/ops/drift.py) with its age at `now`; `leader`: the instance that runs the
    scheduled checks, if one does. E.g. "drift: last check 2026-11-30 04:30:02, 2.0h ago (schedule, took 9s): 3001
    extensions of 3001 users, in step"; a check that left users unchecked says how many, never "in step"."""
    led = "" if leader is None else f"; instance {leader} runs the scheduled checks"
    if run is None:
        return f"drift: never checked (`connector drift`, or [drift] schedule in `connector run`){led}"
    found = drift_found(run)
    if found:
        verdict = f"DRIFT {found}"
    elif run.unchecked:
        verdict = "nothing checked" if not run.users else "no drift in those"
    else:
        verdict = "in step"
    unchecked = f"; {counted(run.unchecked, 'user')} not checked (`connector drift` says why)" if run.unchecked else ""
    repaired = "" if run.repaired is None else f"; {counted(run.repaired, 'user')} queued for repair"
    return (f"drift: last check {when(run.finished_at)}, {age(max(0.0, now - run.finished_at))} ago ({run.trigger}, "
            f"took {age(run.finished_at - run.started_at)}): {counted(run.extensions, 'extension')} of "
            f"{counted(run.users, 'user')}, "
            f"{verdict}{unchecked}{repaired}{led}")


def _drift_problems(run: DriftRun | None) -> list[str]:
    """The drift the last recorded check (a check of every user: one limited by --user is not recorded) found and did
    not repair. Every kind counts: no_user, missing, unlinked, other_user and settings mean Verba does not record
    someone as the directory wants, and an extra records on a managed user's line what no user's state wants
    recorded; users without a Verba user come first, with their own fix. A check that repaired needs no one: the
    repairs are ordinary events, whose failures show as dead letters (a user a push cannot find or create:
    unresolved_user)."""
    if run is None or run.repaired is not None:
        return []
    checked = f"the last drift check (at {when(run.finished_at)}, {run.trigger})"
    problems = []
    lost = run.counts.get("no_user", 0)
    if lost:
        problems.append(f"{checked} found {counted(lost, 'user')} whose loginName no Verba user has (deleted or "
                        "renamed in Verba?), so Verba records none of their extensions: see which with `connector "
                        "drift`, then create the users in Verba, or set [user_id] create_missing = true in the "
                        "mapping, and queue the fixes with `connector drift --repair --reason REASON` (the running "
                        "connector pushes them)")
    found = drift_found(dataclasses.replace(run, counts={k: n for k, n in run.counts.items() if k != "no_user"}))
    if found:
        problems.append(f"{checked} found drift it did not repair ({found}): Verba may not record someone as the "
                        "directory wants; see which with `connector drift`, then queue the fixes with `connector "
                        "drift --repair --reason REASON` (the running connector pushes them)")
    return problems


def _failure_text(failure: DriftFailure, now: float) -> str:
    """A failed scheduled check no check was recorded after, e.g. "the scheduled drift check failed at 2026-11-30
    04:30:05, 2.0h ago (after 3s), and no check has been recorded since: drift check stopped after 5 of 3001 users:
    ..."."""
    return (f"the scheduled drift check failed at {when(failure.failed_at)}, {age(max(0.0, now - failure.failed_at))} "
            f"ago (after {age(max(0.0, failure.failed_at - failure.started_at))}), and no check has been recorded "
            f"since: {failure.error}")


def older_mapping(config: Config, instances: Sequence[Instance]) -> list[str]:
    """The instances that loaded another mapping than this config's mapping file holds now: `connector run` reads the
    mapping once, at start, so they still map users with the file as it was (while `mapping test`, `drift` and
    previews read it as it is now, and a drift repair would push the old mapping again). Told by the digest of the
    text each instance loaded; for an instance of a version that recorded none, by whether it started before the
    file last changed."""
    path = Path(config.mapping_file)
    try:
        text, changed = path.read_text(encoding="utf-8"), path.stat().st_mtime
    except (OSError, UnicodeDecodeError) as error:
        return [f"cannot read the mapping {config.mapping_file} to compare it with what the running instances loaded "
                f"({error}); relative paths are read from the current directory ({os.getcwd()})"] if instances else []
    digest = mapping_digest(text)
    return [f"instance {i.name} started at {when(i.started_at)} with another mapping than {config.mapping_file} "
            "holds now: it still maps users with the file as it was; restart every instance to use it"
            for i in instances
            if (i.started_at < changed if i.mapping_digest is None else i.mapping_digest != digest)]


def _nothing_runs(config: Config, instances: Sequence[Instance], dead: Sequence[DeadInstance]) -> list[str]:
    """That no connector runs on the store, when none is registered (one stopped cleanly leaves no record) and none
    is counted dead (that has its own line); [] otherwise. Plain `status` and `--check` both say it."""
    if instances or dead:
        return []
    return [f"no connector runs on the store {without_password(config.store.url)}: nothing delivers events or polls "
            "the directories; start it (`systemctl start connector@NAME`, or `connector run --config <your config>`)"]


def _running_problems(config: Config, now: float, instances: Sequence[Instance], dead: Sequence[DeadInstance],
                      breakers: Sequence[OpenBreaker], probes: Sequence[TargetProbe],
                      answered_at: float | None = None) -> list[str]:
    """What the running connectors recorded that needs someone: no instance at all (none runs: one stopped cleanly
    leaves no record), an instance that went silent (it crashed or hangs: `silent_for`, as plain `status` flags
    it) or that another counted dead, an open circuit breaker on Verba, or a failed last probe of Verba by a live
    instance unless Verba answered a push after it (`answered_at`, from `answered_since`; `now`: the store's
    clock)."""
    limit = config.instance.liveness_seconds
    silences = {i.name: silence for i in instances if (silence := silent_for(i, now, limit)) is not None}
    problems = _nothing_runs(config, instances, dead)
    problems += [f"connector instance {i.name} ({i.host}, pid {i.pid}) {silence_text(silences[i.name], limit)} see "
                 "`connector status`" for i in instances if i.name in silences]
    problems += [f"connector instance {d.instance.name} ({d.instance.host}, pid {d.instance.pid}) was counted dead at "
                 f"{when(d.reaped_at)} by instance {d.reaped_by} ({d.released} in-flight event(s) went back to the "
                 f"queue): {dead_instance_advice(d.instance.name)}" for d in dead]
    live = {i.name for i in instances if i.name not in silences}
    probe = probes[0] if probes else None
    if breakers:
        problems.append(f"target {config.target_url} {breaker_state(breakers[0], now)}")
    elif probe is not None and not probe.answered and probe.instance in live and answered_at is None:
        ago = age(max(0.0, now - probe.probed_at))
        problems.append(f"target {config.target_url} did not answer the last probe, {ago} ago by instance "
                        f"{probe.instance}: {probe.cause}: {probe.error}")
    return problems


def _directory_problems(config: Config, marks: dict[str, LdapWatermark], max_pending_age: float) -> list[str]:
    """The LDAP directories of this config whose last poll failed (and none succeeded in the two poll intervals
    before), or that no poll has read for `max_pending_age` or ten poll intervals, the longer (no instance polls
    them, or it hangs). A directory never polled yet is not counted: a new connector has not polled it."""
    problems = []
    now = time.time()
    for name, directory in sorted(config.ldap.items()):
        mark = marks.get(name)
        if mark is None or mark.last_run_at is None:
            continue
        quiet = now - (mark.last_success_at or 0.0)
        limit = max(10 * directory.poll_seconds, max_pending_age)
        if mark.last_error and quiet > 2 * directory.poll_seconds:
            problems.append(f"directory {name}: the last poll failed, at {when(mark.last_run_at)}: {mark.last_error}")
        elif quiet > limit:
            problems.append(f"directory {name}: no poll has read it for {age(quiet)} (more than {age(limit)}): is a "
                            f"connector with [ldap.{name}] in its config running? see `connector status`")
    return problems
