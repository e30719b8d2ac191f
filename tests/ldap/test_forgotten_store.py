"""What the store tells a directory's watcher of the users it forgot, on every backend: those it still records
(`ldap_forgotten`), and the census an operator's discard of their deletes asks for (`census_due`)."""

from __future__ import annotations

import pytest

from connector.events import UserChange
from connector.store import EventState, LdapEntry, LdapPoll, Store
from tests.plugins.stores import Opener


@pytest.fixture
def backend(store_opener: Opener) -> Store:
    return store_opener()


def change(source: str, user: str, kind: str = "upsert", n: int = 1) -> UserChange:
    return UserChange(source, user, kind, {"userName": user, "n": n}, accepted_at=1_000.0,  # type: ignore[arg-type]
                      cause="ldap:create")


def entry(user: str) -> LdapEntry:
    return LdapEntry(user, "d1", True, (), {"userName": user})


def known_by(backend: Store, users: str) -> None:
    """corp knows these users, each with one pending upsert (n=1), then an upsert n=2 of each."""
    backend.commit_poll(LdapPoll("corp", 0, {"stamp": "20240101000000Z"}, 1.0,
                                 changes=[change("corp", u) for u in users], entries=[entry(u) for u in users]))
    backend.commit_poll(LdapPoll("corp", 1, {"stamp": "20240101000000Z"}, 2.0,
                                 changes=[change("corp", u, n=2) for u in users]))


def test_a_user_whose_delete_was_discarded_is_still_recorded_and_forgotten(backend):
    known_by(backend, "abcd")
    assert backend.ldap_forgotten("corp") == {}  # every user known
    # b's delete held, c's pending, d's dead: none of them is known any more
    ids = backend.commit_poll(LdapPoll("corp", 2, {}, 3.0, changes=[change("corp", "c", "delete"),
                                                                   change("corp", "d", "delete")],
                                       held=[change("corp", "b", "delete")], removed=["b", "c", "d"]))
    _, deleted_d, held_b = ids
    assert backend.ldap_forgotten("corp") == {}  # b waits for an operator; c and d are stopped (or will be)

    assert backend.discard([held_b], "restored") == 1
    assert backend.ldap_forgotten("corp") == {"b": {"userName": "b", "n": 2}}  # its newest state before the delete
    dead = backend.claim("w", 2_000.0, 60)
    while dead is not None and dead.external_id != "d":
        backend.complete(dead, [], None)
        dead = backend.claim("w", 2_000.0, 60)
    assert dead is not None
    backend.dead_letter(dead, "mapping", "refused")
    assert backend.get_event(deleted_d).state is EventState.DEAD
    backend.discard([deleted_d], "nothing to stop")
    assert set(backend.ldap_forgotten("corp")) == {"b", "d"}  # not c, whose current event is its delete


def test_discarding_a_directory_s_deletes_asks_its_next_run_for_a_census(backend):
    known_by(backend, "ab")
    backend.commit_poll(LdapPoll("lab", 0, {"usn": 7}, 1.0, changes=[change("lab", "x")], entries=[entry("x")]))
    [held_a] = backend.commit_poll(LdapPoll("corp", 2, {"stamp": "20240102000000Z", "scope_after": "a"}, 3.0,
                                            held=[change("corp", "a", "delete")], removed=["a"]))
    [held_x] = backend.commit_poll(LdapPoll("lab", 1, {"usn": 8}, 3.0, held=[change("lab", "x", "deactivate")]))
    assert backend.discard([held_a, held_x], "restored") == 2
    corp = backend.ldap_watermark("corp")
    assert corp.cursor == {"stamp": "20240102000000Z", "scope_after": "a", "census_due": True}
    assert corp.version == 4  # a run of corp under way stores nothing, and polls again
    lab = backend.ldap_watermark("lab")  # a deactivation forgets no user: no census
    assert lab.cursor == {"usn": 8} and lab.version == 2
    assert backend.discard([held_a], "again") == 0 and backend.ldap_watermark("corp").version == 4


def test_discarding_a_user_s_held_change_makes_the_watcher_read_the_user_as_changed_next_time(backend):
    """A deactivation held and then discarded: Verba keeps recording the user, but the watcher stored the entry as
    the deactivation had it; the user's next read (disabled for good, say) must make an event, so the entry's digest
    is forgotten. Other users' digests stay."""
    known_by(backend, "ab")
    disabled = LdapEntry("a", "d2", False, (), {"userName": "a"})
    [held_a] = backend.commit_poll(LdapPoll("corp", 2, {}, 3.0, held=[change("corp", "a", "deactivate")],
                                            entries=[disabled]))
    assert backend.ldap_digests("corp", ["a", "b"]) == {"a": "d2", "b": "d1"}
    assert backend.discard([held_a], "disabled by mistake") == 1
    assert backend.ldap_digests("corp", ["a", "b"]) == {"a": "", "b": "d1"}
