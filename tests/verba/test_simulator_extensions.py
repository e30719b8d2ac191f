"""The simulator's extension reads and edits for drift detection (issue 16, item 5), over raw HTTP.

listUsers answers each user's extensions unless skipExtensions is true (inferred from the documented
flag); listExtensions (parameters guessed, after listUsers'); PUT/DELETE /_sim/extensions/{eid}/{extension}
edit Verba behind the connector's back and never show in the call log.
"""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from tests.verba.helpers import Sim, envelope

EXTENSION_TAGS = ["eid", "environmentShortName", "extension", "id", "im", "recordingMode", "screenCaptureEnabled",
                  "video", "voice"]


def put(sim: Sim, number: str, eid: str = "0000", **fields: Any) -> dict[str, Any]:
    response = sim.http.put(f"/_sim/extensions/{eid}/{number}", json=fields)
    assert response.status_code in (200, 201), response.text
    return response.json()


def soap_return(sim: Sim, operation: str, token: str, inner: str) -> etree._Element:
    answer = sim.post_soap(envelope(operation, f"<token>{token}</token>{inner}"))
    assert answer.status_code == 200, answer.text
    found = etree.fromstring(answer.content).find(".//return")
    assert found is not None
    return found


def seed_three(sim: Sim) -> None:
    """alice (3) holds +15550100 and +15550101, bob (4) holds 200, 300 is unlinked, 0001 has its own +15550100."""
    put(sim, "+15550100", recordingMode="FULL", voice=True, im=False, video=False, screenCaptureEnabled=False,
        user_id=3)
    put(sim, "+15550101", recordingMode="ON_DEMAND", voice=True, im=True, user_id=3)
    put(sim, "200", recordingMode="FULL", voice=True, user_id=4)
    put(sim, "300", recordingMode="CONTROLLED", voice=True)
    put(sim, "+15550100", eid="0001", recordingMode="FULL", voice=True)


# listUsers: each user's extensions unless skipExtensions is true


def test_list_users_answers_each_users_extensions_shaped_like_get_extension(sim: Sim) -> None:
    seed_three(sim)
    token = sim.token()
    listed = soap_return(sim, "listUsers", token, "<filter><environmentFilter><eid>0000</eid><eidExact>1</eidExact>"
                         "</environmentFilter><loginName>alice@example.com</loginName>"
                         "<loginNameExact>1</loginNameExact></filter>")
    users = listed.findall("users")
    assert [u.findtext("id") for u in users] == ["3"]
    user = users[0]
    assert [child.tag for child in user] == sorted(child.tag for child in user)  # JAX-WS order
    extensions = user.findall("extensions")
    assert [e.findtext("extension") for e in extensions] == ["+15550100", "+15550101"]
    first = extensions[0]
    assert [child.tag for child in first] == EXTENSION_TAGS  # getExtension's fields, no nested user
    assert {child.tag: child.text for child in first} == {
        "eid": "0000", "environmentShortName": "default", "extension": "+15550100", "id": "1", "im": "false",
        "recordingMode": "FULL", "screenCaptureEnabled": "false", "video": "false", "voice": "true",
    }
    # Same fields as getExtension answers for the extension (less its <user>).
    got = soap_return(sim, "getExtension", token, "<environmentFilter><eid>0000</eid></environmentFilter>"
                      "<extension>+15550100</extension>").find("extension")
    assert got is not None
    assert {c.tag: c.text for c in got if c.tag != "user"} == {c.tag: c.text for c in first}
    # Fields never set are left out, as getExtension leaves them out.
    assert [child.tag for child in extensions[1]] == ["eid", "environmentShortName", "extension", "id", "im",
                                                      "recordingMode", "voice"]


@pytest.mark.parametrize("skip", ["<skipExtensions>true</skipExtensions>", "<skipExtensions>1</skipExtensions>"])
def test_skip_extensions_true_leaves_them_out(sim: Sim, skip: str) -> None:
    seed_three(sim)
    listed = soap_return(sim, "listUsers", sim.token(), f"<filter>{skip}</filter>")
    assert [u.findtext("id") for u in listed.findall("users")] == ["3", "4"]
    assert listed.findall("users/extensions") == []


def test_skip_extensions_false_or_absent_lists_them_and_a_user_without_any_has_none(sim: Sim) -> None:
    seed_three(sim)
    sim.http.post("/_sim/users", json={"id": 7, "loginName": "carol@example.com"}).raise_for_status()
    token = sim.token()
    for criteria in ("", "<skipExtensions>false</skipExtensions>", "<skipExtensions>0</skipExtensions>"):
        listed = soap_return(sim, "listUsers", token, f"<filter>{criteria}</filter>")
        held = {u.findtext("id"): [e.findtext("extension") for e in u.findall("extensions")]
                for u in listed.findall("users")}
        assert held == {"3": ["+15550100", "+15550101"], "4": ["200"], "7": []}
    bad = soap_return(sim, "listUsers", token, "<filter><skipExtensions>perhaps</skipExtensions></filter>")
    assert bad.findtext("status/statusCode") == "ERROR_ILLEGAL_ARGUMENT"


