"""`events show` of an event claimed by an instance that was killed: not "in flight now" while nothing pushes it, but
that its instance is silent (by `silent_for`, the rule `status` uses) and when it goes back to the queue."""

from __future__ import annotations

import time
from pathlib import Path

from connector.ops.report import attempt_lines, stalled_claim, when
from connector.store import Instance, Store
from tests.ops.helpers import run
from tests.plugins.simulator import user

LIVENESS, LEASE = 15.0, 120.0


def shown(store: Store, event_id: int) -> list[str]:
    """The attempt lines `events show` prints for the event, as the store reads them now."""
    event = store.get_event(event_id)
    assert event is not None
    now, instances = store.live_instances()
    stalled = stalled_claim(now, instances, LIVENESS, LEASE)
    return attempt_lines(store.attempts(event_id), store.audit_of_event(event_id), event, stalled)


def test_an_event_claimed_by_a_killed_instance_says_nothing_pushes_it_and_when_it_goes_back(store: Store) -> None:
    [event_id] = store.enqueue([user()])
    store.register_instance(Instance("vm", "run-vm", "vm1", 101), LIVENESS, lambda previous: True)
    assert store.claim("run-vm/1", time.time(), LEASE) is not None
    assert shown(store, event_id) == ["  attempt 1: in flight now (no outcome yet)"]  # vm is heard from

    with store._write() as conn:  # vm was killed (kill -9) a minute ago: its heartbeats and lease renewals stopped
        conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 60 WHERE name = 'vm'")
    [silent] = store.live_instances()[1]
    [line] = shown(store, event_id)
    assert line == (
        "  attempt 1: in flight, but nothing pushes it: the instance holding its claim is silent (instance vm (vm1 "
        "pid 101) has not been heard from for 1.0m (more than 15s): is it running?). It goes back to the queue when "
        "that instance starts again, when a live instance counts it dead (on a shared PostgreSQL store), or when its "
        "lease ends (about "
        f"{when(silent.heartbeat_at + LEASE)}, [delivery] lease_seconds after it went silent) and a running connector "
        "claims it"), line


def test_an_event_in_flight_with_no_connector_registered_says_one_must_start() -> None:
    assert stalled_claim(1_000.0, [], LIVENESS, LEASE) == (
        "no connector runs on the store, so nothing pushes it: it goes back to the queue when a connector starts "
        "(`systemctl start connector@NAME`, or `connector run`)")
    live = Instance("b", "run-b", "vm2", 202, heartbeat_at=995.0)
    dead = Instance("a", "run-a", "vm1", 101, heartbeat_at=900.0)
    assert stalled_claim(1_000.0, [dead, live], LIVENESS, LEASE) is None  # b may be pushing it


def test_events_show_says_it_for_an_event_a_killed_instance_holds(config: Path, store: Store) -> None:
    [event_id] = store.enqueue([user()])
    store.register_instance(Instance("vm", "run-vm", "vm1", 101), LIVENESS, lambda previous: True)
    assert store.claim("run-vm/1", time.time(), LEASE) is not None
    with store._write() as conn:  # killed a minute ago
        conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 60 WHERE name = 'vm'")
    result = run(config, "events", "show", str(event_id))
    assert result.exit_code == 0, result.output
    assert "  attempt 1: in flight, but nothing pushes it: the instance holding its claim is silent (instance vm " \
           "(vm1 pid 101) has not been heard from for 1.0m" in result.output, result.output
    assert "in flight now" not in result.output
