"""The simulator over raw HTTP: the documented behaviour, byte for byte where the vendor shows it."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from lxml import etree

from connector.cli import main
from connector.cli.simulator import simulator
from connector.simulator.app import create_app, serve
from connector.simulator.operations import BEHAVIOURS, LIST_CAP, MISSING_EXTENSION_SHAPES
from connector.simulator.process import free_port
from connector.simulator.state import State
from tests.verba.helpers import PASSWORD, SEED, Sim, envelope

SAMPLES = Path(__file__).parent / "samples"
TOKEN_MESSAGE = "This token is expired or never got authenticated."


def status_of(body: str) -> tuple[str, str | None]:
    root = etree.fromstring(body.encode())
    ret = root.find(".//return")
    holder = ret.find("status") if ret.find("status") is not None else ret
    return holder.findtext("statusCode"), holder.findtext("message")


def vendor_sample(name: str, token: str) -> str:
    return (SAMPLES / name).read_text().replace("tbESeqhBDsevSwi4HZdYAz8mKbBg8f6j", token)


def extension_call(sim: Sim, operation: str, token: str, inner: str) -> tuple[str, str | None]:
    return status_of(sim.post_soap(envelope(operation, f"<token>{token}</token><extension>{inner}</extension>")).text)


def test_vendor_examples_are_accepted_and_a_second_create_already_exists(sim: Sim) -> None:
    token = sim.token()
    assert status_of(sim.post_soap(vendor_sample("createExtension-full.xml", token)).text) == ("OK", None)
    second = sim.post_soap(vendor_sample("createExtension-full.xml", token))
    assert second.text == (SAMPLES / "createExtension-already-exists-response.xml").read_text().replace("\n", "")
    stored = sim.extension("verbatestuser@verbalabs.com")
    assert stored is not None
    assert (stored["recordingMode"], stored["voice"], stored["im"], stored["user_id"]) == ("FULL", True, False, 3)

    sim.http.post("/_sim/users", json={"id": 25, "loginName": "verbatestuser2@verbalabs.com"}).raise_for_status()
    assert status_of(sim.post_soap(vendor_sample("createExtension-on-demand.xml", token)).text) == ("OK", None)
    update = (SAMPLES / "updateExtension.xml").read_text().replace("FipASZ3Y336Kvmv7W1BV7aXY7hDFeMxq", token)
    assert status_of(sim.post_soap(update).text) == ("OK", None)
    stored = sim.extension("verbatestuser2@verbalabs.com")
    assert stored is not None
    assert (stored["recordingMode"], stored["video"], stored["user_id"]) == ("CONTROLLED", True, 25)


def test_update_is_a_full_replace_of_the_fields(sim: Sim) -> None:
    token = sim.token()
    extension_call(
        sim,
        "createExtension",
        token,
        "<eid>0000</eid><extension>100</extension><recordingMode>FULL</recordingMode>"
        "<voice>true</voice><im>true</im><user><id>3</id></user>",
    )
    # children in another order, qualified, booleans as 0/1
    v2 = "http://v2.provisioning.ws.web.verba.com/"
    answer = extension_call(sim, "updateExtension", token, f'<v2:user xmlns:v2="{v2}"><v2:id>4</v2:id></v2:user>'
                            "<voice>0</voice><extension>100</extension><eid>0000</eid><recordingMode>ON_DEMAND</recordingMode>")
    assert answer == ("OK", None)
    stored = sim.extension("100")
    assert stored is not None
    assert (stored["recordingMode"], stored["voice"], stored["im"], stored["user_id"]) == ("ON_DEMAND", False, None, 4)


@pytest.mark.parametrize(
    "inner",
    [
        "<eid>0000</eid><extension>100</extension><recordingMode>SOMETIMES</recordingMode><user><id>3</id></user>",
        "<eid>000</eid><extension>100</extension><user><id>3</id></user>",
        "<eid>0000</eid><environmentShortName>default</environmentShortName><extension>100</extension><user><id>3</id></user>",
        "<extension>100</extension><user><id>3</id></user>",
        "<eid>9999</eid><extension>100</extension><user><id>3</id></user>",
        "<environmentShortName>nowhere</environmentShortName><extension>100</extension><user><id>3</id></user>",
        "<eid>0000</eid><user><id>3</id></user>",
        "<eid>0000</eid><extension></extension><user><id>3</id></user>",
        "<eid>0000</eid><extension>100</extension><user><id>999</id></user>",
        "<eid>0000</eid><extension>100</extension><user><id>three</id></user>",
        "<eid>0000</eid><extension>100</extension><voice>yes</voice><user><id>3</id></user>",
        "<eid>0000</eid><extension>100</extension><screenCaptureEnabled>2</screenCaptureEnabled><user><id>3</id></user>",
    ],
    ids=["recordingMode", "eid-length", "eid-and-shortName", "no-environment", "unknown-eid", "unknown-shortName",
         "no-extension", "empty-extension", "unknown-user", "non-integer-user", "non-boolean-voice",
         "non-boolean-screen"],
)
@pytest.mark.parametrize("operation", ["createExtension", "updateExtension"])
def test_illegal_arguments(sim: Sim, operation: str, inner: str) -> None:
    token = sim.token()
    if operation == "updateExtension":
        extension_call(
            sim, "createExtension", token, "<eid>0000</eid><extension>100</extension><user><id>3</id></user>"
        )
    before = sim.state()["extensions"]
    code, message = extension_call(sim, operation, token, inner)
    assert code == "ERROR_ILLEGAL_ARGUMENT"
    assert message
    assert sim.state()["extensions"] == before


def test_missing_extension_element_is_illegal(sim: Sim) -> None:
    answer = sim.post_soap(envelope("createExtension", f"<token>{sim.token()}</token>"))
    assert status_of(answer.text)[0] == "ERROR_ILLEGAL_ARGUMENT"


def test_update_of_a_missing_extension_is_error_general(sim: Sim) -> None:
    code, message = extension_call(
        sim, "updateExtension", sim.token(), "<eid>0000</eid><extension>404</extension><user><id>3</id></user>"
    )
    assert code == "ERROR_GENERAL" and message and "0000:404" in message
    assert sim.state()["extensions"] == []


@pytest.mark.parametrize(
    "operation", ["createExtension", "updateExtension", "releaseToken", "getExtension", "listUsers"]
)
def test_bad_expired_and_released_tokens_are_unauthorized(sim: Sim, operation: str) -> None:
    assert status_of(sim.post_soap(envelope(operation, "<token>NOPE</token>")).text) == (
        "ERROR_UNAUTHORIZED",
        TOKEN_MESSAGE,
    )
    expired = sim.token()
    sim.expire_tokens()
    assert status_of(sim.post_soap(envelope(operation, f"<token>{expired}</token>")).text) == (
        "ERROR_UNAUTHORIZED",
        TOKEN_MESSAGE,
    )
    released = sim.token()
    assert status_of(sim.post_soap(envelope("releaseToken", f"<token>{released}</token>")).text) == ("OK", None)
    assert status_of(sim.post_soap(envelope(operation, f"<token>{released}</token>")).text) == (
        "ERROR_UNAUTHORIZED",
        TOKEN_MESSAGE,
    )


def test_request_token(sim: Sim) -> None:
    good = sim.post_soap(
        envelope("requestToken", f"<eid>0000</eid><loginName>connector</loginName><password>{PASSWORD}</password>")
    )
    token = etree.fromstring(good.content).findtext(".//token")
    assert token is not None and len(token) == 32 and token.isalnum()
    bad = sim.post_soap(
        envelope("requestToken", "<eid>0000</eid><loginName>connector</loginName><password>wrong</password>")
    )
    assert status_of(bad.text) == ("ERROR_GENERAL", "com.verba.web.user.UserNotFoundException")
    assert [c["status"] for c in sim.calls("requestToken")] == ["OK", "ERROR_GENERAL"]


def test_get_extension_answers_booleans_as_true_false_with_the_full_user(sim: Sim) -> None:
    token = sim.token()
    extension_call(
        sim,
        "createExtension",
        token,
        "<eid>0000</eid><extension>100</extension><recordingMode>FULL</recordingMode>"
        "<voice>1</voice><im>0</im><user><id>3</id></user>",
    )
    answer = sim.post_soap(envelope("getExtension", f"<token>{token}</token><environmentFilter><eid>0000</eid>"
                                    "<eidExact>1</eidExact></environmentFilter><extension>100</extension>"))
    extension = etree.fromstring(answer.content).find(".//return/extension")
    assert [child.tag for child in extension] == sorted(child.tag for child in extension)  # JAX-WS order
    assert (extension.findtext("voice"), extension.findtext("im")) == ("true", "false")
    assert (
        extension.findtext("user/id"),
        extension.findtext("user/loginName"),
        extension.findtext("user/displayName"),
    ) == (
        "3",
        "alice@example.com",
        "Alice",
    )
    missing = sim.post_soap(envelope("getExtension", f"<token>{token}</token><environmentFilter><eid>0000</eid>"
                                     "</environmentFilter><extension>nope</extension>"))
    assert status_of(missing.text) == ("OK", None) and "<extension>" not in missing.text


def test_list_users_filters_and_counts(sim: Sim) -> None:
    token = sim.token()

    def users(criteria: str) -> etree._Element:
        answer = sim.post_soap(envelope("listUsers", f"<token>{token}</token><filter>{criteria}</filter>"))
        return etree.fromstring(answer.content).find(".//return")

    assert [u.findtext("id") for u in users("<loginName>ALICE</loginName>").findall("users")] == ["3"]
    assert users("<loginName>ALICE</loginName><loginNameExact>true</loginNameExact>").findall("users") == []
    assert users("<loginName>example.com</loginName><justCount>1</justCount>").findtext("userCount") == "2"
    other_env = "<environmentFilter><eid>0001</eid></environmentFilter><loginName>alice@example.com</loginName>"
    assert users(other_env).findall("users") == []
    assert users("<justCount>maybe</justCount>").findtext("status/statusCode") == "ERROR_ILLEGAL_ARGUMENT"


def test_a_list_of_users_without_criterion_is_answered_in_the_chosen_shape(sim: Sim) -> None:
    for i in range(LIST_CAP):
        sim.http.post("/_sim/users", json={"loginName": f"extra{i}@example.com"}).raise_for_status()
    in_0000 = [str(u["id"]) for u in sim.state()["users"] if u["eid"] == "0000"]  # in the order added
    assert len(in_0000) > LIST_CAP
    token = sim.token()

    def users(criteria: str = "") -> etree._Element:
        answer = sim.post_soap(envelope("listUsers", f"<token>{token}</token><filter><environmentFilter><eid>0000"
                                        f"</eid></environmentFilter>{criteria}</filter>"))
        return etree.fromstring(answer.content).find(".//return")

    last = f"<loginName>extra{LIST_CAP - 1}@example.com</loginName><loginNameExact>true</loginNameExact>"
    assert [u.findtext("id") for u in users().findall("users")] == in_0000  # "all", the default
    behaviour(sim, unfiltered_list_users="capped").raise_for_status()
    assert [u.findtext("id") for u in users().findall("users")] == in_0000[:LIST_CAP]
    assert users().findtext("status/statusCode") == "OK"  # nothing says there are more
    assert len(users(last).findall("users")) == 1  # a criterion still finds any user
    behaviour(sim, unfiltered_list_users="refused").raise_for_status()
    assert (users().findtext("status/statusCode"), users().findtext("status/message")) == (
        "ERROR_ILLEGAL_ARGUMENT", "A filter criterion is required")
    assert len(users(last).findall("users")) == 1
    # An empty criterion is no criterion (the vendor says to leave unused tags out)
    assert users("<loginName></loginName><loginNameExact>true</loginNameExact>").findtext(
        "status/statusCode") == "ERROR_ILLEGAL_ARGUMENT"


def test_create_user(sim: Sim) -> None:
    token = sim.token()
    body = (f"<token>{token}</token><user><eid>0000</eid><loginName>erin@example.com</loginName>"
            "<email>e@example.com</email></user>")
    created = etree.fromstring(sim.post_soap(envelope("createUser", body)).content).find(".//return")
    assert created.findtext("status/statusCode") == "OK"
    assert created.findtext("user/id") == "5" and created.findtext("user/email") == "e@example.com"
    assert status_of(sim.post_soap(envelope("createUser", body)).text)[0] == "ERROR_ALREADY_EXISTS"


def test_a_body_that_is_not_a_soap_envelope_is_a_500_fault(sim: Sim) -> None:
    for body in (b"not xml at all", b"<hello/>", b'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"/>'):
        answer = sim.post_soap(body)
        assert answer.status_code == 500
        assert etree.fromstring(answer.content).findtext(".//faultstring")
    unknown = sim.post_soap(envelope("deleteExtension", "<token>x</token>"))
    assert unknown.status_code == 500 and "Cannot find dispatch method" in unknown.text
    assert sim.calls() == []


def test_fault_rules_are_validated_and_spent(sim: Sim) -> None:
    assert sim.http.post("/_sim/faults", json={"operation": "*"}).status_code == 400
    assert sim.http.post("/_sim/faults", json={"http_status": 503, "colour": "red"}).status_code == 400
    sim.faults({"operation": "requestToken", "http_status": 503, "times": 1})
    assert sim.http.get("/_sim/faults").json()[0]["times"] == 1
    assert sim.post_soap(envelope("requestToken", "<eid>0000</eid>")).status_code == 503
    assert sim.http.get("/_sim/faults").json() == []
    sim.faults({"operation": "*", "status": "ERROR_GENERAL"})
    assert sim.http.delete("/_sim/faults").status_code == 204
    assert sim.token()


def test_the_call_log_says_when_a_call_arrived_when_it_was_answered_and_who_sent_it(sim: Sim) -> None:
    token = sim.token()
    sim.faults({"operation": "getExtension", "latency_ms": 300, "times": 1})
    before = time.time()
    inner = f"<token>{token}</token><extension>+15550100</extension>"
    sim.http.post("/provisioning", content=envelope("getExtension", inner),
                  headers={"Content-Type": "text/xml; charset=utf-8", "User-Agent": "verba-connector (instance a)"})
    after = time.time()
    # http.client sends no User-Agent unless told to
    host, port = sim.base_url.removeprefix("http://").split(":")
    bare = http.client.HTTPConnection(host, int(port), timeout=5)
    bare.request("POST", "/provisioning", body=envelope("getExtension", inner).encode(),
                 headers={"Content-Type": "text/xml; charset=utf-8"})
    assert bare.getresponse().status == 200
    bare.close()
    token_call, slow, anonymous = sim.calls()
    assert token_call["agent"].startswith("python-httpx/")
    assert slow["agent"] == "verba-connector (instance a)" and anonymous["agent"] is None
    assert before <= slow["started"] and slow["at"] <= after
    assert slow["at"] - slow["started"] >= 0.29, "started is before the injected latency, at after it"
    assert anonymous["started"] <= anonymous["at"] < anonymous["started"] + 0.29
    assert slow["at"] <= anonymous["started"]


def test_users_can_be_added_through_the_control_api(sim: Sim) -> None:
    added = sim.http.post("/_sim/users", json={"loginName": "frank@example.com", "eid": "0001"})
    assert added.status_code == 201 and added.json()["id"] == 5
    assert sim.http.post("/_sim/users", json={"loginName": "frank@example.com", "eid": "0001"}).status_code == 400
    missing = sim.http.post("/_sim/users", json={"eid": "0001"})
    assert missing.status_code == 400 and "the user.loginName is missing" in missing.json()["error"]


def test_the_control_api_checks_a_user_as_a_seed_is_checked(sim: Sim) -> None:
    wrong = sim.http.post("/_sim/users", json={"loginName": "gina@example.com", "id": "7", "displayName": 42,
                                               "mail": "gina@example.com"})
    assert wrong.status_code == 400
    error = wrong.json()["error"]
    assert "unknown key the user.mail" in error and 'the user.id is "7"; it must be a positive integer' in error
    assert "the user.displayName is 42" in error
    assert sim.http.post("/_sim/users", json=["gina@example.com"]).status_code == 400
    taken = sim.http.post("/_sim/users", json={"loginName": "gina@example.com", "id": 5})
    assert taken.status_code == 201
    again = sim.http.post("/_sim/users", json={"loginName": "hugo@example.com", "id": 5})
    assert again.status_code == 400 and "id 5 is taken" in again.json()["error"]


def test_a_reset_with_a_seed_makes_it_the_seed_and_a_bad_one_changes_nothing(sim: Sim) -> None:
    sim.http.post("/_sim/users", json={"loginName": "frank@example.com"}).raise_for_status()
    new = {"users": [{"id": 9, "loginName": "ivy@example.com", "eid": "0000"}],
           "extensions": [{"extension": "+15550199", "eid": "0000", "user_id": 9}]}
    assert sim.http.post("/_sim/reset", json=new).status_code == 204
    assert [u["loginName"] for u in sim.state()["users"]] == ["ivy@example.com"]
    assert sim.extension("+15550199") is not None and sim.calls() == []

    bad = sim.http.post("/_sim/reset", json={"users": "ivy"})
    assert bad.status_code == 400 and "users is" in bad.json()["error"]
    sim.http.post("/_sim/users", json={"loginName": "jo@example.com"}).raise_for_status()
    sim.http.post("/_sim/reset").raise_for_status()  # no body: back to the seed given last
    assert [u["loginName"] for u in sim.state()["users"]] == ["ivy@example.com"]


def test_tokens_expire_after_their_ttl() -> None:
    state = State(token_ttl=0.05)
    token = state.issue_token()
    assert state.token_valid(token)
    time.sleep(0.06)
    assert not state.token_valid(token)


# How a missing extension is answered: undocumented, so every plausible shape is selectable.

MISSING_ANSWERS = {
    "ok_empty": {
        "getExtension": ("OK", None),
        "updateExtension": ("ERROR_GENERAL", "The extension does not exist in the database: 0000:404"),
    },
    "error_general": {
        "getExtension": ("ERROR_GENERAL", "Extension not found: 0000:404"),
        "updateExtension": ("ERROR_GENERAL", "Extension not found: 0000:404"),
    },
    "error_illegal_argument": {
        "getExtension": ("ERROR_ILLEGAL_ARGUMENT", "Extension 404 does not exist in environment 0000"),
        "updateExtension": ("ERROR_ILLEGAL_ARGUMENT", "Extension 404 does not exist in environment 0000"),
    },
}


# Answers of a test's own choosing (the setting as an object), and how a missing extension 404 is then answered.
CHOSEN = [
    ({"status": "ERROR_NOT_FOUND", "message": "Extension {eid}:{extension} not found"},
     ("ERROR_NOT_FOUND", "Extension 0000:404 not found")),
    ({"status": "ERROR_GENERAL", "message": "com.verba.web.extension.ExtensionNotFoundException"},
     ("ERROR_GENERAL", "com.verba.web.extension.ExtensionNotFoundException")),
    ({"status": "ERROR_EXTENSION_NOT_FOUND"}, ("ERROR_EXTENSION_NOT_FOUND", None)),
    ({"status": "ERROR_ILLEGAL_ARGUMENT", "message": None}, ("ERROR_ILLEGAL_ARGUMENT", None)),
]


@pytest.fixture
def started_with() -> Iterator[Callable[[str | dict[str, Any]], Sim]]:
    """Start a simulator of its own (seed SEED) with a given missing_extension setting; stopped after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread, Sim]] = []

    def start(missing_extension: str | dict[str, Any]) -> Sim:
        port = free_port()
        app = create_app(SEED, missing_extension=missing_extension)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, name="verba-simulator-started-with", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the simulator did not start under uvicorn"
            time.sleep(0.01)
        running.append((server, thread, Sim(f"http://127.0.0.1:{port}")))
        return running[-1][2]

    yield start
    for server, thread, sim in running:
        sim.http.close()
        server.should_exit = True
        thread.join(timeout=10)


