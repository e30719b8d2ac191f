"""Replay, discard and approve: the operator's actions on events, each with an audit row.

A replay puts dead events back in the queue; delivery then maps the user's *current* state
(the newest event that is not held or discarded), so replaying an old event never rolls a
user back. A replayed discarded event, or an approved held one, is pending again and so may become
that state itself: a dry run maps the state the replay will push (`state_to_push`), and writes nothing.
Discarding a user's newest change leaves Verba with the state of an older event: `discarded_newest` says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from connector.delivery.guard import CAUSE as GUARD_CAUSE
from connector.errors import ConnectorError, counted, did_you_mean
from connector.mapping import Mapping, MappingFailure, UnresolvedUser
from connector.ops.report import when
from connector.records import ExtensionRecord
from connector.store import Audit, EventLog, EventState, Store, StoredEvent
from connector.store.log import CONFLICT_CAUSE, MASS_CHANGE_CAUSE
from connector.store.ownership import Conflict

FIELDS = ("recording_mode", "voice", "im", "video", "screen_capture_enabled", "user_id")
MAX_SELECTED = 100_000  # events read and acted on at once: a batch, one requeue or discard and one audit row
QUEUED = (EventState.PENDING, EventState.IN_FLIGHT)  # an approve or replay by id of these has nothing to do
SHOWN_IN_FULL = 20  # users a line each describes (`discarded_newest`, `held_back`); the rest in one line
# Causes --cause takes whether or not an event has one now: the events of open conflicts, and the guards' holds.
NAMED_CAUSES = frozenset({CONFLICT_CAUSE, MASS_CHANGE_CAUSE, GUARD_CAUSE})
# Why events waiting behind a held event of their user are not delivered, and what to do: said after naming them.
HELD_FIRST = "nothing of a user is pushed while an event of theirs is held, so approve or discard that one"


class ActionError(ConnectorError):
    """The action cannot be done; nothing was changed."""


def select(store: EventLog, ids: Sequence[int], cause: str | None, state: EventState | None,
           allowed: Sequence[EventState], *, source: str | None = None, rule: str) -> list[StoredEvent]:
    """The events named by id, or by cause, state and/or `source` (with no state: those in any `allowed` state),
    sorted by id. Exactly one of the two ways (the CLI refuses anything else as a usage error first); ValueError
    otherwise.

    Raises ActionError, changing nothing, when an id names no event, `cause` is one no event has (see
    `unknown_cause`), or an event is in a state not `allowed`: then the message is `rule` (what may be chosen, e.g.
    "only dead or held events can be discarded"), then the event's state.
    """
    if bool(ids) == bool(cause or state or source):
        raise ValueError("select: give ids or filters, one of them")
    if cause and unknown_cause(store, cause):
        raise ActionError(f"no event has the cause {cause!r}; {causes_now(store)}; nothing was changed")
    if source and (why := unknown_source(store, source)):
        raise ActionError(f"{why}; nothing was changed")
    if ids:
        events = []
        for event_id in dict.fromkeys(ids):  # an id given twice is one event
            event = store.get_event(event_id)
            if event is None:
                raise ActionError(f"there is no event {event_id}; nothing was changed (see `connector events list`)")
            events.append(event)
    else:
        events = [e for s in ([state] if state else allowed)
                  for e in store.list_events(state=s, cause=cause, source=source, limit=MAX_SELECTED)]
    wrong = [e for e in events if e.state not in allowed]
    if wrong:
        raise ActionError(f"{rule}; event {wrong[0].id} is {wrong[0].state.value}; nothing was changed")
    return sorted(events, key=lambda e: e.id)


def select_batches(store: EventLog, ids: Sequence[int], cause: str | None, state: EventState | None,
                   allowed: Sequence[EventState], *, source: str | None = None,
                   rule: str) -> Iterator[list[StoredEvent]]:
    """What `select` chooses, in batches of at most MAX_SELECTED events, each sorted by id: by id, one batch; by
    filters, while a batch was full, the next is read once the caller has acted on the one before: the events the
    filters select then that no batch had (an event acted on and back in a selected state, dead again say, is not
    taken twice), until none is left. The first batch is read, and refused as `select` refuses, before anything is
    yielded.

    Raises ConnectorError when a full read holds only events of earlier batches (more than MAX_SELECTED of them came
    back while it ran): older ones may remain, and the batches acted on already are audited.
    """
    seen: set[int] = set()
    read = select(store, ids, cause, state, allowed, source=source, rule=rule)
    batch = read
    while batch:
        yield batch
        seen.update(e.id for e in batch)
        if ids or len(read) < MAX_SELECTED:
            return
        read = select(store, ids, cause, state, allowed, source=source, rule=rule)
        batch = [e for e in read if e.id not in seen]
    if len(read) == MAX_SELECTED and seen:
        raise ConnectorError(f"the newest {MAX_SELECTED} events selected were all acted on in this run already and "
                             "are back (dead again?), so older ones may remain; what was done is audited (`connector "
                             "audit`): see `connector events list` for what is left, fix the cause, and run it again")


def act_in_batches(batches: Iterable[list[StoredEvent]], act: Callable[[list[StoredEvent], int], int], *,
                   doing: str, done: str, progress: Callable[[str], None]) -> tuple[int, list[StoredEvent]]:
    """Call `act(batch, before)` on each of `batches` (see `select_batches`), `before` being how many events the
    batches before it had (a paced replay starts a batch where the one before ends), and add up what it returns (how
    many events it changed). Before each batch after the first, `progress` gets a line such as "approving: 3
    event(s) approved so far; 3 more next ..." (`doing`, `done`). Returns the sum and every event of the batches."""
    count = 0
    events: list[StoredEvent] = []
    for batch in batches:
        if events:
            progress(f"{doing}: {count} event(s) {done} so far; {len(batch)} more next ...")
        count += act(batch, len(events))
        events += batch
    return count, events