def test_just_count_lists_no_users_and_no_extensions(sim: Sim) -> None:
    seed_three(sim)
    listed = soap_return(sim, "listUsers", sim.token(), "<filter><justCount>1</justCount></filter>")
    assert listed.findtext("userCount") == "2" and listed.findall("users") == []


def test_create_user_answers_no_extensions(sim: Sim) -> None:
    created = soap_return(sim, "createUser", sim.token(), "<user><eid>0000</eid><loginName>erin@example.com</loginName>"
                          "</user>")
    assert created.findtext("user/id") and created.findall("user/extensions") == []


# listExtensions (guessed parameters)


def list_extensions(sim: Sim, token: str, criteria: str = "") -> etree._Element:
    return soap_return(sim, "listExtensions", token, f"<filter>{criteria}</filter>")


def numbers(answer: etree._Element) -> list[tuple[str | None, str | None]]:
    return [(e.findtext("eid"), e.findtext("extension")) for e in answer.findall("extensions")]


def test_list_extensions_filters_like_list_users(sim: Sim) -> None:
    seed_three(sim)
    token = sim.token()
    in_0000 = "<environmentFilter><eid>0000</eid><eidExact>1</eidExact></environmentFilter>"
    everything = list_extensions(sim, token)
    assert everything.findtext("status/statusCode") == "OK"
    assert numbers(everything) == [("0000", "+15550100"), ("0000", "+15550101"), ("0000", "200"), ("0000", "300"),
                                   ("0001", "+15550100")]
    assert numbers(list_extensions(sim, token, in_0000)) == [("0000", "+15550100"), ("0000", "+15550101"),
                                                             ("0000", "200"), ("0000", "300")]
    assert numbers(list_extensions(sim, token, "<environmentFilter><shortName>other</shortName></environmentFilter>")
                   ) == [("0001", "+15550100")]
    # extension: case-insensitive "contains", or exact with extensionExact
    assert numbers(list_extensions(sim, token, in_0000 + "<extension>555</extension>")) == [
        ("0000", "+15550100"), ("0000", "+15550101")]
    assert numbers(list_extensions(sim, token, in_0000 + "<extension>15550100</extension>"
                                   "<extensionExact>true</extensionExact>")) == []
    assert numbers(list_extensions(sim, token, in_0000 + "<extension>+15550100</extension>"
                                   "<extensionExact>true</extensionExact>")) == [("0000", "+15550100")]
    # userId: the extensions linked to that user
    assert numbers(list_extensions(sim, token, "<userId>3</userId>")) == [("0000", "+15550100"), ("0000", "+15550101")]
    assert numbers(list_extensions(sim, token, "<userId>99</userId>")) == []
    # justCount: the count only
    counted = list_extensions(sim, token, in_0000 + "<justCount>1</justCount>")
    assert counted.findtext("extensionCount") == "4" and counted.findall("extensions") == []
    assert list_extensions(sim, token, "<userId>4</userId><justCount>1</justCount>").findtext("extensionCount") == "1"


def test_list_extensions_answers_each_as_get_extension_in_jax_ws_order(sim: Sim) -> None:
    seed_three(sim)
    token = sim.token()
    answer = list_extensions(sim, token, "<extension>+15550100</extension><extensionExact>1</extensionExact>"
                                         "<environmentFilter><eid>0000</eid></environmentFilter>")
    assert [child.tag for child in answer] == ["extensions", "status"]  # payload before status, as getExtension
    listed = answer.find("extensions")
    got = soap_return(sim, "getExtension", token, "<environmentFilter><eid>0000</eid></environmentFilter>"
                      "<extension>+15550100</extension>").find("extension")
    assert listed is not None and got is not None
    assert [(e.tag, e.text) for e in listed.iterdescendants()] == [(e.tag, e.text) for e in got.iterdescendants()]
    assert listed.findtext("user/loginName") == "alice@example.com"
    counted = list_extensions(sim, token, "<justCount>1</justCount>")
    assert [child.tag for child in counted] == ["extensionCount", "status"]
    unlinked = list_extensions(sim, token, "<extension>300</extension><extensionExact>1</extensionExact>")
    assert unlinked.find("extensions/user") is None