def get_extension(sim: Sim, token: str, number: str) -> httpx.Response:
    return sim.post_soap(envelope("getExtension", f"<token>{token}</token><environmentFilter><eid>0000</eid>"
                                  f"</environmentFilter><extension>{number}</extension>"))


def behaviour(sim: Sim, **settings: object) -> httpx.Response:
    return sim.http.post("/_sim/behaviour", json=settings)


def test_the_shapes_are_listed_in_order_and_ok_empty_is_the_default() -> None:
    assert MISSING_EXTENSION_SHAPES == ("ok_empty", "error_general", "error_illegal_argument")
    assert set(MISSING_ANSWERS) == set(MISSING_EXTENSION_SHAPES)
    assert State().missing_extension == "ok_empty"


@pytest.mark.parametrize("chosen", ["at start", "at run time"])
@pytest.mark.parametrize("shape", MISSING_EXTENSION_SHAPES)
def test_a_missing_extension_is_answered_in_the_chosen_shape(
    sim: Sim, started_with: Callable[[str | dict[str, Any]], Sim], shape: str, chosen: str
) -> None:
    if chosen == "at start":
        sim = started_with(shape)
    else:
        assert behaviour(sim, missing_extension=shape).json()["missing_extension"] == shape
    token = sim.token()
    got = get_extension(sim, token, "404")
    assert status_of(got.text) == MISSING_ANSWERS[shape]["getExtension"]
    assert "<extension>" not in got.text
    updated = extension_call(
        sim, "updateExtension", token, "<eid>0000</eid><extension>404</extension><user><id>3</id></user>"
    )
    assert updated == MISSING_ANSWERS[shape]["updateExtension"]
    assert sim.state()["extensions"] == []
    assert [(c["operation"], c["status"]) for c in sim.calls() if c["operation"] != "requestToken"] == [
        ("getExtension", MISSING_ANSWERS[shape]["getExtension"][0]),
        ("updateExtension", MISSING_ANSWERS[shape]["updateExtension"][0]),
    ]


