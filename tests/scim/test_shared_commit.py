"""SQLite's group commit puts several SCIM writes in one commit (connector/store/sqlite.py): what a write
checks or searches must see the writes before it that are not committed yet, or a pending member is never
applied and two groups can take one name. Each test holds the first write's commit back while a second runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from connector.sources.scim import errors, schema
from connector.sources.scim.service import ScimService
from connector.store.sqlite import SQLiteStore

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def store(sqlite_store: SQLiteStore) -> SQLiteStore:
    """SQLite alone (its group commit is the subject), not each backend as in tests/scim/conftest.py."""
    return sqlite_store


def with_first_commit_held(store: SQLiteStore, first: Callable[[], Any], second: Callable[[], Any]) -> None:
    """Run `first` in a thread whose COMMIT waits until `second` has run here: `second` joins its transaction."""
    commit, held, go = store._commit, threading.Event(), threading.Event()

    def held_commit(number: int) -> None:
        if threading.current_thread().name == "first":
            held.set()
            go.wait(10)
        commit(number)

    store._commit = held_commit  # type: ignore[method-assign]
    failed: list[BaseException] = []

    def run_first() -> None:
        try:
            first()
        except BaseException as exc:  # reported below
            failed.append(exc)
            held.set()

    thread = threading.Thread(target=run_first, name="first")
    thread.start()
    assert held.wait(10)
    try:
        second()
    finally:
        go.set()
        thread.join(10)
    assert not failed, failed


def test_a_user_created_in_the_commit_of_the_group_naming_it_becomes_its_member(store) -> None:
    ids = iter(["g-1", "u-x"])
    service = ScimService(store, new_id=lambda: next(ids))
    with_first_commit_held(
        store,
        lambda: service.create("entra", schema.GROUPS, {"schemas": [GROUP], "displayName": "Recorded",
                                                        "members": [{"value": "u-x"}]}),
        lambda: service.create("entra", schema.USERS, {"schemas": [USER], "userName": "x@example.com"}),
    )
    group = store.scim_get("entra", "Group", "g-1")
    assert group is not None and group.body.get("members") == [{"value": "u-x"}] and "_pendingMembers" not in group.body
    [event] = store.list_events(user="u-x")
    assert event.change.state["groups"] == ["Recorded"]  # what the recording rules read


def test_two_groups_of_one_name_in_one_commit_are_refused(store) -> None:
    ids = iter(["g-1", "g-2"])
    service = ScimService(store, new_id=lambda: next(ids))
    refused: list[errors.ScimError] = []

    def second() -> None:
        try:
            service.create("entra", schema.GROUPS, {"schemas": [GROUP], "displayName": "recorded "})
        except errors.ScimError as exc:
            refused.append(exc)

    with_first_commit_held(
        store, lambda: service.create("entra", schema.GROUPS, {"schemas": [GROUP], "displayName": "Recorded"}), second)
    assert len(refused) == 1 and refused[0].scim_type == "uniqueness" and "is taken (by Group g-1" in str(refused[0])
    assert store.scim_get("entra", "Group", "g-2") is None
