"""Each instance's last probe of the target (connector/ops/health.py), on every backend."""

from __future__ import annotations

from connector.store import Store, TargetProbe

URL = "http://verba:7002/provisioning"


def test_the_last_probe_of_each_instance_newest_first(store: Store) -> None:
    assert store.target_probes() == []
    a1 = TargetProbe("conn-a", URL, 1000.0, 0.25, None, None)
    b1 = TargetProbe("conn-b", URL, 1010.0, 3.0, "transport", "Verba could not be reached: connection refused")
    a2 = TargetProbe("conn-a", URL + "2", 1020.5, 0.5, "http_5xx", "Verba answered HTTP 503")
    for probe in (a1, b1, a2):
        store.note_target_probe(probe)
    assert store.target_probes() == [a2, b1]
    assert not a2.answered and a1.answered


def test_a_probe_that_started_before_the_recorded_one_changes_nothing(store: Store) -> None:
    """A slow health probe that ends after the breaker's newer probe must not put the older answer back."""
    newer = TargetProbe("conn-a", URL, 2000.0, 0.1, None, None)
    store.note_target_probe(newer)
    store.note_target_probe(TargetProbe("conn-a", URL, 1995.0, 6.0, "transport", "timed out"))
    assert store.target_probes() == [newer]
