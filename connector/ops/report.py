"""Plain-text and JSON views of events, attempts, audit entries and status for the CLI."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from connector.config import Config
from connector.store import (
    Attempt,
    AuditEntry,
    CauseGroup,
    DeadInstance,
    DriftRun,
    EventState,
    HeldGroup,
    Instance,
    LdapWatermark,
    OpenBreaker,
    RecorderState,
    StoredEvent,
)
from connector.store.log import MASS_CHANGE_CAUSE, REPAIR_CAUSE
from connector.store.ownership import RELEASED_CAUSE, SETTINGS_CHANGED_CAUSE, Claimant, Conflict
from connector.store.queue import POSTPONED
from connector.verba.status import OK, Status, says_extension_absent

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """'90s', '30m', '1h', '2d' ago, as a Unix time."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"--since {text!r} is not a duration; write it like 90s, 30m, 1h or 2d")
    return time.time() - float(match[1]) * _UNITS[match[2]]


def when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def event_dict(event: StoredEvent) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    data["state"] = event.state.value
    return data


# The causes of the events the connector queues itself (an event's `cause` says what queued it; a source's read
# "scim PATCH User/ID", "ldap:read"): what each means, for `events show`.
QUEUED_BY_THE_CONNECTOR = {
    RELEASED_CAUSE: "the connector: an extension this user waited for in a conflict was released",
    SETTINGS_CHANGED_CAUSE: "the connector: another source of the same Verba user wrote its settings to an extension "
                            "this user claims too",
    REPAIR_CAUSE: "a drift repair (`connector drift --repair`, or [drift] repair)",
}


def queued_by(cause: str) -> str:
    """What queued an event of this `cause`, for a person."""
    meaning = QUEUED_BY_THE_CONNECTOR.get(cause)
    return f"{cause} ({meaning})" if meaning else cause or "not recorded"


def event_line(event: StoredEvent, waits: Sequence[str] = (), now: float | None = None,
               behind: Sequence[StoredEvent] = ()) -> str:
    """One event on one line: id, state, kind, user, attempts, when it last changed, and why it is not done (its
    last cause and message; a discarded one's discard reason); for a done event whose user waits in open extension
    conflicts, `waits` (their extensions, from `waiting_extensions`) flagged "WAITS in extension conflict: +1212...".
    A pending event says what it waits for: a held event of its user ("waits behind held event 61 ..."),
    or its due time when that is after `now` (this host's clock if None), e.g. "due in 3.0m (13:34:36)". A held
    event says which later changes of its user wait behind it (`behind`, from `replay.newer_changes`), e.g. "; 2
    newer change(s) of this user wait behind it, the newest event 63 (upsert)"."""
    change = event.change
    user = change.state.get("userName", "")
    # The LDAP mass-change guard holds events with no cause, its message as their error.
    cause = event.last_cause or (MASS_CHANGE_CAUSE if event.state is EventState.HELD else None)
    why = "" if cause is None or event.state is EventState.DONE else (
        f"  {cause}" + (f": {event.last_error}" if event.last_error else ""))
    if event.state is EventState.DISCARDED and event.discard_reason:
        why = f"  discarded: {event.discard_reason}" + (f" (its last failure: {cause})" if cause else "")
    if waits and event.state is EventState.DONE:
        why = f"  WAITS in extension conflict: {', '.join(waits)}"
    if event.state is EventState.PENDING:
        why = _pending_wait(event, time.time() if now is None else now) + why
    if behind:
        why += (f"; {len(behind)} newer change(s) of this user wait behind it, the newest event {behind[-1].id} "
                f"({behind[-1].change.kind})")
    return (f"{event.id:>8}  {event.state.value:<9}  {change.kind:<10}  {change.source}/{change.external_id} "
            f"({user})  attempts={event.attempts}  {when(event.updated_at)}{why}")


def behind_json(behind: Sequence[StoredEvent]) -> dict[str, Any] | None:
    """`behind` (a held event's `replay.newer_changes`) for --json: {"count": 2, "newest": 63, "newest_kind":
    "upsert"}; None when no change waits behind it."""
    if not behind:
        return None
    return {"count": len(behind), "newest": behind[-1].id, "newest_kind": behind[-1].change.kind}