def already_queued(events: Sequence[StoredEvent]) -> list[str]:
    """What a replay or an approval by id says of the `events` (as it read them) it found pending or in flight
    (replayed or approved before, or still retried), whose rerun has nothing to do. Those the connector delivers:
    "already queued: 3, 5 (...)"; those that wait behind a held event of their user (`behind_held`), of whom nothing
    is pushed until an operator decides it: a line naming them, then a line per user naming the held event
    (`behind_held_lines`). [] when none is queued."""
    queued = [e for e in events if e.state in QUEUED]
    waiting = behind_held(queued)
    stuck = {e.id for held in waiting.values() for e in held}
    moving = [str(e.id) for e in queued if e.id not in stuck]
    lines = [f"already queued: {', '.join(moving)} (pending or in flight: the connector delivers them; `connector "
             "events show ID` says when it next tries)"] if moving else []
    if waiting:
        lines.append("already queued but waiting behind a held event of their user: "
                     f"{', '.join(str(e.id) for e in queued if e.id in stuck)}; {HELD_FIRST}:")
        lines += [f"  {line}" for line in behind_held_lines(waiting, "queued")]
    return lines


def behind_held(events: Iterable[StoredEvent]) -> dict[int, list[StoredEvent]]:
    """The pending `events` that wait behind a held event of their user, by that event: held event id -> them,
    oldest first. The one rule every message that says whether events will be delivered follows: the store's
    `waits_behind` (the user's first held event; a claim takes none of the user's events while it is held), so
    `events` must be read after the write that queued them."""
    waiting: dict[int, list[StoredEvent]] = {}
    for event in sorted(events, key=lambda e: e.id):
        if event.state is EventState.PENDING and event.waits_behind is not None:
            waiting.setdefault(event.waits_behind, []).append(event)
    return waiting


