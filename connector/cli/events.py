"""`connector events ...`: ingest, list, show, replay, discard and approve user-change events."""

from __future__ import annotations

import codecs
import itertools
import json
import math
import sys
import time
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import click

from connector.cli.options import (
    NEEDS_ATTENTION,
    config_option,
    echo,
    json_option,
    not_blank,
    operator_option,
    since_option,
    since_time,
)
from connector.cli.status import older_mapping
from connector.config import Config, load_config
from connector.errors import ConnectorError
from connector.events import UserChange, parse_user_change, read_json
from connector.mapping import Mapping, MappingError, load_mapping
from connector.ops.health import answered_since, attempts_since, recorded_target_state
from connector.ops.replay import (
    HELD_FIRST,
    MAX_SELECTED,
    QUEUED,
    ActionError,
    act_in_batches,
    already_queued,
    behind_held,
    causes_now,
    delivered_reruns,
    discard,
    discarded_newest,
    held_back,
    newer_changes,
    preview,
    requeue,
    select_batches,
    user_turn,
)
from connector.ops.report import (
    WAITS_NOTE,
    age,
    attempt_lines,
    audit_line,
    behind_json,
    counts_line,
    dead_letters_json,
    event_dict,
    event_line,
    held_json,
    held_lines,
    ownership_lines,
    queued_by,
    silent_for,
    stalled_claim,
    summary_lines,
    to_json,
    waiting_extensions,
    when,
)
from connector.passwords import one_shot_command
from connector.runtime import open_client, open_configured_store
from connector.store import EventState, Store, StoredEvent
from connector.store.log import CONFLICT_CAUSE, CauseGroup
from connector.verba.errors import VerbaError


@click.group()
def events() -> None:
    """Accept and inspect user-change events."""


@events.command("ingest")
@config_option
@click.argument("file", type=click.File("rb"))
def events_ingest(config_path: str, file: BinaryIO) -> None:
    """Accept the user-change events in FILE (JSON lines), all or none; FILE "-" reads standard input.

    Each line is {"source", "external_id", "kind", "state", optional "id", "cause" and "accepted_at"}.
    UTF-8 (a BOM is fine), or UTF-16 with a BOM; LF or CRLF line ends.
    Exit status: 0 when every event was accepted (or had been before, by its "id"); 1 when any line is bad (not
    JSON, not an event as above, an accepted_at more than 5 minutes ahead, bytes that are not UTF-8, a value the
    store cannot hold): each is named by its line number and nothing from FILE is accepted; 2 on a usage error,
    such as a FILE that cannot be opened.
    """
    name = "<stdin>" if file.name in ("<stdin>", "-") else file.name
    config = load_config(config_path, secrets=())
    if sys.stderr.isatty():
        echo(f"{name}: reading the events ...", err=True)
    changes = read_events(file.read(), name)
    if sys.stderr.isatty():
        echo(f"{name}: {len(changes)} events read; storing them (all or none) ...", err=True)
    with open_configured_store(config) as store:
        try:
            ids = store.enqueue(changes)
        except ValueError as exc:  # one the checks of each line (parse_user_change) did not foresee: no line named
            raise ConnectorError(f"{name}: {exc}\nnothing from {name} was accepted. Fix it and run again.") from None
    skipped = len(changes) - len(ids)
    span = "" if not ids else f" (evt-{ids[0]})" if len(ids) == 1 else f" (evt-{min(ids)} to evt-{max(ids)})"
    echo(
        f"{name}: accepted {len(ids)} event{'' if len(ids) == 1 else 's'}{span}"
        + (f" ({skipped} already accepted before, skipped)" if skipped else "")
    )


def read_events(data: bytes, name: str) -> list[UserChange]:
    """The events in `data`, JSON lines from the file called `name`; ConnectorError names every malformed line."""
    cause = "ingest:stdin" if name == "<stdin>" else f"ingest:{Path(name).name}"
    changes, problems = [], []
    for number, line in enumerate(_text(data, name).split("\n"), start=1):
        line = line.removeprefix("\ufeff")  # a BOM starts the file, or each of several files joined (cat a b)
        if not line.strip():
            continue
        try:
            changes.append(parse_user_change(read_json(line), default_cause=cause))
        except json.JSONDecodeError as exc:
            problems.append(f"{name}:{number}: not valid JSON ({exc.msg} at column {exc.colno})")
        except ValueError as exc:
            problems.append(f"{name}:{number}: {exc}")
    if problems:
        raise ConnectorError(_refused(name, problems))
    return changes


