"""`Store.renew_lease`, checked on every backend: a renewed lease keeps the user from other workers."""

from __future__ import annotations

import pytest

from connector.store import EventState, Store
from connector.store.ownership import Claimant, ExtensionsBusy

from .test_conformance import LEASE, NOW, change, claim_now, state_of


def test_a_renewed_lease_outlives_the_first_and_settles_with_the_new_claim(store: Store) -> None:
    [event_id] = store.enqueue([change("alice")])
    claim = claim_now(store)
    renewed = store.renew_lease(claim, NOW + 10 * LEASE)
    assert renewed is not None and renewed.lease_until == NOW + 10 * LEASE

    assert store.claim("w2", NOW + 2 * LEASE, LEASE) is None, "past the first lease, the user is still held"
    store.complete(claim, [], None)  # the old lease no longer matches: nothing changes
    assert state_of(store, event_id) is EventState.IN_FLIGHT
    store.complete(renewed, [], None)
    assert state_of(store, event_id) is EventState.DONE


def test_a_lost_lease_is_not_renewed(store: Store) -> None:
    store.enqueue([change("alice")])
    claim = claim_now(store)
    assert store.claim("w2", NOW + 2 * LEASE, LEASE) is not None  # expired and taken by another worker
    assert store.renew_lease(claim, NOW + 10 * LEASE) is None


def test_renewing_a_lease_renews_its_extension_locks(store: Store) -> None:
    store.enqueue([change("alice")])
    claim = claim_now(store)
    alice = Claimant("scim", "alice", 3, None, NOW)
    store.begin_push(claim.owner, claim.lease_until, NOW, alice, ["+1"], ["+1"])
    store.renew_lease(claim, NOW + 10 * LEASE)
    bob = Claimant("scim", "bob", 4, None, NOW)
    with pytest.raises(ExtensionsBusy):  # past the first lease, the extension is still locked
        store.begin_push("w2", NOW + 20 * LEASE, NOW + 2 * LEASE, bob, ["+1"], ["+1"])


def test_a_push_that_drops_a_claim_waits_while_another_push_holds_that_extension(store: Store) -> None:
    """Else the other push (a claimant waiting on it) could store its conflict after this one woke the waiters."""
    alice = Claimant("scim", "alice", 3, None, NOW)
    bob = Claimant("scim", "bob", 4, None, NOW)
    store.begin_push("w1", NOW + LEASE, NOW, alice, ["+1"], ["+1"])
    store.finish_push("w1", alice, {"+1": 3}, [], [])
    store.begin_push("w2", NOW + LEASE, NOW, bob, ["+1"], ["+1"])  # bob's push runs, waiting on alice's +1
    with pytest.raises(ExtensionsBusy, match=r"\+1 is being pushed"):
        store.begin_push("w1", NOW + LEASE, NOW, alice, [], [])  # alice lets +1 go
    store.finish_push("w2", bob, {}, [], [])
    plan = store.begin_push("w1", NOW + LEASE, NOW, alice, [], [])
    assert plan.released == ["+1"]