def behind_held_lines(waiting: dict[int, list[StoredEvent]], what: str) -> list[str]:
    """`waiting` (from `behind_held`), a line per user (one held event is one user's), as "hr/u7 (u7@example.com)
    waits behind held event 4, with approved event(s) 5, 6 (approve or discard it: `connector events show 4`)"
    (`what`: "approved"), for the first SHOWN_IN_FULL users, then how many more."""
    lines = [f"{_name(events[0])} waits behind held event {held}, with {what} event(s) "
             f"{', '.join(str(e.id) for e in events)} (approve or discard it: `connector events show {held}`)"
             for held, events in list(waiting.items())[:SHOWN_IN_FULL]]
    if len(waiting) > SHOWN_IN_FULL:
        lines.append(f"... and {len(waiting) - SHOWN_IN_FULL} more user(s): `connector events list --state held` "
                     "lists the held events")
    return lines


PAST = {"approve": "approved", "replay": "replayed"}  # the operator's actions that queue events again


def delivered_reruns(store: EventLog, events: Sequence[StoredEvent], action: str) -> dict[int, str]:
    """The done `events` that the operator's `action` ("approve" or "replay") queued before, as the audit shows, each
    with the line saying so: {7: "event 7: already approved by jane at 2026-12-01 03:12:09 and delivered"}. They are
    done since, so running that command again has nothing to do. Events not done, and done ones no such audit entry
    names (delivered without it), are left out. Reads the audit of each done event."""
    lines = {}
    for event in events:
        if event.state is not EventState.DONE:
            continue
        entries = [entry for entry in store.audit_of_event(event.id) if entry.action == action]
        if entries:
            lines[event.id] = (f"event {event.id}: already {PAST[action]} by {entries[-1].actor} at "
                               f"{when(entries[-1].at)} and delivered")
    return lines


def held_back(store: EventLog, queued: Sequence[StoredEvent], what: str) -> list[str]:
    """What is not delivered of the events just queued, `queued` as read before (held events approved, dead ones
    replayed; `what` says which: "approved"): when some wait behind a held event of their user (`behind_held`, on
    them as read now), which users, to follow "approved 3 held event(s); " ("none is delivered yet: they are of 1
    user with a held event; ..."), then a line per such user naming the held event (`behind_held_lines`); [] when the
    connector delivers them all. Reads the newest MAX_SELECTED held events once, then only the events of `queued`
    whose user has one of them."""
    held_users = {_user(e) for e in store.list_events(state=EventState.HELD, limit=MAX_SELECTED)} if queued else set()
    now = [e for e in (store.get_event(e.id) for e in queued if _user(e) in held_users) if e is not None]
    waiting = behind_held(now)
    if not waiting:
        return []
    users = f"{counted(len(waiting), 'user')} with a held event"
    said = (f"none is delivered yet: they are of {users}" if sum(map(len, waiting.values())) == len(queued) else
            f"the connector delivers them now, except those of {users}")
    return [f"{said}; {HELD_FIRST}:", *behind_held_lines(waiting, what)]


def user_turn(store: EventLog, due: Sequence[StoredEvent], now: float) -> dict[int, StoredEvent]:
    """For each of the `due` pending events (due at `now`, behind no held event) that another event of its user keeps
    from being claimed, that event: one of the user's in flight (no claim takes a user's events while a push of the
    user runs), else the user's oldest pending event when it is older and not due at `now` (a claim takes a user's
    pending events together once the oldest is due): event id -> it. A due event left out waits for a connector to
    claim it. Reads the in-flight events once and, when a due event has none of its user's, the newest
    MAX_SELECTED pending events once (an older one beyond them goes unseen)."""
    flying = {_user(e): e for e in store.list_events(state=EventState.IN_FLIGHT, limit=MAX_SELECTED)} if due else {}
    found = {e.id: flying[_user(e)] for e in due if _user(e) in flying}
    rest = {_user(e) for e in due if e.id not in found}
    oldest: dict[tuple[str, str], StoredEvent] = {}
    for event in store.list_events(state=EventState.PENDING, limit=MAX_SELECTED) if rest else ():
        if _user(event) in rest:  # newest first: each user's oldest comes last
            oldest[_user(event)] = event
    for event in due:
        first = oldest.get(_user(event))
        if event.id not in found and first is not None and first.id < event.id and first.next_attempt_at > now:
            found[event.id] = first
    return found