@pytest.mark.parametrize(("criteria", "message"), [
    ("<justCount>maybe</justCount>", "Not a boolean"),
    ("<extension>1</extension><extensionExact>2</extensionExact>", "Not a boolean"),
    ("<userId>three</userId>", "userId must be an integer"),
    ("<environmentFilter><eid>9999</eid></environmentFilter>", "Unknown environment"),
    ("<environmentFilter/>", "Give exactly one of eid or environmentShortName"),
])
def test_list_extensions_refuses_a_bad_filter(sim: Sim, criteria: str, message: str) -> None:
    answer = list_extensions(sim, sim.token(), criteria)
    assert answer.findtext("status/statusCode") == "ERROR_ILLEGAL_ARGUMENT"
    assert message in (answer.findtext("status/message") or "")
    assert answer.findall("extensions") == [] and answer.find("extensionCount") is None


def test_list_extensions_needs_a_valid_token_and_is_logged(sim: Sim) -> None:
    answer = list_extensions(sim, "not-a-token")
    assert answer.findtext("status/statusCode") == "ERROR_UNAUTHORIZED"
    assert answer.findtext("status/message") == "This token is expired or never got authenticated."
    assert [c["status"] for c in sim.calls("listExtensions")] == ["ERROR_UNAUTHORIZED"]


def test_list_extensions_is_in_the_served_wsdl_with_its_guesses_marked(sim: Sim) -> None:
    wsdl = sim.http.get("/provisioning?wsdl").text
    for name in ('<xs:element name="listExtensions">', '<xs:complexType name="extensionFilter">',
                 '<xs:complexType name="getExtensionsResponse">', '<operation name="listExtensions">'):
        assert name in wsdl
    assert wsdl.count("guessed: the vendor's page was not found") >= 5


# PUT / DELETE /_sim/extensions/{eid}/{extension}


def test_put_creates_then_edits_only_the_fields_given(sim: Sim) -> None:
    created = sim.http.put("/_sim/extensions/0000/+15550100", json={"recordingMode": "FULL", "voice": True,
                                                                    "user_id": 3})
    assert created.status_code == 201
    assert created.json() == {"id": 1, "eid": "0000", "extension": "+15550100", "recordingMode": "FULL",
                              "voice": True, "im": None, "video": None, "screenCaptureEnabled": None, "user_id": 3}
    edited = sim.http.put("/_sim/extensions/0000/+15550100", json={"recordingMode": "ON_DEMAND", "im": True})
    assert edited.status_code == 200
    assert edited.json() == {**created.json(), "recordingMode": "ON_DEMAND", "im": True}
    assert sim.extension("+15550100") == edited.json()
    unlinked = sim.http.put("/_sim/extensions/0000/+15550100", json={"user_id": None, "voice": False})
    assert (unlinked.status_code, unlinked.json()["user_id"], unlinked.json()["voice"]) == (200, None, False)
    assert sim.http.put("/_sim/extensions/0000/+15550100", json={}).json() == unlinked.json()


def test_put_of_a_sip_uri_and_a_percent_encoded_plus(sim: Sim) -> None:
    assert sim.http.put("/_sim/extensions/0000/alice@example.com", json={"user_id": 3}).status_code == 201
    assert sim.http.put("/_sim/extensions/0000/%2B15550199", json={"voice": True}).status_code == 201
    assert sim.extension("alice@example.com") is not None and sim.extension("+15550199") is not None


def test_edits_are_what_soap_reads_and_are_not_soap_calls(sim: Sim) -> None:
    token = sim.token()
    create = ("<extension><eid>0000</eid><extension>+15550100</extension><recordingMode>FULL</recordingMode>"
              "<voice>1</voice><user><id>3</id></user></extension>")
    assert soap_return(sim, "createExtension", token, create).findtext("statusCode") == "OK"
    sim.http.delete("/_sim/calls").raise_for_status()

    put(sim, "+15550100", recordingMode="CONTROLLED", user_id=4)
    got = soap_return(sim, "getExtension", token, "<environmentFilter><eid>0000</eid></environmentFilter>"
                      "<extension>+15550100</extension>").find("extension")
    assert got is not None
    assert (got.findtext("recordingMode"), got.findtext("user/id"), got.findtext("voice")) == ("CONTROLLED", "4",
                                                                                                 "true")
    assert sim.http.delete("/_sim/extensions/0000/+15550100").status_code == 204
    assert sim.extension("+15550100") is None
    gone = soap_return(sim, "getExtension", token, "<environmentFilter><eid>0000</eid></environmentFilter>"
                       "<extension>+15550100</extension>")
    assert gone.find("extension") is None
    # Only the two getExtension calls are logged: the edits are not SOAP calls.
    assert [c["operation"] for c in sim.calls()] == ["getExtension", "getExtension"]


