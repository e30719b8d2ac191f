"""A number an admin relinked by hand in Verba is never silently moved back by a push (DESIGN.md invariant 6).

The connector wrote X for alice (Verba user 3); an admin then linked X to dave (Verba user 6) in Verba. Before, any
change of alice's records (a rule now records her ON_DEMAND) sent one updateExtension naming alice: X was relinked to
her, dave lost it, and nothing was audited. Now the push asks Verba who holds X first, and the ownership policy
decides as for a number found held by another on creation. Also: a login renamed at the source to another Verba
user's is audited as that when its numbers follow it, and a conflict between two users over one number names the fix
for a line they truly share (simulator over real HTTP, on both stores).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.config import Config
from connector.store import EventState
from tests.plugins.simulator import Simulator, delivering, drain, user

X = "+14155550100"
DAVE = 6  # a Verba user no source of the connector manages
TRADER = '\n[[rules]]\nwhen = { attribute = "displayName", equals = "Trader" }\nset = { recordingMode = "ON_DEMAND" }\n'


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 3 + n, "loginName": name, "eid": "0000"}
            for n, name in enumerate(["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"])]


def mapping(tmp_path: Path, ownership: str = "") -> str:
    """The default mapping, with a rule that records Traders ON_DEMAND (and `ownership`, an [ownership] table)."""
    path = tmp_path / "trader.toml"
    path.write_text(Path("mappings/default.toml").read_text() + TRADER + ownership)
    return str(path)


def alice(**state: Any) -> Any:
    return user("u-alice", "alice@example.com", phones=(X,), **state)


def writes(simulator: Simulator) -> list[dict[str, Any]]:
    return [c for c in simulator.calls() if c["operation"] in ("createExtension", "updateExtension")]


def audited(deliverer: Any, action: str) -> list[Any]:
    return [a for a in deliverer.store.list_audit() if a.action == action]


def test_a_changed_record_never_moves_a_number_relinked_by_hand_back(
        make_config: Callable[..., Config], simulator: Simulator, store_url: str, tmp_path: Path) -> None:
    for deliverer in delivering(make_config(mapping(tmp_path), store={"url": store_url})):
        deliverer.store.enqueue([alice()])
        drain(deliverer)
        simulator.edit_extension(X, user_id=DAVE)  # an admin relinks it in Verba
        simulator.clear_calls()
        deliverer.store.enqueue([alice(displayName="Trader")])
        drain(deliverer)

        ext = simulator.extensions()[X]
        assert (ext["user_id"], ext["recordingMode"]) == (DAVE, "FULL"), "Verba keeps the hand link as it was"
        assert writes(simulator) == [], "nothing was written"
        assert [c["operation"] for c in simulator.calls()][:1] == ["getExtension"]
        [conflict] = deliverer.store.open_conflicts()
        assert (conflict.extension, conflict.claimant.external_id, conflict.owner_user_id, conflict.owner_login) == (
            X, "u-alice", DAVE, "dave@example.com")
        assert conflict.message.startswith(f"extension {X} is linked to Verba user 6 (dave@example.com): "), (
            conflict.message)
        [entry] = audited(deliverer, "conflict")
        assert (entry.detail["extension"], entry.detail["user"], entry.detail["holder"]) == (X, "test/u-alice", DAVE)
        event = deliverer.store.list_events(user="u-alice")[0]
        assert event.state is EventState.DONE
        assert [e.id for e in deliverer.store.list_events(cause="extension_conflict")] == [event.id]


def test_with_take_over_a_number_relinked_by_hand_is_taken_over_and_audited(
        make_config: Callable[..., Config], simulator: Simulator, store_url: str, tmp_path: Path) -> None:
    take_over = mapping(tmp_path, '\n[ownership]\non_conflict = "take_over"\n')
    for deliverer in delivering(make_config(take_over, store={"url": store_url})):
        deliverer.store.enqueue([alice()])
        drain(deliverer)
        simulator.edit_extension(X, user_id=DAVE)
        deliverer.store.enqueue([alice(displayName="Trader")])
        drain(deliverer)

        ext = simulator.extensions()[X]
        assert (ext["user_id"], ext["recordingMode"]) == (3, "ON_DEMAND")
        [taken] = audited(deliverer, "take_over")
        assert (taken.detail["extension"], taken.detail["from_user_id"], taken.detail["from_login"],
                taken.detail["user_id"]) == (X, DAVE, "dave@example.com", 3)
        assert taken.reason == 'the holder is not managed by the connector and [ownership] on_conflict = "take_over"'
        assert deliverer.store.open_conflicts() == []


def test_a_push_for_another_number_never_moves_one_relinked_by_hand_back_either(
        make_config: Callable[..., Config], simulator: Simulator, tmp_path: Path) -> None:
    """alice gets a second number: the one she had, its record unchanged but relinked by hand since, stays with dave."""
    y = "+14155550111"
    for deliverer in delivering(make_config(mapping(tmp_path))):
        deliverer.store.enqueue([alice()])
        drain(deliverer)
        simulator.edit_extension(X, user_id=DAVE)
        simulator.clear_calls()
        deliverer.store.enqueue([user("u-alice", "alice@example.com", phones=(X, y))])
        drain(deliverer)

        assert (simulator.extensions()[X]["user_id"], simulator.extensions()[y]["user_id"]) == (DAVE, 3)
        assert [c["extension"] for c in writes(simulator)] == [y]
        assert [(c.extension, c.owner_user_id) for c in deliverer.store.open_conflicts()] == [(X, DAVE)]


@pytest.mark.parametrize("by_hand", ["unlinked", "deleted"])
def test_a_number_nobody_holds_any_more_is_written_for_its_user_as_before(
        make_config: Callable[..., Config], simulator: Simulator, tmp_path: Path, by_hand: str) -> None:
    for deliverer in delivering(make_config(mapping(tmp_path))):
        deliverer.store.enqueue([alice()])
        drain(deliverer)
        if by_hand == "unlinked":
            simulator.edit_extension(X, user_id=None)
        else:
            simulator.delete_extension(X)
        deliverer.store.enqueue([alice(displayName="Trader")])
        drain(deliverer)

        ext = simulator.extensions()[X]
        assert (ext["user_id"], ext["recordingMode"]) == (3, "ON_DEMAND")
        assert deliverer.store.open_conflicts() == [] and deliverer.store.list_audit() == []


def test_a_login_renamed_to_another_verba_users_hands_the_number_over_saying_so(
        make_config: Callable[..., Config], simulator: Simulator, store_url: str) -> None:
    """alice's login is renamed at the source to bob@example.com, Verba user 4: her number follows her, and the
    audit says why, not that its holder was disabled, deleted or changed number. A leaver's hand-over still says
    that."""
    for deliverer in delivering(make_config(store={"url": store_url})):
        deliverer.store.enqueue([alice(), user("u-carol", "carol@example.com", phones=("+14155550122",))])
        drain(deliverer)
        deliverer.store.enqueue([user("u-alice", "bob@example.com", phones=(X,))])
        deliverer.store.enqueue([user("u-carol", "carol@example.com", phones=("+14155550122",), kind="deactivate"),
                                 user("u-dave", "dave@example.com", phones=("+14155550122",))])
        drain(deliverer)

        assert simulator.extensions()[X]["user_id"] == 4
        reasons = {a.detail["extension"]: (a.detail["from_user_id"], a.detail["user_id"], a.reason)
                   for a in audited(deliverer, "hand_over")}
        assert reasons == {
            X: (3, 4, "test/u-alice now resolves to Verba user 4 (bob@example.com) instead of 3 (alice@example.com): "
                      "login renamed at the source (or its [user_id] attribute changed)"),
            "+14155550122": (5, 6, "its holder no longer claims it (disabled, deleted or number changed)"),
        }


def test_a_conflict_between_two_users_over_one_number_names_the_fix_for_a_shared_line(
        deliverer: Any, simulator: Simulator) -> None:
    deliverer.store.enqueue([alice()])
    drain(deliverer)
    deliverer.store.enqueue([user("u-bob", "bob@example.com", phones=(X,))])
    drain(deliverer)

    [conflict] = deliverer.store.open_conflicts()
    assert conflict.message.endswith(
        "To resolve: remove the number from one of them at the source, or, if they truly share the line, give each "
        'its own extension suffix at the source ("x101", "x102"), which the mapping keeps as two extensions with '
        'suffix = "keep"; the conflict then clears itself'), conflict.message
    assert simulator.extensions()[X]["user_id"] == 3