def newer_changes(store: EventLog, held: Sequence[StoredEvent]) -> dict[int, list[StoredEvent]]:
    """For each held event of `held`, the later changes of its user that wait behind it (pending or held, oldest
    first; an approval pushes the user's newest state, a discard lets them be pushed as usual): held event id -> them;
    held events without any are left out. A leaver's held stop may have a newer change (back at work) that on-call
    must see before deciding. Reads each user's newest event (indexed); for the users with one newer than their held
    event, their pending events, and once the newest MAX_SELECTED held events (PostgreSQL has no index on held ones:
    one scan, not one a user)."""
    by_user: dict[tuple[str, str], list[StoredEvent]] = {}
    for event in held:
        if event.state is EventState.HELD:
            by_user.setdefault(_user(event), []).append(event)
    newer = set()  # the users with a change after their first held event
    for user, events in by_user.items():
        newest = store.newest_event(*user)
        if newest is not None and newest.id > min(e.id for e in events):
            newer.add(user)
    if not newer:  # the common case
        return {}
    waiting = [e for e in store.list_events(state=EventState.HELD, limit=MAX_SELECTED) if _user(e) in newer]
    for user in newer:
        waiting += [e for e in store.list_events(state=EventState.PENDING, user="/".join(user), limit=MAX_SELECTED)
                    if _user(e) == user]
    found: dict[int, list[StoredEvent]] = {}
    for event in (e for user in newer for e in by_user[user]):
        behind = sorted((e for e in waiting if _user(e) == _user(event) and e.id > event.id), key=lambda e: e.id)
        if behind:
            found[event.id] = behind
    return found


def unknown_cause(store: EventLog, cause: str) -> bool:
    """True when no event in the store has `cause` as its last cause and it is none of the causes that name
    events without being one (extension_conflict, ldap_mass_change, stop_recording_guard): a misspelt --cause.
    A cause whose events were all replayed since is known (they keep it)."""
    if cause in NAMED_CAUSES:
        return False
    return not any(store.count_by_state(cause=cause).values())


def unknown_source(store: EventLog, source: str) -> str | None:
    """Why `source` names no source any event came from (a misspelt --source), with the one it looks like and
    those there are; None when events of it exist."""
    known = sorted({row[0] for row in store.count_by_source_and_kind()})
    if source in known:
        return None
    return (f"no event came from the source {source!r}; {did_you_mean(source, known)}the sources of events: "
            f"{', '.join(known) or 'none yet'}")


def causes_now(store: EventLog) -> str:
    """"the causes of dead and held events now: a, b (and extension_conflict ...)", to follow a --cause that
    matched nothing."""
    known = sorted({g.cause for g in store.dead_letter_summary()} | {g.cause for g in store.held_summary()})
    return (f"the causes of dead and held events now: {', '.join(known) or 'none'} "
            f"(and {CONFLICT_CAUSE} for the events of open conflicts)")


def requeue(store: EventLog, events: Sequence[StoredEvent], *, actor: str, action: str, reason: str,
            rate: float | None, detail: dict[str, object], approve: bool = False, start: float | None = None) -> int:
    """Make the events pending again (spaced out to `rate` per second from `start`, default now: a later batch of
    a paced run starts where the one before ends), audited in the same transaction; return how many.

    `approve` lets them past the stop-recording guard (an operator said the burst is intended). No events:
    nothing changes and nothing is audited. ValueError, changing nothing, as `Audit` raises it.
    """
    if not events:
        return 0
    return store.requeue([e.id for e in events], time.time() if start is None else start,
                         spacing=1.0 / rate if rate else 0.0, approve=approve,
                         audit=Audit(actor, action, reason, detail))


def discard(store: EventLog, events: Sequence[StoredEvent], *, actor: str, reason: str) -> int:
    """Discard the dead or held `events` for `reason` (others are left alone), audited in the same transaction;
    return how many.

    A blank reason raises ActionError, changing nothing. No events: nothing changes and nothing is audited.
    ValueError, changing nothing, as `Audit` raises it.
    """
    if not reason.strip():
        raise ActionError("say why with --reason; discarding needs a reason for the audit")
    if not events:
        return 0
    return store.discard([e.id for e in events], reason, audit=Audit(actor, "discard", reason))


