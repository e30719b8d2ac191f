"""Delivery: claim one user's pending events, map the latest state, push it, record the outcome.

Failures are classified (DESIGN.md invariant 4): transport errors, HTTP 5xx, 404 and 405 and
ERROR_GENERAL retry with full-jitter backoff until `max_attempts`;
ERROR_ILLEGAL_ARGUMENT, a redirect or a SOAP client fault, mapping failures and unresolved users
dead-letter at once.
When Verba fails as a whole, the circuit breaker (`breaker.py`) stops delivery instead: the
claims wait without spending attempts, and one worker probes Verba until it answers (a trial push
that Verba's service refuses with a SOAP fault at HTTP 5xx, or answers with no SOAP response, spends its attempt;
and a lone user's failure of Verba as a whole is checked with a probe before it spends one: see breaker.py).
Who may write which extension is decided in `ownership.py`; a burst of stop-recording
pushes is held by `guard.py`. An extension write Verba's service refuses (a status, or a SOAP
fault) may say that the user's cached Verba id is gone: once per push, the login name is looked
up again (`users.py`, UserIdResolver.refused) and, when it has another id (or none, and is created),
the push is made again with it; otherwise the refusal is classified as above.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from connector.config import DeliveryConfig
from connector.delivery.backoff import full_jitter_delay
from connector.delivery.breaker import Breaker
from connector.delivery.guard import CAUSE as GUARD_CAUSE
from connector.delivery.guard import StopRecordingGuard
from connector.delivery.lease import LeaseKeeper, LeaseRenewer
from connector.delivery.ownership import OwnershipPusher, PushOutcome, woken
from connector.delivery.users import UserIdResolver
from connector.events import UserChange
from connector.mapping import MappedUser, Mapping, MappingFailure, UnresolvedUser
from connector.ops.health import probe_target
from connector.ops.logs import correlation, correlation_id
from connector.ops.metrics import COALESCED, SKIPPED
from connector.records import ExtensionRecord
from connector.store import Claim, Store, StoreError
from connector.store.ownership import Claimant, ExtensionsBusy, LeaseLost, StopRecordingHeld
from connector.verba.client import VerbaClient
from connector.verba.errors import (
    TARGET_WIDE_CAUSES,
    LeaseEnding,
    VerbaError,
    VerbaHTTPError,
    VerbaMalformedResponse,
    VerbaRateLimited,
    VerbaStatusError,
)
from connector.verba.guard import EXTENSION_WRITES
from connector.verba.status import OK

log = logging.getLogger("connector.delivery")

BUSY_RETRY_SECONDS = 0.2  # a user whose extension another push holds is tried again this much later
STORE_RETRY_SECONDS = 1.0  # how often a worker tries the store again after it failed


class Deliverer:
    """Pushes users' latest states to Verba; safe to call from several threads."""

    def __init__(
        self,
        store: Store,
        client: VerbaClient,
        mapping: Mapping,
        config: DeliveryConfig,
        clock: Callable[[], float] = time.time,
        *,
        instance: str = socket.gethostname(),
        calls_until: Callable[[], float] = lambda: math.inf,
        generation: Callable[[], int] = lambda: 0,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        """`instance` names this connector's breaker in the store; `calls_until` says until when (Unix time)
        this instance may let a call run (connector/liveness.py fences an instance cut off from the store);
        `generation` is this instance's (Liveness.generation): a push claimed in an earlier one calls Verba no more,
        its claim given back while the instance was counted dead; `on_written` is called after each push that wrote
        to Verba (connector/delivery/recorders.py)."""
        self.store = store
        self.client = client
        self.mapping = mapping
        self.config = config
        self.clock = clock
        self.users = UserIdResolver(client, mapping, config.user_cache_seconds)
        self.guard = StopRecordingGuard(config, clock)
        self.owners = OwnershipPusher(store, client, mapping.on_conflict, clock)
        self.leases = LeaseRenewer(store, config.lease_seconds, clock)
        self.breaker = Breaker(config.breaker_window_seconds, config.breaker_min_users, config.probe_seconds, clock)
        self.instance = instance
        self.calls_until = calls_until
        self.generation = generation
        self._claimed = threading.local()  # per worker thread: the generation its claim under way was taken in
        self.on_written = on_written

    def deliver_one(self, owner: str, *, busy: bool = False) -> bool:
        """Claim and push one user's pending events; False when nothing is due, Verba is down (the
        breaker is open) or this instance is fenced (no call could end before it counts as dead).
        `busy`: this worker's last call pushed a user (see `EventQueue.claim`)."""
        if not self.probe(owner):  # the breaker is open: nothing is claimed until Verba answers a probe
            return False
        if self.clock() + self.client.timeout > self.calls_until():  # fenced: cut off from the shared store
            return False
        # Read before the claim: a claim given back after it was taken was taken in this generation.
        self._claimed.generation = self.generation()
        claim = self.store.claim(owner, self.clock(), self.config.lease_seconds, busy=busy)
        if claim is None:
            if self.breaker.on_trial(owner):  # nothing to try a write with: resume, backed-off events as they are
                self._close_breaker(expedite=False)
            return False
        self.deliver(claim)
        return True

    def deliver(self, claim: Claim) -> None:
        """Push `claim`: the one this thread's `deliver_one` just took, or one taken in the current generation."""
        taken = vars(self._claimed).pop("generation", None)
        taken = self.generation() if taken is None else taken
        with correlation(correlation_id(claim.event_ids)), self.client.capture() as sent, \
                self.leases.keep(claim) as lease, self.client.calls_until(lambda: self._calls_until(lease, taken)):
            try:
                self._deliver(claim, lease, sent)
            except StoreError as exc:
                self._give_back(lease, sent, exc)
                raise
            finally:
                if any(s["operation"] in EXTENSION_WRITES and s.get("status") == OK for s in sent):
                    self._close_breaker(expedite=True)  # Verba takes writes: a trial under way ends well
                    if self.on_written is not None:
                        self.on_written()

    def _calls_until(self, lease: LeaseKeeper, generation: int) -> float:
        """Until when (Unix time) a call of a push may run: while its lease holds and this instance may call;
        never once the instance left the `generation` the push's claim was taken in (counted dead meanwhile, it
        gave the claim back). The generation is read last: it changes before the fence lifts (liveness.py)."""
        end = min(lease.calls_until(), self.calls_until())
        return end if self.generation() == generation else -math.inf

    def _give_back(self, lease: LeaseKeeper, sent: list[dict[str, Any]], failure: StoreError) -> None:
        """The store failed mid-push (a full disk, a lost database): put the claim back to pending, its attempt
        not spent, as soon as the store takes writes again, instead of leaving it in flight until its lease
        ends; the push is then made again. What it `sent` meanwhile is recorded with it. Tries every second
        while the lease lasts."""
        why = f"the store failed mid-push, so it is made again ({failure})"
        while True:
            try:
                self.store.postpone(lease.final(), self.clock(), cause="store", error=why, sent=sent)
                return
            except StoreError:
                if self.clock() + STORE_RETRY_SECONDS >= lease.until:
                    return  # the lease ends first: its expiry brings the events back
                time.sleep(STORE_RETRY_SECONDS)

    def _deliver(self, claim: Claim, lease: LeaseKeeper, sent: list[dict[str, Any]]) -> None:
        # The user's current state, not the claim's: a replayed old event must not roll the user back.
        change = (claim.current or claim.latest).change
        try:
            previous = list(claim.pushed)
            if self.mapping.needs_nothing(change, previous) and not self.store.claimed(claim.source, claim.external_id):
                left_out = "; ".join(self.mapping.left_out(change))
                self._skip(claim, lease, sent, "; ".join([
                    "maps to no extension and none was pushed for it", *self.mapping.ignored(change),
                    *([f"left out as invalid: {left_out}: fix it at the source"] if left_out else [])]))
                return
            try:
                user_id = self.users.resolve(change, claim.verba_user_id)
            except UnresolvedUser:
                if previous or self.mapping.records_anything(change) or self.store.claimed(claim.source,
                                                                                           claim.external_id):
                    raise
                # A leaver (or a user no rule records) never pushed: no Verba user, so nothing linked to stop.
                self._skip(claim, lease, sent, "not recorded, and no Verba user has its login name: nothing to stop")
                return
            try:
                pushed = self._push(claim, lease, sent, change, previous, user_id)
            except VerbaError as exc:
                # Verba refused a write of this user's (deleted in Verba since its id was cached?): once per push, its
                # login name is looked up again, and the push made again if that finds another id.
                refused = sent[-1] if sent else {}
                if refused.get("operation") not in EXTENSION_WRITES or not _answered_by_verba(exc):
                    raise
                again = self.users.refused(change, user_id, exc)
                if again is None:
                    raise
                user_id = again
                pushed = self._push(claim, lease, sent, change, previous, user_id)
            if pushed is None:
                return
            mapped, me, outcome = pushed
        except StopRecordingHeld as exc:
            held = self.guard.hold_reason(claim, exc.burst)
            self.store.hold(lease.final(), GUARD_CAUSE, held)
            log.warning("%s/%s held by the stop-recording guard: %s", claim.source, claim.external_id, held,
                        extra={"event_ids": list(claim.event_ids), "cause": GUARD_CAUSE, "outcome": "held"})
        except ExtensionsBusy:
            self.store.postpone(lease.final(), self.clock() + BUSY_RETRY_SECONDS)
        except LeaseLost as exc:  # as a lease ending: nothing written, the user tried again (by its new holder)
            self.store.postpone(lease.final(), self.clock())
            log.warning("%s/%s: %s", claim.source, claim.external_id, exc,
                        extra={"event_ids": list(claim.event_ids), "cause": LeaseEnding.cause, "outcome": "postponed"})
        except (MappingFailure, ValueError) as exc:
            self._dead(lease.final(), "mapping", str(exc), sent)
        except UnresolvedUser as exc:
            self._dead(lease.final(), "unresolved_user", str(exc), sent)
        except VerbaError as exc:
            trial = self.breaker.on_trial(claim.owner)
            if exc.target_wide and self._fails_as_a_whole(claim, exc):
                if trial and _may_be_the_records(exc):
                    # Verba answered the probe, then failed this very call so: it may be this record's own failure
                    # (a server fault on one value), so the attempt is spent and the budget bounds it.
                    self._record_breaker()
                    self._failed(lease.final(), exc.cause, str(exc), exc.retryable, exc.max_attempts, sent)
                else:
                    self._wait_for_target(lease.final(), exc, sent)
            elif isinstance(exc, LeaseEnding):  # its last call not sent: the user is tried again, the attempt not spent
                self.store.postpone(lease.final(), self.clock(), cause=exc.cause, error=str(exc), sent=sent)
                log.warning("%s/%s: %s", claim.source, claim.external_id, exc,
                            extra={"event_ids": list(claim.event_ids), "cause": exc.cause, "outcome": "postponed"})
            elif isinstance(exc, VerbaRateLimited):  # wait as told; the attempt is not spent
                self.store.postpone(lease.final(), self.clock() + exc.retry_after, cause=exc.cause, error=str(exc),
                                    sent=sent)
                log.warning("%s/%s: %s; waiting", claim.source, claim.external_id, exc,
                            extra={"event_ids": list(claim.event_ids), "cause": exc.cause, "outcome": "postponed"})
            else:
                self._failed(lease.final(), exc.cause, str(exc), exc.retryable, exc.max_attempts, sent)
        except StoreError:
            raise  # the store is down: the worker pauses and the lease brings the events back
        except Exception as exc:  # whatever raised it, a push ends as a classified retry or dead letter
            log.debug("unexpected error pushing %s/%s", claim.source, claim.external_id, exc_info=True)
            self._failed(lease.final(), "unexpected", f"{type(exc).__name__}: {exc}", True, None, sent)
        else:
            self.breaker.succeeded()
            woken(self.store.complete(lease.final(), outcome.written, user_id, sent=sent,
                                                  finish=outcome.finish))
            self.owners.note_kept(claim, me, mapped)
            COALESCED.inc(len(claim.event_ids) - 1)
            log.info("pushed %s/%s: %d upserted, %d stopped, %d in conflict, %d left alone",
                     claim.source, claim.external_id, len(outcome.written), len(outcome.stopped),
                     len(outcome.conflicts), len(outcome.left_alone),
                     extra={"event_ids": list(claim.event_ids), "verba_user_id": user_id, "outcome": "done"})

    def _push(self, claim: Claim, lease: LeaseKeeper, sent: list[dict[str, Any]], change: UserChange,
              previous: list[ExtensionRecord], user_id: int) -> tuple[MappedUser, Claimant, PushOutcome] | None:
        """Map `change` for Verba user `user_id` and push it under the ownership rules; None when Verba already
        holds every record (the push then ends as skipped). Raises what OwnershipPusher.push raises."""
        mapped = self.mapping.map_user(change, user_id, previous)
        me = Claimant(claim.source, claim.external_id, user_id, self.mapping.login_name(change.state),
                      change.accepted_at)
        if not claim.forced and self._confirmed(claim, mapped, previous, user_id):
            self._skip(claim, lease, sent, "every record is as Verba last confirmed it", mapped.upserts, user_id)
            self.owners.note_kept(claim, me, mapped)
            return None
        known_extensions = {p.extension for p in previous}
        # The lease as renewed so far (the lookups before may have taken most of the first): the extension locks
        # must last as long as the lease does, or another push could take them while this one writes.
        outcome = self.owners.push(lease.claim, me, mapped,
                                   [r for r in mapped.upserts if r.extension not in known_extensions],
                                   self.guard.window(previous, mapped))
        return mapped, me, outcome

    def _skip(self, claim: Claim, lease: LeaseKeeper, sent: list[dict[str, Any]], why: str,
              records: Sequence[ExtensionRecord] = (), user_id: int | None = None) -> None:
        """End the push as done with nothing written (`records`: what Verba holds for `user_id`, unchanged), `why`
        recorded with its attempt (`events show`); a warning when a value was left out as invalid."""
        self.store.complete(lease.final(), list(records), user_id, sent=sent, note=why)
        SKIPPED.inc()
        log.log(logging.WARNING if "left out as invalid" in why else logging.INFO, "%s/%s: %s; nothing written",
                claim.source, claim.external_id, why,
                extra={"event_ids": list(claim.event_ids), "verba_user_id": user_id, "outcome": "skipped"})

    def _confirmed(self, claim: Claim, mapped: MappedUser, previous: list[ExtensionRecord], user_id: int) -> bool:
        """Whether Verba already holds what `mapped` would write: the same records as last pushed, nothing to
        stop, every extension last written (or seen) linked to this user, and no claim to give up (an extension
        it waited for in a conflict and no longer wants: only a push releases it to the users behind it)."""
        if mapped.deprovisions or set(mapped.upserts) != set(previous):
            return False
        if not self.store.claimed(claim.source, claim.external_id) <= {r.extension for r in mapped.upserts}:
            return False
        owners = self.store.owners([r.extension for r in mapped.upserts])
        return all(owners.get(r.extension) == user_id for r in mapped.upserts)

    def _failed(self, claim: Claim, cause: str, error: str, retryable: bool, max_attempts: int | None,
                sent: list[dict[str, Any]]) -> None:
        """Retry with backoff while the budget (the smaller of [delivery] max_attempts and the failure's
        own) lasts, else dead-letter."""
        budget = min(self.config.max_attempts, max_attempts or self.config.max_attempts)
        if not retryable or claim.attempts >= budget:
            self._dead(claim, cause, error, sent)
            return
        delay = full_jitter_delay(claim.attempts, self.config.backoff_base_seconds, self.config.backoff_max_seconds)
        self.store.retry(claim, self.clock() + delay, cause, error, sent=sent)
        log.warning("%s/%s: attempt %d failed (%s: %s); retrying in %.1fs", claim.source, claim.external_id,
                    claim.attempts, cause, error, delay,
                    extra={"event_ids": list(claim.event_ids), "cause": cause, "outcome": "retry"})

    def _fails_as_a_whole(self, claim: Claim, failure: VerbaError) -> bool:
        """Whether Verba fails as a whole, after `failure` (target-wide) ended `claim`'s push: the breaker is open or
        opens now (enough users failed so; a trial push failed). Else, unless it waits anyway (a rate limit), Verba is
        probed before the failure spends an attempt of this lone user's: when the probe fails too, the breaker opens
        (a Verba outage with one user to push must not use up its budget); when Verba answers it, the failure is the
        user's own. A probe cut short by the push's lease tells nothing: the failure is the user's, as before."""
        if self.breaker.failed((claim.source, claim.external_id), str(failure)):
            return True
        if isinstance(failure, VerbaRateLimited):
            return False
        probe = probe_target(self.client.probe, self.store, self.instance, self.client.url, self.clock)
        if probe.answered or probe.cause == LeaseEnding.cause:
            return False
        self.breaker.open(str(failure))
        log.warning("%s/%s failed as Verba does as a whole (%s), and a probe failed too (%s: %s): the circuit "
                    "breaker opens", claim.source, claim.external_id, failure.cause, probe.cause, probe.error)
        return True

    def _wait_for_target(self, claim: Claim, exc: VerbaError, sent: list[dict[str, Any]]) -> None:
        """Verba fails as a whole: the claim waits, due as soon as the breaker closes, its attempt not spent (what it
        sent is recorded with it: a trial push's calls)."""
        self.store.postpone(claim, self.clock(), cause=exc.cause, error=str(exc), sent=sent)
        self._record_breaker()
        log.warning("%s/%s: Verba fails as a whole (%s: %s); delivery waits for it, probing every %gs",
                    claim.source, claim.external_id, exc.cause, exc, self.config.probe_seconds,
                    extra={"event_ids": list(claim.event_ids), "cause": exc.cause, "outcome": "waiting"})

    def probe(self, worker: str) -> bool:
        """While the breaker is open, probe Verba if it is this worker's turn; whether `worker` may claim.

        An answered probe makes `worker` push alone as a trial until Verba takes a write (breaker.py): then
        the breaker closes and the events that backed off after target-wide failures are due at once."""
        if not self.breaker.state.open or self.breaker.on_trial(worker):
            return True
        if not self.breaker.take_probe():
            return False
        # Recorded as this instance's last probe of Verba before the breaker's row changes, so that `connector
        # status` never sees the breaker closed next to a failed probe from during the outage; never raises.
        probe = probe_target(self.client.probe, self.store, self.instance, self.client.url, self.clock)
        error = None if probe.answered else f"{probe.cause}: {probe.error}"
        self.breaker.probed(error, worker)
        self._record_breaker()
        if error is None:
            log.warning("Verba answers a probe: one worker pushes alone until Verba takes a write")
            return True
        log.warning("Verba still fails (%s); next probe in %gs", error, self.config.probe_seconds)
        return False

    def _close_breaker(self, *, expedite: bool) -> None:
        """End a trial under way well (none: nothing happens); with `expedite`, the backed-off events are due now."""
        if not self.breaker.close():
            return
        due = self.store.expedite(TARGET_WIDE_CAUSES, self.clock()) if expedite else 0
        self._record_breaker()
        log.warning("Verba %s: delivery resumes (%d backed-off events due now)",
                    "takes writes again" if expedite else "answers, with nothing due to try a write with", due)

    def _record_breaker(self) -> None:
        """Write this instance's breaker as it is now to the store (a row while open, none once closed), for
        `connector status`, /readyz and the metrics."""
        state = self.breaker.state
        self.store.note_breaker(self.instance, state.opened_at, state.probed_at, state.error)

    def _dead(self, claim: Claim, cause: str, error: str, sent: list[dict[str, Any]]) -> None:
        self.store.dead_letter(claim, cause, error, sent=sent)
        log.error("%s/%s: dead letter (%s): %s", claim.source, claim.external_id, cause, error,
                  extra={"event_ids": list(claim.event_ids), "cause": cause, "outcome": "dead"})


def _may_be_the_records(error: VerbaError) -> bool:
    """Whether a push that failed so after a probe Verba answered may have failed on its record's own values: a SOAP
    fault at HTTP 5xx (an exception of Verba's service), or an answer that is no SOAP response (see breaker.py)."""
    return (isinstance(error, VerbaHTTPError) and error.soap_fault and error.status_code >= 500) or isinstance(
        error, VerbaMalformedResponse)


def _answered_by_verba(error: VerbaError) -> bool:
    """Whether Verba's service itself answered the call that failed: a status other than OK, or a SOAP fault (at HTTP
    5xx: an exception of the service), rather than failing on the way to it."""
    return isinstance(error, VerbaStatusError) or (isinstance(error, VerbaHTTPError) and error.soap_fault)


class WorkerPool:
    """N threads that run `Deliverer.deliver_one` until stopped; a stop lets in-flight pushes finish."""

    def __init__(self, deliverer: Deliverer, workers: int, idle_poll_seconds: float,
                 owner_prefix: str | None = None) -> None:
        """Worker n claims as `owner_prefix` + n (this instance's run, connector/liveness.py; a random one if None)."""
        self.deliverer = deliverer
        self.idle_poll_seconds = idle_poll_seconds
        self.stopping = threading.Event()
        self.wake = threading.Event()
        prefix = f"{uuid.uuid4().hex[:12]}/" if owner_prefix is None else owner_prefix
        self.threads = [
            threading.Thread(target=self._run, args=(f"{prefix}{n}",), name=f"delivery-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self.stopping.set()
        self.wake.set()
        for thread in self.threads:
            if thread.is_alive():  # never started (a start that failed): nothing to wait for
                thread.join(timeout)

    def _run(self, owner: str) -> None:
        busy = False
        while not self.stopping.is_set():
            try:
                busy = self.deliverer.deliver_one(owner, busy=busy)
            except StoreError as exc:  # expected: one line, no traceback; the event is back or its lease ends
                log.error("delivery worker %s: %s; retrying in %gs", owner, exc, STORE_RETRY_SECONDS)
                self.stopping.wait(STORE_RETRY_SECONDS)
                continue
            except Exception:  # a bug: keep the worker alive, the lease brings the event back
                log.exception("delivery worker %s failed; retrying in %gs", owner, STORE_RETRY_SECONDS)
                self.stopping.wait(STORE_RETRY_SECONDS)
                continue
            if not busy:
                self.wake.wait(self.idle_poll_seconds)
                self.wake.clear()

