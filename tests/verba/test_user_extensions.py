"""VerbaClient.listed_user and every_user: users and their extensions as Verba holds them (issue 16), against the
simulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connector.simulator.operations import LIST_CAP
from connector.verba import VerbaClient, VerbaStatusError, VerbaTransportError
from connector.verba.errors import VerbaAmbiguous, VerbaMalformedResponse
from tests.verba.helpers import Sim, record

TNS = "http://v2.provisioning.ws.web.verba.com/"
OK_NESTED = "<status><statusCode>OK</statusCode></status>"
KEYS = {"id", "extension", "user_id", "user_login_name", "recording_mode", "voice", "im", "video",
        "screen_capture_enabled", "eid", "environment_short_name"}


def held_by(client: VerbaClient, login_name: str) -> list[dict[str, Any]] | None:
    """The extensions listed for the user with this login name; None when there is no such user."""
    listed = client.listed_user(login_name)
    return None if listed is None else listed.extensions


def answer(operation: str, inner: str) -> str:
    """A JAX-WS style answer of `operation` with this <return> content (served as a fault rule's body)."""
    return ('<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>'
            f'<ns2:{operation}Response xmlns:ns2="{TNS}"><return>{inner}</return></ns2:{operation}Response>'
            "</S:Body></S:Envelope>")


def test_a_users_extensions_are_shaped_as_get_extension_answers_them(sim: Sim, client: VerbaClient) -> None:
    assert client.create_extension(record("+15550100", user_id=3)) is True
    assert client.create_extension(record("+15550101", user_id=3, recording_mode="ON_DEMAND", im=True)) is True
    assert client.create_extension(record("200", user_id=4)) is True

    held = held_by(client, "alice@example.com")
    assert held is not None
    assert [e["extension"] for e in held] == ["+15550100", "+15550101"]
    assert all(set(e) == KEYS for e in held)
    assert held[0] == {
        "id": 1, "extension": "+15550100", "user_id": 3, "user_login_name": "alice@example.com",
        "recording_mode": "FULL", "voice": True, "im": False, "video": False, "screen_capture_enabled": False,
        "eid": "0000", "environment_short_name": "default",
    }
    assert held == [client.get_extension("+15550100"), client.get_extension("+15550101")]
    assert held_by(client, "bob@example.com") == [client.get_extension("200")]


def test_one_list_users_call_asks_for_extensions_and_skips_groups_and_roles(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    with client.capture() as sent:
        assert held_by(client, "alice@example.com") == []
    assert [s["operation"] for s in sent] == ["listUsers"]
    envelope = sent[0]["envelope"]
    for part in ("<loginName>alice@example.com</loginName>", "<loginNameExact>true</loginNameExact>",
                 "<skipExtensions>false</skipExtensions>", "<skipGroups>true</skipGroups>",
                 "<skipRoles>true</skipRoles>", "<eid>0000</eid>"):
        assert part in envelope, envelope
    assert [c["status"] for c in sim.calls("listUsers")] == ["OK"]


def test_no_such_user_is_none_and_the_login_name_is_matched_exactly(client: VerbaClient) -> None:
    assert held_by(client, "nobody@example.com") is None
    assert held_by(client, "alice") is None
    assert held_by(client, "ALICE@example.com") is None


def test_unlinked_and_other_users_extensions_are_not_the_users(sim: Sim, client: VerbaClient) -> None:
    client.create_extension(record("+15550100", user_id=3))
    client.create_extension(record("200", user_id=4))
    sim.http.put("/_sim/extensions/0000/+15550100", json={"user_id": None}).raise_for_status()
    assert held_by(client, "alice@example.com") == []
    sim.http.put("/_sim/extensions/0000/200", json={"user_id": 3}).raise_for_status()
    held = held_by(client, "alice@example.com")
    assert held is not None and [(e["extension"], e["user_id"]) for e in held] == [("200", 3)]
    assert held_by(client, "bob@example.com") == []


def test_drift_made_behind_the_connectors_back_is_seen(sim: Sim, client: VerbaClient) -> None:
    client.create_extension(record("+15550100", user_id=3))
    sim.http.put("/_sim/extensions/0000/+15550100", json={"recordingMode": "CONTROLLED", "voice": False,
                                                          "screenCaptureEnabled": True}).raise_for_status()
    sim.http.put("/_sim/extensions/0000/+15550177", json={"recordingMode": "FULL", "user_id": 3}).raise_for_status()
    held = held_by(client, "alice@example.com")
    assert held is not None
    assert [(e["extension"], e["recording_mode"], e["voice"], e["screen_capture_enabled"]) for e in held] == [
        ("+15550100", "CONTROLLED", False, True), ("+15550177", "FULL", None, None)]
    sim.http.delete("/_sim/extensions/0000/+15550100").raise_for_status()
    assert [e["extension"] for e in held_by(client, "alice@example.com") or []] == ["+15550177"]
    assert {c["operation"] for c in sim.calls()} == {"requestToken", "createExtension", "listUsers"}


def test_environment_short_name_client(sim: Sim) -> None:
    sim.http.post("/_sim/users", json={"id": 9, "loginName": "carol@example.com", "eid": "0001"}).raise_for_status()
    sim.http.put("/_sim/extensions/0001/900", json={"recordingMode": "FULL", "user_id": 9}).raise_for_status()
    with VerbaClient(sim.url, environment_short_name="other", token=sim.token()) as client:
        held = held_by(client, "carol@example.com")
        assert held_by(client, "alice@example.com") is None  # alice lives in 0000
    assert held is not None
    assert [(e["extension"], e["eid"], e["environment_short_name"], e["user_id"]) for e in held] == [
        ("900", "0001", "other", 9)]


def test_several_users_for_the_exact_login_name_are_ambiguous(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    users = ("<users><id>3</id><loginName>alice@example.com</loginName></users>"
             "<users><id>8</id><loginName>alice@example.com</loginName></users>")
    sim.faults({"operation": "listUsers", "body": answer("listUsers", OK_NESTED + users), "times": 1})
    with pytest.raises(VerbaAmbiguous, match="listUsers returned 2 users for the exact loginName"):
        held_by(client, "alice@example.com")


def test_the_listed_user_owns_the_extensions_whatever_they_nest(sim: Sim, client: VerbaClient) -> None:
    """A real Verba may nest a <user> in each extension, or leave fields out: the listed user owns them."""
    client.request_token()
    user = ("<users><id>3</id><loginName>alice@example.com</loginName>"
            "<extensions><extension>+15550100</extension><user><id>77</id><loginName>x</loginName></user>"
            "</extensions><extensions><eid>0000</eid><extension>200</extension><voice>true</voice></extensions>"
            "</users>")
    sim.faults({"operation": "listUsers", "body": answer("listUsers", OK_NESTED + user), "times": 1})
    held = held_by(client, "alice@example.com")
    assert held == [
        {**dict.fromkeys(KEYS), "extension": "+15550100", "user_id": 3, "user_login_name": "alice@example.com"},
        {**dict.fromkeys(KEYS), "extension": "200", "eid": "0000", "voice": True, "user_id": 3,
         "user_login_name": "alice@example.com"},
    ]


def test_a_user_without_an_id_or_a_refusal_raises(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    no_id = "<users><loginName>alice@example.com</loginName></users>"
    sim.faults({"operation": "listUsers", "body": answer("listUsers", OK_NESTED + no_id), "times": 1})
    with pytest.raises(VerbaMalformedResponse, match="listUsers answered OK without a user id"):
        held_by(client, "alice@example.com")
    sim.faults({"operation": "listUsers", "status": "ERROR_ILLEGAL_ARGUMENT", "message": "bad filter", "times": 1})
    with pytest.raises(VerbaStatusError) as caught:
        held_by(client, "alice@example.com")
    assert caught.value.cause == "error_illegal_argument"


def test_every_user_is_read_from_one_list_users_without_criterion(sim: Sim, client: VerbaClient) -> None:
    client.create_extension(record("+15550100", user_id=3))
    client.create_extension(record("+15550101", user_id=3, im=True))
    client.create_extension(record("200", user_id=4))
    with client.capture() as sent:
        listed = client.every_user(extensions=True)
    in_0000 = [u for u in sim.state()["users"] if u["eid"] == "0000"]
    assert [(u.user_id, u.login_name) for u in listed] == [(u["id"], u["loginName"]) for u in in_0000]
    for user in listed:
        assert client.listed_user(user.login_name or "") == user
    assert [len(u.extensions) for u in listed if u.user_id in (3, 4)] == [2, 1]
    envelope = sent[0]["envelope"]
    assert [s["operation"] for s in sent] == ["listUsers"] and "loginName" not in envelope
    assert "<skipExtensions>false</skipExtensions>" in envelope and "<eid>0000</eid>" in envelope
    without = client.every_user(extensions=False)
    assert [u.user_id for u in without] == [u.user_id for u in listed] and all(u.extensions == [] for u in without)


def test_a_capped_or_refused_list_is_what_verba_answers(sim: Sim, client: VerbaClient) -> None:
    for i in range(LIST_CAP + 5):
        sim.http.post("/_sim/users", json={"loginName": f"extra{i}@example.com"}).raise_for_status()
    assert len(client.every_user(extensions=False)) > LIST_CAP
    sim.http.post("/_sim/behaviour", json={"unfiltered_list_users": "capped"}).raise_for_status()
    assert len(client.every_user(extensions=False)) == LIST_CAP  # nothing says there are more: callers look up the rest
    sim.http.post("/_sim/behaviour", json={"unfiltered_list_users": "refused"}).raise_for_status()
    with pytest.raises(VerbaStatusError) as caught:
        client.every_user(extensions=True)
    assert caught.value.cause == "error_illegal_argument"


def test_a_streamed_list_reads_what_any_answer_reads(sim: Sim, client: VerbaClient) -> None:
    """Status before or after the users, a renewed token, a broken or odd answer: as the other calls."""
    client.request_token()
    users = ("<users><id>3</id><loginName>alice@example.com</loginName><extensions><extension>200</extension>"
             "</extensions></users><users><id>4</id><loginName>bob@example.com</loginName></users>")
    for body in (OK_NESTED + users, users + OK_NESTED):
        sim.faults({"operation": "listUsers", "body": answer("listUsers", body), "times": 1})
        listed = client.every_user(extensions=True)
        assert [(u.user_id, [e["extension"] for e in u.extensions]) for u in listed] == [(3, ["200"]), (4, [])]
    sim.expire_tokens()
    assert [u.user_id for u in client.every_user(extensions=False)] == [u["id"] for u in sim.state()["users"]]
    assert [c["status"] for c in sim.calls("listUsers")][-2:] == ["ERROR_UNAUTHORIZED", "OK"]
    for body, error in ((answer("listUsers", OK_NESTED + users)[:-60], "XML that does not parse"),
                        (answer("listUsers", OK_NESTED + "<users><loginName>x</loginName></users>"), "without a user"),
                        (answer("listUsers", OK_NESTED + "<users><id>abc</id></users>"), "not fit the WSDL"),
                        ('<?xml version="1.0"?><!DOCTYPE S:Envelope [<!ENTITY x "bob@example.com">]>'
                         + answer("listUsers", OK_NESTED + "<users><id>4</id><loginName>&x;</loginName></users>"),
                         "XML that declares entities")):
        sim.faults({"operation": "listUsers", "body": body, "times": 1})
        with pytest.raises(VerbaMalformedResponse, match=error):
            client.every_user(extensions=True)
    sim.faults({"operation": "listUsers", "http_status": 200, "body": "<html><title>Login</title></html>", "times": 1})
    with pytest.raises(VerbaMalformedResponse, match="HTML page titled 'Login'"):
        client.every_user(extensions=True)


def test_a_whole_list_may_take_longer_than_other_calls(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    sim.faults({"operation": "listUsers", "latency_ms": 3000, "times": 2})  # the client's timeout is 2 s
    assert len(client.every_user(extensions=False, timeout=10)) > 0
    with pytest.raises(VerbaTransportError):
        client.find_user_id("alice@example.com")  # the same thread, after: its own timeout again
    deadline = time.monotonic() + 10  # the simulator logs that call when it answers: let it, before the next test
    while len(sim.calls("listUsers")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sim.calls("listUsers")) == 2


def test_only_the_list_itself_may_take_longer_than_the_clients_timeout(sim: Sim, client: VerbaClient) -> None:
    """A Verba that takes the connection and never answers: the token request gives up after the client's 2 s,
    not after the whole-directory list's allowance (drift waited 300 s for a requestToken)."""
    sim.faults({"operation": "requestToken", "latency_ms": 4000, "times": 1})
    with pytest.raises(VerbaTransportError, match=r"requestToken to .* got no answer within 2 s"):
        client.every_user(extensions=False, timeout=60)  # before, it waited the 4 s out and went on
    sim.faults({"operation": "listUsers", "latency_ms": 2500, "times": 1})
    assert client.every_user(extensions=False, timeout=60)  # the list itself may take longer