def _pending_wait(event: StoredEvent, now: float) -> str:
    """What a pending event waits for, for `event_line`: "  waits behind held event 61 ..." (its user's held event,
    which an operator approves or discards first), "  due in 3.0m (2026-12-01 13:34:36)" when it is due later than
    `now` (a backoff, a paced replay, an accepted_at ahead of this clock), else ""."""
    if event.waits_behind is not None:
        return (f"  waits behind held event {event.waits_behind} of this user: approve or discard that one first "
                f"(`connector events show {event.waits_behind}`)")
    if event.next_attempt_at > now:
        return f"  due in {age(event.next_attempt_at - now)} ({when(event.next_attempt_at)})"
    return ""


WAITS_NOTE = ("  WAITS: the push was done, but the user is not recorded on that extension (or not as it wants) until "
              "its conflict clears; `connector events show ID` says why and what resolves it")


def waiting_extensions(events: Sequence[StoredEvent], conflicts: Sequence[Conflict]) -> dict[int, list[str]]:
    """The done `events` whose user waits in one of the open `conflicts`, those done since it opened: event id -> the
    extensions it waits for, e.g. {7: ["+12125550107"]}. Events of users without an open conflict, those done before
    it opened, and events not done, are left out."""
    waiting: dict[tuple[str, str], list[Conflict]] = {}
    for conflict in conflicts:
        waiting.setdefault((conflict.claimant.source, conflict.claimant.external_id), []).append(conflict)
    flagged = {e.id: [c.extension for c in waiting.get((e.change.source, e.change.external_id), [])
                      if e.updated_at >= c.since] for e in events if e.state is EventState.DONE}
    return {event_id: extensions for event_id, extensions in flagged.items() if extensions}


def counts_line(counts: dict[EventState, int]) -> str:
    return "  ".join(f"{state.value}={count}" for state, count in counts.items())


SAMPLE_CHARS = 300  # a dead letter's sample longer than this is cut in text output, at a sentence end if it can


def summary_lines(summary: Sequence[CauseGroup]) -> list[str]:
    """Dead letters, one line per cause (largest group first): how many, and the newest one's message (a long one
    cut by `_cut`, with where to read it whole)."""
    if not summary:
        return ["dead letters: none"]
    return ["dead letters by cause (count, cause: the newest one's message):",
            *(f"{g.size:>6}  {g.cause}: {_cut(g.sample, f'connector events list --state dead --cause {g.cause}')}"
              for g in summary),
            "  list them with `connector events list --state dead --cause CAUSE`"]


def retry_lines(groups: Sequence[CauseGroup], max_attempts: int, *, waiting: bool = False) -> list[str]:
    """The events retrying after a failure, one line per cause (`EventLog.retrying_summary`), with what happens to
    them and where to list them; none when there are none. `waiting`: a circuit breaker on Verba is open, so none
    is tried (and no attempt spent) until it closes."""
    if not groups:
        return []
    then = ("while the circuit breaker on Verba is open none is tried and no attempt is spent; then each is tried "
            "again" if waiting else "each is tried again with backoff")
    return ["retrying after a failure (pending or in flight; count, cause: the newest one's message):",
            *(f"{g.size:>6}  {g.cause}: {_cut(g.sample, f'connector events list --state pending --cause {g.cause}')}"
              for g in groups),
            f"  {then}, up to [delivery] max_attempts = {max_attempts}, then dead-lettered; "
            "list them with `connector events list --state pending --cause CAUSE`"]


def held_lines(held: Sequence[HeldGroup]) -> list[str]:
    """Held events, one line per cause and source (largest group first), with the newest one's message whole: it
    says how to review, approve or discard them, and there are few groups."""
    if not held:
        return []
    return ["held for `connector events approve` (review them first with `connector events list --state held`):",
            *(f"{g.size:>6}  {g.cause}  source {g.source}" + (f": {g.sample}" if g.sample else "")
              for g in held)]


