"""Drift: compare what Verba holds with what the connector wants it to hold, and repair it on request.

For each user, the mapping of their current state gives the extension records Verba must hold.
listUsers says which extensions Verba links to each user, with their settings: a check of every
user reads them all with one listUsers without criterion (VerbaClient.every_user), and asks one
listUsers per user only for users that answer does not list (Verba may cap it, or refuse it); a
check of some users asks one per user. getExtension is asked only about wanted extensions missing
from those answers. Kinds of drift:

    no_user      no Verba user has the user's loginName (deleted or renamed in Verba): it is recorded on none of
                 its extensions. With [user_id] create_missing a repair's push creates the user, then its
                 extensions; without, create it in Verba (or set create_missing), then repair
    missing      Verba has no such extension
    unlinked     it is linked to no user
    other_user   it is linked to another Verba user than the mapping's
    settings     its recording settings (mode, voice, im, video, screen capture) differ
    extra        an extension Verba links to a managed user and records, that no user's state maps to
                 (listUsers answers each user's extensions)

An extension the user waits for in an open extension conflict is not drift: Verba holds it otherwise on purpose
(the ownership rules, connector/delivery/ownership.py), the conflict says why, and a repair would change nothing.
The report lists those apart (`in_conflict`).

A user is not checked while a change of it waits to be pushed or is pushed now, while its newest change is a dead letter
or held (a repair would die or overtake it the same way), when its state cannot be mapped, when Verba's list of every
user holds it under another loginName (the id last pushed, or the same name but for case or a domain: creating one would
make a second Verba user of the person; `held_elsewhere` in connector/delivery/users.py decides it for delivery too; a
check of some users reads that list the first time it finds a user without a Verba user), or when Verba failed to answer
about it. A user the mapping does not record (a leaver) needs no Verba user: without one it is in step. A user every
event of which was discarded is left out on purpose, counted apart (`discarded`), not as unchecked. A check stops when
Verba fails as a whole (OUTAGE_STREAK users in a row), rather than asking each remaining user.

A check writes nothing to Verba. A repair queues a fresh, forced event of each drifted user's
current state, so the normal delivery path (ownership rules, the stop-recording guard) writes the
fix; an extra is first remembered as pushed for its user, so that push stops recording it (`DriftReport.stopping`:
what a check says a repair would stop, and what a repair queued to stop; the stop's audit entry names the repair).
The push of a user without a Verba user creates it with [user_id] create_missing (unless Verba holds the person under
another loginName by then); without, it is a dead letter (unresolved_user) that says how to fix it, and stays in
`connector status --check` until someone does.

A scheduled check that fails (Verba failing as a whole mid-run: DriftStopped; a store error), or that checks no
user (Verba failing for each, every user waiting for a push), is recorded as a DriftFailure with why:
`connector status`, `status --check` and the metrics show it until a check is recorded after it.
A check of every user is recorded as the last check (DriftRun: `connector status`, the metrics, `status --check`);
a check of some users (`connector drift --user`) is not, so that it never hides what the last full check found, nor
is a check that left every user unchecked (during a backlog, every user may wait for a push): it found nothing out.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import DriftConfig
from connector.delivery.users import VerbaLogins
from connector.errors import ConnectorError, counted
from connector.events import UserChange
from connector.mapping import Mapping, MappingFailure, UnresolvedUser
from connector.records import ExtensionRecord
from connector.store import Audit, DriftFailure, DriftRun, EventState, Store, StoredEvent, StoredUser
from connector.store.log import REPAIR_CAUSE
from connector.verba.client import ListedUser, VerbaClient, by_login_name
from connector.verba.errors import VerbaAuthError, VerbaError, VerbaUnreachable

log = logging.getLogger("connector.drift")

KINDS = {
    "no_user": "no Verba user has its loginName",
    "missing": "missing in Verba",
    "unlinked": "linked to no user",
    "other_user": "linked to another user",
    "settings": "recording settings differ",
    "extra": "unexpected extra",
}
SETTINGS = ("recording_mode", "voice", "im", "video", "screen_capture_enabled")
UNOWNED = ("missing", "unlinked", "other_user")  # kinds whose extension the connector no longer counts as confirmed
# Users whose stored state one read fetches: three queries a batch, not three a user. A state is read at most two
# batches before Verba is asked; a push that ends in between can show as drift (a repair pushes the state again).
BATCH = 50
# A user pushed less than this before the list of every user was read (or since) is asked on its own: the
# clocks of the instances that pushed may differ a little from this one's.
CLOCK_MARGIN_SECONDS = 1.0
EVERY = 2**31 - 1  # the open conflicts and held events a check reads: all of them
EXAMPLES = 5  # the extensions named where a check or a repair says what a repair stops recording
# Users in a row for whom Verba failed as a whole (VerbaError.target_wide: transport errors, HTTP 5xx, refused logins):
# the check stops there, rather than asking each remaining user of a Verba that is down.
OUTAGE_STREAK = 5


@dataclasses.dataclass(frozen=True)
class Drift:
    """One extension that differs, or (kind "no_user") a user without a Verba user; `user` is "source/external_id" of
    the user it concerns."""

    kind: str  # a key of KINDS
    extension: str  # "" for "no_user": the user has none recorded
    user: str
    # The Verba user the mapping links it to (for "extra": the one Verba links it to; for "no_user": None).
    user_id: int | None
    detail: str  # what differs, e.g. "voice: Verba has false, wanted true"


# Why a user was not checked (Unchecked.reason); the mapping's own failures and the login name looked up are details.
PENDING = "a change of this user waits to be pushed"
IN_FLIGHT = "a change of this user is being pushed now"
DEAD_LETTER = ("its newest change is a dead letter: replay it once what killed it is fixed, or discard it "
               "(`connector events list --user USER --state dead`)")
HELD = "its newest change is held: approve or discard it (`connector events list --user USER --state held`)"
VERBA_FAILED = "Verba failed to answer about it: check it again (`connector drift --user USER`)"
UNMAPPABLE = "its state cannot be mapped"
UNRESOLVED = "its Verba user cannot be found"


class DriftStopped(ConnectorError):
    """Verba failed as a whole (VerbaError.target_wide) for OUTAGE_STREAK users in a row: the check stopped there."""

    def __init__(self, last: VerbaError, looked_at: int, total: int) -> None:
        super().__init__(
            f"drift check stopped after {looked_at} of {total} users: Verba failed as a whole for the last "
            f"{OUTAGE_STREAK} users in a row (the last: {_first_line(str(last))}), so the rest were not asked. Nothing "
            "was recorded or repaired; run the check again once Verba answers (`connector status` shows the target "
            "as the running connector last probed it)")


@dataclasses.dataclass(frozen=True)
class Unchecked:
    """A user a check did not compare, e.g. Unchecked("test/u-alice", PENDING) or
    Unchecked("test/u-bob", UNMAPPABLE, "phoneNumbers: ...")."""

    user: str  # "source/external_id"
    reason: str  # one of the constants above: what the report groups by
    detail: str = ""  # what is particular to this user

    def __str__(self) -> str:
        return f"{self.user}: {self.reason}" + (f": {self.detail}" if self.detail else "")


@dataclasses.dataclass
class DriftReport:
    """What one check found. Of the `total` users it looked at, `users` were compared with Verba (`extensions`
    records), `unchecked` were not, `discarded` ("source/external_id") were left out as every event of theirs was
    discarded, and the rest need no extension (none wanted, none pushed before)."""

    started_at: float
    finished_at: float = 0.0
    total: int = 0
    users: int = 0
    extensions: int = 0
    drifts: list[Drift] = dataclasses.field(default_factory=list)
    unchecked: list[Unchecked] = dataclasses.field(default_factory=list)
    discarded: list[str] = dataclasses.field(default_factory=list)
    in_conflict: list[dict[str, str]] = dataclasses.field(default_factory=list)  # {"extension", "user"}
    repaired: int | None = None  # users queued for repair
    stopped: list[Drift] = dataclasses.field(default_factory=list)  # the extras a repair queued to stop recording

    @property
    def stopping(self) -> list[Drift]:
        """What a repair stops recording: before one, every extra found; after one, the extras it queued to stop
        (an extra gone or linked to another user by then is left as it is)."""
        return self.stopped if self.repaired is not None else [d for d in self.drifts if d.kind == "extra"]

    def stops_recording(self) -> str:
        """What a repair stops recording, e.g. "1 extension Verba holds for these users that their source does not
        give: +14155559999 (test/u-bob)" (the first EXAMPLES, then how many more); "" when nothing."""
        stopping = self.stopping
        if not stopping:
            return ""
        named = ", ".join(f"{d.extension} ({d.user})" for d in stopping[:EXAMPLES])
        more = f" and {len(stopping) - EXAMPLES} more" if len(stopping) > EXAMPLES else ""
        return (f"{counted(len(stopping), 'extension')} Verba holds for these users that their source does not give: "
                f"{named}{more}")

    @property
    def counts(self) -> dict[str, int]:
        """Drift found by kind, every kind listed."""
        counts = dict.fromkeys(KINDS, 0)
        for drift in self.drifts:
            counts[drift.kind] += 1
        return counts

    @property
    def needing_nothing(self) -> int:
        """Users with no extension to compare: their state maps to none, and none was pushed for them."""
        return self.total - self.users - len(self.unchecked) - len(self.discarded)

    @property
    def nothing_checked(self) -> bool:
        """Whether every user looked at was left unchecked (a check of no user at all is in step, not this)."""
        return bool(self.unchecked) and len(self.unchecked) == self.total

    def unchecked_by_reason(self) -> dict[str, list[Unchecked]]:
        """The users not checked by reason, the most frequent reason first, e.g. {PENDING: [Unchecked(...), ...]}."""
        groups: dict[str, list[Unchecked]] = {}
        for user in self.unchecked:
            groups.setdefault(user.reason, []).append(user)
        return dict(sorted(groups.items(), key=lambda group: -len(group[1])))

    def why_unchecked(self) -> str:
        """Why users were not checked, each reason with its count and the first user's detail, e.g. "26 users not
        checked: Verba failed to answer about it: check it again (`connector drift --user USER`) (the first:
        test/u-0: listUsers answered ERROR_GENERAL)"; "" when every user was checked."""
        return "; ".join(f"{counted(len(group), 'user')} not checked: {reason}"
                         + (f" (the first: {group[0].user}: {_first_line(group[0].detail)})" if group[0].detail else "")
                         for reason, group in self.unchecked_by_reason().items())

    def figures(self) -> str:
        """What the check counted, e.g. "33001 users: 3001 compared with Verba (3001 extensions), 30000 with no
        extension to compare, 2 with every change discarded, 5 not checked" (the last three only when not 0)."""
        rest = [f"{n} {what}" for n, what in ((self.needing_nothing, "with no extension to compare"),
                                              (len(self.discarded), "with every change discarded"),
                                              (len(self.unchecked), "not checked")) if n]
        return ", ".join([f"{counted(self.total, 'user')}: {self.users} compared with Verba "
                          f"({counted(self.extensions, 'extension')})", *rest])

    def verdict(self) -> str:
        """"in step", "3 differ", "nothing checked", or "no drift in the 5 users compared, but 2 were not checked"."""
        if self.drifts:
            return f"{len(self.drifts)} differ"
        if self.nothing_checked:
            return "nothing checked"
        if self.unchecked:
            were = "was" if len(self.unchecked) == 1 else "were"
            return (f"no drift in the {counted(self.users, 'user')} compared, but {len(self.unchecked)} {were} not "
                    "checked")
        return "in step"

    def run(self, trigger: str) -> DriftRun:
        return DriftRun(self.started_at, self.finished_at, self.users, self.extensions, self.counts,
                        len(self.unchecked), self.repaired, trigger)


