"""Each shipped mapping maps its sample user (tests/mapping/samples) to these exact records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.events import parse_user_change
from connector.mapping import ExtensionRecord, MappedUser, Mapping, MappingFailure, load_mapping

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).parent / "samples"


def load(mapping_name: str, sample: str) -> tuple[Mapping, Any]:
    state = json.loads((SAMPLES / sample).read_text())
    change = parse_user_change({"source": "sample", "external_id": sample, "state": state})
    return load_mapping(ROOT / "mappings" / mapping_name), change


def ext(extension: str, user_id: int, mode: str, voice: bool, im: bool = False, video: bool = False,
        screen: bool = False) -> ExtensionRecord:
    return ExtensionRecord(extension, user_id, mode, voice, im, video, screen, eid="0000")


ALL = dict(voice=True, im=True, video=True, screen=True)


def test_ad() -> None:
    loaded, change = load("ad.toml", "ad_user.json")
    assert loaded.login_name(change.state) == "jdoe@corp.example"
    # suffix = "keep": msRTCSIP-Line (tel:...;ext=4142) keeps its extension, apart from telephoneNumber.
    assert loaded.map_user(change, 1001, []) == MappedUser(
        [ext("+12125550142", 1001, "FULL", **ALL), ext("4142", 1001, "FULL", **ALL),
         ext("+12125550142;ext=4142", 1001, "FULL", **ALL), ext("jane.doe@corp.example", 1001, "FULL", **ALL)],
        [],
    )


def test_ad_without_upn_uses_sam_account_name() -> None:
    loaded, change = load("ad.toml", "ad_user.json")
    del change.state["attributes"]["userPrincipalName"]
    assert loaded.login_name(change.state) == "jdoe"


def test_ad_groups_decide() -> None:
    loaded, change = load("ad.toml", "ad_user.json")
    state = change.state
    state["groups"] = ["CN=Verba-Recorded,OU=Groups,DC=corp,DC=example"]
    assert {(r.recording_mode, r.voice, r.im) for r in loaded.map_user(change, 1001, []).upserts} == {
        ("FULL", True, False)
    }
    state["attributes"]["department"] = "sales"
    assert {r.recording_mode for r in loaded.map_user(change, 1001, []).upserts} == {"ON_DEMAND"}
    state["groups"].append("CN=Verba-Do-Not-Record,OU=Groups,DC=corp,DC=example")
    assert loaded.map_user(change, 1001, []).upserts == []
    state["groups"] = ["CN=Domain Users,CN=Users,DC=corp,DC=example"]  # no recording group: not recorded
    mapped = loaded.map_user(change, 1001, [ext("+12125550142", 1001, "FULL", **ALL)])
    assert mapped.upserts == []
    assert [(r.extension, r.recording) for r in mapped.deprovisions] == [
        ("+12125550142", False), ("4142", False), ("+12125550142;ext=4142", False), ("jane.doe@corp.example", False)]


def test_entra() -> None:
    loaded, change = load("entra.toml", "entra_user.json")
    assert loaded.login_name(change.state) == "AlexW@contoso.example"
    # The Legal department rule (an enterprise extension attribute); the fax number is not a source.
    assert loaded.map_user(change, 2002, []) == MappedUser(
        [ext("+14255550109", 2002, "ON_DEMAND", voice=True, im=True),
         ext("+12065550188", 2002, "ON_DEMAND", voice=True, im=True)],
        [],
    )


def test_ad_shared_main_number_stays_two_extensions() -> None:
    loaded, change = load("ad.toml", "ad_user.json")
    change.state["attributes"]["telephoneNumber"] = "+1 (212) 555-0100 x101"
    change.state["attributes"]["msRTCSIP-Line"] = "tel:+12125550100;ext=101"
    assert [r.extension for r in loaded.map_user(change, 1001, []).upserts] == [
        "+12125550100;ext=101", "4142", "jane.doe@corp.example"]


def test_entra_policy_groups() -> None:
    loaded, change = load("entra.toml", "entra_user.json")
    change.state["groups"] = ["teams recording - full"]
    assert {r.recording_mode for r in loaded.map_user(change, 2002, []).upserts} == {"FULL"}
    assert all(r.screen_capture_enabled for r in loaded.map_user(change, 2002, []).upserts)
    change.state["groups"] = ["Teams Recording - Exempt", "Teams Recording - Full"]
    assert loaded.map_user(change, 2002, []).upserts == []


def test_okta() -> None:
    loaded, change = load("okta.toml", "okta_user.json")
    assert loaded.user_id_from_state(change.state) == 417
    # 07700 900xxx is reserved for drama: not a valid UK number, and the mobile source skips it.
    assert loaded.map_user(change, 417, []) == MappedUser([ext("+442079460018", 417, "ON_DEMAND", voice=True)], [])


def test_okta_department_rule_after_the_profile_attribute() -> None:
    loaded, change = load("okta.toml", "okta_user.json")
    del change.state["attributes"]["urn:ietf:params:scim:schemas:extension:verba:2.0:User"]["recordingPolicy"]
    assert loaded.map_user(change, 417, []).upserts == [ext("+442079460018", 417, "FULL", voice=True, im=True)]


def test_okta_deactivation_stops_the_extension() -> None:
    loaded, change = load("okta.toml", "okta_user.json")
    change.state["active"] = False
    previous = [ext("+442079460018", 417, "ON_DEMAND", voice=True)]
    assert loaded.map_user(change, 417, previous) == MappedUser(
        [], [ext("+442079460018", 417, "ON_DEMAND", voice=False)]
    )


@pytest.mark.parametrize(
    ("sample", "extension"), [("ad_user.json", "+12125550142"), ("entra_user.json", "+14255550109")]
)
def test_default_mapping(sample: str, extension: str) -> None:
    loaded, change = load("default.toml", sample)
    assert loaded.map_user(change, 5, []) == MappedUser([ext(extension, 5, "FULL", voice=True)], [])


def test_default_mapping_takes_numbers_without_country_code_as_us() -> None:
    loaded, change = load("default.toml", "okta_user.json")
    with pytest.raises(MappingFailure, match="'020 7946 0018' is not a valid phone number for US"):
        loaded.map_user(change, 5, [])
