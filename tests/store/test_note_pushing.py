"""`Store.note_pushing`, checked on every backend."""

from __future__ import annotations

from connector.store import Store

from .test_conformance import change, claim_now, record


def test_note_pushing_adds_to_the_pushed_extensions_until_complete_replaces_them(store: Store) -> None:
    store.enqueue([change("alice", 1)])
    store.complete(claim_now(store), [record("+15551230001"), record("+15551230002")], 7)
    store.enqueue([change("alice", 2)])
    claim = claim_now(store)

    store.note_pushing("scim", "alice", [])
    store.note_pushing("scim", "alice", [record("+15551230002", recording_mode="ON_DEMAND"), record("+15559990000")])

    assert store.pushed_extensions("scim", "alice") == [
        record("+15551230001"),
        record("+15551230002", recording_mode="ON_DEMAND"),
        record("+15559990000"),
    ]
    assert store.pushed_extensions("scim", "bob") == []

    store.complete(claim, [record("+15559990000")], None)
    assert store.pushed_extensions("scim", "alice") == [record("+15559990000")]


def test_note_pushing_records_a_user_never_completed(store: Store) -> None:
    store.note_pushing("scim", "carol", [record("+15550000001"), record("+15550000002")])

    assert store.pushed_extensions("scim", "carol") == [record("+15550000001"), record("+15550000002")]
    assert store.verba_user_id("scim", "carol") is None