@pytest.mark.parametrize("chosen", ["at start", "at run time"])
@pytest.mark.parametrize(("answer", "expected"), CHOSEN)
def test_a_missing_extension_is_answered_with_the_chosen_answer(
    sim: Sim, started_with: Callable[[str | dict[str, Any]], Sim], answer: dict[str, Any],
    expected: tuple[str, str | None], chosen: str,
) -> None:
    if chosen == "at start":
        sim = started_with(answer)
    else:
        assert behaviour(sim, missing_extension=answer).status_code == 200
    assert sim.http.get("/_sim/behaviour").json()["missing_extension"] == {"message": None, **answer}
    token = sim.token()
    got = get_extension(sim, token, "404")
    assert status_of(got.text) == expected and "<extension>" not in got.text
    update = "<eid>0000</eid><extension>404</extension><user><id>3</id></user>"
    assert extension_call(sim, "updateExtension", token, update) == expected
    assert sim.state()["extensions"] == []
    assert [(c["operation"], c["status"]) for c in sim.calls() if c["operation"] != "requestToken"] == [
        ("getExtension", expected[0]), ("updateExtension", expected[0]),
    ]


@pytest.mark.parametrize("shape", [*MISSING_EXTENSION_SHAPES, *(answer for answer, _ in CHOSEN)])
def test_an_existing_extension_is_the_same_in_every_shape(sim: Sim, shape: str | dict[str, Any]) -> None:
    behaviour(sim, missing_extension=shape).raise_for_status()
    token = sim.token()
    create = "<eid>0000</eid><extension>100</extension><recordingMode>FULL</recordingMode><user><id>3</id></user>"
    assert extension_call(sim, "createExtension", token, create) == ("OK", None)
    assert extension_call(sim, "createExtension", token, create) == (
        "ERROR_ALREADY_EXISTS", "This extension already exists in the database: 0000:100",
    )
    got = get_extension(sim, token, "100")
    assert status_of(got.text) == ("OK", None)
    assert etree.fromstring(got.content).findtext(".//return/extension/recordingMode") == "FULL"
    update = "<eid>0000</eid><extension>100</extension><recordingMode>ON_DEMAND</recordingMode><user><id>4</id></user>"
    assert extension_call(sim, "updateExtension", token, update) == ("OK", None)
    stored = sim.extension("100")
    assert stored is not None and (stored["recordingMode"], stored["user_id"]) == ("ON_DEMAND", 4)


