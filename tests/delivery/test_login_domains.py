"""A login name Verba holds with a domain or without one ("bob" from OpenLDAP's uid while Verba has
"bob@example.com", or the reverse): the login name is read from another attribute than Verba's. [user_id]
create_missing made Verba users bob, carol and dave as twins, and the extension conflicts that followed said to set
on_conflict = "take_over", which would file the recordings under the empty twins. Now no twin is created (an
unresolved_user dead letter naming Verba's login name and the attribute to read), an unresolved_user dead letter says
where else the login name may be read from, and a conflict with a holder whose login name differs only by a domain says
to fix the login name, not to take the number over (simulator over real HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.delivery.worker import Deliverer
from connector.store import EventState
from tests.plugins.simulator import Simulator, delivering, drain, user

BOB, CAROL, DAVE, ERIN, FRANK = "+14155550111", "+14155550122", "+14155550133", "+14155550144", "+14155550155"
HELD = "+14155550166"  # Verba links it to bob@example.com (Verba user 4)
READ_FROM_VERBAS = ("read the login name from the attribute Verba's login names are in ([user_id] login_name in the "
                    "mapping, or the LDAP directory's username_attribute), e.g. ")


@pytest.fixture
def seed_extensions() -> list[dict[str, Any]]:
    return [{"eid": "0000", "extension": HELD, "recordingMode": "FULL", "voice": True, "user_id": 4}]


def dead_letters(deliverer: Deliverer) -> dict[str, tuple[str | None, str | None]]:
    """Each dead event's user login name: (cause, message)."""
    return {e.change.state["userName"]: (e.last_cause, e.last_error)
            for e in deliverer.store.list_events(state=EventState.DEAD)}


def test_create_missing_makes_no_twin_of_a_verba_user_whose_login_name_differs_only_by_a_domain(
        creating: Deliverer, simulator: Simulator) -> None:
    """Verba has bob@example.com (seeded), carol@ in two domains and Erin; the source says bob, carol and
    erin@example.com. dave, whom Verba has under no such name, is created as before."""
    for login in ("carol@example.com", "carol@corp.example.com", "Erin"):
        simulator.add_user(login)
    creating.store.enqueue([user("u-bob", "bob", phones=(BOB,)), user("u-carol", "carol", phones=(CAROL,)),
                            user("u-dave", "dave", phones=(DAVE,)), user("u-erin", "erin@example.com", phones=(ERIN,))])
    drain(creating)

    assert dead_letters(creating) == {
        "bob": ("unresolved_user", "no Verba user has loginName 'bob'; Verba has 'bob@example.com', the same name "
                f"with a domain: {READ_FROM_VERBAS}mail or userPrincipalName (do not create another user), then "
                "replay the event"),
        "carol": ("unresolved_user", "no Verba user has loginName 'carol'; Verba has 'carol@corp.example.com' (one "
                  "of 2 such login names), the same name with a domain: "
                  f"{READ_FROM_VERBAS}mail or userPrincipalName (do not create another user), then replay the event"),
        "erin@example.com": ("unresolved_user", "no Verba user has loginName 'erin@example.com'; Verba has 'Erin', "
                             f"the same name without a domain: {READ_FROM_VERBAS}uid or sAMAccountName (do not create "
                             "another user), then replay the event"),
    }
    assert sorted(u["loginName"] for u in simulator.users()) == [
        "Erin", "alice@example.com", "bob@example.com", "carol@corp.example.com", "carol@example.com", "dave"]
    extensions = simulator.extensions()
    assert extensions[DAVE]["user_id"] == simulator.users("dave")[0]["id"]
    assert not {BOB, CAROL, ERIN} & set(extensions)


def test_create_missing_makes_no_twin_of_a_verba_user_known_by_its_windows_down_level_name(
        creating: Deliverer, simulator: Simulator) -> None:
    """Verba has CORP\\gina (Windows logins) and hank@corp.example.com; the source says gina's UPN and CORP\\hank.
    LAB\\ivan is another name than Verba's CORP\\ivan: created as before."""
    for login in ("CORP\\gina", "hank@corp.example.com", "CORP\\ivan"):
        simulator.add_user(login)
    creating.store.enqueue([user("u-gina", "gina@corp.example.com", phones=(BOB,)),
                            user("u-hank", "CORP\\hank", phones=(CAROL,)), user("u-ivan", "LAB\\ivan", phones=(DAVE,))])
    drain(creating)

    assert dead_letters(creating) == {
        "gina@corp.example.com": (
            "unresolved_user", "no Verba user has loginName 'gina@corp.example.com'; Verba has 'CORP\\\\gina', the "
            f"same name in another domain form: {READ_FROM_VERBAS}one that holds DOMAIN\\name, as Verba does (do not "
            "create another user), then replay the event"),
        "CORP\\hank": (
            "unresolved_user", "no Verba user has loginName 'CORP\\\\hank'; Verba has 'hank@corp.example.com', the "
            f"same name in another domain form: {READ_FROM_VERBAS}mail or userPrincipalName (do not create another "
            "user), then replay the event"),
    }
    assert simulator.extensions()[DAVE]["user_id"] == simulator.users("LAB\\ivan")[0]["id"]
    assert not {BOB, CAROL} & set(simulator.extensions())