def discarded_newest(store: EventLog, mapping: Mapping | None, events: Sequence[StoredEvent]) -> list[str]:
    """What discarding `events` left in Verba, one line per user whose newest change (no later event of the user)
    is one of them and is discarded now, while an older event of the user is not: the connector takes that older
    event as the user's current state, so Verba keeps its state (while the source says otherwise) and drift counts
    that as in step. (A user with no such event, every one held or discarded, drift lists as not checked.) Each line
    says what that event records, as `mapping` maps it (None: the mapping file could not be read; not said). The
    first SHOWN_IN_FULL users in full, then one line with the others' event ids; [] when no such user. Reads the
    newest event of each user (`newest_event`) and the current one of each found (`current_event`)."""
    newest: dict[tuple[str, str], StoredEvent] = {}
    for event in events:
        key = _user(event)
        if key not in newest or event.id > newest[key].id:
            newest[key] = event
    found = [(n, current) for e in newest.values()
             if (n := store.newest_event(*_user(e))) is not None and n.id == e.id
             and n.state is EventState.DISCARDED and (current := store.current_event(*_user(e))) is not None]
    lines = [_kept_in_verba(store, mapping, e, current) for e, current in found[:SHOWN_IN_FULL]]
    if len(found) > SHOWN_IN_FULL:
        rest = [e.id for e, _ in found[SHOWN_IN_FULL:]]
        lines.append(f"{len(rest)} more user(s) whose newest change is discarded, the same for each (`connector "
                     f"events show ID` says what Verba keeps): events {', '.join(map(str, rest))}")
    return lines


def _user(event: StoredEvent) -> tuple[str, str]:
    return event.change.source, event.change.external_id


def _name(event: StoredEvent) -> str:
    """The event's user as outputs name users: "hr/a1 (alice@example.com)"."""
    name = event.change.state.get("userName")
    return "/".join(_user(event)) + (f" ({name})" if name else "")


def _kept_in_verba(store: EventLog, mapping: Mapping | None, event: StoredEvent, current: StoredEvent) -> str:
    """"event 37 was the newest change of hr/a1 (alice@example.com) and is discarded: Verba keeps the state of the
    user's current event 36 (recording +14155550100) until ..." for `discarded_newest`."""
    user = _name(event)
    about = [] if mapping is None else [_records(store, mapping, current)]
    if current.state is not EventState.DONE:  # dead, or still to be pushed: Verba may not hold it yet
        about.append(f"that event is {current.state.value}")
    again = (f" (should the stop-recording guard hold it again: `connector events approve {event.id} --reason R`)"
             if event.last_cause == GUARD_CAUSE else "")  # a replay is not an approval
    return (f"event {event.id} was the newest change of {user} and is discarded: Verba keeps the state of the "
            f"user's current event {current.id}" + (f" ({'; '.join(about)})" if about else "")
            + " until the source changes again, and `connector drift` and `connector status --check` take that as "
              f"in step; `connector events replay {event.id}` delivers it after all{again}")


def _records(store: EventLog, mapping: Mapping, event: StoredEvent) -> str:
    """What pushing `event` records, as `mapping` maps it: "recording +14155550100, +14155550111"."""
    change = event.change
    try:  # 1 stands in for the Verba user id: the records' extensions do not depend on it
        mapped = mapping.map_user(change, 1, store.pushed_extensions(change.source, change.external_id))
    except (MappingFailure, ValueError) as exc:
        return f"its state cannot be mapped: {exc}"
    recording = [r.extension for r in mapped.upserts if r.recording]
    return f"recording {', '.join(recording)}" if recording else "recording no extension"


@dataclasses.dataclass(frozen=True)
class Preview:
    """What a replay of one user would send, against what was last pushed."""

    source: str
    external_id: str
    event_id: int
    user_id: str
    lines: tuple[str, ...]


