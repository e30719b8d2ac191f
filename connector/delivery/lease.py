"""A claim's lease kept while its push runs: a heartbeat renews it, so that no other worker or
instance takes a user whose push is merely slow (one user is never pushed by two at once)."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable

from connector.store import Claim, EventQueue, StoreError

log = logging.getLogger("connector.delivery")

# A call starts only if it can end this long before the lease does: a write already sent cannot be
# recalled, so this margin is what keeps the worker that takes over a user from overlapping it.
LEASE_MARGIN_SECONDS = 1.0


class LeaseKeeper:
    """Keeps `claim`'s lease while its push runs: `LeaseRenewer` renews it every quarter of `lease_seconds`
    until `final()` (or the block's end). Even at the shortest lease the config allows, 1.5 x (call timeout +
    margin), what is left of it before a renewal still holds a whole call.

    `until` is the current end of the lease (Unix time); `lost` turns True if the store says the
    lease is gone (it expired while the store could not be reached, and another worker may have
    the user now): `calls_until` then lets no call start.
    """

    def __init__(self, renewer: LeaseRenewer, claim: Claim) -> None:
        self.renewer = renewer
        self.lost = False
        self.due = time.monotonic() + renewer.lease_seconds / 4  # when the next renewal is due
        self._claim = claim
        self._renewing = threading.Lock()  # held while a renewal of this lease runs
        self._ended = False
        self._unsure: list[float] = []  # the ends of renewals that failed, any of which may have committed

    @property
    def until(self) -> float:
        """When the lease ends now (Unix time); later after each renewal."""
        return self._claim.lease_until

    def calls_until(self) -> float:
        """Until when (Unix time) a call of the push may run: the lease's end less the margin; never once the lease
        is `lost` (another worker may push the user now)."""
        return -math.inf if self.lost else self.until - LEASE_MARGIN_SECONDS

    @property
    def claim(self) -> Claim:
        """The claim with its lease as last renewed: what a push locks its extensions until."""
        return self._claim

    def __enter__(self) -> LeaseKeeper:
        self.renewer.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.final()

    def final(self) -> Claim:
        """Stop renewing (after a renewal under way); the claim with its last lease, to settle it with. After a
        renewal whose answer was lost (it may have committed) the lease is renewed once more, so that the settlement
        names the lease the store holds."""
        with self._renewing:
            self._ended = True
            if self._unsure and not self.lost:
                self._renew()
        self.renewer.remove(self)
        return self._claim

    def renew(self) -> None:
        """Extend the lease by `lease_seconds` from now (the renewer's thread calls it when it is due)."""
        with self._renewing:
            if self._ended or self.lost:
                return
            self.due = time.monotonic() + self.renewer.lease_seconds / 4
            self._renew()

    def _renew(self) -> None:
        """One renewal (under `_renewing`). The lease is named by its end: after renewals whose answer was lost, the
        ends they may have committed are tried too before the lease counts as lost."""
        renewer, claim = self.renewer, self._claim
        until = renewer.clock() + renewer.lease_seconds
        try:
            renewed = renewer.store.renew_lease(claim, until)
            for maybe in self._unsure:
                if renewed is not None:
                    break
                renewed = renewer.store.renew_lease(dataclasses.replace(claim, lease_until=maybe), until)
        except StoreError as exc:  # try again at the next beat; the lease still runs
            self._unsure.append(until)
            log.warning("could not renew the lease of %s/%s: %s", claim.source, claim.external_id, exc)
            return
        self._unsure.clear()
        if renewed is None:
            self.lost = True
            log.error("the lease of %s/%s was lost while its push ran; its result will not be recorded",
                      claim.source, claim.external_id)
            return
        self._claim = renewed


class LeaseRenewer:
    """One thread (started on first use) that renews the lease of every push in progress when it is due:
    no thread, and no store connection, per push."""

    def __init__(self, store: EventQueue, lease_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._keepers: set[LeaseKeeper] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def keep(self, claim: Claim) -> LeaseKeeper:
        """A keeper of `claim`'s lease: renewed while its `with` block runs."""
        return LeaseKeeper(self, claim)

    def add(self, keeper: LeaseKeeper) -> None:
        with self._guard:
            self._keepers.add(keeper)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self._thread.start()
        # The renewer is not woken: a new keeper is due a quarter lease from now, never before the
        # renewer's next wake-up (at the latest a quarter lease after it last looked).

    def remove(self, keeper: LeaseKeeper) -> None:
        with self._guard:
            self._keepers.discard(keeper)

    def _run(self) -> None:
        while True:
            with self._guard:
                keepers = list(self._keepers)
            for keeper in keepers:
                if keeper.due <= time.monotonic():
                    keeper.renew()
            with self._guard:
                soonest = min((k.due for k in self._keepers), default=time.monotonic() + self.lease_seconds / 4)
            time.sleep(max(0.0, soonest - time.monotonic()))
