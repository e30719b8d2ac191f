"""Extension ownership end to end (simulator over real HTTP): no silent relink, no stolen number.

The simulator answers a missing extension in its most hostile shape (ERROR_GENERAL "Extension
not found", which looks like an outage) unless a test says otherwise.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from connector.config import Config
from connector.delivery.worker import Deliverer, WorkerPool
from connector.mapping import load_mapping
from connector.ops.preview import DryRun
from connector.ops.replay import preview
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from tests.plugins.simulator import drain, settled, user

X, Y = "+14155550100", "+14155550111"
USERS = [{"id": 3 + n, "loginName": name, "eid": "0000"}
         for n, name in enumerate(["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"])]
RECORDING = ("voice", "im", "video", "screenCaptureEnabled")


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return USERS


@pytest.fixture(autouse=True)
def hostile(simulator):
    simulator.http.post("/_sim/behaviour", json={"missing_extension": "error_general"}).raise_for_status()


def alice(*phones: str, **state: Any):
    return user("u-alice", "alice@example.com", phones=phones, **state)


def bob(*phones: str, **state: Any):
    return user("u-bob", "bob@example.com", phones=phones, **state)


def recording(ext: dict[str, Any]) -> bool:
    return any(ext[k] for k in RECORDING)


def writes(simulator, extension: str) -> list[dict[str, Any]]:
    return [c for c in simulator.calls() if c["operation"] in ("createExtension", "updateExtension")
            and c["extension"] == extension]


def make_deliverer(make_config, mapping: str = "mappings/default.toml", **delivery: Any) -> Deliverer:
    config: Config = make_config(mapping, delivery={"workers": 4, **delivery})
    return Deliverer(open_configured_store(config, create=True), open_client(config), load_mapping(config.mapping_file),
                     config.delivery)


def test_a_second_user_on_a_held_extension_is_a_conflict_and_never_relinks_it(deliverer, simulator):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([bob(X, Y)])
    drain(deliverer)

    extensions = simulator.extensions()
    assert extensions[X]["user_id"] == 3 and recording(extensions[X]), "alice keeps her extension"
    assert extensions[Y]["user_id"] == 4 and recording(extensions[Y]), "bob's other extension still goes through"
    assert all(c["user_id"] == 3 for c in writes(simulator, X))
    bob_event = deliverer.store.list_events(user="u-bob")[0]
    assert bob_event.state == EventState.DONE
    [conflict] = deliverer.store.open_conflicts()
    assert (conflict.extension, conflict.claimant.external_id, conflict.owner_user_id) == (X, "u-bob", 3)
    assert "test/u-alice (alice@example.com)" in conflict.message and "alice" in conflict.owner_login
    assert "remove the number from one of them" in conflict.message
    assert [e.id for e in deliverer.store.list_events(cause="extension_conflict")] == [bob_event.id]
    assert [x for x, _ in deliverer.store.extension_clashes()] == [X]
    assert [r.extension for r in deliverer.store.pushed_extensions("test", "u-bob")] == [Y]


def test_a_conflict_clears_itself_when_the_holder_lets_go(deliverer, simulator):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([bob(X)])
    drain(deliverer)
    deliverer.store.enqueue([alice(Y)])  # alice's number changes: X is free for bob
    drain(deliverer)

    extensions = simulator.extensions()
    assert extensions[X]["user_id"] == 4 and recording(extensions[X])
    assert extensions[Y]["user_id"] == 3 and recording(extensions[Y])
    assert deliverer.store.open_conflicts() == [] and deliverer.store.extension_clashes() == []
    assert [e.change.cause for e in deliverer.store.list_events(user="u-bob")][0] == "extension_released"
    handovers = [a for a in deliverer.store.list_audit() if a.action == "hand_over"]
    assert [(a.detail["extension"], a.detail["from_user_id"], a.detail["user_id"]) for a in handovers] == [(X, 3, 4)]


@pytest.mark.parametrize("leaver_first", [True, False])
@pytest.mark.parametrize("how", [{"kind": "deactivate"}, {"kind": "delete"}, {"active": False}])
def test_a_desk_number_passed_from_a_leaver_to_a_joiner_ends_recorded_for_the_joiner(deliverer, simulator,
                                                                                     leaver_first, how):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    leaver, joiner = alice(X, **how), bob(X)
    deliverer.store.enqueue([leaver, joiner] if leaver_first else [joiner, leaver])
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == 4 and recording(ext), "the joiner is recorded"
    assert deliverer.store.count_by_state()[EventState.DEAD] == 0
    assert deliverer.store.open_conflicts() == []
    assert all(c["user_id"] is not None for c in simulator.calls("updateExtension"))


def test_deprovisioning_never_stops_an_extension_now_linked_to_someone_else(deliverer, simulator):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    # Someone relinked X to bob in the Verba UI; then alice leaves.
    simulator.http.post("/_sim/reset").raise_for_status()
    simulator.http.post("/_sim/behaviour", json={"missing_extension": "error_general"}).raise_for_status()
    client = deliverer.client
    record = deliverer.store.pushed_extensions("test", "u-alice")[0]
    client.create_extension(type(record)(**{**record.to_dict(), "user_id": 4}))
    deliverer.store.enqueue([alice(X, kind="deactivate")])
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == 4 and recording(ext), "bob's recording is untouched"
    assert simulator.calls("updateExtension") == []
    [left] = [a for a in deliverer.store.list_audit() if a.action == "left_alone"]
    assert left.detail["extension"] == X and left.detail["from_user_id"] == 4
    assert "Verba shows it linked to Verba user 4 (bob@example.com)" in left.reason
    deactivated = deliverer.store.list_events(user="u-alice")[0]
    assert deactivated.state == EventState.DONE
    assert [a.id for a in deliverer.store.audit_of_event(deactivated.id)] == [left.id]  # `events show` says why


@pytest.fixture
def seed_extensions(request) -> list[dict[str, Any]]:
    """X made by hand in Verba and linked to dave, whom no source of the connector manages."""
    if "unmanaged" not in request.node.name:
        return []
    return [{"eid": "0000", "extension": X, "recordingMode": "FULL", "voice": True, "user_id": 6}]


def test_an_extension_of_an_unmanaged_user_is_held_by_default(deliverer, simulator):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    assert simulator.extensions()[X]["user_id"] == 6
    [conflict] = deliverer.store.open_conflicts()
    assert conflict.owner_user_id == 6 and conflict.owner_login == "dave@example.com"
    assert conflict.owner_claimant is None
    assert (
        'on_conflict = "take_over"' in conflict.message
        and "events replay --cause extension_conflict" in conflict.message
    )


def test_take_over_policy_relinks_an_unmanaged_extension_and_audits_it(make_config, simulator, tmp_path):
    mapping = tmp_path / "take_over.toml"
    mapping.write_text(Path("mappings/default.toml").read_text() + '\n[ownership]\non_conflict = "take_over"\n')
    deliverer = make_deliverer(make_config, str(mapping))
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    assert simulator.extensions()[X]["user_id"] == 3
    [taken] = [a for a in deliverer.store.list_audit() if a.action == "take_over"]
    assert (taken.actor, taken.detail["extension"], taken.detail["from_user_id"], taken.detail["user_id"]) == (
        "connector", X, 6, 3)
    assert deliverer.store.open_conflicts() == []


@pytest.mark.parametrize("shape", ["ok_empty", "error_general", "error_illegal_argument"])
def test_a_user_no_rule_records_with_numbers_verba_lacks_settles_at_once_without_a_write(
        make_config, simulator, tmp_path, shape):
    simulator.http.post("/_sim/behaviour", json={"missing_extension": shape}).raise_for_status()
    mapping = tmp_path / "record_nobody.toml"
    mapping.write_text(
        Path("mappings/default.toml").read_text().replace('[defaults]\n', '[defaults]\nrecord = false\n')
    )
    deliverer = make_deliverer(make_config, str(mapping))
    deliverer.store.enqueue([alice(X, Y)])
    drain(deliverer)
    [event] = deliverer.store.list_events()
    assert (event.state, event.attempts) == (EventState.DONE, 1)
    assert simulator.calls("createExtension") == simulator.calls("updateExtension") == []
    assert {c["status"] for c in simulator.calls("getExtension")} == {"OK" if shape == "ok_empty" else shape.upper()}


@pytest.mark.parametrize("shape", ["ok_empty", "error_general", "error_illegal_argument"])
def test_a_number_noted_as_pushed_but_never_created_does_not_block_the_rest(deliverer, simulator, shape):
    simulator.http.post("/_sim/behaviour", json={"missing_extension": shape}).raise_for_status()
    deliverer.store.enqueue([alice(X, Y)])
    drain(deliverer)
    simulator.http.post("/_sim/reset").raise_for_status()  # as if X's and Y's creates never landed...
    simulator.http.post("/_sim/behaviour", json={"missing_extension": shape}).raise_for_status()
    deliverer.client.create_extension(deliverer.store.pushed_extensions("test", "u-alice")[1])  # ...but Y's did
    deliverer.store.enqueue([alice(X, Y, kind="deactivate")])
    drain(deliverer)
    assert deliverer.store.count_by_state()[EventState.DONE] == 2
    ext = simulator.extensions()
    assert X not in ext and ext[Y]["user_id"] == 3 and not recording(ext[Y])


def test_an_ambiguous_get_extension_is_cross_checked_with_list_users(deliverer, simulator):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    simulator.fault(operation="getExtension", status="ERROR_GENERAL", message="java.lang.NullPointerException")
    deliverer.store.enqueue([alice(X, kind="deactivate")])
    drain(deliverer)
    ext = simulator.extensions()[X]
    assert ext["user_id"] == 3 and not recording(ext), "listUsers says alice holds it: stopped"
    lookups = [c for c in simulator.calls("listUsers")]
    assert lookups, "listUsers was asked who holds the extension"


def test_verba_contradicting_itself_dead_letters_as_verba_ambiguous_after_three_tries(deliverer, simulator):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    # getExtension shows X linked to alice, then updateExtension says there is no such extension.
    simulator.fault(operation="updateExtension", status="ERROR_GENERAL", message=f"Extension not found: 0000:{X}")
    deliverer.store.enqueue([alice(X, kind="deactivate")])
    drain(deliverer)
    event = deliverer.store.list_events()[0]
    assert (event.state, event.last_cause, event.attempts) == (EventState.DEAD, "verba_ambiguous", 3)
    assert "updateExtension says it does not exist" in (event.last_error or "")
    assert recording(simulator.extensions()[X]), "nothing was silently settled"


def test_an_unclear_get_extension_nobody_holds_means_nothing_to_stop(deliverer, simulator):
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    simulator.http.post("/_sim/reset").raise_for_status()
    simulator.fault(operation="getExtension", status="ERROR_GENERAL", message="java.lang.NullPointerException")
    deliverer.store.enqueue([alice(X, kind="deactivate")])
    drain(deliverer)
    assert deliverer.store.list_events()[0].state == EventState.DONE
    assert simulator.calls("updateExtension") == [] and simulator.calls("listUsers")


def test_a_re_created_user_racing_its_old_self_always_ends_recorded(make_config, simulator):
    """The old id's delete and the new id's create, in parallel on 4 workers, 20 times over."""
    deliverer = make_deliverer(make_config, guard_max_count=100)  # 20 deletes at once are intended here
    numbers = [f"+1415555{n:04d}" for n in range(20)]
    deliverer.store.enqueue([user(f"old-{n}", "alice@example.com", phones=(x,)) for n, x in enumerate(numbers)])
    drain(deliverer)
    changes = []
    for n, x in enumerate(numbers):
        changes += [user(f"old-{n}", "alice@example.com", phones=(x,), kind="delete"),
                    user(f"new-{n}", "bob@example.com", phones=(x,))]
    deliverer.store.enqueue(changes)
    pool = WorkerPool(deliverer, 4, 0.01)
    pool.start()
    try:
        settled(deliverer)
    finally:
        pool.stop(10)
    extensions = simulator.extensions()
    assert [x for x in numbers if extensions[x]["user_id"] != 4 or not recording(extensions[x])] == []
    assert deliverer.store.count_by_state()[EventState.DEAD] == 0


MAIN = "+1 (212) 555-0142"


def test_two_users_on_one_main_number_keep_their_suffixes_and_are_both_recorded(deliverer, simulator):
    deliverer.store.enqueue([alice(f"{MAIN} x101"), bob(f"{MAIN} ext. 102")])
    drain(deliverer)
    extensions = simulator.extensions()
    assert extensions["+12125550142;ext=101"]["user_id"] == 3 and recording(extensions["+12125550142;ext=101"])
    assert extensions["+12125550142;ext=102"]["user_id"] == 4 and recording(extensions["+12125550142;ext=102"])
    assert deliverer.store.open_conflicts() == []


def test_a_mapping_that_drops_suffixes_reports_the_merge_instead_of_relinking(make_config, simulator, tmp_path):
    mapping = tmp_path / "drop.toml"
    mapping.write_text(Path("mappings/default.toml").read_text().replace('suffix = "keep"', 'suffix = "drop"'))
    deliverer = make_deliverer(make_config, str(mapping))
    deliverer.store.enqueue([alice(f"{MAIN} x101")])
    drain(deliverer)
    deliverer.store.enqueue([bob(f"{MAIN} x102")])
    drain(deliverer)
    assert simulator.extensions()["+12125550142"]["user_id"] == 3
    assert all(c["user_id"] == 3 for c in writes(simulator, "+12125550142"))
    [conflict] = deliverer.store.open_conflicts()
    assert (conflict.extension, conflict.claimant.external_id) == ("+12125550142", "u-bob")


def test_two_users_waiting_on_one_number_get_it_in_the_order_they_claimed_it(deliverer, simulator):
    carol = user("u-carol", "carol@example.com", phones=(X,))
    deliverer.store.enqueue([carol])
    drain(deliverer)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([bob(X)])
    drain(deliverer)
    assert len(deliverer.store.open_conflicts()) == 2
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(X,), kind="deactivate")])
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == 3 and recording(ext), "alice claimed it first, so she gets it"
    [conflict] = deliverer.store.open_conflicts()
    assert conflict.claimant.external_id == "u-bob" and conflict.owner_user_id == 3


def test_a_later_claimant_pushed_first_after_the_leaver_lets_go_leaves_the_number_to_the_first(deliverer, simulator):
    """Carol holds X; bob, then alice, wait for it; carol leaves, which wakes both, alice first (the wake-ups come in
    the order of their ids). Alice waits behind bob, and her push records X as seen linked to carol. That must not
    hide that carol let X go: bob gets it handed over, rather than a conflict saying carol never claimed it through
    the connector."""
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(X,))])
    drain(deliverer)
    deliverer.store.enqueue([bob(X)])
    drain(deliverer)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=(X,), kind="deactivate")])
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == 4 and recording(ext), "bob claimed it first, so he gets it"
    [conflict] = deliverer.store.open_conflicts()
    assert conflict.claimant.external_id == "u-alice"
    assert [a.action for a in deliverer.store.list_audit() if a.action == "hand_over"] == ["hand_over"]


@pytest.mark.parametrize("how", [{"kind": "delete"}, {"kind": "upsert"}])
def test_a_user_who_stops_waiting_for_a_number_gives_up_its_place_in_the_queue(deliverer, simulator, how):
    """Alice holds X; bob waits for it, then leaves (or drops the number) before ever holding it: his change
    sends nothing to Verba, but must still give up his claim, or carol, who waits behind him, never gets X."""
    carol = user("u-carol", "carol@example.com", phones=(X,))
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([bob(X)])
    drain(deliverer)
    deliverer.store.enqueue([carol])
    drain(deliverer)
    assert len(deliverer.store.open_conflicts()) == 2
    calls = len(simulator.calls())
    deliverer.store.enqueue([bob(**how)])  # no number left: nothing to write in Verba
    drain(deliverer)
    assert len(simulator.calls()) == calls, "bob held nothing in Verba: his change sends nothing"
    assert deliverer.store.claimed("test", "u-bob") == set()
    deliverer.store.enqueue([alice(Y)])  # alice lets X go
    drain(deliverer)

    ext = simulator.extensions()[X]
    assert ext["user_id"] == 5 and recording(ext), "carol waited for X and nobody before her still wants it"
    assert deliverer.store.open_conflicts() == []


def groups_mapping(tmp_path: Path) -> str:
    mapping = tmp_path / "groups.toml"
    mapping.write_text(Path("mappings/default.toml").read_text() + (
        '\n[[rules]]\nwhen = { group = "Full" }\nset = { recordingMode = "FULL", voice = true, im = true, '
        'video = false, screenCaptureEnabled = false }\n'))
    return str(mapping)


def test_two_sources_of_one_verba_user_wanting_other_settings_is_a_conflict_not_a_silent_overwrite(
        make_config, simulator, tmp_path):
    """Entra and Okta both provision alice during a migration, in different groups: the later source's push
    must not silently turn off what the first records (im here); it waits in a conflict that says why and how
    to resolve it, and gets the number once the first source lets go."""
    deliverer = make_deliverer(make_config, groups_mapping(tmp_path))
    entra = alice(X, groups=["Full"])
    okta = dataclasses.replace(alice(X), source="okta", external_id="00u1")
    deliverer.store.enqueue([entra])
    drain(deliverer)
    deliverer.store.enqueue([okta])
    drain(deliverer)

    assert simulator.extensions()[X]["im"] is True and simulator.extensions()[X]["user_id"] == 3
    assert [c["im"] for c in writes(simulator, X)] == [True], "okta's push wrote nothing"
    [conflict] = deliverer.store.open_conflicts()
    assert (conflict.extension, conflict.claimant.source, conflict.owner_user_id) == (X, "okta", 3)
    assert "test/u-alice (alice@example.com), another source of the same Verba user, claimed it first" in (
        conflict.message)
    assert "(im False for okta/00u1, True for test/u-alice)" in conflict.message
    assert conflict.message.endswith("make the two sources agree (the same groups or attributes: `connector mapping "
                                     "test` shows what decides each), or remove the number from one of them; the "
                                     "conflict then clears itself")
    [previewed] = DryRun(deliverer.store, deliverer.client, deliverer.mapping).preview([okta]).items
    assert (previewed.outcome, previewed.extension) == ("conflict", X), previewed
    assert "another source of the same Verba user, claimed it first" in previewed.detail

    deliverer.store.enqueue([alice(kind="deactivate")])  # entra lets go: okta's settings are written
    drain(deliverer)
    assert simulator.extensions()[X]["im"] is False and simulator.extensions()[X]["voice"] is True
    assert deliverer.store.open_conflicts() == []


def test_a_twin_conflict_clears_itself_when_the_first_source_comes_to_agree(make_config, simulator, tmp_path):
    deliverer = make_deliverer(make_config, groups_mapping(tmp_path))
    deliverer.store.enqueue([alice(X, groups=["Full"])])  # entra's, accepted first
    drain(deliverer)
    deliverer.store.enqueue([dataclasses.replace(alice(X), source="okta", external_id="00u1")])
    drain(deliverer)
    assert [c.claimant.source for c in deliverer.store.open_conflicts()] == ["okta"]
    deliverer.store.enqueue([alice(X)])  # entra's alice leaves the group: both now want im off
    drain(deliverer)  # entra's push writes it and wakes okta's, which finds nothing left to differ
    assert deliverer.store.open_conflicts() == []
    assert simulator.extensions()[X]["im"] is False
    # Nothing was released: entra still holds it; what woke okta's is that entra wrote its settings.
    assert [e.change.cause for e in deliverer.store.list_events(user="okta/00u1")][0] == "extension_settings_changed"


def test_the_first_source_changing_its_settings_puts_the_agreeing_second_in_a_conflict(make_config, simulator,
                                                                                       tmp_path):
    """Entra and Okta agree on alice's X; then Entra's rules record im too. Entra claimed X first, so its settings
    are written; Okta's alice, done before, must not stay done while Verba records her otherwise: she is pushed
    again and waits in a conflict that says why, until the sources agree again."""
    deliverer = make_deliverer(make_config, groups_mapping(tmp_path))
    deliverer.store.enqueue([alice(X)])  # entra's, accepted first
    drain(deliverer)
    deliverer.store.enqueue([dataclasses.replace(alice(X), source="okta", external_id="00u1")])
    drain(deliverer)
    assert deliverer.store.open_conflicts() == []

    joined = alice(X, groups=["Full"])  # entra's alice joins the group that records im
    [previewed] = DryRun(deliverer.store, deliverer.client, deliverer.mapping).preview([joined]).items
    assert (previewed.outcome, previewed.extension) == ("update", X), previewed
    assert previewed.detail.endswith("; then okta/00u1 (alice@example.com), another source of the same Verba user "
                                     "with the settings it had, waits in a conflict"), previewed.detail
    deliverer.store.enqueue([joined])
    drain(deliverer)
    assert simulator.extensions()[X]["im"] is True, "the first claim's settings are written"
    [conflict] = deliverer.store.open_conflicts()
    assert (conflict.extension, conflict.claimant.source) == (X, "okta")
    assert "another source of the same Verba user, claimed it first with other settings (im False for okta/00u1, " \
           "True for test/u-alice)" in conflict.message
    newest = deliverer.store.list_events(user="okta/00u1")[0]
    assert (newest.change.cause, newest.state) == ("extension_settings_changed", EventState.DONE)
    [line] = preview(deliverer.store, deliverer.mapping, newest).lines  # as `events show` and a dry run say it
    assert "(in conflict since " in line and ", recorded with another source's settings: extension " in line, line
    assert [c["im"] for c in writes(simulator, X)][-1] is True, "okta's second push wrote nothing to X"

    deliverer.store.enqueue([alice(X)])  # entra's alice leaves the group: both want im off again
    drain(deliverer)
    assert deliverer.store.open_conflicts() == [] and simulator.extensions()[X]["im"] is False
    assert len(deliverer.store.list_events(user="okta/00u1")) == 3, "one push of okta per change of entra's"
    history = [e for e in reversed(deliverer.store.list_audit()) if e.action.startswith("conflict")]
    assert [(e.action, e.detail["user"], e.detail["extension"]) for e in history] == [
        ("conflict", "okta/00u1", X), ("conflict_cleared", "okta/00u1", X)], "its history outlives the conflict"
    assert history[0].event_ids == (newest.id,) and "claimed it first with other settings" in history[0].reason


def test_a_second_source_keeps_off_the_first_s_settings_when_the_store_forgot_who_holds_the_extension(
        make_config, simulator, tmp_path):
    """A drift check that saw the extension gone or relinked forgets who holds it; Verba links it to alice again
    (an admin undid a change). Okta's push then learns the holder from Verba itself, and must still keep the
    first source's settings, as its dry run says, instead of writing its own once."""
    deliverer = make_deliverer(make_config, groups_mapping(tmp_path))
    deliverer.store.enqueue([alice(X, groups=["Full"])])  # entra's, accepted first: im on
    drain(deliverer)
    deliverer.store.forget_owners([X])
    okta = dataclasses.replace(alice(X), source="okta", external_id="00u1")
    [previewed] = DryRun(deliverer.store, deliverer.client, deliverer.mapping).preview([okta]).items
    deliverer.store.enqueue([okta])
    drain(deliverer)

    accepted = [(c["operation"], c["im"]) for c in writes(simulator, X) if c["status"] == "OK"]
    assert accepted == [("createExtension", True)], "okta's push wrote nothing (its createExtension was refused)"
    assert simulator.extensions()[X]["im"] is True
    [conflict] = deliverer.store.open_conflicts()
    assert (conflict.extension, conflict.claimant.source, conflict.owner_user_id) == (X, "okta", 3)
    assert "claimed it first with other settings (im False for okta/00u1, True for test/u-alice)" in conflict.message
    assert previewed.outcome == "conflict", "the dry run said so before"