def test_the_behaviour_endpoint_switches_the_shape_and_refuses_bad_input(sim: Sim) -> None:
    assert sim.http.get("/_sim/behaviour").json() == {
        "missing_extension": "ok_empty", "unfiltered_list_users": "all", "unknown_user": "error_illegal_argument",
        "case_duplicate_login": "created"}
    switched = behaviour(sim, missing_extension="error_general")
    assert switched.status_code == 200 and switched.json()["missing_extension"] == "error_general"
    assert sim.http.get("/_sim/behaviour").json()["missing_extension"] == "error_general"
    assert status_of(get_extension(sim, sim.token(), "404").text)[0] == "ERROR_GENERAL"

    for bad in ({"missing_extension": "ok"}, {"missing_extension": None}, {"missing_extension": ["error_general"]}):
        refused = behaviour(sim, **bad)
        assert refused.status_code == 400, bad
        assert all(shape in refused.json()["error"] for shape in MISSING_EXTENSION_SHAPES), refused.json()
    for bad in ({"missing_extension": "ok_empty", "colour": "red"}, {"colour": "red"}):
        refused = behaviour(sim, **bad)
        assert refused.status_code == 400, bad
        assert all(name in refused.json()["error"] for name in ("colour", *BEHAVIOURS)), refused.json()
    for body in (b"not json", b'"error_general"', b"[]"):
        assert sim.http.post("/_sim/behaviour", content=body).status_code == 400
    assert sim.http.get("/_sim/behaviour").json() == {  # nothing changed
        "missing_extension": "error_general", "unfiltered_list_users": "all", "unknown_user": "error_illegal_argument",
        "case_duplicate_login": "created"}


