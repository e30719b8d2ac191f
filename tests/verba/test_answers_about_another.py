"""Verba's answers about another extension or another user than was asked are never believed (VerbaAmbiguous,
naming both), against the simulator over real HTTP: getExtension, its listUsers fallback, listUsers by login name
(find_user_id, listed_user), createUser and the list of every user."""

from __future__ import annotations

import pytest

from connector.verba import VerbaClient
from connector.verba.errors import VerbaAmbiguous
from tests.verba.helpers import Sim, record
from tests.verba.test_field_answers import OK_NESTED, answer

ASKED, OTHER = "+14155550101", "+14155550999"


def extension_answer(number: str = ASKED, eid: str = "0000", user: str = "") -> str:
    """getExtension's OK answer about `number`."""
    return answer("getExtension", f"<extension><eid>{eid}</eid><extension>{number}</extension><id>77</id>"
                                  f"<recordingMode>FULL</recordingMode>{user}<voice>true</voice></extension>{OK_NESTED}")


def users_answer(*users: tuple[int, str], eid: str = "0000", extensions: str = "") -> str:
    """listUsers' OK answer with these (id, loginName) users, each listing `extensions`."""
    return answer("listUsers", OK_NESTED + "".join(
        f"<users><eid>{eid}</eid>{extensions}<id>{user_id}</id><loginName>{login}</loginName></users>"
        for user_id, login in users))


def wrong(sim: Sim, operation: str, body: str) -> None:
    sim.faults({"operation": operation, "body": body, "times": 1})


@pytest.mark.parametrize(("body", "named"), [
    (extension_answer(OTHER), f"extension '{OTHER}' (asked '{ASKED}')"),
    (extension_answer(OTHER, user="<user><id>3</id><loginName>alice@example.com</loginName></user>"),
     f"extension '{OTHER}' (asked '{ASKED}')"),
    (extension_answer(eid="0001"), "eid '0001' (asked '0000')"),
], ids=["another-number", "another-number-of-a-user", "another-environment"])
def test_a_get_extension_answer_about_another_extension_is_ambiguous(sim: Sim, client: VerbaClient, body: str,
                                                                     named: str) -> None:
    client.request_token()
    wrong(sim, "getExtension", body)
    with pytest.raises(VerbaAmbiguous) as caught:
        client.get_extension(ASKED)
    assert str(caught.value).startswith(f"getExtension for extension {ASKED} answered {named}, not what was asked")
    assert (caught.value.retryable, caught.value.max_attempts, caught.value.target_wide) == (True, 3, False)