def test_a_first_source_whose_write_verba_refused_keeps_nothing_from_the_second(make_config, simulator, tmp_path):
    """The first source's create was refused (a dead letter): Verba holds nothing of its settings, so the second
    source of the same Verba user writes its own instead of waiting for ever behind a record never written."""
    deliverer = make_deliverer(make_config, groups_mapping(tmp_path))
    simulator.fault(operation="createExtension", status="ERROR_ILLEGAL_ARGUMENT", message="Unknown mode", times=1)
    deliverer.store.enqueue([alice(X, groups=["Full"])])
    drain(deliverer)
    assert deliverer.store.list_events()[0].state is EventState.DEAD
    deliverer.store.enqueue([dataclasses.replace(alice(X), source="okta", external_id="00u1")])
    drain(deliverer)
    assert deliverer.store.open_conflicts() == []
    assert simulator.extensions()[X]["user_id"] == 3 and simulator.extensions()[X]["im"] is False


def test_two_sources_of_one_verba_user_wanting_the_same_settings_share_the_extension(make_config, simulator):
    deliverer = make_deliverer(make_config)
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    deliverer.store.enqueue([dataclasses.replace(alice(X), source="okta", external_id="00u1")])
    drain(deliverer)
    assert deliverer.store.open_conflicts() == []
    assert simulator.extensions()[X]["user_id"] == 3 and recording(simulator.extensions()[X])


