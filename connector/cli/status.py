"""`connector status` and `connector audit`: what an on-call engineer looks at first."""

from __future__ import annotations

import dataclasses
import time

import click

from connector.cli.options import config_option, json_option, since_option, since_time
from connector.config import load_config
from connector.ops.health import target_state
from connector.ops.report import (
    age,
    audit_line,
    counts_line,
    drift_line,
    instance_line,
    ownership_lines,
    source_states,
    summary_lines,
    to_json,
)
from connector.runtime import open_configured_store


@click.command()
@config_option
@since_option("Only entries from this time")
@click.option("--limit", default=100, show_default=True)
@json_option
def audit(config_path: str, since: str | None, limit: int, as_json: bool) -> None:
    """Who replayed, discarded or approved what, when and why; newest first."""
    with open_configured_store(load_config(config_path)) as store:
        entries = store.list_audit(limit, since=since_time(since))
    if as_json:
        click.echo(to_json(entries))
        return
    for entry in entries:
        click.echo(audit_line(entry))
    if not entries:
        click.echo("no audit entries")


@click.command()
@config_option
@json_option
def status(config_path: str, as_json: bool) -> None:
    """Queue depth by state, oldest pending age, dead letters by cause, the target's state, and the
    connector instances sharing the store with the one polling each directory."""
    config = load_config(config_path)
    with open_configured_store(config) as store:
        counts = store.count_by_state()
        oldest = store.oldest_pending_at()
        summary = store.dead_letter_summary()
        leaders = store.leaders()
        sources = source_states(config, {w.directory: w for w in store.ldap_watermarks()}, leaders)
        now, instances = store.live_instances()
        drift = store.last_drift_run()
        conflicts = store.open_conflicts()
        clashes = store.extension_clashes()
        held = store.held_summary()
        breakers = store.open_breakers()
    pending_age = None if oldest is None else max(0.0, time.time() - oldest)
    target = target_state(config.target_url, breakers)
    misconfigured = next((error for cause, error, _ in summary if cause == "target_misconfigured"), None)
    if misconfigured is not None:  # it answers, but not as Provisioning API v2: what the dead letters say
        target = f"MISCONFIGURED: {misconfigured}"
    if as_json:
        click.echo(to_json({"counts": {s.value: n for s, n in counts.items()},
                            "oldest_pending_age_seconds": pending_age,
                            "dead_letters_by_cause": [{"cause": c, "error": e, "count": n} for c, e, n in summary],
                            "held_by_cause": [{"cause": c, "source": src, "count": n} for c, src, n in held],
                            "extension_conflicts": conflicts,
                            "extension_clashes": [{"extension": x, "claimants": c} for x, c in clashes],
                            "sources": sources,
                            "instances": [{**dataclasses.asdict(i), "silent_seconds": max(0.0, now - i.heartbeat_at)}
                                          for i in instances],
                            "leaders": leaders,
                            "drift": drift,
                            "target": {"url": config.target_url, "state": target, "breakers": breakers}}))
        return
    click.echo(f"queue: {counts_line(counts)}")
    click.echo(f"oldest pending: {'none' if pending_age is None else age(pending_age)}")
    for name, state in sources.items():
        click.echo(f"source {name}: {state}")
    for instance in instances:
        click.echo(instance_line(instance, now))
    click.echo(drift_line(drift))
    click.echo(f"target: {config.target_url} {target}")
    click.echo("dead letters by cause:" if summary else "dead letters: none")
    for line in summary_lines(summary):
        click.echo(line)
    if held:
        click.echo("held for `connector events approve` (review them first with `connector events list --state held`):")
        for cause, source, count in held:
            click.echo(f"{count:>6}  {cause}  source {source}")
    for line in ownership_lines(conflicts, clashes):
        click.echo(line)
