"""UserIdResolver against the simulator: a burst of look-ups reads every Verba user at once, whatever
shape Verba answers that list in; a login name it does not list is still looked up on its own."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connector.delivery.users import BURST, UserIdResolver
from connector.events import UserChange
from connector.mapping import Mapping, UnresolvedUser, load_mapping
from connector.simulator.operations import LIST_CAP
from connector.verba import VerbaClient
from connector.verba.client import ListedUser
from connector.verba.errors import VerbaStatusError, VerbaTransportError
from tests.verba.helpers import Sim

MAPPING = load_mapping("mappings/default.toml")


def change(login: str) -> UserChange:
    return UserChange("test", login, "upsert", {"userName": login})


def resolver(client: VerbaClient) -> UserIdResolver:
    return UserIdResolver(client, MAPPING, ttl=600.0)


def add_users(sim: Sim, count: int) -> dict[str, int]:
    """`count` more Verba users in environment 0000, after the seeded ones: login name -> id."""
    added = {}
    for i in range(count):
        login = f"joiner{i}@example.com"
        added[login] = sim.http.post("/_sim/users", json={"loginName": login}).raise_for_status().json()["id"]
    return added


def list_calls(sim: Sim) -> list[str]:
    """For each listUsers call, the login name it asked for ("" when it asked for every user)."""
    return [c["loginName"] or "" for c in sim.calls("listUsers")]


def resolve_all(users: UserIdResolver, logins: list[str]) -> dict[str, int]:
    """Each login name's id, one after the other; then the whole-user list, if one was started, is waited for."""
    found = {login: users.resolve(change(login), None) for login in logins}
    if users.lister is not None:
        users.lister.join(timeout=30)
    return found


def test_a_few_look_ups_ask_for_each_login_name(sim: Sim, client: VerbaClient) -> None:
    users = resolver(client)
    assert resolve_all(users, ["alice@example.com", "bob@example.com", "alice@example.com"]) == {
        "alice@example.com": 3, "bob@example.com": 4}
    assert list_calls(sim) == ["alice@example.com", "bob@example.com"]  # the second alice from the cache


def test_a_burst_reads_every_user_once_and_the_rest_come_from_it(sim: Sim, client: VerbaClient) -> None:
    joiners = add_users(sim, 3 * BURST)
    logins = list(joiners)
    users = resolver(client)
    assert resolve_all(users, logins[:BURST]) == {login: joiners[login] for login in logins[:BURST]}
    assert sorted(list_calls(sim)) == sorted(logins[:BURST] + [""])
    assert resolve_all(users, logins) == joiners  # the list's ids are the ids each look-up gives
    assert sorted(list_calls(sim)) == sorted(logins[:BURST] + [""])  # no more calls: at most one list per ttl
    assert [c["status"] for c in sim.calls("listUsers")] == ["OK"] * (BURST + 1)


@pytest.mark.parametrize("shape", ["capped", "refused"])
def test_a_login_name_verba_does_not_list_is_looked_up_on_its_own(sim: Sim, client: VerbaClient, shape: str) -> None:
    """Capped (the first LIST_CAP users only, with nothing to say so) or refused: every id is still right."""
    joiners = add_users(sim, LIST_CAP + BURST)
    logins = list(joiners)
    sim.http.post("/_sim/behaviour", json={"unfiltered_list_users": shape}).raise_for_status()
    users = resolver(client)
    resolve_all(users, logins[:BURST])  # the burst: the list is asked for, and waited for
    assert resolve_all(users, logins) == joiners
    listed = [user["loginName"] for user in sim.state()["users"]][:LIST_CAP] if shape == "capped" else []
    unlisted = [login for login in logins[BURST:] if login not in listed]
    assert sorted(list_calls(sim)) == sorted(logins[:BURST] + [""] + unlisted)
    assert resolve_all(users, logins) == joiners  # all cached now: no new call
    assert len(list_calls(sim)) == BURST + 1 + len(unlisted)


