"""The delivery worker loop (connector/delivery/worker.py WorkerPool) when the store fails."""

from __future__ import annotations

import logging
import threading

from connector.delivery.worker import WorkerPool
from connector.store import StoreError


class FailingStore:
    """A deliverer whose store cannot be written the first two times."""

    def __init__(self) -> None:
        self.calls = 0
        self.recovered = threading.Event()

    def deliver_one(self, owner: str, *, busy: bool = False) -> bool:
        self.calls += 1
        if self.calls <= 2:
            raise StoreError("the store c.db could not be written (database or disk is full)")
        self.recovered.set()
        return False


def test_a_store_error_is_one_log_line_without_a_traceback_and_the_worker_goes_on(caplog, monkeypatch) -> None:
    monkeypatch.setattr("connector.delivery.worker.STORE_RETRY_SECONDS", 0.01)
    deliverer = FailingStore()
    pool = WorkerPool(deliverer, workers=1, idle_poll_seconds=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="connector.delivery"):
        pool.start()
        assert deliverer.recovered.wait(5)
        pool.stop(5)
    failures = [r for r in caplog.records if "disk is full" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info is None for r in failures)
