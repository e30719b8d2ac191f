from __future__ import annotations

import pytest

from connector.events import parse_user_change

VALID = {"source": "hr", "external_id": "u1", "kind": "upsert", "state": {"userName": "alice@example.com"}}


def test_a_valid_event_parses_with_its_idempotency_key():
    change = parse_user_change({**VALID, "id": "hr-u1-1"}, default_cause="ingest:x.jsonl")
    assert (change.source, change.external_id, change.kind, change.idem_key) == ("hr", "u1", "upsert", "hr-u1-1")
    assert change.cause == "ingest:x.jsonl"


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ([], "JSON object"),
        ({**VALID, "source": ""}, "'source'"),
        ({**VALID, "external_id": 7}, "'external_id'"),
        ({**VALID, "kind": "remove"}, "upsert, deactivate, delete"),
        ({**VALID, "state": "alice"}, "'state'"),
        ({**VALID, "state": {}}, "state.userName"),
        ({**VALID, "state": {"userName": "a", "active": "False"}}, "state.active"),
        ({**VALID, "state": {"userName": "a", "phoneNumbers": [{"value": 5}]}}, "state.phoneNumbers"),
        ({**VALID, "state": {"userName": "a", "groups": "traders"}}, "state.groups"),
        ({**VALID, "extra": 1}, "unknown field"),
        # a misspelled field must not leave a leaver recorded: "actve": false is refused, not ignored
        ({**VALID, "state": {"userName": "a", "actve": False}}, "'state' has unknown field(s) ['actve']; its fields"),
        ({**VALID, "state": {"userName": "a", "phoneNumbr": []}}, "other source attributes go under 'state."),
        ({**VALID, "state": {"userName": "a", "displayName": 7}}, "'state.displayName' must be a string"),
        ({**VALID, "state": {"userName": "a", "name": "Alice"}}, "'state.name' must be an object"),
        ({**VALID, "state": {"userName": "a", "direct_groups": [1]}}, "state.direct_groups"),
        # what a store cannot hold, refused alike whatever the store (SQLite would keep a NUL, PostgreSQL refuses it)
        ({**VALID, "id": "hr-u1\x00"}, "'id' holds a NUL character (\\u0000), which the store cannot hold"),
        ({**VALID, "state": {"userName": "a", "emails": [{"value": "a@b\x00"}]}}, "'state.emails[0].value' holds"),
        ({**VALID, "cause": "x\udc00"}, "'cause' holds an unpaired surrogate ('\\udc00', half of a character)"),
        ({**VALID, "state": {"userName": "a", "attributes": {"k\ud800": "v"}}},
         "the key 'k\\ud800' of 'state.attributes' holds an unpaired surrogate"),
    ],
)
def test_malformed_events_say_what_is_wrong(event, says):
    with pytest.raises(ValueError, match=None) as info:
        parse_user_change(event)
    assert says in str(info.value)
