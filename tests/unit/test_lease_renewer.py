"""One renewer thread keeps the leases of every push in progress (connector/delivery/lease.py)."""

from __future__ import annotations

import dataclasses
import math
import threading
import time

from connector.delivery.lease import LEASE_MARGIN_SECONDS, LeaseRenewer
from connector.events import UserChange
from connector.store import Claim, EventState, StoredEvent, StoreError


def claim(user: str) -> Claim:
    event = StoredEvent(1, UserChange("s", user, "upsert", {}), EventState.IN_FLIGHT, 1, 0.0, None, None, 0.0)
    return Claim("s", user, (1,), event, 1, owner=f"run/{user}", lease_until=100.0)


class Store:
    """Renews every lease but bob's second, which is lost."""

    def __init__(self) -> None:
        self.renewals: list[tuple[str, float]] = []

    def renew_lease(self, claim: Claim, lease_until: float) -> Claim | None:
        self.renewals.append((claim.external_id, lease_until))
        if claim.external_id == "bob" and sum(u == "bob" for u, _ in self.renewals) == 2:
            return None
        return dataclasses.replace(claim, lease_until=lease_until)


def test_leases_are_renewed_every_quarter_by_one_thread_until_final_or_lost() -> None:
    store = Store()
    renewer = LeaseRenewer(store, lease_seconds=0.4, clock=lambda: 1_000.0)  # type: ignore[arg-type]
    before = threading.active_count()
    with renewer.keep(claim("alice")) as alice, renewer.keep(claim("bob")) as bob:
        assert threading.active_count() == before + 1
        time.sleep(0.8)  # about eight quarters
        assert alice.until == 1_000.4 and not alice.lost
        assert bob.lost and bob.until == 1_000.4  # its last good lease
        final = alice.final()
    count = len(store.renewals)
    time.sleep(0.3)
    assert len(store.renewals) == count, "no renewal after final()"
    assert final.lease_until == 1_000.4
    assert sum(u == "alice" for u, _ in store.renewals) >= 2
    assert sum(u == "bob" for u, _ in store.renewals) == 2, "a lost lease is not renewed again"


def test_a_lease_found_lost_lets_no_call_of_its_push_start() -> None:
    class Gone:
        def renew_lease(self, claim: Claim, lease_until: float) -> Claim | None:
            return None  # another worker took the user over

    keeper = LeaseRenewer(Gone(), lease_seconds=400.0, clock=lambda: 0.0).keep(claim("carol"))  # type: ignore[arg-type]
    assert keeper.calls_until() == 100.0 - LEASE_MARGIN_SECONDS
    keeper.renew()
    assert keeper.lost and keeper.calls_until() == -math.inf, "its own lease end no longer lets calls run"


class LostReply:
    """A store that holds one lease, by its end; the first renewal commits but its answer is lost."""

    def __init__(self, held: float) -> None:
        self.held, self.replies_lost = held, 1

    def renew_lease(self, claim: Claim, lease_until: float) -> Claim | None:
        if claim.lease_until != self.held:
            return None
        self.held = lease_until
        if self.replies_lost:
            self.replies_lost -= 1
            raise StoreError("connection lost at COMMIT")
        return dataclasses.replace(claim, lease_until=lease_until)


def test_a_renewal_whose_answer_was_lost_neither_loses_the_lease_nor_its_settlement() -> None:
    now = [1_000.0]
    store = LostReply(held=100.0)
    renewer = LeaseRenewer(store, lease_seconds=400.0, clock=lambda: now[0])  # type: ignore[arg-type]
    keeper = renewer.keep(claim("dave"))
    keeper.renew()  # committed, answer lost
    now[0] += 100
    keeper.renew()
    assert not keeper.lost and keeper.until == store.held == 1_500.0

    settled = LostReply(held=100.0)
    ending = LeaseRenewer(settled, lease_seconds=400.0, clock=lambda: now[0]).keep(claim("erin"))  # type: ignore[arg-type]
    ending.renew()  # committed, answer lost; the push then ends
    assert ending.final().lease_until == settled.held, "the settlement names the lease the store holds"