def test_a_get_extension_answer_about_the_extension_asked_is_read(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    wrong(sim, "getExtension", extension_answer(user="<user><id>3</id><loginName>alice@example.com</loginName></user>"))
    found = client.get_extension(ASKED)
    assert found is not None and (found["extension"], found["user_id"], found["eid"]) == (ASKED, 3, "0000")


def test_a_holder_listed_without_the_extension_is_not_its_holder(sim: Sim, client: VerbaClient) -> None:
    """getExtension is unclear; listUsers (asked who holds the number) answers a user whose extensions lack it."""
    client.request_token()
    sim.faults({"operation": "getExtension", "status": "ERROR_GENERAL", "message": "boom", "times": 1},
               {"operation": "listUsers", "times": 1, "body": users_answer(
                   (5, "carol@example.com"), extensions=f"<extensions><extension>{OTHER}</extension></extensions>")})
    with pytest.raises(VerbaAmbiguous) as caught:
        client.get_extension(ASKED)
    assert str(caught.value) == (
        f"getExtension {ASKED} answered ERROR_GENERAL: boom, and listUsers finds Verba user 5 (carol@example.com) "
        f"holding it, but lists that user's extensions without it (it lists '{OTHER}'); Verba's answers are unclear, "
        "and the user is not taken for its holder")


def test_a_holder_listed_with_the_extension_is_its_holder(sim: Sim, client: VerbaClient) -> None:
    client.create_extension(record(ASKED, user_id=4))
    sim.faults({"operation": "getExtension", "status": "ERROR_GENERAL", "message": "boom", "times": 1})
    found = client.get_extension(ASKED)
    assert found is not None and (found["extension"], found["user_id"], found["voice"]) == (ASKED, 4, True)


@pytest.mark.parametrize(("users", "named"), [
    ([(4, "bob@example.com")], "Verba user 4 with loginName 'bob@example.com' (asked 'dave@example.com')"),
    ([(4, "bob@example.com"), (3, "alice@example.com")],
     "Verba user 4 with loginName 'bob@example.com' (asked 'dave@example.com'); Verba user 3 with loginName "
     "'alice@example.com' (asked 'dave@example.com')"),
], ids=["another-user", "only-other-users"])
def test_a_list_users_answer_about_other_users_is_ambiguous(sim: Sim, client: VerbaClient,
                                                            users: list[tuple[int, str]], named: str) -> None:
    client.request_token()
    for look_up in (client.find_user_id, client.listed_user):
        wrong(sim, "listUsers", users_answer(*users))
        with pytest.raises(VerbaAmbiguous) as caught:
            look_up("dave@example.com")
        assert str(caught.value).startswith(f"listUsers for loginName 'dave@example.com' answered {named}, not what "
                                            "was asked")


def test_a_user_answered_in_another_case_is_the_one_asked_for_as_a_verba_that_ignores_case_answers_it(
        sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    wrong(sim, "listUsers", users_answer((6, "Dave@example.com")))
    assert client.find_user_id("dave@example.com") == 6
    wrong(sim, "listUsers", users_answer((6, "Dave@example.com")))
    listed = client.listed_user("dave@example.com")
    assert listed is not None and (listed.user_id, listed.login_name) == (6, "Dave@example.com")


def test_a_user_of_another_environment_is_another_user(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    wrong(sim, "listUsers", users_answer((3, "alice@example.com"), eid="0001"))
    with pytest.raises(VerbaAmbiguous, match=r"Verba user 3 with eid '0001' \(asked '0000'\)"):
        client.find_user_id("alice@example.com")


def test_of_several_users_answered_the_one_with_the_login_name_is_taken(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    several = users_answer((4, "bob@example.com"), (3, "alice@example.com"))
    wrong(sim, "listUsers", several)
    assert client.find_user_id("alice@example.com") == 3
    wrong(sim, "listUsers", several)
    listed = client.listed_user("alice@example.com")
    assert listed is not None and (listed.user_id, listed.login_name) == (3, "alice@example.com")


def test_a_listed_extension_of_another_environment_is_ambiguous(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    wrong(sim, "listUsers", users_answer((3, "alice@example.com"),
                                         extensions=f"<extensions><eid>0001</eid><extension>{ASKED}</extension>"
                                                    "</extensions>"))
    with pytest.raises(VerbaAmbiguous, match=r"listUsers for the extensions of Verba user 3 in eid 0000 answered eid "
                                             r"'0001' \(asked '0000'\)"):
        client.listed_user("alice@example.com")


def test_every_user_refuses_a_user_of_another_environment(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    listed = users_answer((3, "alice@example.com")).replace(
        "</return>", "<users><eid>0001</eid><id>9</id><loginName>carol@example.com</loginName></users></return>")
    wrong(sim, "listUsers", listed)
    with pytest.raises(VerbaAmbiguous, match=r"listUsers for the users of eid 0000 answered eid '0001'"):
        client.every_user(extensions=False)


def test_a_create_user_answer_about_another_user_is_ambiguous(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    wrong(sim, "createUser", answer("createUser", f"{OK_NESTED}<user><eid>0000</eid><id>4</id>"
                                                  "<loginName>bob@example.com</loginName></user>"))
    with pytest.raises(VerbaAmbiguous, match=r"createUser for loginName 'dave@example.com' answered loginName "
                                             r"'bob@example.com' \(asked 'dave@example.com'\)"):
        client.create_user("dave@example.com")