class Listing:
    """A client whose list of every user names bob twice; it counts the look-ups of each login name."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []

    def every_user(self, *, extensions: bool) -> list[ListedUser]:
        return [ListedUser(4, "bob@example.com", []), ListedUser(9, "bob@example.com", []),
                ListedUser(3, "alice@example.com", [])]

    def find_user_id(self, login: str) -> int:
        self.looked_up.append(login)
        return {"alice@example.com": 3, "bob@example.com": 4}.get(login, 100)


def test_a_login_name_listed_twice_is_looked_up_on_its_own() -> None:
    client = Listing()
    users = UserIdResolver(client, MAPPING, ttl=600.0)  # type: ignore[arg-type]
    resolve_all(users, [f"joiner{i}@example.com" for i in range(BURST)])
    assert resolve_all(users, ["alice@example.com", "bob@example.com"]) == {"alice@example.com": 3,
                                                                            "bob@example.com": 4}
    assert client.looked_up[BURST:] == ["bob@example.com"]


def test_no_such_user_is_still_unresolved(sim: Sim, client: VerbaClient) -> None:
    add_users(sim, BURST)
    users = resolver(client)
    resolve_all(users, [f"joiner{i}@example.com" for i in range(BURST)])
    with pytest.raises(UnresolvedUser, match="no Verba user has loginName 'nobody@example.com'"):
        users.resolve(change("nobody@example.com"), None)
    assert list_calls(sim)[-1] == "nobody@example.com"


def test_a_user_renamed_at_the_source_is_told_to_rename_its_verba_user(client: VerbaClient) -> None:
    """A UPN rename: the connector last pushed the user as Verba user 3, and the new login name is no one's."""
    with pytest.raises(UnresolvedUser) as caught:
        resolver(client).resolve(change("alice.smith@example.com"), 3)
    assert str(caught.value).endswith("; it was Verba user 3 when last pushed: if the user was renamed at the source, "
                                      "rename that Verba user's loginName to 'alice.smith@example.com' instead, then "
                                      "replay the event")


def test_a_new_login_name_of_a_user_verba_answered_under_the_old_one_is_told_to_make_the_names_match(
        sim: Sim, client: VerbaClient) -> None:
    """bob@example.com was looked up (Verba user 4, pushed); the source now says robert@example.com, no Verba user's:
    "create the user in Verba" came first, inviting a second Verba user of him. The cache answers: no list is read."""
    users = resolver(client)
    assert users.resolve(change("bob@example.com"), None) == 4
    with pytest.raises(UnresolvedUser) as caught:
        users.resolve(change("robert@example.com"), 4)
    assert str(caught.value) == (
        "no Verba user has loginName 'robert@example.com', but Verba user 4, last pushed for it, now has loginName "
        "'bob@example.com': make the two names match, in Verba or at the source (do not create another user), then "
        "replay the event")
    assert list_calls(sim) == ["bob@example.com", "robert@example.com"]


def test_without_a_cache_no_list_is_read(sim: Sim, client: VerbaClient) -> None:
    """user_cache_seconds = 0: ids are never reused, so a list of every user would serve nothing."""
    joiners = add_users(sim, BURST + 5)
    users = UserIdResolver(client, MAPPING, ttl=0.0)
    assert resolve_all(users, list(joiners)) == joiners
    assert users.lister is None and "" not in list_calls(sim)


def test_a_login_name_verba_holds_in_another_case_is_named_with_the_fix(sim: Sim, client: VerbaClient) -> None:
    """SCIM sends oscar@example.com, Verba has Oscar@example.com: "create the user in Verba" invited a duplicate.
    Known from the list of every user a burst read (and the look-ups cached): never matched silently."""
    sim.http.post("/_sim/users", json={"loginName": "Oscar@example.com"}).raise_for_status()
    add_users(sim, BURST)
    users = resolver(client)
    resolve_all(users, [f"joiner{i}@example.com" for i in range(BURST)])
    with pytest.raises(UnresolvedUser) as caught:
        users.resolve(change("oscar@example.com"), None)
    assert str(caught.value) == ("no Verba user has loginName 'oscar@example.com'; Verba has 'Oscar@example.com', "
                                 "which differs only in case: fix the case at the source or in Verba (do not create "
                                 "another user), then replay the event")
    assert list_calls(sim)[-1] == "oscar@example.com"  # asked exactly first: Verba may match either way


def test_a_login_name_in_another_case_than_a_looked_up_one_is_named(client: VerbaClient) -> None:
    users = resolver(client)
    assert users.resolve(change("alice@example.com"), None) == 3
    with pytest.raises(UnresolvedUser, match="Verba has 'alice@example.com', which differs only in case"):
        users.resolve(change("Alice@Example.com"), None)


