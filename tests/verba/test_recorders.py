"""applyExtensionConfiguration (issue 16, item 6): the simulator's recording servers take the extension table,
and VerbaClient reads each server's status."""

from __future__ import annotations

from lxml import etree

from connector.verba import VerbaClient
from connector.verba.client import RecorderStatus
from tests.verba.helpers import Sim, envelope, record


def recorders(sim: Sim) -> dict[str, dict[str, object]]:
    return {r["location"]: r for r in sim.state()["recorders"]}


def test_the_recorders_take_the_table_once_it_changed_and_each_answers(sim: Sim, client: VerbaClient) -> None:
    assert recorders(sim) == {"recorder-1": {"location": "recorder-1", "eid": None, "status": "OK",
                                             "message": None, "in_step": False}}
    assert client.apply_extension_configuration() == [RecorderStatus("recorder-1", None, "OK", None)]
    assert recorders(sim)["recorder-1"]["in_step"] is True
    assert client.apply_extension_configuration() == []  # nothing changed since: no server to push to
    client.create_extension(record("+15550100", user_id=3))
    assert recorders(sim)["recorder-1"]["in_step"] is False
    assert client.apply_extension_configuration() == [RecorderStatus("recorder-1", None, "OK", None)]


def test_a_failing_recorder_is_answered_and_tried_again_until_it_takes_the_table(sim: Sim, client: VerbaClient) -> None:
    failing = sim.http.put("/_sim/recorders/rec-b", json={"status": "ERROR_GENERAL", "message": "disk full"})
    assert failing.json() == {"location": "rec-b", "eid": None, "status": "ERROR_GENERAL", "message": "disk full",
                              "in_step": False}
    assert client.apply_extension_configuration() == [
        RecorderStatus("recorder-1", None, "OK", None), RecorderStatus("rec-b", None, "ERROR_GENERAL", "disk full")]
    assert client.apply_extension_configuration() == [RecorderStatus("rec-b", None, "ERROR_GENERAL", "disk full")]
    sim.http.put("/_sim/recorders/rec-b", json={"status": "OK"}).raise_for_status()
    assert client.apply_extension_configuration() == [RecorderStatus("rec-b", None, "OK", None)]
    assert all(r["in_step"] for r in recorders(sim).values())
    assert [c["status"] for c in sim.calls("applyExtensionConfiguration")] == ["OK"] * 3
    for bad in ({"status": 1}, {"message": "x"}, {"status": "OK", "colour": "red"}, ["OK"]):
        assert sim.http.put("/_sim/recorders/rec-b", json=bad).status_code == 400


def test_the_documented_parameters_choose_the_servers_and_the_statuses(sim: Sim) -> None:
    sim.http.put("/_sim/recorders/rec-b", json={"status": "OK"}).raise_for_status()
    sim.http.put("/_sim/recorders/rec-c", json={"status": "ERROR_GENERAL", "message": "offline"}).raise_for_status()
    token = sim.token()

    def apply(inner: str) -> list[tuple[str | None, str | None]]:
        answer = etree.fromstring(sim.post_soap(envelope("applyExtensionConfiguration", f"<token>{token}</token>"
                                                         + inner)).content)
        assert answer.findtext(".//return/status/statusCode") == "OK"
        return [(s.findtext("location"), s.findtext("status/statusCode")) for s in answer.iterfind(".//statuses")]

    only = "<theseServersOnly><location>rec-b</location></theseServersOnly>"
    assert apply(only + "<returnSuccessfulStatuses>true</returnSuccessfulStatuses>") == [("rec-b", "OK")]
    assert apply("") == [("rec-c", "ERROR_GENERAL")]  # failures only by default; rec-b has the table now
    both = only + "<theseServersOnly><location>rec-c</location></theseServersOnly>"
    forced = ("<returnSuccessfulStatuses>1</returnSuccessfulStatuses>"
              "<forceEvenIfNotRegistered>1</forceEvenIfNotRegistered>")
    assert apply(both + forced) == [("rec-b", "OK"), ("rec-c", "ERROR_GENERAL")]
    expired = sim.post_soap(envelope("applyExtensionConfiguration", "<token>nope</token>"))
    assert etree.fromstring(expired.content).findtext(".//statusCode") == "ERROR_UNAUTHORIZED"
