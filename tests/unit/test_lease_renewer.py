"""One renewer thread keeps the leases of every push in progress (connector/delivery/lease.py)."""

from __future__ import annotations

import dataclasses
import threading
import time

from connector.delivery.lease import LeaseRenewer
from connector.events import UserChange
from connector.store import Claim, EventState, StoredEvent


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
