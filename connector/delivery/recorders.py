"""After a batch of writes, the recording servers take Verba's extension table ([target] apply_configuration).

Verba keeps extensions in its central database; applyExtensionConfiguration pushes that table to the
recording servers and says which did not take it. Whether recorders pick changes up without it is not
documented, so the call is optional. Each instance applies after its own writes: once no write came for
QUIET_SECONDS, or when the first write of a batch is LONGEST_SECONDS old (a steady stream of writes is
applied too), and at a clean stop. What each server answered goes to the store, for `connector status` and
the metrics. A call that fails, or a server that does not take the table, is tried again RETRY_SECONDS later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from connector.store import RecorderState, Store, StoreError
from connector.verba.client import RecorderStatus, VerbaClient
from connector.verba.errors import VerbaError
from connector.verba.status import OK

log = logging.getLogger("connector.recorders")

QUIET_SECONDS = 5.0
LONGEST_SECONDS = 60.0
RETRY_SECONDS = 60.0


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
        """One applyExtensionConfiguration now, its answers recorded; None when the call failed (tried again
        RETRY_SECONDS later, as is a server that did not take the table)."""
        with self._lock:
            self._first = None
        at = self.now()
        try:
            servers = self.client.apply_extension_configuration()
        except VerbaError as exc:
            log.warning("applyExtensionConfiguration failed (%s: %s); the recording servers may not have the "
                        "latest extensions; trying again in %gs", exc.cause, exc, RETRY_SECONDS)
            self._again()
            return None
        try:
            self.store.note_recorders([RecorderState(s.location or "(unnamed)", s.eid, s.code, s.message, at,
                                                     self.instance) for s in servers])
        except StoreError as exc:
            log.warning("could not record the recording servers' answers: %s", exc)
        failed = [s for s in servers if s.code != OK]
        if failed:
            names = ", ".join(f"{s.location} ({s.code}{': ' + s.message if s.message else ''})" for s in failed)
            log.warning("%d of %d recording servers did not take the extension table: %s; trying again in %gs",
                        len(failed), len(servers), names, RETRY_SECONDS)
            self._again()
        else:
            log.info("applyExtensionConfiguration: %d recording servers took the extension table", len(servers))
        return servers

    def _again(self) -> None:
        now = self.clock()
        with self._lock:
            self._first = now if self._first is None else self._first
            self._last = max(self._last, now)
            self._not_before = now + RETRY_SECONDS

    def _run(self) -> None:
        while not self._stopping.is_set():
            due = self.due()
            wait = None if due is None else due - self.clock()
            if wait is None or wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            self.apply()
