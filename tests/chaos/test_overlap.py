"""The overlap checker finds two instances working on one extension at once, and nothing else."""

from __future__ import annotations

from typing import Any

from chaos.overlap import instance_of, overlaps

T = 1_700_000_000.0


def call(seq: int, operation: str, extension: str | None, started: float, at: float, instance: str | None,
         eid: str = "0000") -> dict[str, Any]:
    agent = None if instance is None else f"verba-connector (instance {instance})"
    return {"seq": seq, "operation": operation, "extension": extension, "eid": eid, "started": T + started,
            "at": T + at, "agent": agent, "status": "OK"}


def test_one_instance_at_a_time_per_extension_passes():
    log = [
        call(1, "requestToken", None, 0.0, 0.5, "a"),
        call(2, "requestToken", None, 0.1, 0.6, "b"),  # calls without an extension are not checked
        call(3, "getExtension", "+14155550001", 1.0, 1.5, "a"),
        call(4, "updateExtension", "+14155550001", 1.5, 2.0, "a"),
        call(5, "getExtension", "+14155550001", 2.1, 2.6, "b"),  # b takes over after a finished
        call(6, "createExtension", "+14155550001", 2.6, 3.0, "b"),  # ends exactly when the next starts
        call(7, "getExtension", "+14155550002", 1.0, 3.0, "c"),  # other extensions run in parallel
        call(8, "getExtension", "+14155550002", 1.2, 1.4, "c"),  # one instance overlapping itself is fine
        call(9, "getExtension", "+14155550001", 2.2, 2.4, "c", eid="0001"),  # another environment's extension
        call(10, "listUsers", None, 2.0, 2.5, "a"),
    ]
    assert overlaps(log) == []


def test_two_instances_on_one_extension_at_once_are_found():
    log = [
        call(3, "getExtension", "+14155550001", 1.0, 1.5, "a"),
        call(4, "updateExtension", "+14155550001", 1.5, 2.3, "a"),
        call(5, "getExtension", "+14155550001", 2.0, 2.6, "b"),  # b starts before a's update is answered
        call(6, "createExtension", "+14155550009", 4.0, 4.5, "c"),
        call(7, "createExtension", "+14155550009", 4.1, 4.2, None),  # inside c's call
    ]
    problems = overlaps(log)
    assert len(problems) == 2, problems
    first, second = problems
    assert first.startswith("+14155550001: updateExtension by instance a (seq 4, ")
    assert "getExtension by instance b (seq 5, " in first and first.endswith("overlap by 0.300 s")
    assert second.startswith("+14155550009: createExtension by instance c (seq 6")
    assert "createExtension by instance no agent (seq 7" in second and second.endswith("overlap by 0.100 s")


def test_instance_names_are_read_from_the_user_agent():
    assert instance_of("verba-connector (instance scale-a.1)") == "scale-a.1"
    assert instance_of("python-httpx/0.27") == "python-httpx/0.27"
    assert instance_of(None) == "no agent"
