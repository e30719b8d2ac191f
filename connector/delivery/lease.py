"""A claim's lease kept while its push runs: a heartbeat renews it, so that no other worker or
instance takes a user whose push is merely slow (one user is never pushed by two at once)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from connector.store import Claim, EventQueue, StoreError

log = logging.getLogger("connector.delivery")

# A call starts only if it can end this long before the lease does: a write already sent cannot be
# recalled, so this margin is what keeps the worker that takes over a user from overlapping it.
LEASE_MARGIN_SECONDS = 1.0


class LeaseKeeper:
    """Renews `claim`'s lease every quarter of `lease_seconds` until `final()` (or the block's end): even at
    the shortest lease the config allows, 1.5 x (call timeout + margin), what is left of it before a renewal
    still holds a whole call.

    `until` is the current end of the lease (Unix time); `lost` turns True if the store says the
    lease is gone (it expired while the store could not be reached, and another worker may have
    the user now).
    """

    def __init__(
        self, store: EventQueue, claim: Claim, lease_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.lost = False
        self._claim = claim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{claim.owner}", daemon=True)

    @property
    def until(self) -> float:
        """When the lease ends now (Unix time); later after each renewal."""
        return self._claim.lease_until

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.final()

    def final(self) -> Claim:
        """Stop renewing; the claim with its last lease, to settle it with."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        return self._claim

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 4):
            try:
                renewed = self.store.renew_lease(self._claim, self.clock() + self.lease_seconds)
            except StoreError as exc:  # try again at the next beat; the lease still runs
                log.warning("could not renew the lease of %s/%s: %s", self._claim.source, self._claim.external_id, exc)
                continue
            if renewed is None:
                self.lost = True
                log.error("the lease of %s/%s was lost while its push ran; its result will not be recorded",
                          self._claim.source, self._claim.external_id)
                return
            self._claim = renewed
