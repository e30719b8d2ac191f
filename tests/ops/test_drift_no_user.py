"""A user Verba lost (no Verba user has its loginName any more: deleted or renamed in Verba): drift, not a quiet "not
checked", as that person is recorded nowhere. With [user_id] create_missing a repair creates the user, then its
extensions; without, `connector drift` and `status --check` give the fix. A leaver needs no Verba user, and a person
Verba holds under another loginName is not created twice, by a check of every user or of some (connector/ops/drift.py,
`connector drift`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from connector.config import load_config
from connector.delivery.worker import Deliverer
from connector.mapping import load_mapping
from connector.ops.drift import UNRESOLVED, DriftCheck, Unchecked
from connector.ops.metrics import register_store
from connector.store import EventState
from tests.ops.helpers import run, write_config
from tests.plugins.simulator import Simulator, drain, seed, user

ALICE = "+14155550100"
BOB = "+14155550111"
CAROL = "+14155550122"
BOB_LOST = ("no Verba user has loginName 'bob@example.com' (it was Verba user 4 when last pushed), so it is recorded "
            "on none of its extensions: ")


def creating(tmp_path: Path, simulator: Simulator) -> Path:
    """A config on the same store and Verba whose mapping creates missing Verba users."""
    mapping = tmp_path / "create.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace("create_missing = false",
                                                                         "create_missing = true"))
    return write_config(tmp_path, simulator.url, extra=f'[mapping]\nfile = "{mapping}"\n', name="creating.toml")


def verba_keeps_only(simulator: Simulator, users: list[dict[str, Any]]) -> None:
    """Verba now has only these users (as a restore or an admin's deletes would leave it); the extensions of the
    others stay, linked to no one."""
    state = simulator.http.get("/_sim/state").raise_for_status().json()
    kept = {u["id"] for u in users}
    extensions = [{**{k: v for k, v in e.items() if k != "id"}, "user_id": e["user_id"] if e["user_id"] in kept
                   else None} for e in state["extensions"]]
    simulator.http.post("/_sim/reset", json=seed(users, extensions)).raise_for_status()


def alice_and_bob_then_bob_lost(deliverer: Deliverer, simulator: Simulator) -> None:
    deliverer.store.enqueue([user(), user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(deliverer)
    verba_keeps_only(simulator, [{"id": 3, "loginName": "alice@example.com", "eid": "0000"}])


def later(deliverer: Deliverer, config: Path) -> Deliverer:
    """Delivery on the same store with `config`'s mapping, once the Verba user ids its look-ups cached have expired
    ([delivery] user_cache_seconds): the deliverer that pushed bob still takes him for Verba user 4."""
    loaded = load_config(config)
    return Deliverer(deliverer.store, deliverer.client, load_mapping(loaded.mapping_file), loaded.delivery)


def metrics(store: Any) -> str:
    registry = CollectorRegistry()
    register_store(store, registry)
    return generate_latest(registry).decode()


def test_with_create_missing_a_user_verba_lost_is_drift_a_repair_creates_again(
        deliverer: Deliverer, simulator: Simulator, tmp_path: Path) -> None:
    """It was "not checked: no Verba user has its loginName": exit 0, `status --check` fine, nothing to repair."""
    alice_and_bob_then_bob_lost(deliverer, simulator)
    config = creating(tmp_path, simulator)

    done = run(config, "drift")
    assert done.exit_code == 3, done.output
    out = done.stdout.splitlines()
    assert out[0].startswith("drift: 2 users: 2 compared with Verba (1 extension), in ")
    assert out[0].endswith(" s: 1 differ")
    assert out[1:3] == ["no Verba user has its loginName (1):",
                        f"  test/u-bob: {BOB_LOST}a repair creates it ([user_id] create_missing = true), then its "
                        "extensions"]
    assert "not checked" not in done.stdout
    assert deliverer.store.last_drift_run().counts["no_user"] == 1
    assert 'connector_drift_found{kind="no_user"} 1.0' in metrics(deliverer.store)
    [status] = [x for x in run(config, "status").stdout.splitlines() if x.startswith("drift: ")]
    assert "DRIFT no_user 1" in status
    check = run(config, "status", "--check")
    assert check.exit_code == 3
    assert ("CHECK FAILED: the last drift check (at " in check.stdout
            and "found 1 user whose loginName no Verba user has" in check.stdout), check.stdout

    repaired = json.loads(run(config, "drift", "--repair", "--reason", "bob deleted in Verba", "--json").stdout)
    assert (repaired["counts"]["no_user"], repaired["repaired"]) == (1, 1)
    drain(later(deliverer, config))
    state = simulator.http.get("/_sim/state").raise_for_status().json()
    [bob] = [u for u in state["users"] if u["loginName"] == "bob@example.com"]
    extension = simulator.extensions()[BOB]
    assert (extension["user_id"], extension["voice"]) == (bob["id"], True)
    assert run(config, "drift").exit_code == 0


def test_without_create_missing_a_user_verba_lost_fails_the_checks_with_the_fix_and_a_leaver_needs_no_user(
        deliverer: Deliverer, simulator: Simulator, config_path: Path) -> None:
    """carol left (pushed inactive: her extension stopped), then Verba lost her user too: nothing is wrong there."""
    simulator.http.post("/_sim/users", json={"id": 5, "loginName": "carol@example.com"}).raise_for_status()
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(CAROL,))])
    drain(deliverer)
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(CAROL,), active=False)])
    alice_and_bob_then_bob_lost(deliverer, simulator)
    assert simulator.extensions()[CAROL]["voice"] is False

    done = run(config_path, "drift")
    assert done.exit_code == 3, done.output
    out = done.stdout.splitlines()
    assert out[0].startswith("drift: 3 users: 3 compared with Verba (1 extension), in "), out[0]
    assert out[1:3] == ["no Verba user has its loginName (1):",
                        f"  test/u-bob: {BOB_LOST}create it in Verba, or set [user_id] create_missing = true in the "
                        "mapping, then repair"]
    assert "not checked" not in done.stdout and "u-carol" not in done.stdout

    check = run(config_path, "status", "--check", "--json")
    assert check.exit_code == 3
    [problem] = [p for p in json.loads(check.stdout)["problems"] if "drift" in p]
    assert problem.endswith(
        "found 1 user whose loginName no Verba user has (deleted or renamed in Verba?), so Verba records none of their "
        "extensions: see which with `connector drift`, then create the users in Verba, or set [user_id] "
        "create_missing = true in the mapping, and queue the fixes with `connector drift --repair --reason REASON` "
        "(the running connector pushes them)"), problem

    # A repair all the same: the push finds no one to record bob on, and its dead letter says the same fix.
    assert run(config_path, "drift", "--repair", "--reason", "bob deleted in Verba").exit_code == 3
    drain(later(deliverer, config_path))
    [dead] = deliverer.store.list_events(state=EventState.DEAD)
    assert (dead.change.external_id, dead.last_cause) == ("u-bob", "unresolved_user")
    assert "create the user in Verba (or set [user_id] create_missing = true in the mapping)" in dead.last_error
    check = run(config_path, "status", "--check")
    assert check.exit_code == 3 and "CHECK FAILED: 1 dead letter(s) (unresolved_user 1)" in check.stdout, check.stdout


def test_a_person_verba_holds_under_another_login_name_is_not_called_lost(
        deliverer: Deliverer, simulator: Simulator, tmp_path: Path) -> None:
    """With create_missing a repair would have made a second Verba user of bob: renamed in Verba (his id last pushed,
    another loginName), or the same loginName but for case."""
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(deliverer)
    check = DriftCheck(deliverer.store, deliverer.client,
                       load_mapping(load_config(creating(tmp_path, simulator)).mapping_file))

    verba_keeps_only(simulator, [{"id": 4, "loginName": "robert@example.com", "eid": "0000"}])
    report = check.check()
    assert report.drifts == [] and report.unchecked == [Unchecked(
        "test/u-bob", UNRESOLVED, "no Verba user has loginName 'bob@example.com', but Verba user 4, last pushed for "
        "it, now has loginName 'robert@example.com': make the two names match, in Verba or at the source (do not "
        "create another user)")]

    verba_keeps_only(simulator, [{"id": 9, "loginName": "Bob@Example.com", "eid": "0000"}])
    report = check.check()
    assert report.drifts == [] and report.unchecked == [Unchecked(
        "test/u-bob", UNRESOLVED, "no Verba user has loginName 'bob@example.com'; Verba has 'Bob@Example.com', "
        "which differs only in case: fix the case at the source or in Verba (do not create another user)")]

    verba_keeps_only(simulator, [{"id": 9, "loginName": "Bob", "eid": "0000"}])  # the login name read wrong
    report = check.check()
    assert report.drifts == [] and report.unchecked == [Unchecked(
        "test/u-bob", UNRESOLVED, "no Verba user has loginName 'bob@example.com'; Verba has 'Bob', the same name "
        "without a domain: read the login name from the attribute Verba's login names are in ([user_id] login_name "
        "in the mapping, or the LDAP directory's username_attribute), e.g. uid or sAMAccountName (do not create "
        "another user)")]


def test_a_repair_creates_no_twin_of_a_person_verba_holds_with_a_domain(
        deliverer: Deliverer, simulator: Simulator, tmp_path: Path) -> None:
    """The source's login name is bob, Verba's bob@example.com (as OpenLDAP's uid and Verba's email logins are): a
    twin Verba user bob was made for him, and an admin deleted it. bob was "no_user" drift, and a repair with
    create_missing made the twin again."""
    simulator.add_user("bob", id=9)
    deliverer.store.enqueue([user("u-bob", "bob", phones=(BOB,))])
    drain(deliverer)
    simulator.delete_user(9)
    config = creating(tmp_path, simulator)

    done = run(config, "drift", "--repair", "--reason", "twin deleted in Verba")
    assert ("    test/u-bob: no Verba user has loginName 'bob'; Verba has 'bob@example.com', the same name with a "
            "domain: read the login name from the attribute Verba's login names are in ([user_id] login_name in the "
            "mapping, or the LDAP directory's username_attribute), e.g. mail or userPrincipalName (do not create "
            "another user)") in done.stdout.splitlines(), done.output
    assert "no_user" not in done.stdout and "repair: queued" not in done.stdout

    drain(later(deliverer, config))
    assert sorted(u["loginName"] for u in simulator.users()) == ["alice@example.com", "bob@example.com"]
    assert simulator.extensions()[BOB]["user_id"] is None


def test_a_check_of_some_users_finds_a_person_verba_holds_under_another_login_name_and_its_repair_creates_nobody(
        deliverer: Deliverer, simulator: Simulator, tmp_path: Path) -> None:
    """`drift --user` read no list of every user: bob, renamed robert@ in Verba, was no_user, and its repair created a
    second Verba user bob@ and moved his extension to it, every event done. carol, deleted in Verba, is created."""
    simulator.add_user("carol@example.com", id=5)
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,)),
                             user("u-carol", "carol@example.com", phones=(CAROL,))])
    drain(deliverer)
    verba_keeps_only(simulator, [{"id": 3, "loginName": "alice@example.com", "eid": "0000"},
                                 {"id": 4, "loginName": "robert@example.com", "eid": "0000"}])
    config = creating(tmp_path, simulator)

    done = run(config, "drift", "--user", "test/u-bob", "--user", "test/u-carol", "--repair", "--reason", "r")
    assert done.exit_code == 3, done.output
    out = done.stdout.splitlines()
    assert out[1:6] == [
        "no Verba user has its loginName (1):",
        "  test/u-carol: no Verba user has loginName 'carol@example.com' (it was Verba user 5 when last pushed), so it "
        "is recorded on none of its extensions: a repair creates it ([user_id] create_missing = true), then its "
        "extensions",
        "not checked (1 user; `--json` lists every one):",
        "  its Verba user cannot be found (1):",
        "    test/u-bob: no Verba user has loginName 'bob@example.com', but Verba user 4, last pushed for it, now has "
        "loginName 'robert@example.com': make the two names match, in Verba or at the source (do not create another "
        "user)"], done.stdout
    assert "repair: queued 1 user (event " in done.stdout
    assert [c["loginName"] or "" for c in simulator.calls("listUsers")].count("") == 1  # read once, for carol

    drain(later(deliverer, config))
    assert sorted(u["loginName"] for u in simulator.users()) == ["alice@example.com", "carol@example.com",
                                                                 "robert@example.com"]
    [carol] = simulator.users("carol@example.com")
    extensions = simulator.extensions()
    assert (extensions[BOB]["user_id"], extensions[CAROL]["user_id"]) == (4, carol["id"])
    assert deliverer.store.list_events(state=EventState.DEAD) == []
