"""The simulator's Verba users as an admin changes them behind the connector's back (deleted; login names differing
only in case), and the undocumented answers that follow, each in every shape the simulator offers: an extension write
naming a user id Verba no longer holds (`unknown_user`), and createUser of a login name another user has but for case
(`case_duplicate_login`)."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from connector.simulator.operations import UNKNOWN_USER_SHAPES
from tests.verba.helpers import Sim, envelope

# What a write linking extension 100 to user id 999 is answered in each shape: (HTTP status, statusCode or faultstring,
# message, what the call log says).
UNKNOWN_USER_ANSWERS = {
    "error_illegal_argument": (200, "ERROR_ILLEGAL_ARGUMENT", "No user with id 999", "ERROR_ILLEGAL_ARGUMENT"),
    "error_general": (200, "ERROR_GENERAL", "Could not save extension 100: user 999 does not exist", "ERROR_GENERAL"),
    "not_found": (200, "ERROR_NOT_FOUND", "User 999 not found", "ERROR_NOT_FOUND"),
    "soap_fault": (500, "S:Server",
                   "javax.persistence.EntityNotFoundException: Unable to find com.verba.model.User with id 999",
                   "HTTP_500"),
}


def behave(sim: Sim, **settings: str) -> httpx.Response:
    return sim.http.post("/_sim/behaviour", json=settings)


def write(sim: Sim, operation: str, user_id: int, number: str = "100") -> tuple[int, str | None, str | None]:
    """An extension write linking `number` to `user_id`: (HTTP status, statusCode or faultcode, message or
    faultstring)."""
    answer = sim.post_soap(envelope(operation, f"<token>{sim.token()}</token><extension><eid>0000</eid><extension>"
                                               f"{number}</extension><user><id>{user_id}</id></user></extension>"))
    root = etree.fromstring(answer.content)
    fault = root.find(".//{*}Fault")
    if fault is not None:
        return answer.status_code, fault.findtext("faultcode"), fault.findtext("faultstring")
    status = root.find(".//return/statusCode")
    return answer.status_code, status.text if status is not None else None, root.findtext(".//return/message")


def create_user(sim: Sim, login: str) -> tuple[str | None, str | None]:
    answer = sim.post_soap(envelope("createUser", f"<token>{sim.token()}</token><user><eid>0000</eid><loginName>"
                                                  f"{login}</loginName></user>"))
    ret = etree.fromstring(answer.content).find(".//return")
    return ret.findtext("status/statusCode"), ret.findtext("status/message")


def test_the_default_shapes_are_the_first_and_a_reset_goes_back_to_them(sim: Sim) -> None:
    assert UNKNOWN_USER_SHAPES[0] == "error_illegal_argument"
    behave(sim, unknown_user="soap_fault", case_duplicate_login="already_exists").raise_for_status()
    sim.reset()
    behaviour = sim.http.get("/_sim/behaviour").json()
    assert (behaviour["unknown_user"], behaviour["case_duplicate_login"]) == ("error_illegal_argument", "created")
    for bad in ({"unknown_user": "gone"}, {"case_duplicate_login": "ignored"}, {"unknown_user": None}):
        refused = behave(sim, **bad)  # type: ignore[arg-type]
        assert refused.status_code == 400 and list(bad)[0] in refused.json()["error"], refused.json()


@pytest.mark.parametrize("shape", UNKNOWN_USER_SHAPES)
@pytest.mark.parametrize("operation", ["createExtension", "updateExtension"])
def test_a_write_naming_a_user_verba_does_not_hold_is_answered_in_the_chosen_shape(
        sim: Sim, shape: str, operation: str) -> None:
    if operation == "updateExtension":
        assert write(sim, "createExtension", 3)[1] == "OK"
    behave(sim, unknown_user=shape).raise_for_status()
    http_status, code, message, logged = UNKNOWN_USER_ANSWERS[shape]
    assert write(sim, operation, 999) == (http_status, code, message)
    assert sim.calls(operation)[-1]["status"] == logged
    assert [(e["extension"], e["user_id"]) for e in sim.state()["extensions"]] == (
        [("100", 3)] if operation == "updateExtension" else [])  # nothing changed
    assert write(sim, operation, 4 if operation == "updateExtension" else 3)[:2] == (200, "OK")  # a known user


def test_a_deleted_user_is_gone_its_extensions_linked_to_no_one_and_its_id_never_given_again(sim: Sim) -> None:
    assert write(sim, "createExtension", 4)[1] == "OK"
    assert sim.http.delete("/_sim/users/4").status_code == 204
    assert [u["id"] for u in sim.state()["users"]] == [3]
    assert sim.extension("100")["user_id"] is None  # type: ignore[index]
    assert write(sim, "updateExtension", 4) == (200, "ERROR_ILLEGAL_ARGUMENT", "No user with id 4")
    assert create_user(sim, "bob@example.com") == ("OK", None)
    assert [u["id"] for u in sim.state()["users"] if u["loginName"] == "bob@example.com"] == [5]
    for missing in ("4", "99", "bob"):
        gone = sim.http.delete(f"/_sim/users/{missing}")
        assert gone.status_code == 404 and missing in gone.json()["error"]
    assert [c["operation"] for c in sim.calls()][-1] == "createUser"  # a delete behind the back is no SOAP call


def test_login_names_differing_only_in_case_are_held_and_created_or_refused_as_chosen(sim: Sim) -> None:
    assert sim.http.post("/_sim/users", json={"loginName": "Alice@Example.com"}).status_code == 201
    assert create_user(sim, "ALICE@example.com") == ("OK", None)  # "created", the default
    behave(sim, case_duplicate_login="already_exists").raise_for_status()
    assert create_user(sim, "alice@EXAMPLE.com") == (
        "ERROR_ALREADY_EXISTS", "This user already exists in the database: 0000:alice@EXAMPLE.com")
    assert create_user(sim, "carol@example.com") == ("OK", None)
    behave(sim, case_duplicate_login="created").raise_for_status()
    assert create_user(sim, "alice@example.com")[0] == "ERROR_ALREADY_EXISTS"  # the same name: always
    logins = [u["loginName"] for u in sim.state()["users"]]
    assert [login for login in logins if login.casefold() == "alice@example.com"] == [
        "alice@example.com", "Alice@Example.com", "ALICE@example.com"]
    # listUsers by exact loginName tells them apart
    listed = sim.post_soap(envelope("listUsers", f"<token>{sim.token()}</token><filter><loginName>Alice@Example.com"
                                                 "</loginName><loginNameExact>1</loginNameExact></filter>"))
    assert [u.findtext("loginName") for u in etree.fromstring(listed.content).iter("users")] == ["Alice@Example.com"]
