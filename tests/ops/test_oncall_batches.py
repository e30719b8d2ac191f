"""`events replay`, `discard` and `approve` by group act batch by batch with one loop (`act_in_batches`): each batch
acted on in turn, a progress line between batches, and the count of what was changed."""

from __future__ import annotations

from connector.events import UserChange
from connector.ops.replay import act_in_batches
from connector.store import EventState, StoredEvent


def stored(event_id: int) -> StoredEvent:
    change = UserChange("hr", f"u{event_id}", "upsert", {"userName": f"u{event_id}@example.com"})
    return StoredEvent(event_id, change, EventState.DEAD, 1, 0.0, "mapping", None, 0.0)


def test_one_loop_acts_on_every_batch_and_says_how_far_it_got_between_them() -> None:
    batches = [[stored(1), stored(2), stored(3)], [stored(4), stored(5), stored(6)], [stored(7)]]
    acted: list[tuple[list[int], int]] = []
    said: list[str] = []

    def act(batch: list[StoredEvent], before: int) -> int:
        acted.append(([e.id for e in batch], before))
        return len(batch) - 1  # one of each batch was acted on meanwhile by someone else

    count, events = act_in_batches(iter(batches), act, doing="replaying", done="queued", progress=said.append)
    assert (count, [e.id for e in events]) == (4, [1, 2, 3, 4, 5, 6, 7])
    assert acted == [([1, 2, 3], 0), ([4, 5, 6], 3), ([7], 6)]  # a paced replay starts where the batch before ends
    assert said == ["replaying: 2 event(s) queued so far; 3 more next ...",
                    "replaying: 4 event(s) queued so far; 1 more next ..."]