@dataclasses.dataclass
class _User:
    """One user's part of a check."""

    source: str
    external_id: str
    user_id: int | None = None
    login: str | None = None
    wanted: list[ExtensionRecord] = dataclasses.field(default_factory=list)
    held: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # what Verba links to the user
    drifts: list[Drift] = dataclasses.field(default_factory=list)
    waiting: list[str] = dataclasses.field(default_factory=list)  # wanted extensions in an open conflict
    unchecked: tuple[str, str] | None = None  # (reason, detail), see Unchecked
    discarded: bool = False  # every event of the user was discarded: left out on purpose
    answered: bool = False  # Verba answered who the user is (its id, or that no user has its login name)
    failure: VerbaError | None = None  # why Verba did not answer about the user (unchecked: VERBA_FAILED)

    @property
    def name(self) -> str:
        return f"{self.source}/{self.external_id}"


class LazyVerbaLogins:
    """Verba's login names (VerbaLogins), to tell whether Verba holds a user without a Verba user under another login
    name (`held_elsewhere`): from the list of every user read up front (`directory`, see verba_directory), or, when
    none was (None), from one list read the first time they are asked for (`purpose` names the reader in the
    warning when Verba refuses it, e.g. "drift check")."""

    def __init__(self, client: VerbaClient, directory: dict[str, ListedUser] | None, purpose: str) -> None:
        self.client = client
        self.purpose = purpose
        self._logins = None if directory is None else VerbaLogins.of(directory.values())
        self._lock = threading.Lock()

    def get(self) -> VerbaLogins:
        """Raises VerbaAuthError and VerbaUnreachable as verba_directory does (the next user asks again)."""
        with self._lock:
            if self._logins is None:
                listed = verba_directory(self.client, f"{self.purpose} (who has a Verba user under another loginName)",
                                         extensions=False)
                self._logins = VerbaLogins.of(listed.values())
            return self._logins