def state_to_push(store: EventLog, event: StoredEvent) -> StoredEvent:
    """The event whose state delivery pushes once `event` is replayed or approved: the newest of the user's current
    event and `event`. The one place a preview chooses it. A replay or an approval makes `event` pending, and the
    delivery pushes the claim's `current` (the newest event neither held nor discarded, read when it claims): a
    discarded or held event newer than the user's current one becomes it; an older one never rolls the user back.
    For an event that is neither held nor discarded this is the user's current event."""
    current = store.current_event(event.change.source, event.change.external_id)
    return event if current is None or event.id > current.id else current


def preview(store: Store, mapping: Mapping, event: StoredEvent) -> Preview:
    """What delivering the user would send once `event` is replayed or approved (see `state_to_push`): for a dead
    or done event, the user's current state; for a discarded or held event newer than that, its own. An extension
    the user waits for in an open conflict says so. While another event of the user is held, nothing is sent: the
    user waits for an operator's decision on that one (its first held event is named)."""
    user = f"{event.change.source}/{event.change.external_id}"
    held = sorted(e.id for e in store.list_events(state=EventState.HELD, user=user) if e.id != event.id)
    if held:
        return Preview(event.change.source, event.change.external_id, event.id, "?", (
            f"nothing is sent yet: the user waits behind held event {held[0]}; approve it (which pushes the user's "
            "newest state) or discard it first",))
    current = state_to_push(store, event)
    change = current.change
    try:
        found = mapping.user_id_or_login(change, store.verba_user_id(change.source, change.external_id))
    except (MappingFailure, UnresolvedUser) as exc:
        return Preview(change.source, change.external_id, current.id, "?", (f"cannot map: {exc}",))
    user_id = found if isinstance(found, int) else None
    shown = str(user_id) if user_id else f"looked up at push time (listUsers loginName={found!r})"
    previous = store.pushed_extensions(change.source, change.external_id)
    try:
        mapped = mapping.map_user(change, user_id or 1, previous)  # 1 only stands in for display
    except (MappingFailure, ValueError) as exc:
        return Preview(change.source, change.external_id, current.id, shown, (f"cannot map: {exc}",))
    before = {p.extension: p for p in previous}
    waiting = {c.extension: c for c in store.conflicts_of(change.source, change.external_id)}
    lines = [_upsert_line(r, before.get(r.extension), user_id is not None, waiting.get(r.extension))
             for r in mapped.upserts]
    lines += [f"keep {extension} recorded as last pushed: a value left out as invalid may be it mistyped "
              f"({'; '.join(mapped.skipped)}); fix it at the source" for extension in mapped.kept]
    lines += [f"stop recording {r.extension} (stays linked to user {shown}) if Verba still links it to this user and "
              "no other source of the user claims it; else it is left alone" for r in mapped.deprovisions]
    return Preview(change.source, change.external_id, current.id, shown, tuple(lines) or ("nothing to send",))


def _upsert_line(record: ExtensionRecord, before: ExtensionRecord | None, id_known: bool,
                 conflict: Conflict | None = None) -> str:
    """The record in full, then the open conflict the user waits in for it, or how it differs from the last push
    (or attempted push) of that extension."""
    fields = [f for f in FIELDS if id_known or f != "user_id"]
    settings = ", ".join(f"{f}={getattr(record, f)}" for f in fields)
    if conflict is not None:
        held = ("recorded with another source's settings" if conflict.owner_user_id == conflict.claimant.verba_user_id
                else "not recorded for this user")
        return (f"upsert {record.extension}: {settings} (in conflict since {when(conflict.since)}, {held}: "
                f"{conflict.message})")
    if before is None:
        return f"upsert {record.extension}: {settings} (new)"
    changes = [
        f"{f} {getattr(before, f)} -> {getattr(record, f)}" for f in fields if getattr(before, f) != getattr(record, f)
    ]
    return f"upsert {record.extension}: {settings} " + (
        f"(changed: {', '.join(changes)})" if changes else "(same as the last attempt)"
    )
