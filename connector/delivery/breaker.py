"""The target's circuit breaker: when Verba fails as a whole, stop pushing and probe it instead.

It opens when failures that speak of Verba as a whole (`VerbaError.target_wide`: transport errors
and timeouts, HTTP 5xx and 429, failed logins, HTTP 404/405 at target.url's path, which Verba's web
application answers while it restarts, answers that are no SOAP, such as a maintenance page) come
from `min_users` or more users within `window_seconds`. `ERROR_GENERAL` never opens it: Verba also
answers "not found" with it. Such a failure of one user alone may be that user's own, or Verba failing
with only that user to push (one change at night): before it spends an attempt, the worker probes
Verba (connector/delivery/worker.py). A probe that fails too opens it (`open`), nothing spent; one
Verba answers says the failure is the user's, and takes the per-event backoff. While it is open,
delivery claims nothing and spends no attempts; one worker at a time probes Verba every
`probe_seconds` with one cheap authenticated read.

A read Verba answers does not show that it takes writes (an outage of writes alone answers every
probe), so an answered probe starts a trial instead of closing it: the probing worker goes on
pushing, alone. The first write Verba takes closes the breaker, and the events that waited are due
at once; a failure of Verba as a whole ends the trial and opens it again, the attempt not spent;
pushes that show neither (a user-specific error, nothing to write) let the trial go on. A trial
that finds nothing to push closes it without making the backed-off events due.

Trial failures that may be the record's own do spend their attempt (connector/delivery/worker.py): a
SOAP fault at HTTP 5xx, which Verba's service answers itself after the probe showed it reads, and an
answer that is no SOAP response (a value of the record's that Verba garbles its answer on). Either
would otherwise be tried again at every probe, forever; its retry budget bounds it, and a writes-only
outage answered by a proxy with an HTTP error or without a fault still spends nothing.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

TRIAL_FAILED = "the probe was answered (Verba reads), then a push failed (Verba may take no writes)"


@dataclasses.dataclass(frozen=True)
class BreakerState:
    """What `connector status`, /readyz and the metrics show."""

    open: bool
    opened_at: float | None  # Unix time it opened; None while closed
    probed_at: float | None  # the last probe, while open
    error: str | None  # the failure that opened it, then the last probe's


class Breaker:
    """Shared by every delivery worker of one connector; thread-safe."""

    def __init__(self, window_seconds: float, min_users: int, probe_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.window_seconds = window_seconds
        self.min_users = min_users
        self.probe_seconds = probe_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], float] = {}  # user -> when their last target-wide failure was
        self._state = BreakerState(False, None, None, None)
        self._next_probe = 0.0
        self._probing = False  # a probe, or the trial after an answered one, is under way
        self._trial: str | None = None  # the worker pushing alone after a probe Verba answered

    @property
    def state(self) -> BreakerState:
        return self._state

    def failed(self, user: tuple[str, str], error: str) -> bool:
        """Note a target-wide failure of `user` (source, external id); whether the breaker is open now."""
        now = self.clock()
        with self._lock:
            if self._trial is not None:  # the trial push failed as Verba does as a whole: open again
                self._trial, self._probing = None, False
                self._state = dataclasses.replace(self._state, error=f"{TRIAL_FAILED}: {error}")
                self._next_probe = now + self.probe_seconds
                return True
            if self._state.open:
                return True
            self._failures = {u: at for u, at in self._failures.items() if at >= now - self.window_seconds}
            self._failures[user] = now
            if len(self._failures) >= self.min_users:
                self._state = BreakerState(True, now, None, error)
                self._next_probe = now + self.probe_seconds
                self._failures.clear()
            return self._state.open

    def open(self, error: str) -> None:
        """Open it now: a probe failed right after a lone user's target-wide failure (`error`), so Verba fails as a
        whole; the next probe is `probe_seconds` later. Open already: nothing changes."""
        now = self.clock()
        with self._lock:
            if self._state.open:
                return
            self._state = BreakerState(True, now, now, error)
            self._next_probe = now + self.probe_seconds
            self._failures.clear()

    def succeeded(self) -> None:
        """Note that Verba answered a push: the failures seen so far were their users' own."""
        with self._lock:
            self._failures.clear()

    def take_probe(self) -> bool:
        """Whether the caller should probe now (open, the interval passed, no other probe running);
        if so, it must report with `probed`."""
        with self._lock:
            if not self._state.open or self._probing or self.clock() < self._next_probe:
                return False
            self._probing = True
            return True

    def probed(self, error: str | None, worker: str) -> bool:
        """Report the probe taken with `take_probe`: None if Verba answered (`worker` starts the trial, see the
        module doc), else what failed (the next probe is `probe_seconds` later); whether the trial starts."""
        now = self.clock()
        with self._lock:
            if error is None:
                self._trial = worker  # _probing stays set: no other probe while the trial runs
                self._state = dataclasses.replace(self._state, probed_at=now)
                return True
            self._probing = False
            self._state = dataclasses.replace(self._state, probed_at=now, error=error)
            self._next_probe = now + self.probe_seconds
            return False

    def on_trial(self, worker: str) -> bool:
        """Whether `worker` makes the trial pushes (it may go on claiming while the breaker is open)."""
        return self._trial == worker

    def close(self) -> bool:
        """End the trial well: Verba took a write, or nothing was due to try one with. Whether it closed the
        breaker (False when no trial was under way)."""
        with self._lock:
            if self._trial is None:
                return False
            self._trial, self._probing = None, False
            self._state = BreakerState(False, None, None, None)
            self._failures.clear()
            return True
