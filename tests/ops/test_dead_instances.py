"""An instance another one counted dead stays visible to on-call: `connector status` lists it, `status --json` marks
it, `status --check` fails for it, until it starts again or `connector instances forget NAME` (connector/cli)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from connector.config import InstanceConfig, load_config
from connector.events import UserChange
from connector.liveness import Liveness
from connector.ops.report import when
from connector.runtime import open_configured_store
from connector.store import Audit, Instance, Store, StoreError
from tests.ops.helpers import run, unreachable_target, write_config

LIVENESS = 15.0  # the config's default [instance] liveness_seconds


def kill_a_and_let_b_count_it_dead(store: Store) -> float:
    """Instances a (vm1, pid 101, one user in flight) and b; a crashes a minute ago and b's heartbeat counts it
    dead. Returns when b did, by the store's clock."""
    store.enqueue([UserChange("hr", "alice", "upsert", {"userName": "alice"}, time.time())])
    b = Instance("b", "run-b", "vm2", 202)
    for instance in (Instance("a", "run-a", "vm1", 101), b):
        store.register_instance(instance, LIVENESS, lambda previous: True)
    assert store.claim("run-a/0", time.time(), 120.0) is not None
    with store._write() as conn:
        conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 60 WHERE name = 'a'")
    assert [(dead.name, released) for dead, released in store.heartbeat(b, LIVENESS).reaped] == [("a", 1)]
    return store.dead_instances()[0].reaped_at


def test_an_instance_counted_dead_is_listed_and_fails_the_check_until_forgotten(config: Path, store: Store) -> None:
    at = kill_a_and_let_b_count_it_dead(store)
    status, check = run(config, "status"), run(config, "status", "--check")
    listed = json.loads(run(config, "status", "--json").output)["instances"]
    refused = run(config, "instances", "forget", "b", "--reason", "gone")
    mistyped = run(config, "instances", "forget", "A", "--reason", "gone")
    forgotten = run(config, "instances", "forget", "a", "--operator", "oncall", "--reason", "vm1 retired")
    again = run(config, "instances", "forget", "a", "--reason", "vm1 retired")
    after = run(config, "status", "--check")
    shown = run(config, "audit")
    audit = store.list_audit(10)

    advice = "start it again, or run `connector instances forget a --reason R` if it is gone for good"
    assert (f"instance a: DEAD since {when(at)} (vm1 pid 101; counted dead by instance b, 1 in-flight event(s) went "
            f"back to the queue): {advice}") in status.output.splitlines(), status.output
    assert check.exit_code == 3 and check.output.splitlines() == [
        f"CHECK FAILED: connector instance a (vm1, pid 101) was counted dead at {when(at)} by instance b (1 in-flight "
        f"event(s) went back to the queue): {advice}"], check.output
    assert [(i["name"], i["dead"]) for i in listed] == [("b", False), ("a", True)]
    assert (listed[1]["counted_dead_by"], listed[1]["events_released"], listed[1]["pid"]) == ("b", 1, 101)

    assert refused.exit_code == 1 and "instance 'b' on vm2 (pid 202) was heard from " in refused.output
    assert "only an instance that is gone can be forgotten. If it still runs, stop it" in refused.output
    assert re.search(r"if it was killed, it counts as gone 15 s after its last heartbeat: try again in 1[0-6] s",
                     refused.output), refused.output
    assert forgotten.exit_code == 0 and forgotten.output == (
        "instance a forgotten; 0 in-flight event(s) went back to the queue\n")
    assert mistyped.exit_code == 0 and mistyped.output == (
        "instance A: nothing to forget (not registered, not counted dead; names are case-sensitive): the store "
        "knows a, b\n"), mistyped.output
    assert again.exit_code == 0 and again.output == (
        "instance a: nothing to forget (not registered, not counted dead): the store knows b\n")
    assert after.exit_code == 0, after.output
    [line] = [line for line in shown.output.splitlines() if "forget_instance" in line]
    assert "events" not in line and line.endswith('forget_instance  {"instance": "a", "released": 0}  reason: vm1 '
                                                  'retired'), line
    assert [(e.actor, e.action, e.reason, e.detail) for e in audit] == [
        ("oncall", "forget_instance", "vm1 retired", {"instance": "a", "released": 0})]


