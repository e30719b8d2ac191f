"""The LDAP watermark part of the store contract, on every backend."""

from __future__ import annotations

import pytest

from connector.events import UserChange
from connector.store import EventState, LdapEntry, LdapPoll, Store, WatermarkMoved
from tests.plugins.stores import Opener


@pytest.fixture
def backend(store_opener: Opener) -> Store:
    return store_opener()


def change(user: str, kind: str = "upsert") -> UserChange:
    return UserChange("corp", user, kind, {"userName": user}, accepted_at=1_000.0, cause="ldap:create")  # type: ignore[arg-type]


def entry(user: str, digest: str = "d1", groups: tuple[str, ...] = ()) -> LdapEntry:
    return LdapEntry(user, digest, True, groups, {"userName": user, "n": digest})


def test_nothing_is_known_before_the_first_poll(backend):
    assert backend.ldap_watermark("corp") is None and backend.ldap_watermarks() == []
    assert backend.ldap_entries("corp") == {}


def test_a_poll_commits_events_entries_and_cursor_together(backend):
    ids = backend.commit_poll(LdapPoll("corp", 0, {"stamp": "20240101000000Z"}, 5.0, changes=[change("a"), change("b")],
                                       entries=[entry("a"), entry("b", groups=("cn=g,dc=x",))], counts={"seen": 2}))
    assert len(ids) == 2 and [backend.get_event(i).state for i in ids] == [EventState.PENDING] * 2
    watermark = backend.ldap_watermark("corp")
    assert watermark.cursor == {"stamp": "20240101000000Z"} and watermark.version == 1 and watermark.known == 2
    assert watermark.last_success_at == 5.0 and watermark.counts == {"seen": 2} and watermark.last_error is None
    assert backend.ldap_entries("corp", ["b"]) == {"b": entry("b", groups=("cn=g,dc=x",))}
    assert backend.ldap_digests("corp", ["a", "b", "c"]) == {"a": "d1", "b": "d1"}
    backend.commit_poll(LdapPoll("corp", 1, {"stamp": "20240102000000Z"}, 6.0, removed=["a"]))
    assert set(backend.ldap_entries("corp")) == {"b"} and backend.ldap_watermark("corp").known == 1


def test_a_poll_from_a_stale_version_stores_nothing(backend):
    backend.commit_poll(LdapPoll("corp", 0, {"usn": 10}, 1.0, entries=[entry("a")]))
    with pytest.raises(WatermarkMoved):
        backend.commit_poll(LdapPoll("corp", 0, {"usn": 5}, 2.0, changes=[change("b")], entries=[entry("b")]))
    assert backend.ldap_watermark("corp").cursor == {"usn": 10}
    assert set(backend.ldap_entries("corp")) == {"a"} and backend.list_events() == []


def test_a_part_of_a_run_stores_events_and_entries_and_leaves_the_watermark(backend):
    backend.commit_poll(LdapPoll("corp", 0, {"stamp": "20240101000000Z"}, 1.0, entries=[entry("a")]))
    [first] = backend.commit_part("corp", 1, [change("b")], [entry("b")])
    assert backend.get_event(first).state is EventState.PENDING and set(backend.ldap_entries("corp")) == {"a", "b"}
    watermark = backend.ldap_watermark("corp")
    assert watermark.version == 1 and watermark.cursor == {"stamp": "20240101000000Z"} and watermark.known == 1
    with pytest.raises(WatermarkMoved):
        backend.commit_part("corp", 0, [change("c")], [entry("c")])
    assert "c" not in backend.ldap_entries("corp") and len(backend.list_events()) == 1
    backend.commit_poll(LdapPoll("corp", 1, {"stamp": "20240102000000Z"}, 2.0, parts=1))
    assert backend.ldap_watermark("corp").known == 2  # recounted: its run stored an entry in a part


