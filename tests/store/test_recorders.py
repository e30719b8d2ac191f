"""What each recording server answered the last applyExtensionConfiguration, on every backend."""

from __future__ import annotations

from connector.store import RecorderState, Store


def test_each_recorders_last_answer_by_location(store: Store) -> None:
    assert store.recorders() == []
    b1 = RecorderState("rec-b", "0000", "ERROR_GENERAL", "disk full", 1000.0, "conn-a")
    a1 = RecorderState("rec-a", None, "OK", None, 1000.0, "conn-a")
    store.note_recorders([b1, a1])
    assert store.recorders() == [a1, b1]
    b2 = RecorderState("rec-b", "0000", "OK", None, 1060.5, "conn-b")
    store.note_recorders([b2])  # an answer that names rec-b only: rec-a keeps its row
    assert store.recorders() == [a1, b2]
    store.note_recorders([])
    assert store.recorders() == [a1, b2]