def test_a_conflict_behind_a_held_leaver_says_to_approve_its_change(deliverer, simulator):
    """The holder's leaving change waits for an operator (held by a guard): the joiner's conflict names that event and
    the approval that lets the number go, not only a fix at the source (where the holder already left)."""
    deliverer.store.enqueue([alice(X)])
    drain(deliverer)
    [held] = deliverer.store.enqueue([alice(X, kind="deactivate")], state=EventState.HELD)
    deliverer.store.enqueue([bob(X)])
    drain(deliverer)
    [conflict] = deliverer.store.open_conflicts()
    assert f"newest change (event {held}, deactivate) is held" in conflict.message
    assert f"approving it (`connector events approve {held} --reason R`) clears the conflict" in conflict.message

    deliverer.store.requeue([held], time.time(), approve=True)
    drain(deliverer)
    assert simulator.extensions()[X]["user_id"] == 4 and deliverer.store.open_conflicts() == []


def test_a_user_recorded_again_no_longer_counts_toward_a_stop_recording_burst(make_config, simulator):
    """The guard counts users whose recording stops within its window: one re-enabled since is recorded, so a
    later leaver is judged without it (before, the re-enabled user's stop still counted and held the leaver)."""
    deliverer = make_deliverer(make_config, guard_max_count=1, guard_max_share=0.0)
    deliverer.store.enqueue([alice(X), bob(Y)])
    drain(deliverer)
    deliverer.store.enqueue([alice(X, kind="deactivate")])
    drain(deliverer)
    deliverer.store.enqueue([alice(X)])  # re-enabled: recorded again
    drain(deliverer)
    deliverer.store.enqueue([bob(Y, kind="deactivate")])
    drain(deliverer)
    assert deliverer.store.count_by_state()[EventState.HELD] == 0
    extensions = simulator.extensions()
    assert recording(extensions[X]) and not recording(extensions[Y])
