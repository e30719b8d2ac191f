"""Property: whatever record is pushed for a user, Verba ends up holding exactly it, linked to that user."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.records import RECORDING_MODES, ExtensionRecord
from connector.verba import VerbaClient
from tests.verba.helpers import Sim

xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
records = st.builds(
    ExtensionRecord,
    extension=xml_text,
    user_id=st.sampled_from([3, 4]),
    recording_mode=st.sampled_from(RECORDING_MODES),
    voice=st.booleans(),
    im=st.booleans(),
    video=st.booleans(),
    screen_capture_enabled=st.booleans(),
    eid=st.just("0000"),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=records, second=records)
def test_create_then_update_round_trips(
    sim: Sim, client: VerbaClient, first: ExtensionRecord, second: ExtensionRecord
) -> None:
    sim.reset()  # the extension may be another example's, held by another user
    second = ExtensionRecord(**{**second.to_dict(), "extension": first.extension, "user_id": first.user_id})
    assert client.create_extension(first) is True
    assert client.create_extension(second) is False
    client.update_extension(second)
    found = client.get_extension(first.extension)
    assert found is not None
    expected = {key: value for key, value in second.to_dict().items() if key != "environment_short_name"}
    assert {key: found[key] for key in expected} == expected