def test_a_chosen_answer_is_refused_unless_it_is_a_status_code_and_a_message(sim: Sim) -> None:
    behaviour(sim, missing_extension="error_general").raise_for_status()
    for bad, says in [
        ({}, "status must be a status code other than OK"),
        ({"status": "OK", "message": "fine"}, "other than OK"),
        ({"status": 404}, "status must be a status code"),
        ({"status": "ERROR NOT FOUND"}, "status must be a status code"),
        ({"status": "ERROR_NOT_FOUND", "message": 404}, "message must be text or null"),
        ({"status": "ERROR_NOT_FOUND", "code": "x"}, "unknown key 'code'"),
    ]:
        refused = behaviour(sim, missing_extension=bad)
        assert refused.status_code == 400 and says in refused.json()["error"], (bad, refused.json())
    assert sim.http.get("/_sim/behaviour").json()["missing_extension"] == "error_general"  # nothing changed
    with pytest.raises(ValueError, match="other than OK"):
        State(missing_extension={"status": "OK"})


def test_reset_goes_back_to_the_start_value(sim: Sim, started_with: Callable[[str | dict[str, Any]], Sim]) -> None:
    behaviour(sim, missing_extension="error_illegal_argument").raise_for_status()
    sim.reset()
    assert sim.http.get("/_sim/behaviour").json()["missing_extension"] == "ok_empty"

    started = started_with("error_general")
    started.reset()
    assert started.http.get("/_sim/behaviour").json()["missing_extension"] == "error_general"
    behaviour(started, missing_extension="ok_empty").raise_for_status()
    started.reset()
    assert started.http.get("/_sim/behaviour").json()["missing_extension"] == "error_general"
    assert (
        status_of(get_extension(started, started.token(), "404").text)
        == MISSING_ANSWERS["error_general"]["getExtension"]
    )
    answer, expected = CHOSEN[0]
    behaviour(sim, missing_extension=answer).raise_for_status()
    sim.reset()
    assert sim.http.get("/_sim/behaviour").json()["missing_extension"] == "ok_empty"
    chose = started_with(answer)
    behaviour(chose, missing_extension="error_general").raise_for_status()
    chose.reset()
    assert chose.http.get("/_sim/behaviour").json()["missing_extension"] == answer
    assert status_of(get_extension(chose, chose.token(), "404").text) == expected