@dataclasses.dataclass(frozen=True)
class _Reads:
    """What a check reads once for every user it checks: up front, or (`logins`) when first needed."""

    directory: dict[str, ListedUser]  # Verba's users by login name ({}: each user is asked on its own)
    logins: LazyVerbaLogins  # Verba's login names: who holds a user without a Verba user under another login name
    listed_at: float  # when `directory` was read
    waiting: set[tuple[str, str, str]]  # (source, external_id, extension) of the open conflicts
    held: dict[tuple[str, str], int]  # the newest held event's id of each user that has one


class DriftCheck:
    """Checks users against Verba with `concurrency` calls at a time; reads Verba, never writes it."""

    def __init__(self, store: Store, client: VerbaClient, mapping: Mapping, concurrency: int = 4) -> None:
        self.store = store
        self.client = client
        self.mapping = mapping
        self.concurrency = concurrency

    def check(self, users: Sequence[tuple[str, str]] | None = None,
              progress: Callable[[int], None] = lambda n: None,
              begin: Callable[[int], None] = lambda total: None) -> DriftReport:
        """Check `users` ((source, external_id)), or every user the connector knows if None: Verba's users are then
        read with one listUsers, else one by one (and every user's login name with one listUsers, the first time a
        user without a Verba user is found). `begin(total)` is called once those reads up front are done, as
        the `total` users start to be checked, then `progress(n)` as n more users are checked (a progress bar's
        time estimate counts from `begin`). A user Verba fails to answer about is not checked (VERBA_FAILED).
        Raises VerbaError when Verba cannot be read at all (its list of every user: unreachable, or refusing the
        connector's login), and DriftStopped when it fails as a whole for OUTAGE_STREAK users in a row."""
        report = DriftReport(started_at=time.time())
        targets = self.store.user_keys() if users is None else list(users)
        listed_at = time.time()
        directory = verba_directory(self.client, "drift check") if users is None else {}
        reads = _Reads(directory, LazyVerbaLogins(self.client, directory if users is None else None, "drift check"),
                       listed_at,
                       {(c.claimant.source, c.claimant.external_id, c.extension)
                        for c in self.store.open_conflicts(limit=EVERY)}, self._held())
        report.total = len(targets)
        begin(len(targets))
        checked: list[_User] = []
        streak = 0  # users in a row for whom Verba failed as a whole
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="drift")
        try:
            for user in self._checked(pool, targets, reads):
                checked.append(user)
                progress(1)
                if user.failure is not None and user.failure.target_wide:
                    streak += 1
                    if streak >= OUTAGE_STREAK:
                        raise DriftStopped(user.failure, len(checked), len(targets))
                elif user.answered:
                    streak = 0
        finally:  # after a failure, the calls still queued are not sent
            pool.shutdown(cancel_futures=True)
        wanted = {record.extension for user in checked for record in user.wanted}
        # A user not checked (`--user`: another source of the same Verba user) may claim what a checked one holds.
        wanted |= set(self.store.claimants(sorted({f["extension"] for u in checked for f in u.held} - wanted)))
        for user in _holders(checked):
            report.drifts.extend(_extras(user, wanted))
        for user in checked:
            if user.discarded:
                report.discarded.append(user.name)
            elif user.unchecked is not None:
                report.unchecked.append(Unchecked(user.name, *user.unchecked))
            elif user.answered:
                report.users += 1
                report.extensions += len(user.wanted)
                report.drifts.extend(user.drifts)
                report.in_conflict.extend({"extension": extension, "user": user.name} for extension in user.waiting)
        report.drifts.sort(key=lambda d: (list(KINDS).index(d.kind), d.extension, d.user))
        # Seen absent or not this user's: the next push of it must ask Verba, not update it directly.
        self.store.forget_owners(sorted({d.extension for d in report.drifts if d.kind in UNOWNED}))
        report.finished_at = time.time()
        return report

    def _held(self) -> dict[tuple[str, str], int]:
        """The newest held event's id of each user that has one (a guard holds them until an operator decides)."""
        held: dict[tuple[str, str], int] = {}
        for event in self.store.list_events(state=EventState.HELD, limit=EVERY):
            key = (event.change.source, event.change.external_id)
            held[key] = max(held.get(key, 0), event.id)
        return held

    def _checked(self, pool: ThreadPoolExecutor, targets: Sequence[tuple[str, str]], reads: _Reads) -> Iterator[_User]:
        """Each target checked, in order. The store is read BATCH users at a time, and each batch is read and queued
        while the pool still checks the one before, so the calls to Verba never wait for it."""
        queued: Iterator[_User] = iter(())
        for start in range(0, len(targets), BATCH):
            stored = self.store.stored_users(targets[start:start + BATCH])
            ahead = pool.map(lambda user: self._check_user(user, reads), stored)
            yield from queued
            queued = ahead
        yield from queued

    def _check_user(self, stored: StoredUser, reads: _Reads) -> _User:
        user = _User(stored.source, stored.external_id)
        current = stored.current
        held = reads.held.get((user.source, user.external_id))
        if held is not None and (current is None or held > current.id):
            user.unchecked = (HELD, "")
        elif current is None:
            user.discarded = True
        elif current.state is EventState.DEAD:
            why = current.last_error or current.last_cause
            user.unchecked = (DEAD_LETTER, f"event {current.id}" + (f": {_first_line(why)}" if why else ""))
        elif current.state in (EventState.PENDING, EventState.IN_FLIGHT):
            user.unchecked = (PENDING if current.state is EventState.PENDING else IN_FLIGHT, "")
        else:
            try:
                self._compare(user, stored, current, reads)
            except VerbaError as exc:
                user.unchecked, user.failure = (VERBA_FAILED, _first_line(str(exc))), exc
        return user

    def _compare(self, user: _User, stored: StoredUser, current: StoredEvent, reads: _Reads) -> None:
        """Compare what Verba holds with what the user's `current` (delivered) event maps to, into `user`. Raises
        what the client raises."""
        change = current.change
        try:
            if self.mapping.needs_nothing(change, stored.pushed):
                return  # nothing is recorded for it, nor should be: nothing to compare
        except MappingFailure as exc:
            user.unchecked = (UNMAPPABLE, str(exc))
            return
        # Pushed since Verba's users were listed: the list is older than the push, ask anew.
        directory = {} if current.updated_at >= reads.listed_at - CLOCK_MARGIN_SECONDS else reads.directory
        try:
            verba = look_up(self.client, self.mapping, change, stored.verba_user_id, directory)
            user.answered = True
            if verba.user_id is None:
                self._without_verba_user(user, change, str(verba.found), stored.verba_user_id, reads)
                return
            mapped = self.mapping.map_user(change, verba.user_id, stored.pushed)
        except UnresolvedUser as exc:
            user.unchecked = (UNRESOLVED, str(exc))
            return
        except (MappingFailure, ValueError) as exc:
            user.unchecked = (UNMAPPABLE, str(exc))
            return
        user.user_id, user.login, user.wanted = verba.user_id, verba.login, mapped.upserts
        user.held = [e for e in verba.held or [] if e["user_id"] == verba.user_id]
        linked = {e["extension"]: e for e in user.held}
        for record in mapped.upserts:
            if (user.source, user.external_id, record.extension) in reads.waiting:
                user.waiting.append(record.extension)
                continue
            got = linked.get(record.extension) or self.client.get_extension(record.extension)
            drift = compare(record, got, user.name)
            if drift is not None:
                user.drifts.append(drift)

    def _without_verba_user(self, user: _User, change: UserChange, login: str, known: int | None,
                            reads: _Reads) -> None:
        """No Verba user has `login`, the user's login name (`known`: the Verba id last pushed for it): in step when
        the mapping records the user nowhere (a leaver: nothing to record, no one to record it on); not checked
        (UNRESOLVED) when Verba's list of every user holds the person under another login name (`held_elsewhere`);
        else drift "no_user". Raises MappingFailure as the mapping does, and VerbaError as reading that list does."""
        if not self.mapping.records_anything(change):
            return
        elsewhere = reads.logins.get().held_elsewhere(login, known)
        if elsewhere is not None:
            user.unchecked = (UNRESOLVED, elsewhere)
            return
        was = "" if known is None else f" (it was Verba user {known} when last pushed)"
        fix = ("a repair creates it ([user_id] create_missing = true), then its extensions"
               if self.mapping.create_missing_users else
               "create it in Verba, or set [user_id] create_missing = true in the mapping, then repair")
        user.drifts.append(Drift("no_user", "", user.name, None, f"no Verba user has loginName {login!r}{was}, so "
                                 f"it is recorded on none of its extensions: {fix}"))

    def record(self, report: DriftReport, trigger: str) -> bool:
        """Record a check of every user as the last check (`trigger`: "cli" or "schedule"), unless it left every
        user unchecked: that found nothing out, so the last check that did stays what `connector status`, the
        metrics and `status --check` show. Whether it was recorded."""
        if report.nothing_checked:
            return False
        self.store.add_drift_run(report.run(trigger))
        return True

    def repair(self, report: DriftReport, *, actor: str, reason: str) -> list[int]:
        """Queue a fresh, forced event of the current state of every user with drift (an extra is first
        remembered as pushed for its user, so the push stops recording it: `report.stopped`), audited in the same
        transaction; the event ids. ValueError, queuing nothing, as `Audit` raises it."""
        users: dict[str, tuple[str, str]] = {}
        for drift in report.drifts:
            source, _, external_id = drift.user.partition("/")
            users[drift.user] = (source, external_id)
            if drift.kind == "extra" and self._remember_extra(source, external_id, drift):
                report.stopped.append(drift)
        # Each user's newest state when it is queued: a change accepted since the check read it is what is pushed.
        ids = self.store.queue_current(list(users.values()), REPAIR_CAUSE,
                                       audit=Audit(actor, REPAIR_CAUSE, reason, {"drift": report.counts}))
        report.repaired = len(ids)
        return ids

    def _remember_extra(self, source: str, external_id: str, drift: Drift) -> bool:
        """Remember the extra as pushed for its user, so that its push stops recording it; whether Verba still links
        it to the user (gone or moved meanwhile: nothing of this user's to stop)."""
        found = self.client.get_extension(drift.extension)
        if found is None or found["user_id"] != drift.user_id:
            return False
        record = ExtensionRecord(
            drift.extension, int(found["user_id"]), found["recording_mode"] or "FULL", bool(found["voice"]),
            bool(found["im"]), bool(found["video"]), bool(found["screen_capture_enabled"]), eid=self.mapping.eid,
            environment_short_name=self.mapping.environment_short_name)
        self.store.remember_pushed(source, external_id, [record])
        return True