def _refused(name: str, problems: list[str]) -> str:
    """Why nothing from the file `name` was accepted: the `problems` (the first 50), one a line, each naming its line
    ("events.jsonl:3: ..."), then how many and what to do."""
    shown = "\n".join(problems[:50]) + (f"\n... and {len(problems) - 50} more" if len(problems) > 50 else "")
    return f"{shown}\n{len(problems)} malformed line(s); nothing from {name} was accepted. Fix them and run again."


def _text(data: bytes, name: str) -> str:
    # Windows PowerShell writes a BOM: UTF-8 with Out-File -Encoding utf8, UTF-16 LE with ">" (5.1's default).
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        number = data[:exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise ConnectorError(_refused(name, [f"{name}:{number}: not {encoding.upper()} text ({exc.reason}); save "
                                             "the file as UTF-8"])) from None


STATES = [s.value for s in EventState]
DRY_RUN_USERS = 50  # users `events replay --dry-run` shows in full by default
REPLAYABLE = ("only dead letters can be replayed (and, by id, done events whose user waits in an open extension "
              "conflict, and discarded events: a replay undoes the discard)")
DISCARDABLE = "only dead or held events can be discarded"


# After an `older_mapping` line: what that means for a replay, which the running connector delivers.
RESTART_FIRST = ("The running connector delivers a replay, so it would map it with the file as it was (a dry run maps "
                 "with the file as it is now): restart it first (`systemctl restart connector@NAME`), then replay")


def _named_once(ids: tuple[int, ...], filters: dict[str, str | bool | None], how: str) -> None:
    """A usage error (exit 2), before the config or store is read, unless the events are named one way: by `ids`,
    or by the `filters` given (option -> its value, e.g. {"--cause": "mapping", "--state": None}); `how` says how
    to name them, e.g. "give event ids, --cause C or --state S"."""
    given = [option for option, value in filters.items() if value]
    if ids and given:
        raise click.UsageError(f"give event ids, or {' / '.join(given)}, not both; nothing was changed")
    if not ids and not given:
        raise click.UsageError(f"name the events: {how}; nothing was changed")


@events.command("list")
@config_option
@click.option("--state", type=click.Choice(STATES), help="Only events in this state.")
@click.option("--cause", help="Only events whose last failure had this cause class (e.g. http_5xx); "
                             "extension_conflict lists the events of open extension conflicts.")
@click.option("--user", help="Only this user: source/external_id (as every output names users), its external id "
                            "or userName.")
@click.option("--source", help="Only events from this source.")
@since_option("Only events changed in this time")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many events, the newest.")
@json_option
def events_list(config_path: str, state: str | None, cause: str | None, user: str | None, source: str | None,
                since: str | None, limit: int, as_json: bool) -> None:
    """List events, newest first, with counts by state, and dead letters and held events grouped by cause.

    The counts and groups cover what --cause, --user, --source and --since select; --state dead or
    --state held shows only that group. A held event says how many newer changes of its user wait behind it, and the
    newest ("changes_behind" in --json): a held leaver may be back at work since.
    """
    since_at = since_time(since)
    with open_configured_store(load_config(config_path, secrets=())) as store:
        rows = store.list_events(state=EventState(state) if state else None, cause=cause, user=user, source=source,
                                 since=since_at, limit=limit)
        counts = store.count_by_state(cause=cause, user=user, source=source, since=since_at)
        summary = (store.dead_letter_summary(cause=cause, user=user, source=source, since=since_at)
                   if state in (None, EventState.DEAD.value) else [])
        held = (store.held_summary(cause=cause, user=user, source=source, since=since_at)
                if state in (None, EventState.HELD.value) else [])
        # One read of the open conflicts, for the events of conflicts and to flag done events whose user waits in one.
        conflicts = (store.open_conflicts(MAX_SELECTED)
                     if cause == CONFLICT_CAUSE or any(e.state is EventState.DONE for e in rows) else [])
        known = causes_now(store) if cause is not None and not rows else ""  # a cause matching nothing: misspelt?
        behind = newer_changes(store, rows)  # a held leaver back at work since, say: on-call must see it
    waits = waiting_extensions(rows, conflicts)
    if as_json:
        echo(to_json({"counts": {s.value: n for s, n in counts.items()},
                      "dead_letters_by_cause": dead_letters_json(summary),
                      "held_by_cause": held_json(held),
                      **({"extension_conflicts": conflicts} if cause == CONFLICT_CAUSE else {}),
                      "events": [{**event_dict(e), "waits_in_conflict": waits.get(e.id, []),
                                  "changes_behind": behind_json(behind.get(e.id, ()))} for e in rows]}))
        return
    filtered = any(value is not None for value in (cause, user, source, since_at))
    echo(counts_line(counts) + ("  (of the events these filters select)" if filtered else ""))
    for line in _dead_letter_lines(summary, cause) + held_lines(held):
        echo(line)
    if cause == CONFLICT_CAUSE and conflicts:
        for line in ownership_lines(conflicts, []):
            echo(line)
    if rows:
        echo(f"{len(rows)} event(s), newest first:")
    elif cause is not None:
        echo(f"no events match; {known}")
    else:
        echo("no events match")
    for event in rows:
        echo(event_line(event, waits.get(event.id, ()), behind=behind.get(event.id, ())))
    if waits:
        echo(WAITS_NOTE)


def _dead_letter_lines(summary: list[CauseGroup], cause: str | None) -> list[str]:
    """The dead letters by cause for `events list`; none when there are none, and without the closing hint to
    list them by cause when `cause` already did."""
    if not summary:
        return []
    lines = summary_lines(summary)
    return lines[:-1] if cause is not None else lines  # its last line: `events list --state dead --cause CAUSE`


@events.command("show")
@config_option
@click.argument("event_id", type=int)
@json_option
def events_show(config_path: str, event_id: int, as_json: bool) -> None:
    """Show an event: its state, every attempt with the SOAP requests sent, the audit entries that name it (who
    replayed, approved or discarded it; an extension the connector left alone, handed over or took over, and why),
    the user's open extension conflicts, and what it maps to now (for a held or discarded event newer than the user's
    current one, what approving or replaying it would send). A discarded event that is its user's newest change says
    that Verba keeps an older state; a held one, how many newer changes of its user wait behind it, and the newest."""
    config = load_config(config_path, secrets=())
    with open_configured_store(config) as store:
        event = store.get_event(event_id)
        if event is None:
            raise ActionError(f"there is no event {event_id} (see `connector events list`)")
        attempts = store.attempts(event_id)
        audit = store.audit_of_event(event_id)
        conflicts = store.conflicts_of(event.change.source, event.change.external_id)
        behind = newer_changes(store, [event]).get(event_id, [])
        mapping, unmappable = _mapping_or_why(config)
        now = preview(store, mapping, event) if mapping else None
        # Discarded as its user's newest change: Verba keeps an older state, and drift calls that in step.
        kept = (next(iter(discarded_newest(store, mapping, [event])), None) if event.state is EventState.DISCARDED
                else None)
        stalled = None
        if event.state is EventState.IN_FLIGHT:  # is anything pushing it?
            db_now, instances = store.live_instances()
            stalled = stalled_claim(db_now, instances, config.instance.liveness_seconds, config.delivery.lease_seconds)
    if as_json:
        echo(to_json({"event": event_dict(event), "changes_behind": behind_json(behind), "attempts": attempts,
                      "audit": audit, "conflicts": conflicts,
                      "discarded_newest": kept, "maps_to_now": now,
                      **({"maps_to_now_unknown": unmappable} if unmappable else {})}))
        return
    echo(event_line(event, [c.extension for c in conflicts], behind=behind))
    if kept:
        echo(f"WARNING: {kept}; what the replay would send is under \"maps to now\" below")
    echo(f"queued by: {queued_by(event.change.cause)}")
    echo("state:")
    echo("  " + json.dumps(event.change.state, indent=2).replace("\n", "\n  "))
    echo("attempts:")
    for line in attempt_lines(attempts, audit, event, stalled):
        echo(line)
    if audit:  # who did what to it: operators, and the connector's ownership decisions with why
        echo("audit:")
        for entry in audit:
            echo(f"  {audit_line(entry)}")
    if conflicts:  # done, and still not recorded on these (or not as it wants): the event's state alone would not tell
        elsewhere = any(c.owner_user_id != c.claimant.verba_user_id for c in conflicts)
        twins = any(c.owner_user_id == c.claimant.verba_user_id for c in conflicts)
        how = " or ".join((["it is not recorded on these"] if elsewhere else [])
                          + (["Verba records them with another source's settings"] if twins else []))
        echo(f"open extension conflicts of this user ({how}):")
        for line in ownership_lines(conflicts, [])[1:]:
            echo(line)
    if now is None:  # the mapping file has an error: all else above still holds
        echo(f"maps to now: cannot tell: {unmappable}".replace("\n", "\n  "))
        return
    echo(
        f"maps to now (user {now.source}/{now.external_id}, newest event {now.event_id}, Verba user {now.user_id}):"
    )
    for line in now.lines:
        echo(f"  {line}")


def _mapping_or_why(config: Config) -> tuple[Mapping | None, str]:
    """The config's mapping, or None and why it cannot be read (the MappingError's message, a line per problem):
    while someone fixes the file, the commands that only look still show what they can."""
    try:
        return load_mapping(config.mapping_file), ""
    except MappingError as exc:
        return None, str(exc)


@events.command("replay")
@config_option
@click.argument("event_ids", nargs=-1, type=int)
@click.option("--cause", help="Replay every dead letter with this cause; extension_conflict: "
                             "the users of every open extension conflict.")
@click.option("--state", type=click.Choice(["dead"]), help="Replay every dead letter.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing, call nothing.")
@click.option("--show", "shown_users", type=click.IntRange(min=0), default=DRY_RUN_USERS, show_default=True,
              metavar="N", help="How many users --dry-run shows in full; 0 for every one.")
@click.option("--rate", type=click.FloatRange(min=0.01), help="At most this many events per second.")
@click.option("--reason", callback=not_blank, help="Why, for the audit (required, but for --dry-run).")
@click.option("--wait", "wait_seconds", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help=f"Wait up to this long for the outcome; exit {NEEDS_ATTENTION} unless every event is delivered.")
@operator_option
@one_shot_command()
def events_replay(config_path: str, event_ids: tuple[int, ...], cause: str | None, state: str | None, dry_run: bool,
                  shown_users: int, rate: float | None, reason: str | None, wait_seconds: float,
                  operator: str) -> None:
    """Deliver dead letters again, mapping each user's current state (never rolling a user back).

    The running connector delivers them; --wait follows them to the end. Exit status: 0 when the
    replay was queued (and, with --wait, every event was delivered); 3 when --wait ends with an
    event dead again, held by a guard, or still pending, or a user of them still in an extension conflict; 1 on an
    error (nothing replayed); 2 on a usage error, such as no ids and no --cause or --state, or no --reason (a
    --dry-run needs none). A done event is replayed by id only while it has an open extension conflict; a discarded
    event by id undoes its discard (audited); one already queued (pending or in flight: replayed before, say), or
    replayed before and delivered since (done), is said to be, and left as it is (running it twice is harmless; a
    done one never replayed is an error). Nothing of a user is pushed while an event of theirs is held: replayed or
    already queued events of such a user are named with the held event they wait behind. --wait says why those still
    undelivered are: pushed now, waiting behind a held event of their user, not due yet (paced by --rate, backing
    off, or accepted with a time ahead of this host's clock: when the last is due), due but waiting for their user's
    turn (an older event of the user not due yet, or a push of the user in flight), due while the circuit breaker on
    Verba is open, or due and claimed by no connector. By --cause or --state, every matching event is replayed,
    100,000 at a time (a line on stderr between batches). A replay and its dry run warn (stderr) when
    a running instance started before the mapping file last changed: it delivers the replay with the mapping as it
    was, so restart it first.
    """
    shown = click.get_current_context().get_parameter_source("shown_users")
    if not dry_run and shown is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--show only says how much --dry-run shows; add --dry-run (nothing was replayed)")
    _named_once(event_ids, {"--cause": cause, "--state": state},
                "give event ids, --cause C or --state S (see `connector events list`)")
    if reason is None and not dry_run:
        raise click.UsageError("say why with --reason R, for the audit (a --dry-run needs none); nothing was replayed")
    config = load_config(config_path, secrets=())  # the [target] secrets only once something is to be replayed
    with open_configured_store(config) as store:
        first, batches, delivered = _replayable(store, event_ids, cause, state)
        queued = [e.id for e in first if e.state in QUEUED]  # by id, replayed before: a rerun has nothing to do
        for line in already_queued(first):
            echo(line)
        for line in delivered.values():
            echo(line)
        chosen = [e for e in first if e.state not in QUEUED]
        older = older_mapping(config, store.live_instances()[1]) if chosen else []
        for line in older:
            echo(f"WARNING: {line}. {RESTART_FIRST}", err=True)
        if dry_run:
            _show_dry_run(store, config, chosen, shown_users, bool(event_ids))
            return
        if not first and not delivered:
            echo("nothing to replay: no event matches (see `connector events list --state dead`)"
                 + _still_retrying(store, cause))
            return
        replayed: list[int] = []
        if chosen:
            _check_target(load_config(config_path, secrets={"target"}))  # a replay probes Verba first
            replayed = _replay(store, itertools.chain([chosen], batches), operator=operator, reason=reason or "",
                               rate=rate, detail={"ids": list(dict.fromkeys(event_ids)), "cause": cause,
                                                  "state": state, "rate": rate})
        if wait_seconds > 0 and not _wait_for(store, queued + list(delivered) + replayed, wait_seconds, bool(older),
                                              paced=replayed if rate else ()):
            sys.exit(NEEDS_ATTENTION)


def _replay(store: Store, batches: Iterable[list[StoredEvent]], *, operator: str, reason: str, rate: float | None,
            detail: dict[str, object]) -> list[int]:
    """Requeue each batch (see `select_batches`), paced at `rate` across them, one audit row each with `detail`;
    say how many were replayed (a progress line on stderr before each batch after the first); their ids."""
    start = time.time()

    def replay_batch(batch: list[StoredEvent], before: int) -> int:
        discarded = [e.id for e in batch if e.state is EventState.DISCARDED]
        return requeue(store, batch, actor=operator, action="replay", reason=reason, rate=rate,
                       detail={**detail, **({"undiscarded": discarded} if discarded else {})},
                       start=start + before / rate if rate else None)

    count, events = act_in_batches(batches, replay_batch, doing="replaying", done="queued", progress=_progress)
    undone = [str(e.id) for e in events if e.state is EventState.DISCARDED]
    said = held_back(store, events, "replayed")  # those of a user with a held event are not delivered yet
    echo(
        f"replaying {count} event(s)"
        + (f" ({len(events) - count} were replayed meanwhile by someone else)" if count < len(events) else "")
        + (f"; the discard of {', '.join(undone)} is undone" if undone else "")
        + (f"; {said[0]}" if said else "")
    )
    for line in said[1:]:
        echo(f"  {line}")
    return [e.id for e in events]


def _progress(line: str) -> None:
    """A progress line between batches, on stderr: stdout says only how the command ended."""
    echo(line, err=True)


def _still_retrying(store: Store, cause: str | None) -> str:
    """"; 3 events with cause C are still being retried ...", when undelivered events have the `cause` a replay
    found no dead letter of, and, of those, how many wait behind a held event of their user instead (`behind_held`),
    with the first held events; "" otherwise."""
    if cause is None:
        return ""
    counts = store.count_by_state(cause=cause)
    undelivered = counts[EventState.PENDING] + counts[EventState.IN_FLIGHT]
    held = behind_held(store.list_events(state=EventState.PENDING, cause=cause, limit=MAX_SELECTED)
                       if counts[EventState.PENDING] else [])
    waiting = sum(map(len, held.values()))
    retrying = (f"; {undelivered - waiting} event(s) with cause {cause} are still being retried (pending or in "
                "flight): the connector delivers or dead-letters them itself, see `connector status`"
                if undelivered > waiting else "")
    return retrying + (f"; {waiting} event(s) with cause {cause} wait behind a held event of their user (held "
                       f"event(s) {_ids(held)}): {HELD_FIRST}" if waiting else "")


def _replayable(store: Store, ids: tuple[int, ...], cause: str | None,
                state: str | None) -> tuple[list[StoredEvent], Iterator[list[StoredEvent]], dict[int, str]]:
    """The events `events replay` chose, in batches (see `select_batches`), each by id order: the first batch, the
    batches after it, and the done events named by id that a replay queued before and that were delivered since,
    left out of the first batch, each with the line saying so (`delivered_reruns`). By id, those already queued
    (pending or in flight) are in the first batch too. ActionError, changing nothing, when one may not be replayed:
    a done event is replayed only while it has an open extension conflict."""
    if cause == CONFLICT_CAUSE:  # their events are done: the rest of each push went through
        batches = select_batches(store, ids, cause, EventState.DONE, [EventState.DONE], rule=REPLAYABLE)
        return next(batches, []), batches, {}
    batches = select_batches(store, ids, cause, EventState(state) if state else None,
                             [EventState.DEAD, EventState.DONE, EventState.DISCARDED, *QUEUED] if ids
                             else [EventState.DEAD], rule=REPLAYABLE)
    first = next(batches, [])  # by id, the only batch: the only one with done events
    settled = [e for e in first if e.state is EventState.DONE and e.id not in
               {c.event_id for c in store.conflicts_of(e.change.source, e.change.external_id)}]
    delivered = delivered_reruns(store, settled, "replay")
    never = [e for e in settled if e.id not in delivered]
    if never:
        raise ActionError(f"event {never[0].id} is done and has no open extension conflict, and no replay queued it "
                          "before: nothing to replay; nothing was changed")
    return [e for e in first if e.id not in delivered], batches, delivered


def _check_target(config: Config) -> None:
    """Raise ConnectorError unless Verba answers a probe (one authenticated listUsers) from here."""
    try:
        with open_client(config) as client:
            client.probe()
    except VerbaError as exc:
        raise ConnectorError(f"Verba is unreachable ({exc.cause}: {exc}); nothing was replayed. Fix the target "
                             "first (`connector status`), then replay again") from None


def _show_dry_run(store: Store, config: Config, chosen: list[StoredEvent], limit: int, by_id: bool) -> None:
    """What replaying `chosen` would send, user by user: the first `limit` users (0: all), then how many more (and
    how to see them: --show 0, or event ids unless `by_id` gave them already). Calls nothing: whether Verba would
    take the replay is what the running connector last recorded (see `_refusal`)."""
    users = {(e.change.source, e.change.external_id): e for e in chosen}
    undone = [str(e.id) for e in chosen if e.state is EventState.DISCARDED]
    echo(f"dry run: {len(chosen)} event(s) of {len(users)} user(s) would be replayed"
         + (f" (the discard of {', '.join(undone)} undone)" if undone else "") + "; nothing changed")
    refusal = _refusal(store, config) if chosen else None
    if refusal:
        echo(f"WARNING: {refusal}")
    mapping = load_mapping(config.mapping_file)
    for event in list(users.values())[:limit or None]:
        shown = preview(store, mapping, event)
        echo(f"{shown.source}/{shown.external_id} (newest event {shown.event_id}, Verba user {shown.user_id}):")
        for line in shown.lines:
            echo(f"  {line}")
    if limit and len(users) > limit:
        echo(f"... and {len(users) - limit} more user(s): pass --show 0 to show every one"
             + ("" if by_id else ", or the ids of the events to see"))


def _refusal(store: Store, config: Config) -> str | None:
    """Why a real replay would be refused now, from what the running connector recorded, as `connector status`
    weighs and words it: an open circuit breaker on Verba, or a last probe Verba did not answer (and no push it
    answered since); None when neither."""
    breakers, probes = store.open_breakers(), store.target_probes()
    answered_at = answered_since(probes, lambda since: attempts_since(store, since))
    if not breakers and (not probes or probes[0].answered or answered_at is not None):
        return None
    now, instances = store.live_instances()
    live = {i.name for i in instances if silent_for(i, now, config.instance.liveness_seconds) is None}
    state = recorded_target_state(probes, breakers, live, now, answered_at)
    return (f"the real replay would be refused until Verba answers (the connector last found it {state}); check "
            "with `connector status`")


def _wait_for(store: Store, ids: list[int], seconds: float, mapping_changed: bool = False,
              paced: Collection[int] = ()) -> bool:
    """Wait up to `seconds` for the events to leave pending and in flight; say how they ended, and what to
    do about those not delivered (see `_still_open`; `paced`: those this replay paced with --rate; `mapping_changed`:
    a running instance maps with the mapping file as it was, so a conflict's advice may be what was just done). True
    when every one was delivered and none of their users is left in an open extension conflict."""
    began = time.time()
    deadline = time.monotonic() + seconds
    while True:
        events = [e for e in (store.get_event(i) for i in ids) if e is not None]
        open_ = [e for e in events if e.state in (EventState.PENDING, EventState.IN_FLIGHT)]
        if not open_ or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    outcome: dict[str, int] = {}
    for event in events:
        outcome[event.state.value] = outcome.get(event.state.value, 0) + 1
    echo("outcome: " + "  ".join(f"{state}={n}" for state, n in sorted(outcome.items())))
    for line in _still_open(store, open_, seconds, began, paced):
        echo(line)
    dead = [e for e in events if e.state is EventState.DEAD]
    if dead:
        shown = ", ".join(f"{e.id} ({e.last_cause})" for e in dead[:10]) + (" ..." if len(dead) > 10 else "")
        echo(f"{len(dead)} dead again: {shown}; see why with `connector events show ID`")
    held = [e for e in events if e.state is EventState.HELD]
    if held:
        echo(f"{len(held)} held by a guard: review them with `connector events list --state held`")
    users = dict.fromkeys((e.change.source, e.change.external_id) for e in events)
    conflicts = [c for user in users for c in store.conflicts_of(*user)]
    for conflict in conflicts:  # done, yet the user is still not recorded on it
        echo(f"still in conflict: {conflict.extension} of {conflict.claimant.name}: {conflict.message}")
    if conflicts and mapping_changed:
        echo("a running instance still maps with the mapping file as it was when it started (see the WARNING "
             "above): if you changed the mapping to resolve these, restart every instance, then replay again")
    return all(e.state is EventState.DONE for e in events) and not conflicts


def _still_open(store: Store, events: list[StoredEvent], seconds: float, began: float,
                paced: Collection[int]) -> list[str]:
    """Why the `events` a --wait of `seconds` (from `began`) left pending or in flight are not delivered, a line for
    each kind there is: pushed now (in flight); waiting behind a held event of their user, which an operator decides
    first; not due yet (see `_not_due`; `paced`: the events this replay paced with --rate), with when the last is due
    and the --wait that follows them to the end; due, but waiting for their user's turn (`user_turn`: an older event
    of the user not due yet, or a push of the user in flight); due while the circuit breaker on Verba is open; due
    and claimed by no connector, so none may be running."""
    now = time.time()
    pending = [e for e in events if e.state is EventState.PENDING]
    held = behind_held(pending)
    behind = {e.id for waiting in held.values() for e in waiting}
    later = [e for e in pending if e.id not in behind and e.next_attempt_at > now]
    due = [e for e in pending if e.id not in behind and e.next_attempt_at <= now]
    turn = user_turn(store, due, now)
    older = [e for e in due if e.id in turn and turn[e.id].state is EventState.PENDING]
    flying = [e for e in due if e.id in turn and turn[e.id].state is EventState.IN_FLIGHT]
    unclaimed = [e for e in due if e.id not in turn]
    lines = []
    if len(pending) < len(events):
        lines.append(f"{len(events) - len(pending)} in flight after {seconds:g} s: a connector is pushing them "
                     "(`connector events show ID` says how it goes)")
    if held:
        lines.append(f"{len(behind)} waiting behind a held event of their user (held event(s) {_ids(held)}): nothing "
                     "of a user is pushed until an operator approves or discards it (`connector events list --state "
                     "held`)")
    if later:
        lines.append(f"{len(later)} not due yet ({_not_due(later, paced)}): {_last_due(later, now, began)}")
    if older:
        first = {turn[e.id].id: turn[e.id] for e in older}
        lines.append(f"{len(older)} due, but an older event of their user is not due yet (event(s) {_ids(first)}: "
                     f"{_not_due(first.values(), paced)}), and a user's events are pushed together once the oldest is "
                     f"due: {_last_due(first.values(), now, began)}")
    if flying:
        lines.append(f"{len(flying)} due, waiting for a push of their user in flight (event(s) "
                     f"{_ids({turn[e.id].id for e in flying})}): a connector takes them once it ends (`connector "
                     "events show ID` says how it goes)")
    breakers = store.open_breakers() if unclaimed else []
    if breakers:
        lines.append(f"{len(unclaimed)} due, not claimed while delivery waits for Verba: the circuit breaker on Verba "
                     f"has been open since {when(breakers[0].opened_at)} (Verba fails as a whole; `connector status`)")
    elif unclaimed:
        lines.append(f"{len(unclaimed)} still waiting after {seconds:g} s, due and claimed by no connector: is the "
                     "connector running? (`connector status`)")
    return lines


def _ids(ids: Iterable[int]) -> str:
    """The first 10 of `ids`, sorted, then "..." if there are more: "4, 9, 12"."""
    shown = sorted(ids)
    return ", ".join(map(str, shown[:10])) + (" ..." if len(shown) > 10 else "")


# Why a pending event is not due yet, in the order `_not_due` names them.
NOT_DUE = ("paced by --rate", "backing off after a failed try", "accepted with a time ahead of this host's clock",
           "put off by an earlier replay's --rate or by the connector (Verba asked it to wait, or an extension was "
           "busy)")
PACED, BACKING_OFF, AHEAD, PUT_OFF = NOT_DUE


def _not_due(events: Iterable[StoredEvent], paced: Collection[int]) -> str:
    """Why the pending `events` are not due yet, each kind there is (NOT_DUE): "paced by --rate / backing off after
    a failed try". Paced by this replay's --rate (its events in `paced`, not tried since); backing off after a failed
    try; accepted ahead of this host's clock (never tried, due at their accepted_at, which a source may set up to 5
    minutes ahead); else put off: by an earlier replay's --rate, or by the connector."""
    kinds = {BACKING_OFF if e.attempts else PACED if e.id in paced
             else AHEAD if e.next_attempt_at == e.change.accepted_at else PUT_OFF for e in events}
    return " / ".join(kind for kind in NOT_DUE if kind in kinds)


def _last_due(events: Iterable[StoredEvent], now: float, began: float) -> str:
    """When the last of the pending `events` is due (from `now`), and the --wait (from `began`) that follows them
    to the end."""
    last = max(e.next_attempt_at for e in events)
    return (f"the last is due at {when(last)}, in {age(last - now)}; give --wait more than {math.ceil(last - began)} s "
            "to follow them to the end (`connector events list --state pending` says when each is due)")


@events.command("discard")
@config_option
@click.argument("event_ids", nargs=-1, type=int)
@click.option("--cause", help="Discard the dead and held events of this cause.")
@click.option("--source", help="Discard the dead and held events of this source (with --cause: of both).")
@click.option("--reason", required=True, callback=not_blank,
              help="Why these events are not to be delivered (for the audit).")
@operator_option
def events_discard(config_path: str, event_ids: tuple[int, ...], cause: str | None, source: str | None, reason: str,
                   operator: str) -> None:
    """Give up on dead or held events: those named by id, or by --cause and/or --source. They stay in the store and
    the audit says why; `events replay ID` undoes a discard. Events discarded already are left as they are (running
    it twice is harmless).

    A discarded event that is its user's newest change is never delivered: Verba keeps the state of the user's
    previous event (a WARNING names each such user, what Verba records, and the replay that delivers it after all).
    A discarded delete of an LDAP directory's user is undone by the directory's next full reconciliation while the
    user is out of its scope (a note says so).
    """
    _named_once(event_ids, {"--cause": cause, "--source": source},
                "give the ids of dead or held events, --cause C and/or --source S (see `connector events list --state "
                "dead` and `--state held`)")
    config = load_config(config_path, secrets=())
    # To say what Verba keeps recording for a user whose newest change is discarded; no reason to refuse.
    mapping = _mapping_or_why(config)[0]
    with open_configured_store(config) as store:
        allowed = [EventState.DEAD, EventState.HELD] + ([EventState.DISCARDED] if event_ids else [])

        def discard_batch(batch: list[StoredEvent], before: int) -> int:
            already = [e for e in batch if e.state is EventState.DISCARDED]
            if already:
                echo(f"already discarded: {', '.join(str(e.id) for e in already)}")
            return discard(store, [e for e in batch if e not in already], actor=operator, reason=reason)

        count, chosen = act_in_batches(
            select_batches(store, event_ids, cause, None, allowed, source=source, rule=DISCARDABLE), discard_batch,
            doing="discarding", done="discarded", progress=_progress)
        echo(f"discarded {count} event(s)" if chosen else
             "no dead or held events match: nothing discarded (see `connector events list`)")
        for line in discarded_newest(store, mapping, chosen):  # its user's newest change: Verba keeps an older state
            echo(f"WARNING: {line}")
        for directory in sorted({e.change.source for e in chosen if e.change.kind == "delete"} & set(config.ldap)):
            echo(f"note: directory {directory} takes a census at its next poll: a user of these deletes who is in "
                 "its scope again is known again; one still out of its scope is stopped again by the next full "
                 "reconciliation (to keep recording such a user, bring it back into scope)")


@events.command("approve")
@config_option
@click.argument("event_ids", nargs=-1, type=int)
@click.option("--source", help="Approve the held events of this source (an LDAP directory's or SCIM client's name).")
@click.option("--cause", help="Approve the held events of this cause (ldap_mass_change, stop_recording_guard).")
@click.option("--all", "approve_all", is_flag=True, help="Approve every held event.")
@click.option("--reason", required=True, callback=not_blank,
              help="Why the held change is intended (for the audit).")
@operator_option
def events_approve(config_path: str, event_ids: tuple[int, ...], source: str | None, cause: str | None,
                   approve_all: bool, reason: str, operator: str) -> None:
    """Release events held by a guard (LDAP mass change, stop-recording burst), so they are delivered: those named
    by id, or by --source and/or --cause, or --all (every one, 100,000 at a time, a line on stderr between
    batches). Running it again is harmless: an event named by id that is already queued (approved before) is said
    to be, and one approved before and delivered since (done) is said to be, naming who approved it and when; both
    are left as they are (exit 0). A done event never approved is an error (exit 1). Nothing of a user is pushed
    while an event of theirs is held: approved (or already queued) events of a user with another held event wait
    behind it, and are named with it."""
    _named_once(event_ids, {"--source": source, "--cause": cause, "--all": approve_all},
                "give the ids of held events, --source S, --cause C or --all (see `connector events list --state "
                "held`)")
    by_group = approve_all or source is not None or cause is not None
    detail = {"ids": list(dict.fromkeys(event_ids)), "all": approve_all, "source": source, "cause": cause}
    with open_configured_store(load_config(config_path, secrets=())) as store:
        delivered: dict[int, str] = {}

        def approve_batch(batch: list[StoredEvent], before: int) -> int:
            delivered.update(delivered_reruns(store, batch, "approve"))
            done = [e for e in batch if e.state is EventState.DONE and e.id not in delivered]
            if done:  # by id only: one batch, nothing changed yet
                raise ActionError(f"only held events can be approved; event {done[0].id} is done and was never "
                                  "approved; nothing was changed")
            return requeue(store, [e for e in batch if e.state is EventState.HELD], actor=operator,
                           action="approve", reason=reason, rate=None, detail=detail, approve=True)

        count, events = act_in_batches(
            select_batches(store, event_ids, cause, EventState.HELD if by_group else None,
                           [EventState.HELD, *((*QUEUED, EventState.DONE) if event_ids else ())], source=source,
                           rule="only held events can be approved"),
            approve_batch, doing="approving", done="approved", progress=_progress)
        said = (held_back(store, [e for e in events if e.state is EventState.HELD], "approved")
                or ["the connector delivers them now"]) if count else []
    queued = already_queued(events)  # by id, approved before: a rerun has nothing to do
    for line in queued + list(delivered.values()):
        echo(line)
    if count:
        echo(f"approved {count} held event(s); {said[0]}")
        for line in said[1:]:
            echo(f"  {line}")
    elif not (queued or delivered):
        echo("no held events: nothing approved")