def creating(tmp_path: Path) -> Mapping:
    """The default mapping with [user_id] create_missing = true."""
    mapping = tmp_path / "create.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace("create_missing = false",
                                                                         "create_missing = true"))
    return load_mapping(str(mapping))


def test_create_missing_creates_no_user_that_differs_only_in_case(sim: Sim, client: VerbaClient, tmp_path) -> None:
    users = UserIdResolver(client, creating(tmp_path), ttl=600.0)
    assert users.resolve(change("alice@example.com"), None) == 3
    with pytest.raises(UnresolvedUser, match="which differs only in case"):
        users.resolve(change("ALICE@example.com"), None)
    assert sim.calls("createUser") == []
    assert users.resolve(change("carol@example.com"), None) > 4  # no case twin known: created as before


def test_a_first_sync_creating_many_users_reads_every_user_once_and_no_twin_in_case(
        sim: Sim, client: VerbaClient, tmp_path: Path) -> None:
    """Oscar@example.com is in Verba, and nothing cached it: oscar@example.com was created a second time. Before a
    creation every user is read, once for the whole sync (user_cache_seconds): not once per user created."""
    sim.http.post("/_sim/users", json={"loginName": "Oscar@example.com"}).raise_for_status()
    users = UserIdResolver(client, creating(tmp_path), ttl=600.0)
    with pytest.raises(UnresolvedUser, match="Verba has 'Oscar@example.com', which differs only in case"):
        users.resolve(change("oscar@example.com"), None)
    joiners = [f"joiner{i}@example.com" for i in range(BURST + 10)]
    found = resolve_all(users, joiners)

    state = sim.state()["users"]
    assert found == {u["loginName"]: u["id"] for u in state if u["loginName"] in found}
    assert sorted(u["loginName"] for u in state if u["loginName"].casefold() == "oscar@example.com") == [
        "Oscar@example.com"]
    assert sorted(list_calls(sim)) == sorted(["", "oscar@example.com", *joiners])  # one list of every user
    assert [c["status"] for c in sim.calls("createUser")] == ["OK"] * len(joiners)


def test_without_a_cache_each_creation_reads_every_user(sim: Sim, client: VerbaClient, tmp_path: Path) -> None:
    """user_cache_seconds = 0: no list read before is trusted, so a spelling added meanwhile is still found."""
    users = UserIdResolver(client, creating(tmp_path), ttl=0.0)
    assert users.resolve(change("carol@example.com"), None) > 4
    sim.http.post("/_sim/users", json={"loginName": "Oscar@example.com"}).raise_for_status()
    with pytest.raises(UnresolvedUser, match="Verba has 'Oscar@example.com', which differs only in case"):
        users.resolve(change("oscar@example.com"), None)
    assert list_calls(sim) == ["carol@example.com", "", "oscar@example.com", ""]


class Deleting:
    """A client whose list of every user waits until `release` is set, and then answers what Verba held when it was
    asked: bob as Verba user 4. Its look-ups answer `ids`, or fail for the login names in `failing`."""

    def __init__(self) -> None:
        self.ids = {"bob@example.com": 4}
        self.failing: set[str] = set()
        self.listing = threading.Event()
        self.release = threading.Event()

    def every_user(self, *, extensions: bool) -> list[ListedUser]:
        self.listing.set()
        assert self.release.wait(30)
        return [ListedUser(4, "bob@example.com", [])]

    def find_user_id(self, login: str) -> int | None:
        if login in self.failing:
            raise VerbaTransportError(f"listUsers for {login} got no answer")
        return self.ids.get(login, 100)


def test_a_refused_id_is_not_cached_again_from_a_list_read_before_the_refusal() -> None:
    """Verba refuses a write naming bob's cached id while a list of every user is under way, and the look-up that
    follows fails: the list, asked for before bob was deleted, must not cache his old id again."""
    client = Deleting()
    users = UserIdResolver(client, MAPPING, ttl=600.0)  # type: ignore[arg-type]
    assert users.resolve(change("bob@example.com"), None) == 4
    for i in range(BURST - 1):
        users.resolve(change(f"joiner{i}@example.com"), None)
    assert client.listing.wait(30) and users.lister is not None

    client.failing.add("bob@example.com")
    refusal = VerbaStatusError("ERROR_ILLEGAL_ARGUMENT", "No user with id 4", "updateExtension")
    with pytest.raises(VerbaTransportError):
        users.refused(change("bob@example.com"), 4, refusal)
    client.release.set()
    users.lister.join(30)

    client.failing.clear()
    client.ids["bob@example.com"] = 9
    assert users.resolve(change("bob@example.com"), None) == 9