def behind_held_text(events: int, users: int) -> str:
    """What waits behind held events (`EventLog.waiting_behind_held`), e.g. "3 other event(s) of 2 held user(s) wait
    behind their held event: ..."; "" when none does."""
    if not events:
        return ""
    return (f"{events} other event(s) of {users} held user(s) wait behind their held event, not pushed until it is "
            "approved (then each user's newest state is pushed once) or discarded (then they are pushed as usual); "
            "`connector events list --state pending` marks them")


def behind_held_lines(events: int, users: int) -> list[str]:
    """`behind_held_text` as `connector status` prints it under the held events; none when nothing waits."""
    return [f"  {behind_held_text(events, users)}"] if events else []


def dead_letters_json(summary: Sequence[CauseGroup]) -> list[dict[str, Any]]:
    """`summary` for --json: one object per cause; "error" is the newest one's message, whole."""
    return [{"cause": g.cause, "count": g.size, "error": g.sample} for g in summary]


def held_json(held: Sequence[HeldGroup]) -> list[dict[str, Any]]:
    return [{"cause": g.cause, "source": g.source, "count": g.size, "error": g.sample} for g in held]


def _cut(message: str, whole: str) -> str:
    """`message` if at most SAMPLE_CHARS long; else cut after the last sentence (". ") that ends within
    SAMPLE_CHARS, or if none does the last clause ("; "), or else word, with the command `whole` that shows it
    whole, e.g. "… (all of it: `connector events list --state dead --cause mapping`)"."""
    if len(message) <= SAMPLE_CHARS:
        return message
    head = message[:SAMPLE_CHARS]
    end = next((at for at in (head.rfind(". "), head.rfind("; ")) if at > 0), -1)
    cut = head[:end + 1] if end > 0 else head.rsplit(" ", 1)[0]
    return f"{cut} … (all of it: `{whole}`)"


def breaker_state(breaker: OpenBreaker, now: float) -> str:
    """The target's state while `breaker` is open, for `connector status` and /readyz."""
    probe = f"; last probe {when(breaker.probed_at)}" if breaker.probed_at is not None else ""
    return (f"DOWN: circuit breaker open since {when(breaker.opened_at)} ({age(now - breaker.opened_at)}) on "
            f"{breaker.instance}{probe}: {breaker.error}; delivery waits and spends no attempts until Verba answers a "
            "probe and takes a write")


def ownership_lines(conflicts: Sequence[Conflict], clashes: Sequence[tuple[str, Sequence[Claimant]]]) -> list[str]:
    """Open extension conflicts (with what to do) and the claim index's clashes, for `connector status`."""
    lines = ["extension conflicts:" if conflicts else "extension conflicts: none"]
    lines += [f"  {c.extension}  event {c.event_id}  since {when(c.since)}: {c.message}" for c in conflicts]
    if clashes:
        lines.append("extensions claimed by more than one Verba user:")
        lines += [f"  {extension}: " + ", ".join(f"{c.name} (Verba user {c.verba_user_id})" for c in claimants)
                  for extension, claimants in clashes]
    return lines