def test_without_create_missing_the_dead_letter_names_verbas_login_name_once_verba_answered_it(
        deliverer: Deliverer, simulator: Simulator) -> None:
    """bob@example.com was looked up (cached); another source of bob sends uid bob. frank, whose spelling Verba was
    never asked for, gets the usual fix, which now names where else the login name may be read from."""
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(BOB,))])
    drain(deliverer)
    deliverer.store.enqueue([user("u-bob-ldap", "bob", phones=(BOB,)), user("u-frank", "frank", phones=(FRANK,))])
    drain(deliverer)

    assert dead_letters(deliverer) == {
        "bob": ("unresolved_user", "no Verba user has loginName 'bob'; Verba has 'bob@example.com', the same name "
                f"with a domain: {READ_FROM_VERBAS}mail or userPrincipalName (do not create another user), then "
                "replay the event"),
        "frank": ("unresolved_user", "no Verba user has loginName 'frank'; create the user in Verba (or set "
                  "[user_id] create_missing = true in the mapping), or, if Verba's login names are another attribute "
                  "of the user, read them from it ([user_id] login_name in the mapping, or the LDAP directory's "
                  "username_attribute), then replay the event"),
    }
    assert simulator.calls("createUser") == []


@pytest.mark.parametrize("twin", ["bob", "Bob@example.com"], ids=["by-a-domain", "in-case"])
def test_a_conflict_with_the_same_person_under_another_spelling_says_to_fix_the_login_name_not_to_take_over(
        deliverer: Deliverer, simulator: Simulator, twin: str) -> None:
    """A twin made before this fix (Verba user `twin`) wants bob@example.com's number: taking it over would file
    its recordings under the twin."""
    twin_id = simulator.add_user(twin)
    deliverer.store.enqueue([user("u-bob", twin, phones=(HELD,))])
    drain(deliverer)

    [conflict] = deliverer.store.open_conflicts()
    fix = (f"{READ_FROM_VERBAS}mail or userPrincipalName" if twin == "bob" else
           "fix the case at the source or in Verba")
    assert conflict.message.endswith(
        f"To resolve: {fix}, so that the push finds Verba user 4 (bob@example.com), then check Verba user {twin_id} "
        f"({twin}), a second Verba user of the same person, and remove it in Verba; do not take the number over "
        f'(on_conflict = "take_over"): its recordings would be filed under Verba user {twin_id}'), conflict.message
    assert simulator.extensions()[HELD]["user_id"] == 4


def test_take_over_never_moves_a_number_to_the_same_person_under_another_spelling(
        make_config: Any, simulator: Simulator, tmp_path: Path) -> None:
    """With on_conflict = "take_over" set, a twin made before (Verba user "bob") took bob@example.com's number, and
    the calls were filed under the twin: now it waits in a conflict, the number stays with bob@example.com."""
    mapping = tmp_path / "take_over.toml"
    mapping.write_text(Path("mappings/default.toml").read_text() + '\n[ownership]\non_conflict = "take_over"\n')
    twin_id = simulator.add_user("bob")
    for deliverer in delivering(make_config(str(mapping))):
        deliverer.store.enqueue([user("u-bob", "bob", phones=(HELD,))])
        drain(deliverer)
        [conflict] = deliverer.store.open_conflicts()
        assert "a second Verba user of the same person" in conflict.message
        assert [a for a in deliverer.store.list_audit() if a.action == "take_over"] == []
    assert simulator.extensions()[HELD]["user_id"] == 4 != twin_id


def test_a_conflict_with_another_person_still_offers_take_over(deliverer: Deliverer, simulator: Simulator) -> None:
    simulator.add_user("bobby")
    deliverer.store.enqueue([user("u-bobby", "bobby", phones=(HELD,))])
    drain(deliverer)
    [conflict] = deliverer.store.open_conflicts()
    assert 'on_conflict = "take_over" in the mapping' in conflict.message