def test_a_refusal_drops_the_cached_id_and_the_login_name_is_asked_for_again(sim: Sim, client: VerbaClient) -> None:
    users = resolver(client)
    assert users.resolve(change("bob@example.com"), None) == 4
    refusal = VerbaStatusError("ERROR_ILLEGAL_ARGUMENT", "No user with id 4", "updateExtension")
    assert users.refused(change("bob@example.com"), 4, refusal) is None  # still Verba user 4: the refusal stands
    sim.http.delete("/_sim/users/4").raise_for_status()
    new_id = sim.http.post("/_sim/users", json={"loginName": "bob@example.com"}).raise_for_status().json()["id"]
    assert users.refused(change("bob@example.com"), 4, refusal) == new_id
    assert users.resolve(change("bob@example.com"), None) == new_id  # cached
    assert list_calls(sim) == ["bob@example.com"] * 3
    sim.http.delete(f"/_sim/users/{new_id}").raise_for_status()
    refusal = VerbaStatusError("ERROR_ILLEGAL_ARGUMENT", f"No user with id {new_id}", "updateExtension")
    with pytest.raises(UnresolvedUser) as caught:
        users.refused(change("bob@example.com"), new_id, refusal)
    assert str(caught.value) == (
        f"no Verba user has loginName 'bob@example.com' any more: Verba refused a write for Verba user {new_id}, its "
        f"user until then (updateExtension answered ERROR_ILLEGAL_ARGUMENT: No user with id {new_id}); create the "
        "user in Verba (or set [user_id] create_missing = true in the mapping), then replay the event")


class Renaming:
    """A Verba of bob (user 4) whose list of every user may be refused; creations are counted."""

    def __init__(self) -> None:
        self.users = {4: "bob@example.com"}
        self.created: list[str] = []
        self.list_refused = False

    def every_user(self, *, extensions: bool) -> list[ListedUser]:
        if self.list_refused:
            raise VerbaStatusError("ERROR_ILLEGAL_ARGUMENT", "criterion required", "listUsers")
        return [ListedUser(user_id, login, []) for user_id, login in self.users.items()]

    def find_user_id(self, login: str) -> int | None:
        return next((user_id for user_id, name in self.users.items() if name == login), None)

    def create_user(self, login: str, **details: object) -> int:
        self.created.append(login)
        self.users[100 + len(self.created)] = login
        return 100 + len(self.created)


@pytest.mark.parametrize("list_refused", [False, True])
def test_a_refused_write_of_a_user_renamed_in_verba_creates_no_second_user(tmp_path: Path, list_refused: bool) -> None:
    """bob's id came from a list of every user read for a creation; an admin renames Verba user 4 to robert@, and a
    write of bob's is refused (for any reason). The refusal drops what the cache knew of user 4, and the list read
    within user_cache_seconds was not read again: bob@ was created a second time, and the push moved his extensions
    to it. Only a list read now tells renamed from deleted; when Verba gives none, no one is created."""
    client = Renaming()
    users = UserIdResolver(client, creating(tmp_path), ttl=600.0)  # type: ignore[arg-type]
    assert users.resolve(change("carol@example.com"), None) == 101  # a creation: every user read, bob cached
    assert users.resolve(change("bob@example.com"), 4) == 4
    client.users[4] = "robert@example.com"
    client.list_refused = list_refused
    refusal = VerbaStatusError("ERROR_GENERAL", "transient", "updateExtension")
    with pytest.raises(UnresolvedUser, match="do not create another user"):
        users.refused(change("bob@example.com"), 4, refusal)
    assert client.created == ["carol@example.com"]

    del client.users[4]  # deleted, not renamed: the user is created again, as create_missing says
    client.list_refused = False
    assert users.refused(change("bob@example.com"), 4, refusal) == 102 and client.created[-1] == "bob@example.com"