def attempt_lines(attempts: Sequence[Attempt], audit: Sequence[AuditEntry] = (),
                  event: StoredEvent | None = None, stalled: str | None = None) -> list[str]:
    """Every attempt with the SOAP requests it sent, oldest first. A replay or approval found in `audit` is shown
    where it happened: it gives the event a new retry budget, so attempts are numbered from 1 again after it, as
    the event's `attempts=` counts them. Given the `event`, its budget's attempts that `attempts=` counts without a
    recorded outcome are shown too: the claim in flight now, and claims that went back to the queue (first: where
    they fell among its retries is not recorded). `stalled` (from `stalled_claim`) says why nothing pushes the claim
    in flight, if nothing does: shown instead of "in flight now". A done attempt that sent nothing says so (see
    NOTHING_SENT), and an answer that may mean "no such extension" says how the push read it (see `_absence`).
    Consecutive postponed attempts of one cause (a trial push at every probe of an outage of writes) are one entry,
    with what the newest sent (see `_postponed_lines`)."""
    requeues = sorted((e for e in audit if "requeued" in e.detail), key=lambda e: e.at)
    budget = [a for a in attempts if a.outcome != POSTPONED and (not requeues or a.at >= requeues[-1].at)]
    in_flight = event is not None and event.state is EventState.IN_FLIGHT
    lost = 0 if event is None else max(0, event.attempts - len(budget) - in_flight)
    lines: list[str] = []
    number = 0
    postponed: list[Attempt] = []  # the run of postponed attempts of one cause not shown yet
    for attempt in attempts:
        between = bool(requeues and requeues[0].at <= attempt.at) or bool(not requeues and lost)  # lines before it
        if postponed and (between or attempt.outcome != POSTPONED or attempt.cause != postponed[-1].cause):
            lines += _postponed_lines(postponed)
            postponed = []
        while requeues and requeues[0].at <= attempt.at:
            lines.append(_requeue_line(requeues.pop(0)))
            number = 0
        if not requeues and lost:  # the budget `attempts=` counts begins
            lines += _lost_lines(lost, budget)
            number, lost = lost, 0
        if attempt.outcome == POSTPONED:  # cut short and queued again: shown for what it sent, not counted
            postponed.append(attempt)
            continue
        why = f" ({attempt.cause}: {attempt.error})" if attempt.cause else ""
        if attempt.outcome == "done" and not attempt.sent:
            why = NOTHING_SENT.format(why=f": {attempt.error}" if attempt.error else "",
                                      user=f"{event.change.source}/{event.change.external_id}" if event else "USER")
        elif attempt.outcome == "done" and attempt.error:  # it only looked the user up
            why = f", nothing written: {attempt.error}"
        number += 1
        lines.append(f"  attempt {number} at {when(attempt.at)}: {attempt.outcome}{why}")
        lines += _sent_lines(attempt)
    lines += _postponed_lines(postponed)
    if requeues:
        number = 0
    lines += [_requeue_line(entry) for entry in requeues] + _lost_lines(lost, budget)
    if in_flight:
        now = f"in flight, but {stalled}" if stalled else "in flight now (no outcome yet)"
        lines.append(f"  attempt {number + lost + 1}: {now}")
    return lines or ["  no attempts yet"]


def _sent_lines(attempt: Attempt) -> list[str]:
    """The SOAP requests `attempt` sent, each with Verba's answer and its envelope."""
    lines = []
    for index, call in enumerate(attempt.sent):
        answer = call.get("status", "?") + (f": {call['message']}" if call.get("message") else "")
        lines.append(f"    {call['operation']} -> {answer}{_absence(attempt, index)}")
        lines.append(f"      {call['envelope']}")
    return lines


def _postponed_lines(run: Sequence[Attempt]) -> list[str]:
    """A run of consecutive postponed attempts of one cause, oldest first: one as it is; several (an outage of
    writes alone postpones the breaker's trial push at every probe, all night) as one entry saying how many, from
    when to when, the cause with the newest one's error, and what the newest one sent; [] for none."""
    if not run:
        return []
    newest = run[-1]
    why = f" ({newest.cause}: {newest.error})" if newest.cause else ""
    if len(run) == 1:
        return [f"  at {when(newest.at)}: postponed, not counted as an attempt{why}", *_sent_lines(newest)]
    why = (f" ({newest.cause}; the newest: {newest.error})" if newest.cause and newest.error else
           f" ({newest.cause})" if newest.cause else "")
    return [f"  {len(run)} times from {when(run[0].at)} to {when(newest.at)}: postponed, not counted as attempts"
            f"{why}; the newest sent:", *_sent_lines(newest)]


# A push that sent nothing, and why when Deliverer._skip recorded it (the user's records are as Verba last confirmed
# them, or it maps to no extension and none was pushed; not so a push whose every extension waits in a conflict,
# shown below it): an extension changed or deleted in Verba by hand since goes unseen.
NOTHING_SENT = (", nothing sent{why}, so Verba was not asked (`connector drift --user {user}` checks what Verba "
                "holds; add --repair --reason R to push the user again)")