def test_a_failure_keeps_the_cursor_and_is_cleared_by_the_next_success(backend):
    backend.note_poll_failure("corp", "cannot connect", 3.0)
    watermark = backend.ldap_watermark("corp")
    assert watermark.cursor == {} and watermark.version == 0 and watermark.last_error == "cannot connect"
    backend.commit_poll(LdapPoll("corp", 0, {"usn": 1}, 4.0))
    backend.note_poll_failure("corp", "timeout", 5.0)
    watermark = backend.ldap_watermark("corp")
    assert watermark.cursor == {"usn": 1} and watermark.last_run_at == 5.0 and watermark.last_success_at == 4.0
    backend.commit_poll(LdapPoll("corp", 1, {"usn": 2}, 6.0))
    assert backend.ldap_watermark("corp").last_error is None


def test_held_events_hold_later_events_of_the_same_user(backend):
    _, held = backend.commit_poll(LdapPoll("corp", 0, {}, 1.0, changes=[change("b")],
                                           held=[change("a", "delete")]))
    assert backend.get_event(held).state is EventState.HELD
    later, other = backend.commit_poll(LdapPoll("corp", 1, {}, 2.0, changes=[change("a"), change("c")]))
    assert backend.get_event(later).waits_behind == held  # never overtakes the held delete
    assert backend.get_event(other).waits_behind is None
    claimed = [backend.claim("w", 2_000.0, 60), backend.claim("w", 2_000.0, 60)]
    assert {c.external_id for c in claimed if c} == {"b", "c"} and backend.claim("w", 2_000.0, 60) is None
    # approved: the delete and the change after it go together
    assert backend.requeue([held], 2_001.0, approve=True) == 1
    assert backend.claim("w", 2_002.0, 60).event_ids == (held, later)


def test_the_known_ids_after_one_come_in_order(backend):
    backend.commit_poll(LdapPoll("corp", 0, {}, 1.0, entries=[entry(user) for user in ("c", "a", "d", "b")]))
    backend.commit_poll(LdapPoll("lab", 0, {}, 1.0, entries=[entry("bb")]))
    assert backend.ldap_ids_after("corp", "", 3) == ["a", "b", "c"]
    assert backend.ldap_ids_after("corp", "b", 10) == ["c", "d"]
    assert backend.ldap_ids_after("corp", "d", 10) == []


def test_known_ids_by_group_and_expiries_by_id(backend):
    expiring = LdapEntry("x", "d1", True, ("cn=g2,dc=x",), {"userName": "x", "expiresAt": "2030-01-02T03:04:05Z"})
    off = LdapEntry("y", "d1", False, ("cn=g1,dc=x",), {"userName": "y", "expiresAt": "2020-01-01T00:00:00Z"})
    entries = [entry("a", groups=("cn=g1,dc=x", "cn=g2,dc=x")), entry("b", groups=("cn=g3,dc=x",)), expiring, off]
    backend.commit_poll(LdapPoll("corp", 0, {}, 1.0, entries=entries))
    backend.commit_poll(LdapPoll("lab", 0, {}, 1.0, entries=[entry("c", groups=("cn=g1,dc=x",))]))
    assert sorted(backend.ldap_ids_in_groups("corp", ["cn=g1,dc=x", "cn=g4,dc=x"])) == ["a", "y"]
    assert sorted(backend.ldap_ids_in_groups("corp", ["cn=g2,dc=x"])) == ["a", "x"]
    assert backend.ldap_ids_in_groups("corp", ["cn=g"]) == []
    assert backend.ldap_expiries("corp") == {"x": "2030-01-02T03:04:05Z"}  # active ones only


def test_directories_are_kept_apart(backend):
    backend.commit_poll(LdapPoll("corp", 0, {"usn": 1}, 1.0, entries=[entry("a")]))
    backend.commit_poll(LdapPoll("lab", 0, {"stamp": "x"}, 1.0, entries=[entry("a", "d2")]))
    assert [w.directory for w in backend.ldap_watermarks()] == ["corp", "lab"]
    assert backend.ldap_entries("lab")["a"].digest == "d2"
