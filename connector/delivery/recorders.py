"""After a batch of writes, the recording servers take Verba's extension table ([target] apply_configuration).

Verba keeps extensions in its central database; applyExtensionConfiguration pushes that table to the
recording servers and says which did not take it. Whether recorders pick changes up without it is not
documented, so the call is optional. Each instance applies after its own writes: once no write came for
QUIET_SECONDS, or when the first write of a batch is LONGEST_SECONDS old (a steady stream of writes is
applied too), and at a clean stop. What each server answered goes to the store, for `connector status` and
the metrics. A call that fails for a reason a retry can mend (VerbaError.retryable), or a server that does not
take the table, is tried again RETRY_SECONDS later, twice as late after each further failure (at most
MAX_RETRY_SECONDS); any other failure (a refusal, an answer of another shape) is logged as an error and waits
for the next batch of writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from connector.store import RecorderState, Store, StoreError
from connector.verba.client import RecorderStatus, VerbaClient
from connector.verba.errors import VerbaError

log = logging.getLogger("connector.recorders")

QUIET_SECONDS = 5.0
LONGEST_SECONDS = 60.0
RETRY_SECONDS = 60.0
MAX_RETRY_SECONDS = 3600.0


class RecorderApply:
    """Calls applyExtensionConfiguration in a thread of its own after each batch of writes (`written`)."""

    def __init__(self, client: VerbaClient, store: Store, instance: str,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], float] = time.time) -> None:
        self.client = client
        self.store = store
        self.instance = instance
        self.clock = clock  # for the batch's timing
        self.now = now  # Unix time, for the store
        self._lock = threading.Lock()
        self._first: float | None = None  # when the batch's first write was noted (None: no batch)
        self._last = 0.0  # when its last write was
        self._not_before = 0.0  # a retry's earliest time
        self._failures = 0  # failed applies in a row
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorders", daemon=True)

    def written(self) -> None:
        """Note a push that wrote to Verba (called by the Deliverer after each such push)."""
        now = self.clock()
        with self._lock:
            self._first = now if self._first is None else self._first
            self._last = now
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop waiting (a call under way ends first), then apply the writes not yet applied, once."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
            if self.due() is not None:
                self.apply()

    def due(self) -> float | None:
        """When the batch under way is to be applied (self.clock() time); None when there is none."""
        with self._lock:
            if self._first is None:
                return None
            return max(min(self._last + QUIET_SECONDS, self._first + LONGEST_SECONDS), self._not_before)

    def apply(self) -> list[RecorderStatus] | None:
        """One applyExtensionConfiguration now, its answers recorded; None when the call failed (a retryable
        failure, like a server that did not take the table, is tried again later: see the module)."""
        with self._lock:
            self._first = None
        at = self.now()
        try:
            servers = self.client.apply_extension_configuration()
        except VerbaError as exc:
            if not exc.retryable:
                log.error("applyExtensionConfiguration failed (%s: %s); the recording servers may not have the "
                          "latest extensions; not tried again before the next write", exc.cause, exc)
                return None
            log.warning("applyExtensionConfiguration failed (%s: %s); the recording servers may not have the "
                        "latest extensions; trying again in %gs", exc.cause, exc, self._again())
            return None
        states = [RecorderState(s.location or "(unnamed)", s.eid, s.code, s.message, at, self.instance)
                  for s in servers]
        try:
            self.store.note_recorders(states)
        except StoreError as exc:
            log.warning("could not record the recording servers' answers: %s", exc)
        failed = [r for r in states if not r.took_table]
        if failed:
            names = ", ".join(f"{r.location} ({r.answer})" for r in failed)
            log.warning("%d of %d recording server(s) did not take the extension table: %s; trying again in %gs",
                        len(failed), len(servers), names, self._again())
            return servers
        self._failures = 0
        with self._lock:
            self._not_before = 0.0  # the next batch waits for no retry
        if servers:
            log.info("applyExtensionConfiguration: the extension table taken by %d recording server(s)", len(servers))
        else:  # all in step already (another instance applied), or statuses in a shape the connector does not read
            log.warning("applyExtensionConfiguration answered OK and named no recording server: either every server "
                        "already had the extension table, or Verba answers in a shape the connector does not read "
                        "(where it puts the per-server statuses is guessed); check the recorders in Verba")
        return servers

    def _again(self) -> float:
        """Try again later, twice as late as the last time; the seconds until then."""
        self._failures += 1
        delay: float = min(RETRY_SECONDS * 2.0 ** (self._failures - 1), MAX_RETRY_SECONDS)
        now = self.clock()
        with self._lock:
            self._first = now if self._first is None else self._first
            self._last = max(self._last, now)
            self._not_before = now + delay
        return delay

    def _run(self) -> None:
        while not self._stopping.is_set():
            due = self.due()
            wait = None if due is None else due - self.clock()
            if wait is None or wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            try:
                self.apply()
            except Exception:  # a bug: logged, and tried again later, not the end of the thread
                log.exception("applyExtensionConfiguration failed unexpectedly; trying again in %gs", self._again())
