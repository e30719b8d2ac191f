"""A claim takes all of a user's pending events and pushes their newest state in one go (batching).
Under many workers, changes arriving while pushes run, and a slow Verba, batching must never reorder
one user's events nor let two workers push one user at once (issue 17)."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from connector.delivery.worker import Deliverer, WorkerPool
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.store import Claim
from tests.plugins.simulator import settled, user

USERS = 12
CHANGES = 8  # per user: its work number moves CHANGES times


@pytest.fixture
def seed_users() -> list[dict]:
    return [{"id": 100 + u, "loginName": f"user{u}@example.com", "eid": "0000"} for u in range(USERS)]


def number(u: int, series: int) -> str:
    return f"+1415{2 + series}{u:06d}"


class Recording(Deliverer):
    """Notes, for each push (one claim), a span inside the time it held its user: from when its claim
    was taken to when it began to settle (complete, retry, postpone, hold or dead-letter)."""

    SETTLES = ("complete", "retry", "dead_letter", "postpone", "hold")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.began: dict[tuple[int, ...], float] = {}
        self.spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for name in self.SETTLES:
            setattr(self.store, name, self._settling(getattr(self.store, name)))

    def _settling(self, settle: Callable[..., Any]) -> Callable[..., Any]:
        def noted(claim: Claim, *args: Any, **kwargs: Any) -> Any:
            self.spans[claim.external_id].append((self.began.pop(claim.event_ids), time.monotonic()))
            return settle(claim, *args, **kwargs)
        return noted

    def deliver(self, claim: Claim) -> None:
        self.began[claim.event_ids] = time.monotonic()
        super().deliver(claim)


def test_batched_pushes_keep_each_users_order_and_one_push_per_user_at_a_time(make_config, simulator) -> None:
    simulator.fault(latency_ms=15)  # pushes last long enough for the next changes to arrive meanwhile
    config = make_config(delivery={"workers": 8, "guard_max_count": USERS * CHANGES})
    store, client = open_configured_store(config, create=True), open_client(config)
    deliverer = Recording(store, client, load_mapping(config.mapping_file), config.delivery)
    pool = WorkerPool(deliverer, config.delivery.workers, config.delivery.idle_poll_seconds)
    owner_of = {number(u, s): u for u in range(USERS) for s in range(CHANGES)}
    rng = random.Random(17)
    pool.start()
    try:  # each user's changes in order, users interleaved, at random short intervals while pushes run
        for series in range(CHANGES):
            for u in rng.sample(range(USERS), USERS):
                store.enqueue([user(f"u{u}", f"user{u}@example.com", (number(u, series),))])
                time.sleep(rng.uniform(0, 0.004))
        settled(deliverer)
    finally:
        pool.stop()
        client.close()

    counts = {state.value: n for state, n in store.count_by_state().items()}
    assert counts["done"] == USERS * CHANGES and counts["dead"] == counts["held"] == 0

    # Order: each user's claims (done attempts) hold increasing event ids, and some hold several (batching).
    done: dict[str, set[tuple[float, tuple[int, ...]]]] = defaultdict(set)
    for event in store.list_events(limit=USERS * CHANGES):
        done[event.change.external_id] |= {(a.at, a.event_ids) for a in store.attempts(event.id) if a.outcome == "done"}
    claims = {external_id: [ids for _, ids in sorted(attempts)] for external_id, attempts in done.items()}
    for external_id, batches in claims.items():
        pushed = [event_id for batch in batches for event_id in batch]
        assert pushed == sorted(pushed), f"{external_id}'s events were pushed out of order: {batches}"
    assert any(len(batch) > 1 for batches in claims.values() for batch in batches), "no claim held two events"

    # One push per user at a time: no two claims of one user were being pushed at once, and no two calls
    # naming one user's extensions overlap.
    for external_id, spans in deliverer.spans.items():
        spans.sort()
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), \
            f"two workers pushed {external_id} at once"
    by_user: dict[int, list[dict]] = defaultdict(list)
    for call in simulator.calls():
        if call.get("extension") in owner_of:
            by_user[owner_of[call["extension"]]].append(call)
    for u, calls in by_user.items():
        calls.sort(key=lambda call: call["started"])
        for earlier, later in zip(calls, calls[1:], strict=False):
            assert later["started"] >= earlier["at"], \
                f"user {u}: {earlier['operation']} {earlier['extension']} and {later['operation']} " \
                f"{later['extension']} ran at once"

    # The newest state won: each user's last number records, every earlier one it held is stopped.
    held = simulator.extensions()
    for u in range(USERS):
        assert held[number(u, CHANGES - 1)]["voice"] and held[number(u, CHANGES - 1)]["user_id"] == 100 + u
        assert not any(held[number(u, s)]["voice"] for s in range(CHANGES - 1) if number(u, s) in held)
    store.close()
