"""Records noted by `Store.begin_push(noting=...)` before they are pushed, checked on every backend."""

from __future__ import annotations

import time

import pytest

from connector.store import Store
from connector.store.ownership import Claimant, ExtensionsBusy

from .test_conformance import change, claim_now, record


def note(store: Store, external_id: str, records: list) -> None:
    """Begin a push of `records` for the user (as delivery does before its first write), then end it."""
    claimant = Claimant("scim", external_id, 7, None, time.time())
    extensions = [r.extension for r in records]
    store.begin_push("worker", time.time() + 60, time.time(), claimant, extensions, extensions, records)
    store.finish_push("worker", claimant, {}, [], [])


def test_noted_records_join_the_pushed_extensions_until_complete_replaces_them(store: Store) -> None:
    store.enqueue([change("alice", 1)])
    store.complete(claim_now(store), [record("+15551230001"), record("+15551230002")], 7)
    store.enqueue([change("alice", 2)])
    claim = claim_now(store)

    note(store, "alice", [])
    note(store, "alice", [record("+15551230002", recording_mode="ON_DEMAND"), record("+15559990000")])

    assert store.pushed_extensions("scim", "alice") == [
        record("+15551230001"),
        record("+15551230002", recording_mode="ON_DEMAND"),
        record("+15559990000"),
    ]
    assert store.pushed_extensions("scim", "bob") == []

    store.complete(claim, [record("+15559990000")], None)
    assert store.pushed_extensions("scim", "alice") == [record("+15559990000")]


def test_noted_records_of_a_user_never_completed_are_kept(store: Store) -> None:
    note(store, "carol", [record("+15550000001"), record("+15550000002")])

    assert store.pushed_extensions("scim", "carol") == [record("+15550000001"), record("+15550000002")]
    assert store.verba_user_id("scim", "carol") is None


def test_a_busy_push_notes_nothing(store: Store) -> None:
    other = Claimant("scim", "dave", 8, None, time.time())
    store.begin_push("other-worker", time.time() + 60, time.time(), other, ["+15550000001"], ["+15550000001"])
    with pytest.raises(ExtensionsBusy):
        note(store, "carol", [record("+15550000001")])
    assert store.pushed_extensions("scim", "carol") == []
