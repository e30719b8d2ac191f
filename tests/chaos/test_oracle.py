"""The chaos campaign's oracle finds what is wrong in Verba (so that a passing campaign means something)."""

from __future__ import annotations

from chaos.oracle import RECORDED, compare
from chaos.workload import Model


def model() -> Model:
    m = Model(3, seed=1)
    alice, bob, carol = m.users
    alice.scim_id, alice.digits = "a", "4155550001"
    bob.scim_id, bob.digits, bob.active = "b", "4155550002", False
    carol.scim_id, carol.digits = "c", "4155550003"
    for user, digits in ((alice, "4155550001"), (bob, "4155550002"), (carol, "4155550003"), (carol, "4155550009")):
        m.held(user, digits)
    return m


def ext(number: str, user_id: int, **fields: object) -> dict[str, object]:
    return {"extension": number, "user_id": user_id, **RECORDED, **fields}


def test_the_expected_state_passes():
    verdict = compare(model(), [ext("+14155550001", 1000), ext("+14155550002", 1001, voice=False),
                                ext("+14155550003", 1002), ext("+14155550009", 1002, voice=False)])
    assert verdict.problems == [] and verdict.wrong_users == set()


def test_missing_wrongly_linked_still_recorded_and_unknown_extensions_are_found():
    verdict = compare(model(), [ext("+14155550001", 1002),  # alice's number linked to carol
                                ext("+14155550002", 1001),  # bob is disabled: still recorded
                                ext("+14155550009", 1000, voice=False),  # linked to alice, who never had it
                                ext("+14155559999", 1000)])  # nobody ever had it; carol's +14155550003 is missing
    assert verdict.wrong_users == {"chaos0000@example.com", "chaos0001@example.com", "chaos0002@example.com"}
    assert len(verdict.problems) == 5