def test_state_validates_and_keeps_the_missing_extension_setting() -> None:
    with pytest.raises(ValueError, match="ok_empty, error_general, error_illegal_argument"):
        State(missing_extension="error")
    state = State(missing_extension="error_illegal_argument")
    state.reset()
    assert state.missing_extension == "error_illegal_argument"
    state.set_behaviour({"missing_extension": "ok_empty"})
    assert state.missing_extension == "ok_empty"
    with pytest.raises(ValueError, match="error_illegal_argument"):
        state.set_behaviour({"missing_extension": "nope"})
    assert state.missing_extension == "ok_empty"
    state.reset()
    assert state.missing_extension == "error_illegal_argument"
    with pytest.raises(ValueError, match="ok_empty"):
        create_app(missing_extension="nope")
    with pytest.raises(ValueError, match="missing_extension must be one of"):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            serve(listener, None, 60.0, "nope")  # refused before it serves


def test_the_cli_offers_the_shapes_and_passes_the_choice_on(monkeypatch: pytest.MonkeyPatch) -> None:
    option = next(p for p in simulator.params if p.name == "missing_extension")
    assert isinstance(option.type, click.Choice) and tuple(option.type.choices) == MISSING_EXTENSION_SHAPES
    assert option.default == "ok_empty"
    served: list[tuple[object, ...]] = []

    def serve(listener: socket.socket, *args: object) -> None:
        with listener:
            served.append((listener.getsockname(), *args))

    monkeypatch.setattr("connector.cli.simulator.serve", serve)
    runner = CliRunner()
    result = runner.invoke(main, ["simulator", "--port", "7999", "--missing-extension", "error_general"])
    assert result.exit_code == 0, result.output
    assert served == [(("127.0.0.1", 7999), None, 3600.0, "error_general")]
    assert runner.invoke(main, ["simulator"]).exit_code == 0 and served[-1][-1] == "ok_empty"
    refused = runner.invoke(main, ["simulator", "--missing-extension", "sometimes"])
    assert refused.exit_code == 2 and "error_illegal_argument" in refused.output