def _absence(attempt: Attempt, index: int) -> str:
    """How the push read a getExtension or updateExtension answer that is not OK (the call `attempt.sent[index]`):
    " (taken as absent: ...)" when it says there is no such extension, as the push decided it (the one rule,
    connector.verba.status.says_extension_absent, on the status and message the attempt recorded); " (unclear:
    ...)" when the listUsers after a getExtension asked who holds the extension; "" otherwise (such an answer ends
    the push, or is retried: the attempt's error says what)."""
    call, following = attempt.sent[index], attempt.sent[index + 1:index + 2]
    code = call.get("status")
    if call["operation"] not in ("getExtension", "updateExtension") or not code or code == OK:
        return ""
    if says_extension_absent(Status(code, call.get("message"))):
        return (" (taken as absent: the message says there is no such extension)" if call.get("message") else
                " (taken as absent: the status code says there is no such extension)")
    if following and following[0]["operation"] == "listUsers" and call["operation"] == "getExtension":
        return " (unclear: the listUsers below asked Verba who holds the extension)"
    return ""


def stalled_claim(now: float, instances: Sequence[Instance], limit: float, lease_seconds: float) -> str | None:
    """Why nothing pushes an event in flight, for `events show`: no connector instance is registered, or every one is
    silent for over `limit` ([instance] liveness_seconds, the rule of `silent_for`), so the one holding its claim
    (`lease_seconds`: [delivery] lease_seconds) is silent too. None while an instance is heard from: it may be
    pushing it (the store's reads do not say which instance holds a claim). `now`: the store's clock."""
    if not instances:
        return ("no connector runs on the store, so nothing pushes it: it goes back to the queue when a connector "
                "starts (`systemctl start connector@NAME`, or `connector run`)")
    silent = [(i, silence) for i in instances if (silence := silent_for(i, now, limit)) is not None]
    if len(silent) < len(instances):
        return None
    who = "; ".join(f"instance {i.name} ({i.host} pid {i.pid}) {silence_text(silence, limit)}"
                    for i, silence in silent)
    ends = max(i.heartbeat_at for i, _ in silent) + lease_seconds
    return (f"nothing pushes it: the instance holding its claim is silent ({who}). It goes back to the queue when "
            f"that instance starts again, when a live instance counts it dead (on a shared PostgreSQL store), or when "
            f"its lease ends (about {when(ends)}, [delivery] lease_seconds after it went silent) and a running "
            "connector claims it")


def _lost_lines(lost: int, budget: Sequence[Attempt]) -> list[str]:
    """Attempts 1 to `lost` of the budget: claims given back to the queue without an outcome. The retry budget
    still counts them (unlike a postponed claim's, recorded with what it sent): the push may have written to
    Verba."""
    retried = sum(attempt.outcome == "retry" for attempt in budget)
    where = f" (its place among the first {lost + retried} attempts is not recorded)" if retried else ""
    return [f"  attempt {n}: no outcome recorded (the claim went back to the queue: its connector instance stopped "
            f"or died mid-push, or its lease ran out; the push may have sent writes){where}"
            for n in range(1, lost + 1)]


def _requeue_line(entry: AuditEntry) -> str:
    reason = f": {entry.reason}" if entry.reason else ""
    return f"  {entry.action} by {entry.actor} at {when(entry.at)}{reason} (a new retry budget: attempts count from 1)"


def audit_line(entry: AuditEntry) -> str:
    ids = ",".join(map(str, entry.event_ids[:10])) + ("..." if len(entry.event_ids) > 10 else "")
    events = f"events {ids}  " if ids else ""  # an action on no event: an instance forgotten
    reason = f"  reason: {entry.reason}" if entry.reason else ""
    return f"{when(entry.at)}  {entry.actor:<12}  {entry.action:<8}  {events}{json.dumps(entry.detail)}{reason}"


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_jsonable)