class DriftSchedule:
    """Runs the drift check on `[drift]`'s schedule in a background thread, on one instance at a time
    (`leads("drift")`); records each run in the store, and repairs when `[drift] repair` says so."""

    def __init__(self, check: DriftCheck, config: DriftConfig,
                 leads: Callable[[str], bool] = lambda task: True) -> None:
        self.check = check
        self.config = config
        self.leads = leads
        self.scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True})

    def start(self) -> None:
        config = self.config
        if config.interval_seconds > 0:
            trigger: IntervalTrigger | CronTrigger = IntervalTrigger(seconds=config.interval_seconds)
        elif config.schedule:
            trigger = CronTrigger.from_crontab(config.schedule)
        else:
            return
        self.scheduler.add_job(self.run_once, trigger, id="drift", misfire_grace_time=3600)
        self.scheduler.start()

    def stop(self) -> None:
        """Wait for a running check to end (it writes to Verba nothing), then stop."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def run_once(self) -> DriftReport | None:
        """One scheduled check (and repair); None when another instance runs it or it failed. A check that failed,
        or that checked no user while Verba failed to answer about some (its report is returned), is logged and
        recorded as the last failed check, with why (`connector status`, `status --check` and the metrics show it
        until a check is recorded after it): it found nothing out, and night after night it would otherwise go unseen.
        One that checked nobody only because every user waits for a push (a backlog) is not a failure: the queue's
        age shows the backlog, and the next check compares them."""
        started = time.time()
        try:
            if not self.leads("drift"):
                return None
            report = self.check.check()
            if self.config.repair and report.drifts:
                self.check.repair(report, actor="connector", reason="scheduled drift repair ([drift] repair = true)")
            recorded = self.check.record(report, "schedule")
        except Exception as exc:  # the schedule goes on; the next run checks again
            log.error("drift check failed: %s", exc, exc_info=not isinstance(exc, ConnectorError))
            self._note_failure(started, str(exc) if isinstance(exc, ConnectorError) else f"{type(exc).__name__}: {exc}")
            return None
        counts = ", ".join(f"{kind} {n}" for kind, n in report.counts.items() if n)
        why = report.why_unchecked()
        failed = not recorded and any(user.reason == VERBA_FAILED for user in report.unchecked)
        stops = report.stops_recording() if report.repaired is not None else ""
        log.log(logging.WARNING if report.drifts or report.unchecked else logging.INFO,
                "drift check: %s: %s%s%s%s%s%s%s", report.figures(), report.verdict(),
                f" ({counts})" if counts else "", f"; {why} (`connector drift` lists them)" if why else "",
                "" if report.repaired is None else f"; {counted(report.repaired, 'user')} queued for repair",
                f", which stops recording on {stops}" if stops else "",
                "" if recorded or not failed else "; recorded as a failed check: no user could be checked",
                "" if recorded or failed else "; not recorded as the last check: no user could be checked")
        if failed:
            self._note_failure(report.started_at, f"no user could be checked: {why}")
        return report

    def _note_failure(self, started: float, why: str) -> None:
        """Record the failed check in the store, unless the store is what fails (then the log says it alone)."""
        try:
            self.check.store.add_drift_failure(DriftFailure(started, time.time(), _first_line(why, limit=500)))
        except ConnectorError as error:
            log.warning("could not record the failed drift check in the store: %s", error)


def compare(record: ExtensionRecord, found: dict[str, Any] | None, user: str) -> Drift | None:
    """The drift of one wanted record against what getExtension answered (None: absent)."""
    if found is None:
        return Drift("missing", record.extension, user, record.user_id, "Verba has no such extension")
    if found["user_id"] is None:
        return Drift("unlinked", record.extension, user, record.user_id, "Verba links it to no user")
    if found["user_id"] != record.user_id:
        holder = f"{found['user_id']}" + (f" ({found['user_login_name']})" if found["user_login_name"] else "")
        return Drift("other_user", record.extension, user, record.user_id,
                     f"Verba links it to user {holder}, wanted {record.user_id}")
    differs = [f"{name}: Verba has {found[name]}, wanted {getattr(record, name)}"
               for name in SETTINGS if found[name] is not None and found[name] != getattr(record, name)]
    if differs:
        return Drift("settings", record.extension, user, record.user_id, "; ".join(differs))
    return None


@dataclasses.dataclass(frozen=True)
class VerbaUser:
    """What Verba holds for a directory user, read without writing (drift checks, dry runs)."""

    found: int | str  # the Verba id the mapping gives, or the login name it says to look up
    login: str | None  # the login name listUsers was asked for (None: none to ask for)
    user_id: int | None  # None when no Verba user has that login name
    held: list[dict[str, Any]] | None  # the extensions Verba links to that login (see VerbaClient.listed_user)


def verba_directory(client: VerbaClient, purpose: str, extensions: bool = True) -> dict[str, ListedUser]:
    """Verba's users by login name, with their extensions (unless not `extensions`), from one listUsers without
    criterion (see VerbaClient.every_user); {} when Verba refuses that list or cannot give it, said in a warning that
    names `purpose` (then each user is asked on its own). A login name listed twice is left out (asked on its own,
    it raises what the client raises for it). Raises VerbaAuthError and VerbaUnreachable: asking each user cannot
    help then."""
    try:
        listed = client.every_user(extensions=extensions)
    except (VerbaAuthError, VerbaUnreachable):
        raise
    except VerbaError as exc:
        log.warning("%s: Verba did not list every user (%s); each user is asked on its own", purpose, exc)
        return {}
    return by_login_name(listed)


def look_up(client: VerbaClient, mapping: Mapping, change: UserChange, known: int | None,
            directory: dict[str, ListedUser] | None = None) -> VerbaUser:
    """The user's Verba id and the extensions Verba links to its login name: from `directory` (Verba's users by
    login name, see verba_directory) when it lists the login, else one listUsers (`known`: the id last
    pushed). Raises what Mapping.user_id_or_login and the client raise."""
    found = mapping.user_id_or_login(change, known)
    login = found if isinstance(found, str) else mapping.login_name(change.state)
    listed = None if login is None else (directory or {}).get(login) or client.listed_user(login)
    user_id = found if isinstance(found, int) else None if listed is None else listed.user_id
    return VerbaUser(found, login, user_id, None if listed is None else listed.extensions)


def recorded(found: dict[str, Any]) -> str:
    """The modalities Verba records on an extension, e.g. "voice, im"; "" when none."""
    return ", ".join(name for name in ("voice", "im", "video", "screen_capture_enabled") if found.get(name))


def _first_line(text: str, limit: int = 200) -> str:
    """The first line of an error's message, at most `limit` characters ("..." ends one cut short)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _extras(user: _User, wanted: set[str]) -> list[Drift]:
    """The extensions Verba links to `user` and records that no user wants (`wanted`)."""
    return [Drift("extra", found["extension"], user.name, int(found["user_id"]),
                  f"linked to {user.login} and recorded ({recorded(found)}), but no user's state has it")
            for found in user.held if found["extension"] not in wanted and recorded(found)]


def _holders(users: Iterable[_User]) -> list[_User]:
    """The first checked user of each Verba user id (who an extra is reported for)."""
    holders: dict[int, _User] = {}
    for user in users:
        if user.unchecked is None and user.user_id is not None:
            holders.setdefault(user.user_id, user)
    return list(holders.values())
