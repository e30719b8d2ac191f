"""Who may write an extension (DESIGN.md invariant 6): no silent relink, no stolen number.

Every extension a push touches is locked for it first (`Store.begin_push`), which also makes the
user's wanted extensions their claims in the claim index. Then, for each extension:

upsert (the user wants it recorded):
    another source of the same Verba user claimed it first, and its last push of it had other settings
    (as soon as the store or getExtension shows it linked to that Verba user)
                                                     -> conflict: Verba keeps the first claim's settings
    held by another user who still claims it         -> conflict, Verba untouched: the holder keeps it
    otherwise Verba is asked who holds it (getExtension): at once when the connector last wrote it for this user
    (an admin may have relinked it by hand since, and an update would silently move it back) or an earlier
    claimant waits (so nothing is created for the wrong user); else after createExtension answers
    ERROR_ALREADY_EXISTS. Held by
        this user, or by nobody and no earlier claimant waits -> updateExtension (createExtension if it is gone)
            (by nobody, whoever waits, when the connector last wrote it for this user)
        another user who still claims it                   -> conflict: the holder keeps it
        nobody we know still claims it, an earlier claim waits -> conflict: the earliest claim wins
        one of the connector's users who let it go          -> hand over (audited)
            (the connector last wrote or saw it linked to that Verba user in a push of one of its own source
            users: a leaver's stop, a number change; `Store.let_go_by_holder`; or the same source user under the
            Verba user it resolved to before its login was renamed at the source)
        any other Verba user: one the connector does not manage, or one of its users who never claimed it
        through the connector (linked by hand in Verba)    -> [ownership] on_conflict: "hold" (conflict)
                                                               or "take_over" (audited)
deprovision (the user no longer wants it): getExtension; recording is stopped only when Verba
    shows it linked to this user's Verba id and no other source of that Verba user still claims it;
    otherwise it is left alone (logged, counted, audited). A stop for a user who stays active is logged and
    audited when Verba records the extension, or does not say whether it does (`may_record`).

A take-over, a hand-over or an audited stop of recording whose write may have been applied although its reply was
lost (a VerbaTransportError after the request went out, not VerbaUnreachable) is audited before the error goes on,
unconfirmed: the retry finds it done and writes nothing, so it would otherwise never be audited.

Users waiting in a conflict on an extension that a push releases are woken: a fresh event of
their current state is queued, so a number passed from a leaver to a joiner ends recorded for
the joiner without on-call work. A push that writes new settings to an extension another source of
the same Verba user claimed later, with the old ones, queues that user again too: it then waits in
a conflict instead of staying done while Verba records it otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from connector.delivery.users import differs_only_by, twin_fix
from connector.mapping import MappedUser
from connector.ops.metrics import OWNERSHIP_DECISIONS
from connector.records import ExtensionRecord, not_xml
from connector.store import Claim, EventState, Store
from connector.store.database import CONNECTOR
from connector.store.log import REPAIR_CAUSE
from connector.store.ownership import Claimant, Conflict, PushFinish, PushPlan, StopRecordingWindow
from connector.verba.client import VerbaClient
from connector.verba.errors import (
    ExtensionAbsent,
    UnsendableValue,
    VerbaAmbiguous,
    VerbaHTTPError,
    VerbaMalformedResponse,
    VerbaTransportError,
    VerbaUnreachable,
)

log = logging.getLogger("connector.delivery")
T = TypeVar("T")
RECORDING_FLAGS = ("voice", "im", "video", "screen_capture_enabled")  # what a stop of recording turns off
# What resolves a conflict with a holder the connector may not hand the extension over from.
FREE_IN_VERBA = ("free or relink it in Verba, then `connector events replay --cause extension_conflict`; "
                 'or set [ownership] on_conflict = "take_over" in the mapping to let the directory win, restart every '
                 "instance (each reads the mapping at start), then replay")
# What resolves a conflict between two users of the connector who claim one number.
TWO_CLAIM_IT = ("remove the number from one of them at the source, or, if they truly share the line, give each its own "
                'extension suffix at the source ("x101", "x102"), which the mapping keeps as two extensions with '
                'suffix = "keep"; the conflict then clears itself')


@dataclasses.dataclass
class PushOutcome:
    """What one push did, extension by extension."""

    written: list[ExtensionRecord] = dataclasses.field(default_factory=list)  # upserts Verba accepted
    stopped: list[str] = dataclasses.field(default_factory=list)
    conflicts: list[Conflict] = dataclasses.field(default_factory=list)
    left_alone: list[str] = dataclasses.field(default_factory=list)
    owners: dict[str, int | None] = dataclasses.field(default_factory=dict)  # as last written or seen
    finish: PushFinish | None = None  # for Store.complete


class OwnershipPusher:
    """Pushes one user's mapped records under the ownership rules; safe to share between threads."""

    def __init__(self, store: Store, client: VerbaClient, on_conflict: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.client = client
        self.on_conflict = on_conflict
        self.clock = clock

    def push(self, claim: Claim, me: Claimant, mapped: MappedUser, first_pushes: Sequence[ExtensionRecord],
             stop_recording: StopRecordingWindow | None = None) -> PushOutcome:
        """Write what the ownership rules allow; `first_pushes` are the upserts never pushed for this user before,
        `stop_recording` the stop-recording guard's window when the push stops recording.

        On success the push is ended by `Store.complete(finish=outcome.finish)`; on failure it is
        ended here, taking back the note of each first push no write went out for (`Store.finish_push`). Raises
        ExtensionsBusy, StopRecordingHeld or LeaseLost (the claim's lease no longer holds) with nothing done, or a
        VerbaError.
        """
        wanted = [r.extension for r in mapped.upserts]
        plan = self.store.begin_push(claim.owner, claim.lease_until, self.clock(), me, wanted,
                                     wanted + [r.extension for r in mapped.deprovisions], first_pushes, stop_recording,
                                     under_lease=True)
        outcome = PushOutcome()
        released = list(dict.fromkeys([*plan.released, *(r.extension for r in mapped.deprovisions)]))
        tried: set[str] = set()  # the upserts a write of may have gone out for
        try:
            for record in mapped.upserts:
                tried.add(record.extension)
                try:
                    self._upsert(claim, me, record, plan, outcome)
                except UnsendableValue:
                    tried.discard(record.extension)  # not built: nothing of it went out (every write carries it)
                    raise
            for record in mapped.deprovisions:
                self._deprovision(claim, me, record, plan, outcome, active=mapped.active)
        except BaseException:
            woken(self.store.finish_push(claim.owner, me, outcome.owners, outcome.conflicts, released, failed=True,
                                         under_lease=True,
                                         unsent=[r.extension for r in first_pushes if r.extension not in tried]))
            raise
        # Another source of the same Verba user waiting on an extension this push wrote tries again: the settings
        # it waited for may be the ones written now.
        shared = [r.extension for r in outcome.written
                  if any(t.verba_user_id == me.verba_user_id for t in plan.rivals.get(r.extension, []))]
        outcome.finish = PushFinish(claim.owner, me, outcome.owners, outcome.conflicts, released,
                                    self._overwritten_twins(plan, me, outcome.written), shared)
        return outcome

    # upserts

    def _upsert(self, claim: Claim, me: Claimant, record: ExtensionRecord, plan: PushPlan,
                outcome: PushOutcome) -> None:
        extension = record.extension
        rivals = [r for r in plan.rivals.get(extension, []) if r.verba_user_id != me.verba_user_id]
        # Claims are ordered by when each was first accepted, not by this user's newest event.
        mine = dataclasses.replace(me, claimed_at=plan.claimed_at.get(extension, me.claimed_at))
        earlier = next((r for r in rivals if r.earlier_than(mine)), None)
        known = plan.owners.get(extension)
        if self._waits_for_twin(claim, me, mine, record, known, plan, outcome):
            return
        # Last written (or seen) linked to this user: Verba is asked who holds it before it is written, as an admin
        # may have relinked it by hand since; a write would silently move it back (DESIGN.md invariant 6).
        confirmed = known == me.verba_user_id
        if not confirmed:
            holder = _holder_among(rivals, known)
            if holder is not None:
                self._conflict(claim, me, extension, holder.verba_user_id, holder.login_name, holder, outcome)
                return
            if earlier is None and self.client.create_extension(record):
                self._note_written(record, outcome)
                return
        found = self.client.get_extension(extension)
        owner = None if found is None else found["user_id"]
        login = None if found is None else found["user_login_name"]
        outcome.owners[extension] = owner
        if found is None and earlier is None and not confirmed:
            raise VerbaAmbiguous(f"createExtension says {extension} exists, getExtension says it does not")
        # Verba links it to this Verba user though the store did not know (a drift check forgot who held it).
        if owner == me.verba_user_id != known and self._waits_for_twin(claim, me, mine, record, owner, plan, outcome):
            return
        # Held by this Verba user, or by nobody (unlinked, or gone: created again) when no earlier claim waits or this
        # user was the last to hold it: written as before.
        if owner == me.verba_user_id or (owner is None and (earlier is None or confirmed)):
            self._update_or_create(record, outcome)
            return
        holder = _holder_among(rivals, owner)
        if holder is not None or earlier is not None:
            self._conflict(claim, me, extension, owner, login, holder or earlier, outcome)
            return
        assert owner is not None
        # Handed over only when the connector's own records show the holder let it go; a user of the connector
        # linked to it by hand in Verba is treated as a holder the connector does not manage.
        if self.store.let_go_by_holder(extension, owner):
            self._move(claim, me, record, owner, login, outcome, "hand_over", self._why_handed_over(me, owner, login))
            return
        holders = ", ".join("/".join(user) for user in self.store.source_users_of(owner))
        by_hand = (f"its holder, a user of the connector ({holders}), never claimed it through the connector (it was "
                   "linked by hand in Verba, for instance)")
        # Never taken over from the same person under another spelling of the login (a twin create_missing made):
        # its recordings would be filed under the twin. A conflict says to fix the login name instead.
        if self.on_conflict == "take_over" and same_person_fix(me.login_name, me.verba_user_id, login, owner) is None:
            self._move(claim, me, record, owner, login, outcome, "take_over",
                       (by_hand if holders else "the holder is not managed by the connector")
                       + ' and [ownership] on_conflict = "take_over"')
        elif holders:
            self._conflict(claim, me, extension, owner, login, None, outcome,
                           why=f"{by_hand}, so it is not handed over", fix=FREE_IN_VERBA)
        else:
            self._conflict(claim, me, extension, owner, login, None, outcome)

    def _why_handed_over(self, me: Claimant, owner: int, login: str | None) -> str:
        """Why `owner`, who let the extension go, hands it over to `me`: it is this same source user under the Verba
        user it resolved to before (its login name renamed at the source to another Verba user's), or a user who
        left or whose number changed."""
        if self.store.verba_user_id(me.source, me.external_id) != owner:
            return "its holder no longer claims it (disabled, deleted or number changed)"
        return (f"{me.source}/{me.external_id} now resolves to {_verba_user(me.verba_user_id, me.login_name)} "
                f"instead of {owner}" + (f" ({login})" if login else "")
                + ": login renamed at the source (or its [user_id] attribute changed)")

    def _waits_for_twin(self, claim: Claim, me: Claimant, mine: Claimant, record: ExtensionRecord, owner: int | None,
                        plan: PushPlan, outcome: PushOutcome) -> bool:
        """Record a conflict, and say so, when another source user of the same Verba user claimed the extension
        first and its last push of it had other settings, while Verba holds it linked to this Verba user (`owner`:
        as the connector last wrote or saw it, or as getExtension shows it): the push would silently undo theirs.
        Not yet linked to this Verba user, there are no settings of theirs to keep."""
        if owner != mine.verba_user_id:
            return False
        earlier = [t for t in plan.rivals.get(record.extension, [])
                   if t.verba_user_id == mine.verba_user_id and t.earlier_than(mine)]
        for claimant, differences in differing_twins(self.store, record, "/".join(_key(mine)), earlier, _key):
            self._conflict(claim, me, record.extension, owner, claimant.login_name, claimant, outcome,
                           why=f"{claimant.name}, another source of the same Verba user, claimed it first with other "
                               f"settings ({differences}), which it keeps",
                           fix="make the two sources agree (the same groups or attributes: `connector mapping test` "
                               "shows what decides each), or remove the number from one of them; the conflict then "
                               "clears itself")
            return True
        return False

    def _overwritten_twins(self, plan: PushPlan, me: Claimant,
                           written: Sequence[ExtensionRecord]) -> list[tuple[str, str]]:
        """The other source users of this Verba user who claimed a `written` extension after this user, and whose last
        push of it had other settings: this push, the first claim's, overwrote theirs in Verba. Each is pushed again
        (Store: `recheck`) and waits in a conflict that says so, instead of counting as done while Verba records
        them otherwise."""
        overwritten = set()
        for record in written:
            mine = dataclasses.replace(me, claimed_at=plan.claimed_at.get(record.extension, me.claimed_at))
            later = [t for t in plan.rivals.get(record.extension, [])
                     if t.verba_user_id == me.verba_user_id and not t.earlier_than(mine)]
            overwritten |= {_key(t) for t, _ in differing_twins(self.store, record, "/".join(_key(me)), later, _key)}
        return sorted(overwritten)

    def _move(self, claim: Claim, me: Claimant, record: ExtensionRecord, owner: int, login: str | None,
              outcome: PushOutcome, action: str, why: str) -> None:
        """Write the extension for this user although Verba links it to `owner`: logged, counted, audited."""
        with self._audited_if_lost(claim, me, action, record.extension, owner, login, why):
            self._update_or_create(record, outcome)
        OWNERSHIP_DECISIONS.labels(action).inc()
        log.warning("%s of %s from Verba user %s to %s: %s", action, record.extension, owner, me.name, why,
                    extra={"event_ids": list(claim.event_ids), "extension": record.extension})
        self._audit(claim, me, action, record.extension, owner, login, why)

    def _try_update(self, record: ExtensionRecord) -> bool:
        """updateExtension; False when Verba says the extension is gone."""
        try:
            self.client.update_extension(record)
        except ExtensionAbsent:
            return False
        return True

    def _update_or_create(self, record: ExtensionRecord, outcome: PushOutcome) -> None:
        """updateExtension, or createExtension when it vanished meanwhile."""
        if not self._try_update(record) and not self.client.create_extension(record):
            raise VerbaAmbiguous(f"updateExtension says {record.extension} is gone, createExtension that it exists")
        self._note_written(record, outcome)

    @staticmethod
    def _note_written(record: ExtensionRecord, outcome: PushOutcome) -> None:
        outcome.written.append(record)
        outcome.owners[record.extension] = record.user_id

    def _conflict(self, claim: Claim, me: Claimant, extension: str, owner: int | None, login: str | None,
                  rival: Claimant | None, outcome: PushOutcome, why: str = "", fix: str = "") -> None:
        """Leave Verba as it is and record the open conflict; `why` and `fix` say what the message says when the
        usual ones (by who holds and who claimed first) do not fit."""
        held_by = _verba_user(owner, login) if owner is not None else "nobody yet"
        if not why:
            why, fix = _why_waiting(rival, owner)
            if rival is not None and (stuck := self._stuck_change(rival)):
                fix = f"{stuck}; or {fix}"
        if rival is None:  # a holder it is not handed over from: not taken over from the same person either
            fix = same_person_fix(me.login_name, me.verba_user_id, login, owner) or fix
        message = (f"extension {extension} is linked to {held_by}: {why}; {me.name} (Verba user "
                   f"{me.verba_user_id}) waits for it. To resolve: {fix}")
        outcome.conflicts.append(Conflict(extension, me, claim.latest.id, owner, login,
                                          rival.name if rival is not None else None, message, self.clock()))
        OWNERSHIP_DECISIONS.labels("conflict").inc()
        log.warning("extension conflict: %s", message,
                    extra={"event_ids": list(claim.event_ids), "cause": "extension_conflict", "extension": extension})

    def _stuck_change(self, rival: Claimant) -> str:
        """What releases the extension when `rival`'s newest change, which may let it go (a leaver's), waits for an
        operator instead of being pushed: held by a guard, or a dead letter; "" when none does."""
        event = self.store.newest_event(rival.source, rival.external_id)
        if event is None or event.state not in (EventState.HELD, EventState.DEAD):
            return ""
        change = f"{rival.name}'s newest change (event {event.id}, {event.change.kind}) is"
        if event.state is EventState.HELD:
            return (f"{change} held ({event.last_cause or 'ldap_mass_change'}) and not pushed yet: if it lets the "
                    f"number go, approving it (`connector events approve {event.id} --reason R`) clears the conflict")
        return (f"{change} a dead letter ({event.last_cause}) and not pushed: if it lets the number go, fixing its "
                f"cause and `connector events replay {event.id}` clears the conflict")

    # deprovisioning

    def _deprovision(self, claim: Claim, me: Claimant, record: ExtensionRecord, plan: PushPlan,
                     outcome: PushOutcome, *, active: bool) -> None:
        """Stop recording the extension if the ownership rules allow it (see the module doc); a stop of an extension
        Verba recorded, or may have recorded (`may_record`: Verba did not say), for a user who stays `active` (no
        leaver: a number removed or changed at the source, or no rule records it now; or one Verba held for the user
        that the connector never wrote, found by a drift check: `_why_stopped`), is logged as a warning and audited
        (`recording_stopped`), so that it is never silent."""
        extension = record.extension
        try:
            found = self.client.get_extension(extension)
        except UnsendableValue:
            # No request can name it (a note of a crash mid-push, or of a push before `finish_push` took such notes
            # back): the connector never wrote it, and cannot stop it. Left alone, the push ends and forgets it,
            # instead of failing on it for ever.
            self._leave_alone(claim, me, extension, None, None, f"its name {not_xml(extension)}, so no request to "
                              "Verba can name it: the connector never wrote it and cannot stop it (if Verba holds it, "
                              "made by hand, stop it there)", outcome)
            return
        if found is None:
            outcome.owners[extension] = None  # never created, or gone: nothing to stop
            return
        owner, login = found["user_id"], found["user_login_name"]
        outcome.owners[extension] = owner
        same_user = next((r for r in plan.rivals.get(extension, []) if r.verba_user_id == me.verba_user_id), None)
        if owner != me.verba_user_id:
            held_by = "no user" if owner is None else _verba_user(owner, login)
            self._leave_alone(claim, me, extension, owner, login, f"Verba shows it linked to {held_by}", outcome)
        elif same_user is not None:
            self._leave_alone(claim, me, extension, owner, login,
                              f"the same Verba user still claims it through {same_user.name}", outcome)
        else:
            why = ""  # the stop is audited only when it has a reason, below
            recording = may_record(found)
            if active and recording is not False:
                why = (self._why_stopped(claim, me, extension, plan)
                       + ("" if recording else "; Verba did not say whether it was recording it (its getExtension "
                                               "answer was unclear), so the stop is audited as if it was"))
            with self._audited_if_lost(claim, me, "recording_stopped", extension, owner, login, why):
                stopped = self._try_update(record)
            if not stopped:
                raise VerbaAmbiguous(f"getExtension shows {extension} linked to Verba user {owner}, "
                                     "updateExtension says it does not exist")
            outcome.stopped.append(extension)
            if why:
                log.warning("stopped recording %s: %s", extension, why,
                            extra={"event_ids": list(claim.event_ids), "extension": extension})
                self._audit(claim, me, "recording_stopped", extension, owner, login, why)

    def _why_stopped(self, claim: Claim, me: Claimant, extension: str, plan: PushPlan) -> str:
        """Why recording stops on `extension` for `me`, who stays active: the connector last wrote it for this Verba
        user, so the source no longer gives it; or it never did (Verba held it for the user, linked by hand, say, and
        a drift check found it: its repair is named, from the audit entry of the repair's event)."""
        if plan.owners.get(extension) == me.verba_user_id:
            return (f"{me.name} stays active, but its state no longer maps to {extension} (a number removed or "
                    "changed at the source, or no rule records the user now: `connector mapping test` shows why)")
        repairs = [entry for event_id in (claim.event_ids if claim.forced else ())
                   for entry in self.store.audit_of_event(event_id) if entry.action == REPAIR_CAUSE]
        by = "" if not repairs else f" (drift repair by {repairs[-1].actor}: {repairs[-1].reason})"
        return (f"Verba held {extension} for {me.name}, who stays active, but its source does not give it: the "
                f"connector never wrote it for the user{by}")

    def _leave_alone(self, claim: Claim, me: Claimant, extension: str, owner: int | None, login: str | None,
                     why: str, outcome: PushOutcome) -> None:
        outcome.left_alone.append(extension)
        OWNERSHIP_DECISIONS.labels("left_alone").inc()
        log.warning("did not stop recording %s for %s: %s", extension, me.name, why,
                    extra={"event_ids": list(claim.event_ids), "extension": extension})
        self._audit(claim, me, "left_alone", extension, owner, login, why)

    # shared

    def note_kept(self, claim: Claim, me: Claimant, mapped: MappedUser) -> None:
        """Log the values the mapping left out as invalid, and audit (`kept_recording`) each extension kept
        recording because of them instead of stopped (MappedUser.kept); call it once a push ends."""
        if not mapped.skipped:
            return
        left_out = "; ".join(mapped.skipped)
        log.warning("%s: left out as invalid: %s; fix it at the source", me.name, left_out,
                    extra={"event_ids": list(claim.event_ids)})
        for extension in mapped.kept:
            why = (f"{me.name} no longer maps to {extension}, but a value was left out as invalid ({left_out}) and "
                   f"may be that number mistyped: it stays recorded until the value is fixed at the source")
            self._audit(claim, me, "kept_recording", extension, me.verba_user_id, me.login_name, why)

    @contextlib.contextmanager
    def _audited_if_lost(self, claim: Claim, me: Claimant, action: str, extension: str, owner: int | None,
                         login: str | None, why: str) -> Iterator[None]:
        """Around a write audited as `action` once Verba says OK: when its reply is lost after the request went out
        (`_may_have_applied`: a timeout, a proxy's 5xx, a garbled answer), Verba may have applied it, and the retry
        would find it done and audit nothing; so the entry is written now, unconfirmed ("confirmed": false), before
        the error goes on. Nothing sent (VerbaUnreachable) or any other error: nothing is audited; nor when `why` is
        empty (a write not audited even when it succeeds)."""
        try:
            yield
        except (VerbaTransportError, VerbaHTTPError, VerbaMalformedResponse) as exc:
            if why and _may_have_applied(exc):
                self._audit(claim, me, action, extension, owner, login,
                            f"{why}; Verba's reply to the write was lost, so Verba may have applied it (unconfirmed)",
                            confirmed=False)
            raise

    def _audit(self, claim: Claim, me: Claimant, action: str, extension: str, owner: int | None,
               login: str | None, why: str, *, confirmed: bool = True) -> None:
        """An audit entry by the connector itself: what it did (or did not do) to whose extension, and why;
        not `confirmed`: a write Verba may have applied, its reply lost."""
        detail = {"extension": extension, "from_user_id": owner, "from_login": login,
                  "user": f"{me.source}/{me.external_id}", "user_id": me.verba_user_id}
        if not confirmed:
            detail["confirmed"] = False
        self.store.add_audit(CONNECTOR, action, claim.event_ids, why, detail)


def _may_have_applied(error: VerbaTransportError | VerbaHTTPError | VerbaMalformedResponse) -> bool:
    """Whether Verba may have applied a write that failed so: its reply was lost or garbled after the request went
    out (a timeout, a broken answer, an HTTP 500, 502 or 504 without a SOAP fault: a proxy whose upstream broke off
    or timed out, a server's error page; an answer that is no SOAP); not when nothing was sent (VerbaUnreachable),
    the request was turned away before it (503 unavailable, a 4xx), or Verba's service refused it (a SOAP fault)."""
    if isinstance(error, VerbaHTTPError):
        return error.status_code in (500, 502, 504) and not error.soap_fault
    return not isinstance(error, VerbaUnreachable)


def may_record(found: dict[str, Any]) -> bool | None:
    """Whether Verba records the extension `found` (VerbaClient.get_extension's dict) shows: True when a flag of
    RECORDING_FLAGS is on, False when every one is off, None when none is on and Verba did not say some (the
    client's listUsers fallback after an unclear getExtension answer may know the holder but not the flags): it may
    be recording. Shared by delivery and the dry run."""
    flags = [found.get(flag) for flag in RECORDING_FLAGS]
    if any(flags):
        return True
    return None if None in flags else False


def differing_twins(store: Store, record: ExtensionRecord, mine: str, twins: Iterable[T],
                    key: Callable[[T], tuple[str, str]]) -> Iterator[tuple[T, str]]:
    """Each of `twins` (other source users of `record`'s Verba user, as `key` gives their (source, external_id))
    whose last push of `record`'s extension had other settings, with how `record` (the user named `mine`) differs:
    "im False for okta/00u1, True for entra/8f1c": a push of `record` and theirs would undo each other. Shared by
    delivery and the dry run."""
    for twin in twins:
        source, external_id = key(twin)
        theirs = next((p for p in store.pushed_extensions(source, external_id) if p.extension == record.extension),
                      None)
        differences = "" if theirs is None else record.differences(theirs, f"for {mine}",
                                                                   f"for {source}/{external_id}")
        if differences:
            yield twin, differences


def same_person_fix(login: str | None, user_id: int | None, holder_login: str | None, holder: int | None) -> str | None:
    """What resolves a conflict over an extension Verba links to Verba user `holder` (login name `holder_login`), for
    the user whose login name is `login` (Verba user `user_id`), when the two login names differ only by case or a
    domain (`differs_only_by`: "bob" and "bob@example.com"): the user's login name is read wrong, and `user_id` is a
    second Verba user of the same person (made by [user_id] create_missing), so taking the number over would file its
    recordings under the wrong one. None when they differ otherwise. Shared by delivery and the dry run."""
    if login is None or holder_login is None or differs_only_by(login, holder_login) is None:
        return None
    return (f"{twin_fix(login, holder_login)}, so that the push finds Verba user {holder} ({holder_login}), then check "
            f"Verba user {user_id} ({login}), a second Verba user of the same person, and remove it in Verba; do not "
            f'take the number over (on_conflict = "take_over"): its recordings would be filed under Verba user '
            f"{user_id}")


def woken(users: Sequence[tuple[str, str]]) -> None:
    """Log the users a push woke (the store queued a fresh event of each: connector/store/ownership.py)."""
    if users:
        log.info("%d user(s) queued again: waiting on an extension released, or their settings on one overwritten "
                 "by another source of their Verba user", len(users))


def _why_waiting(rival: Claimant | None, owner: int | None) -> tuple[str, str]:
    """Why a user waits for an extension `owner` holds (`rival`: the claimant who holds it or claimed it first,
    None: a Verba user the connector does not manage), and what resolves it."""
    if rival is not None and rival.verba_user_id == owner:
        return f"{rival.name} claims it too and holds it", TWO_CLAIM_IT
    if rival is not None:
        return f"{rival.name} (Verba user {rival.verba_user_id}) claimed it first and waits for it", TWO_CLAIM_IT
    return "the connector manages no user linked to it", FREE_IN_VERBA


def _verba_user(user_id: int | None, login: str | None) -> str:
    """How messages name a Verba user: "Verba user 60 (new05@example.com)"."""
    return f"Verba user {user_id}" + (f" ({login})" if login else "")


def _key(claimant: Claimant) -> tuple[str, str]:
    return claimant.source, claimant.external_id


def _holder_among(rivals: list[Claimant], owner: int | None) -> Claimant | None:
    """The rival who holds the extension in Verba (and so keeps it), if any."""
    return None if owner is None else next((r for r in rivals if r.verba_user_id == owner), None)