def _jsonable(value: object) -> Any:
    """What json.dumps writes for a value it has no rule for: a dataclass as a dict, else its str()."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def source_states(config: Config, watermarks: dict[str, LdapWatermark], leaders: dict[str, str]) -> dict[str, str]:
    """One line per source: SCIM's address and clients, each LDAP directory's last run and the instance
    polling it, if one does (`leaders`: the instance running each task, "ldap.NAME" for a directory)."""
    clients = ", ".join(c.name for c in config.scim.clients) or "none configured (every request gets 401)"
    states = {"scim": f"{config.scim.url} clients: {clients}"}
    for name in sorted(config.ldap):
        mark = watermarks.get(name)
        if mark is None or mark.last_run_at is None:
            states[f"ldap.{name}"] = "never run"
        elif mark.last_error:
            states[f"ldap.{name}"] = f"FAILED at {when(mark.last_run_at)}: {mark.last_error}"
        else:
            states[f"ldap.{name}"] = f"ok, last run {when(mark.last_run_at)}, {mark.known} users known"
        leader = leaders.get(f"ldap.{name}")
        states[f"ldap.{name}"] += (f"; polled by instance {leader}" if leader else
                                   f"; no running connector polls it (one with [ldap.{name}] in its config does)")
    return states


def drift_found(run: DriftRun) -> str:
    """The drift a check found by kind, e.g. "missing 1, extra 2"; "" when none."""
    return ", ".join(f"{kind} {n}" for kind, n in run.counts.items() if n)


def recorder_lines(recorders: list[RecorderState]) -> list[str]:
    """Each recording server's last answer to applyExtensionConfiguration, for `connector status`; none when
    [target] apply_configuration never ran."""
    return [f"recorder {r.location}: "
            + ("took the extension table" if r.took_table else r.answer)
            + f" ({when(r.applied_at)}, instance {r.instance})" for r in recorders]


def silent_for(instance: Instance, now: float, limit: float) -> float | None:
    """How long `instance` has not been heard from (`now`: the store's clock) if longer than `limit` ([instance]
    liveness_seconds): it crashed, hangs, or was killed without a clean stop; None while it is heard from. The one
    rule `status`, `status --check` and `events show` judge an instance by."""
    silence = now - instance.heartbeat_at
    return silence if silence > limit else None


def silence_text(silence: float, limit: float) -> str:
    """"has not been heard from for 26s (more than 15s): is it running?" for an instance `silent_for` found."""
    return f"has not been heard from for {age(silence)} (more than {age(limit)}): is it running?"


def instance_line(instance: Instance, now: float, limit: float) -> str:
    """A registered connector instance and when it last said it lives (`now`: the store's clock), flagged SILENT
    with what to check when `silent_for` says so (`limit`: [instance] liveness_seconds)."""
    line = (f"instance {instance.name}: {instance.host} pid {instance.pid}, started {when(instance.started_at)}, "
            f"heartbeat {age(max(0.0, now - instance.heartbeat_at))} ago")
    if (silence := silent_for(instance, now, limit)) is None:
        return line
    return (f"{line}: SILENT: it {silence_text(silence, limit)} Look at pid {instance.pid} on "
            f"{instance.host} (`systemctl status connector@{instance.name}`); its in-flight events go back to the "
            "queue when it starts again or, on a shared PostgreSQL store, when a live instance counts it dead")


def instances_json(instances: Sequence[Instance], dead: Sequence[DeadInstance], now: float,
                   limit: float) -> list[dict[str, Any]]:
    """`status --json`'s instances: the registered ones ("dead": false; "silent": true when `silent_for` says so, with
    `limit` the [instance] liveness_seconds), then those counted dead ("dead": true, with when, by which instance and
    how many in-flight events went back). `now`: the store's clock."""
    def entry(instance: Instance) -> dict[str, Any]:
        return {**dataclasses.asdict(instance), "silent_seconds": max(0.0, now - instance.heartbeat_at)}

    return [*({**entry(i), "dead": False, "silent": silent_for(i, now, limit) is not None} for i in instances),
            *({**entry(d.instance), "dead": True, "counted_dead_at": d.reaped_at, "counted_dead_by": d.reaped_by,
               "events_released": d.released} for d in dead)]


def dead_instance_line(dead: DeadInstance) -> str:
    """An instance counted dead, with what to do: `connector status` lists it until it is started or forgotten."""
    instance = dead.instance
    return (f"instance {instance.name}: DEAD since {when(dead.reaped_at)} ({instance.host} pid {instance.pid}; "
            f"counted dead by instance {dead.reaped_by}, {dead.released} in-flight event(s) went back to the queue): "
            f"{dead_instance_advice(instance.name)}")


def dead_instance_advice(name: str) -> str:
    return f"start it again, or run `connector instances forget {name} --reason R` if it is gone for good"
