"""A user whose state has numbers the mapping's [filter] passes over (a phone number without the type it reads) and
who maps to no extension: the event's outcome (`events show`, the log) names them and why, as `mapping test` does
(connector/mapping/mapper.py Mapping.ignored, connector/delivery/worker.py)."""

from __future__ import annotations

import json
import logging

from connector.events import UserChange
from connector.mapping import load_mapping
from tests.ops.helpers import run
from tests.plugins.simulator import drain

WORK = "extensions[0].from 'phoneNumbers[type eq \"work\"].value'"
WHY = "reads only entries whose type is \"work\", and ignores '+14155559999', '+1 415 555 0123'"
IGNORED = f"{WORK} {WHY}"


def bob(*phones: dict[str, str]) -> UserChange:
    return UserChange("test", "u-bob", "upsert", {"userName": "bob@example.com", "phoneNumbers": list(phones)})


def test_numbers_the_mapping_ignores_are_named_in_the_outcome_of_a_user_who_maps_to_no_extension(
        deliverer, simulator, config_path, caplog):
    """It ended `done, nothing sent: maps to no extension` and drift counted bob in step: only `mapping test` told
    that his numbers had no work type."""
    with caplog.at_level(logging.INFO, logger="connector.delivery"):
        [event_id] = deliverer.store.enqueue([bob({"value": "+14155559999"},
                                                  {"type": "mobile", "value": "+1 415 555 0123"})])
        drain(deliverer)
    assert simulator.extensions() == {}
    [attempt] = deliverer.store.attempts(event_id)
    assert (attempt.outcome, attempt.error) == ("done", f"maps to no extension and none was pushed for it; {IGNORED}")
    assert any(IGNORED in r.getMessage() and r.levelno == logging.INFO for r in caplog.records), caplog.text
    shown = run(config_path, "events", "show", str(event_id))
    assert shown.exit_code == 0 and f"nothing sent: maps to no extension and none was pushed for it; {IGNORED}, " \
        "so Verba was not asked" in shown.stdout, shown.output


def test_mapping_test_and_the_outcome_explain_it_alike_and_say_nothing_more_of_a_user_without_numbers(
        deliverer, config_path, tmp_path):
    state = tmp_path / "bob.json"
    state.write_text(json.dumps(bob({"value": "+14155559999"}, {"type": "mobile", "value": "+1 415 555 0123"}).state))
    tested = run(config_path, "mapping", "test", "--user", str(state))
    assert tested.exit_code == 0, tested.output
    assert f"({WORK}: none: it {WHY}; " in tested.stdout, tested.stdout

    [event_id] = deliverer.store.enqueue([bob()])  # a service account: nothing to ignore, nothing more to say
    drain(deliverer)
    [attempt] = deliverer.store.attempts(event_id)
    assert attempt.error == "maps to no extension and none was pushed for it"


def test_a_user_not_recorded_has_no_ignored_numbers_to_name(deliverer):
    [event_id] = deliverer.store.enqueue([UserChange("test", "u-bob", "deactivate", bob({"value": "+14155559999"})
                                                     .state)])
    drain(deliverer)
    [attempt] = deliverer.store.attempts(event_id)
    assert attempt.error == "maps to no extension and none was pushed for it"


def test_a_number_one_source_passes_over_and_another_reads_is_not_called_ignored():
    """mappings/entra.toml reads work and mobile numbers: a mobile one is read (here: left out as invalid), a home
    one is ignored by both."""
    entra = load_mapping("mappings/entra.toml")
    change = bob({"type": "mobile", "value": "call reception"}, {"type": "home", "value": "+1 415 555 0123"})
    assert entra.ignored(change) == (
        "extensions[0].from 'phoneNumbers[type eq \"work\"].value' reads only entries whose type is \"work\", and "
        "ignores '+1 415 555 0123'",
        "extensions[1].from 'phoneNumbers[type eq \"mobile\"].value' reads only entries whose type is \"mobile\", and "
        "ignores '+1 415 555 0123'")
