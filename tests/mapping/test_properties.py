"""Properties of map_user over random user states and random valid mappings."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.events import UserChange
from connector.mapping import ExtensionRecord, MappingFailure, normalize_extension, parse_mapping
from connector.mapping.mapper import ExtensionSource
from connector.mapping.normalize import NORMALIZE_MODES
from connector.records import RECORDING_MODES

VALUES = [
    "+1 415 555 0100", "(415) 555-0101", "tel:+14155550102", "020 7946 0018", "+44 20 7946 0019", "4567", "x4568",
    "sip:Alice@Corp.example", "bob@corp.example", "not a number", "", "  ", "tel:+12125550142;ext=4142",
]
PATHS = [
    'phoneNumbers[type eq "work"].value', "phoneNumbers.value", "attributes.telephoneNumber", "attributes.ipPhone",
    "attributes.msRTCSIP-PrimaryUserAddress", "emails.value", "userName",
]
GROUPS = ["Traders", "CN=Traders,OU=Groups,DC=corp,DC=example", "Sales", "Do-Not-Record", "CN=Sales,DC=corp"]

values = st.one_of(st.sampled_from(VALUES), st.text(max_size=12))


@st.composite
def sources(draw: st.DrawFn) -> dict[str, Any]:
    how = draw(st.sampled_from(NORMALIZE_MODES))
    source = {
        "from": draw(st.sampled_from(PATHS)),
        "normalize": how,
        "on_invalid": draw(st.sampled_from(["skip", "error"])),
    }
    country = draw(st.sampled_from([None, "US", "GB"])) if how == "e164" else None
    return source if country is None else {**source, "default_country": country}


recording = st.fixed_dictionaries(
    {},
    optional={"recordingMode": st.sampled_from(RECORDING_MODES), "voice": st.booleans(), "im": st.booleans(),
              "video": st.booleans(), "screenCaptureEnabled": st.booleans()},
)
conditions = st.one_of(
    st.fixed_dictionaries({"group": st.sampled_from(GROUPS)}),
    st.fixed_dictionaries(
        {"attribute": st.just("attributes.department"), "equals": st.sampled_from(["Sales", "Legal"])}
    ),
    st.fixed_dictionaries({"attribute": st.sampled_from(PATHS), "present": st.booleans()}),
    st.fixed_dictionaries(
        {"group": st.sampled_from(GROUPS), "attribute": st.just("displayName"), "matches": st.just("A.*")}
    ),
)
rules = st.one_of(
    st.fixed_dictionaries({"when": conditions, "record": st.just(False)}),
    st.fixed_dictionaries({"when": conditions, "set": recording}),
)
mappings = st.fixed_dictionaries({
    "environment": st.sampled_from([{"eid": "0000"}, {"short_name": "tenant1"}]),
    "extensions": st.lists(sources(), min_size=1, max_size=4),
    "defaults": st.one_of(recording, recording.map(lambda d: {**d, "record": False})),
    "rules": st.lists(rules, max_size=4),
    "deprovision": st.fixed_dictionaries({"action": st.sampled_from(["stop_recording", "ignore"])}),
})

states = st.fixed_dictionaries(
    {"userName": st.sampled_from(["alice@corp.example", "Bob@Corp.Example"])},
    optional={
        "active": st.booleans(),
        "displayName": st.sampled_from(["Alice", "Bob"]),
        "phoneNumbers": st.lists(
            st.fixed_dictionaries({"value": values, "type": st.sampled_from(["work", "Work", "mobile"])}), max_size=4
        ),
        "emails": st.lists(st.fixed_dictionaries({"value": values}), max_size=2),
        "groups": st.lists(st.sampled_from(GROUPS), max_size=3),
        "attributes": st.fixed_dictionaries(
            {},
            optional={
                "telephoneNumber": st.one_of(values, st.lists(values, max_size=3)),
                "ipPhone": values,
                "msRTCSIP-PrimaryUserAddress": values,
                "department": st.sampled_from(["Sales", "legal", "IT"]),
            },
        ),
    },
)
PREVIOUS = ["+14155550100", "+14155550101", "+442079460018", "4567", "alice@corp.example", "bob@corp.example",
            "02079460018"]
previous_records = st.lists(
    st.builds(ExtensionRecord, extension=st.sampled_from(PREVIOUS), user_id=st.integers(1, 5),
              recording_mode=st.sampled_from(RECORDING_MODES), voice=st.booleans(), im=st.booleans(),
              video=st.booleans(), screen_capture_enabled=st.booleans(), eid=st.just("0000")),
    max_size=4,
)


@settings(max_examples=400, deadline=None)
@given(mappings, states, st.sampled_from(["upsert", "deactivate", "delete"]), st.integers(1, 10**6), previous_records)
def test_map_user_properties(data: dict[str, Any], state: dict[str, Any], kind: Any, user_id: int,
                             previous: list[ExtensionRecord]) -> None:
    mapping = parse_mapping(data, "random.toml")
    going_away = kind != "upsert" or state.get("active") is False
    try:
        mapped = mapping.map_user(UserChange("test", "u1", kind, state), user_id, previous)
    except MappingFailure:
        assert not going_away, "a user going away must always be stopped, whatever their numbers"
        assert any(s.on_invalid == "error" for s in mapping.sources)
        return
    upserted = [r.extension for r in mapped.upserts]
    stopped = [r.extension for r in mapped.deprovisions]

    assert all(r.user_id == user_id for r in mapped.upserts + mapped.deprovisions)
    assert not set(upserted) & set(stopped)
    assert len(set(upserted)) == len(upserted) and len(set(stopped)) == len(stopped)
    normalized = [x for x in upserted + stopped if any(_is_normal(x, s) for s in mapping.sources)]
    assert set(upserted) <= set(normalized) | set(mapped.kept)
    assert set(mapped.kept) <= {p.extension for p in previous if p.recording}
    assert not mapped.kept or (mapped.skipped and not going_away), "kept only while a value is left out as invalid"
    assert set(stopped) <= set(normalized) | {p.extension for p in previous}
    assert not any(r.recording for r in mapped.deprovisions)
    if going_away:
        assert mapped.upserts == []
    if mapping.deprovision_action == "ignore":
        assert mapped.deprovisions == []
    else:
        assert {p.extension for p in previous} <= set(upserted) | set(stopped)


def _is_normal(extension: str, source: ExtensionSource) -> bool:
    try:
        return normalize_extension(extension, source.normalize, source.default_country) == extension
    except ValueError:
        return False
