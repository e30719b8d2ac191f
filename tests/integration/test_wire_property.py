"""Property: whatever the user states and the mapping, no push reaches the wire without a user id.

Random mappings and random change sequences are delivered to the simulator over real HTTP;
the simulator's call log is what Verba would have received.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.delivery.worker import Deliverer
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from tests.plugins.simulator import drain

# Each login owns its own numbers, so a call's extension tells whose it is.
LOGINS = {"alice@example.com": ("01", 3), "bob@example.com": ("02", 4), "carol@example.com": ("03", None)}


def number(login: str, n: int) -> str:
    return f"+1415555{LOGINS[login][0]}{n:02d}"


@st.composite
def mapping_files(draw) -> str:
    by_attribute = draw(st.booleans())
    flag = lambda: draw(st.sampled_from(["true", "false"]))  # noqa: E731
    lines = ['[environment]\neid = "0000"\n', "[user_id]\n"]
    lines.append('attribute = "attributes.verbaUserId"\n' if by_attribute else 'login_name = ["userName"]\n')
    lines.append(f'[[extensions]]\nfrom = \'phoneNumbers[type eq "work"].value\'\nnormalize = "e164"\n'
                 f'default_country = "US"\non_invalid = "{draw(st.sampled_from(["skip", "error"]))}"\n')
    lines.append(
        f'[defaults]\nrecord = {flag()}\n'
        f'recordingMode = "{draw(st.sampled_from(["FULL", "ON_DEMAND", "CONTROLLED"]))}"\n'
        f"voice = {flag()}\nim = {flag()}\n"
    )
    for group in draw(st.lists(st.sampled_from(["Traders", "Sales", "Quiet"]), max_size=3, unique=True)):
        if draw(st.booleans()):
            lines.append(f'[[rules]]\nwhen = {{ group = "{group}" }}\nrecord = false\n')
        else:
            lines.append(
                f'[[rules]]\nwhen = {{ group = "{group}" }}\n'
                f'set = {{ video = {flag()}, screenCaptureEnabled = {flag()} }}\n'
            )
    lines.append(f'[deprovision]\naction = "{draw(st.sampled_from(["stop_recording", "ignore"]))}"\n')
    return "".join(lines)


@st.composite
def changes(draw) -> UserChange:
    login = draw(st.sampled_from(sorted(LOGINS)))
    phones = [{"type": "work", "value": number(login, n)} for n in draw(st.lists(st.integers(0, 4), max_size=3))]
    if draw(st.booleans()):
        phones.append({"type": "work", "value": "not a number"})
    state = {"userName": login, "phoneNumbers": phones, "active": draw(st.booleans()),
             "groups": draw(st.lists(st.sampled_from(["Traders", "Sales", "Quiet"]), max_size=2)),
             "attributes": {}}
    verba_id = draw(st.sampled_from([None, "owner", 999, "abc"]))
    if verba_id == "owner":
        verba_id = LOGINS[login][1]
    if verba_id is not None:
        state["attributes"]["verbaUserId"] = verba_id
    kind = draw(st.sampled_from(["upsert", "upsert", "deactivate", "delete"]))
    return UserChange(source="prop", external_id=login, kind=kind, state=state)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mapping_text=mapping_files(), sequence=st.lists(changes(), min_size=1, max_size=8))
def test_every_push_on_the_wire_carries_a_resolvable_user_id(make_config, simulator, mapping_text, sequence):
    simulator.http.delete("/_sim/calls").raise_for_status()
    with tempfile.TemporaryDirectory() as tmp:
        mapping_file = Path(tmp) / "mapping.toml"
        mapping_file.write_text(mapping_text)
        config = make_config(mapping=str(mapping_file), store={"url": f"sqlite:///{tmp}/c.db"})
        store, client = open_configured_store(config, create=True), open_client(config)
        deliverer = Deliverer(store, client, load_mapping(mapping_file), config.delivery)
        try:
            for change in sequence:  # one at a time, so that every state is pushed, not only the last
                store.enqueue([change])
                drain(deliverer)
        finally:
            client.close()
            store.close()

    by_attribute = "attributes.verbaUserId" in mapping_text
    ids_in_states: dict[str, set[object]] = {}
    for change in sequence:
        ids_in_states.setdefault(change.state["userName"], set()).add(change.state["attributes"].get("verbaUserId"))
    for call in simulator.calls():
        if call["operation"] not in ("createExtension", "updateExtension"):
            continue
        assert isinstance(call["user_id"], int) and call["user_id"] > 0, call
        owner = next(
            login for login, (prefix, _) in LOGINS.items() if call["extension"].startswith(f"+1415555{prefix}")
        )
        if by_attribute:
            assert call["user_id"] in ids_in_states[owner], (call, ids_in_states[owner])
        else:
            assert owner != "carol@example.com", "a user unknown to Verba reached the wire"
            assert call["user_id"] == LOGINS[owner][1]
    assert all(ext["user_id"] is not None for ext in simulator.extensions().values()), "an extension lost its user"