def test_an_instance_is_forgotten_only_together_with_its_audit_entry(store: Store, monkeypatch) -> None:
    kill_a_and_let_b_count_it_dead(store)

    def failing(*args: object, **kwargs: object) -> int:
        raise StoreError("the store went away while writing the audit")

    monkeypatch.setattr(store, "_audit", failing)
    with pytest.raises(StoreError, match="went away"):
        store.forget_dead_instance("a", LIVENESS, audit=Audit("oncall", "forget_instance", "vm1 retired"))
    assert [dead.instance.name for dead in store.dead_instances()] == ["a"]  # still counted dead: nothing was lost
    assert store.list_audit() == []
    monkeypatch.undo()
    assert store.forget_dead_instance("a", LIVENESS, audit=Audit("oncall", "forget_instance", "vm1 retired")) == 0
    assert store.dead_instances() == []
    assert [(e.actor, e.reason, e.detail) for e in store.list_audit()] == [("oncall", "vm1 retired", {"released": 0})]


def test_an_instance_counted_dead_that_starts_again_is_no_longer_listed(config: Path, store: Store) -> None:
    kill_a_and_let_b_count_it_dead(store)
    store.register_instance(Instance("a", "run-a2", "vm1", 303), LIVENESS, lambda previous: True)
    status, check = run(config, "status"), run(config, "status", "--check")
    assert "DEAD" not in status.output and "instance a: vm1 pid 303, started " in status.output
    assert check.exit_code == 0, check.output


def test_an_instance_counted_dead_that_beats_again_keeps_its_start_for_the_mapping_check(tmp_path: Path) -> None:
    """Paused (SIGSTOP) past liveness_seconds, or cut off by a store outage, and then back: its process still maps
    with the mapping as it was when it started, so `status` and `status --check` keep that start."""
    mapping = tmp_path / "m.toml"
    mapping.write_text(Path("mappings/default.toml").read_text())
    os.utime(mapping, (time.time() - 3600, time.time() - 3600))
    config = write_config(tmp_path, unreachable_target(),
                          extra=f'[mapping]\nfile = "{mapping}"\n')
    with open_configured_store(load_config(config, secrets=()), create=True) as store:
        paused, other = (Liveness(store, InstanceConfig(name, heartbeat_seconds=60, liveness_seconds=0.3),
                                  shared=True) for name in ("a", "b"))
        paused.start()
        [started] = [i.started_at for i in store.live_instances()[1]]
        mapping.write_text(mapping.read_text() + "\n# a rule edited while it runs\n")
        time.sleep(0.4)  # paused: silent for longer than liveness_seconds
        other.start()
        for _ in range(8):  # a start counts no other dead for liveness_seconds (it may follow a store outage)
            time.sleep(0.05)
            other.beat()
        assert [d.instance.name for d in store.dead_instances()] == ["a"]
        paused.beat()  # resumed: registers again
        try:
            assert [(i.name, i.started_at) for i in store.live_instances()[1]][0] == ("a", started)
            check, status = run(config, "status", "--check"), run(config, "status")
        finally:
            other.stop()
            paused.stop()
    assert check.exit_code == 3, check.output
    assert check.output.startswith(f"CHECK FAILED: instance a started at {when(started)} with another mapping than "
                                   f"{mapping} holds now"), check.output
    assert f"instance a: {socket.gethostname()} pid {os.getpid()}, started {when(started)}, " in status.output


def test_stopping_an_instance_whose_name_another_start_took_leaves_that_start_alone(store: Store) -> None:
    """Told to stop it, on-call stops it: the newer start under its name keeps its directories and its breaker."""
    old = Liveness(store, InstanceConfig("a", heartbeat_seconds=60, liveness_seconds=0.3), shared=True)
    old.start()
    time.sleep(0.4)
    store.register_instance(Instance("a", "newer", "vm2", 202), 0.3, lambda previous: True)
    assert store.lead("ldap.corp", "a")
    store.note_breaker("a", time.time(), None, "Verba down")
    old.beat()
    assert old.displaced
    old.stop()
    assert [i.run for i in store.live_instances()[1]] == ["newer"]
    assert store.leaders() == {"ldap.corp": "a"} and [b.instance for b in store.open_breakers()] == ["a"]