def test_delete_of_an_absent_extension_is_404_with_a_json_error(sim: Sim) -> None:
    for path in ("/_sim/extensions/0000/nope", "/_sim/extensions/9999/nope"):
        answer = sim.http.delete(path)
        assert answer.status_code == 404 and "nope" in answer.json()["error"]
    put(sim, "100", eid="0001", voice=True)
    assert sim.http.delete("/_sim/extensions/0000/100").status_code == 404  # lives in 0001 only
    assert sim.http.delete("/_sim/extensions/0001/100").status_code == 204
    assert sim.state()["extensions"] == []


def test_an_extension_deleted_by_hand_is_answered_as_missing_and_the_others_still_update(sim: Sim) -> None:
    seed_three(sim)
    assert sim.http.delete("/_sim/extensions/0000/+15550100").status_code == 204
    answer = {"status": "ERROR_NOT_FOUND", "message": "com.verba.web.extension.ExtensionNotFoundException: "
                                                     "{eid}:{extension}"}
    sim.http.post("/_sim/behaviour", json={"missing_extension": answer}).raise_for_status()
    token = sim.token()

    def update(number: str) -> etree._Element:
        return soap_return(sim, "updateExtension", token, f"<extension><eid>0000</eid><extension>{number}</extension>"
                           "<recordingMode>CONTROLLED</recordingMode><user><id>3</id></user></extension>")

    gone = update("+15550100")
    assert (gone.findtext("statusCode"), gone.findtext("message")) == (
        "ERROR_NOT_FOUND", "com.verba.web.extension.ExtensionNotFoundException: 0000:+15550100")
    kept = update("+15550101")
    assert (kept.findtext("statusCode"), kept.findtext("message")) == ("OK", None)
    read = soap_return(sim, "getExtension", token, "<environmentFilter><eid>0000</eid></environmentFilter>"
                       "<extension>+15550101</extension>")
    assert (read.findtext("status/statusCode"), read.findtext("extension/recordingMode")) == ("OK", "CONTROLLED")
    numbers = {(e["eid"], e["extension"]) for e in sim.state()["extensions"]}
    assert ("0000", "+15550100") not in numbers and ("0001", "+15550100") in numbers  # nothing created


@pytest.mark.parametrize(("body", "words"), [
    ({"colour": "red"}, ("unknown field 'colour'", "recordingMode, voice, im, video, screenCaptureEnabled, user_id")),
    ({"recording_mode": "FULL"}, ("unknown field 'recording_mode'",)),
    ({"voice": "yes"}, ("voice must be true, false or null", "'yes'")),
    ({"screenCaptureEnabled": 1}, ("screenCaptureEnabled must be true, false or null",)),
    ({"recordingMode": "SOMETIMES"}, ("recordingMode must be one of FULL, ON_DEMAND, CONTROLLED",)),
    ({"recordingMode": 1}, ("recordingMode must be one of",)),
    ({"user_id": "3"}, ("user_id must be an integer, or null to unlink", "'3'")),
    ({"user_id": True}, ("user_id must be an integer",)),
    ({"user_id": 3.0}, ("user_id must be an integer",)),
    ({"user_id": 99}, ("user_id 99 is not a Verba user",)),
    (["voice"], ("PUT a JSON object",)),
    ("FULL", ("PUT a JSON object",)),
])
def test_put_refuses_bad_input_with_a_clear_400_and_changes_nothing(
    sim: Sim, body: Any, words: tuple[str, ...]
) -> None:
    put(sim, "100", recordingMode="FULL", voice=True, user_id=3)
    before = sim.state()["extensions"]
    for number in ("100", "101"):  # an existing extension, and one that would be created
        answer = sim.http.put(f"/_sim/extensions/0000/{number}", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        for word in words:
            assert word in error, error
    assert sim.state()["extensions"] == before


def test_put_refuses_a_body_that_is_not_json_an_unknown_environment_and_a_user_of_another(sim: Sim) -> None:
    not_json = sim.http.put("/_sim/extensions/0000/100", content=b"{voice: true")
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    unknown_env = sim.http.put("/_sim/extensions/9999/100", json={"voice": True})
    assert unknown_env.status_code == 400 and "eid '9999' is not a seeded environment" in unknown_env.json()["error"]
    other = sim.http.put("/_sim/extensions/0001/100", json={"user_id": 3})
    assert other.status_code == 400 and "user_id 3 is a user of environment 0000, not 0001" in other.json()["error"]
    assert sim.state()["extensions"] == []


def test_reset_undoes_the_edits(sim: Sim) -> None:
    put(sim, "100", voice=True)
    sim.reset()
    assert sim.state()["extensions"] == []
