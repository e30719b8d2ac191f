"""`Store.renew_lease`, checked on every backend: a renewed lease keeps the user from other workers."""

from __future__ import annotations

import pytest

from connector.store import EventState, Store
from connector.store.ownership import Claimant, Conflict, ExtensionsBusy, LeaseLost, PushFinish

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


def test_a_push_that_begins_after_its_lease_was_taken_over_changes_nothing_and_hands_no_number_over(
        store: Store) -> None:
    store.enqueue([change("alice", 1)])
    stale = claim_now(store)  # its push (the user's number then: 1001) stalls past its lease
    store.enqueue([change("alice", 2, idem_key="a2")])
    newer = claim_now(store, NOW + 2 * LEASE, owner="w2")  # the user's new number: 2002
    alice = Claimant("scim", "alice", 7, "alice", NOW)
    store.begin_push(newer.owner, newer.lease_until, NOW + 2 * LEASE, alice, ["2002"], ["2002"], under_lease=True)
    store.complete(newer, [], 7, finish=PushFinish(newer.owner, alice, {"2002": 7}, [], []))
    with pytest.raises(LeaseLost, match="nothing was changed"):
        store.begin_push(stale.owner, stale.lease_until, NOW + 2 * LEASE, alice, ["1001"], ["1001"],
                         under_lease=True)
    assert store.claimed("scim", "alice") == {"2002"}, "the newer push's claims stand"
    # Another user who wants 2002 finds its holder still claims it: a conflict, never a hand-over.
    assert [(c.source, c.external_id) for c in store.claimants(["2002"]).get("2002", [])] == [("scim", "alice")]


def test_a_push_that_begins_as_its_lease_is_renewed_still_holds_it(store: Store) -> None:
    """The renewer's thread moved the lease on after the push read it: still the push's own lease, not a lost one
    (a spurious postpone of a healthy push)."""
    store.enqueue([change("alice", 1)])
    claim = claim_now(store)
    assert store.renew_lease(claim, claim.lease_until + LEASE) is not None
    alice = Claimant("scim", "alice", 7, "alice", NOW)
    plan = store.begin_push(claim.owner, claim.lease_until, NOW, alice, ["1001"], ["1001"], under_lease=True)
    assert plan.claimed_at == {"1001": NOW}


def test_a_push_whose_lease_was_lost_records_no_conflict_audit_or_wake_up(store: Store) -> None:
    [event_id] = store.enqueue([change("alice", 1)])
    stale = claim_now(store)
    alice = Claimant("scim", "alice", 7, "alice", NOW)
    store.begin_push(stale.owner, stale.lease_until, NOW, alice, ["4711"], ["4711"], under_lease=True)
    newer = claim_now(store, NOW + 2 * LEASE, owner="w2")  # the stale push's lease ran out: taken over
    store.begin_push(newer.owner, newer.lease_until, NOW + 2 * LEASE, alice, ["4711"], ["4711"], under_lease=True)
    store.complete(newer, [], 7, finish=PushFinish(newer.owner, alice, {"4711": 7}, [], []))  # it wrote 4711
    audits = len(store.list_audit(100))
    found = Conflict("4711", alice, event_id, 9, "vic", None, "4711 is held by Verba user 9 (vic)", NOW)
    assert store.complete(stale, [], 7, finish=PushFinish(stale.owner, alice, {"4711": 9}, [found], ["4711"])) == []
    assert store.finish_push(stale.owner, alice, {}, [found], ["4711"], failed=True, under_lease=True) == []
    assert store.conflicts_of("scim", "alice") == [], "the user holds 4711: it waits in no conflict"
    assert store.owners(["4711"]) == {"4711": 7} and len(store.list_audit(100)) == audits
    assert state_of(store, event_id) is EventState.DONE
