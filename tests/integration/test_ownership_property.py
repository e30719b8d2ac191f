"""Property: for any interleaving of users gaining, moving and losing numbers, delivered by parallel
workers, no extension ends linked to a user who no longer claims it while an active user claims it,
a number claimed by one active user ends recorded for that user, and no write lacks a user id."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.delivery.worker import Deliverer, WorkerPool
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import EventState
from tests.plugins.simulator import settled

NUMBERS = ("+14155550100", "+14155550111", "+14155550122")
USERS = {"u-alice": ("alice@example.com", 3), "u-bob": ("bob@example.com", 4), "u-carol": ("carol@example.com", 5)}
_runs = itertools.count()


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": verba_id, "loginName": login, "eid": "0000"} for login, verba_id in USERS.values()]


steps = st.lists(
    st.tuples(st.sampled_from(sorted(USERS)), st.lists(st.sampled_from(NUMBERS), max_size=2, unique=True),
              st.sampled_from(["upsert", "upsert", "upsert", "deactivate", "delete"])),
    min_size=1, max_size=10,
)


def change(external_id: str, phones: list[str], kind: str) -> UserChange:
    state = {"userName": USERS[external_id][0], "phoneNumbers": [{"type": "work", "value": p} for p in phones]}
    return UserChange("prop", external_id, kind, state)  # type: ignore[arg-type]



@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=steps, second=steps)
def test_no_number_ends_with_a_leaver_while_an_active_user_claims_it(make_config, simulator, tmp_path, first, second):
    simulator.http.post("/_sim/reset").raise_for_status()
    simulator.http.post("/_sim/behaviour", json={"missing_extension": "error_general"}).raise_for_status()
    config = make_config(store={"url": f"sqlite:///{tmp_path / f'prop-{next(_runs)}.db'}"}, delivery={"workers": 3})
    store, client = open_configured_store(config, create=True), open_client(config)
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    pool = WorkerPool(deliverer, 3, 0.005)
    pool.start()
    try:
        store.enqueue([change(*s) for s in first])
        time.sleep(0.05)  # the second batch lands while the first is being pushed
        store.enqueue([change(*s) for s in second])
        settled(deliverer)
    finally:
        pool.stop(10)
        client.close()

    final: dict[str, tuple[list[str], str]] = {}
    for external_id, phones, kind in [*first, *second]:
        final[external_id] = (phones, kind)
    claimants: dict[str, set[int]] = {}
    for external_id, (phones, kind) in final.items():
        if kind == "upsert":
            for number in phones:
                claimants.setdefault(number, set()).add(USERS[external_id][1])
    state = simulator.http.get("/_sim/state").raise_for_status().json()
    extensions = {e["extension"]: e for e in state["extensions"]}
    for number, ids in claimants.items():
        held = extensions.get(number)
        assert held is not None and held["user_id"] in ids and held["voice"], (number, ids, held)
    assert store.count_by_state()[EventState.DEAD] == 0
    calls = simulator.http.get("/_sim/calls").raise_for_status().json()
    assert all(c["user_id"] is not None for c in calls if c["operation"] in ("createExtension", "updateExtension"))
    store.close()
