"""Answers in time from a store that may not answer: /readyz and a /metrics scrape must answer a load balancer or
Prometheus within seconds, even while a SQLite file is locked by another process or a PostgreSQL host is unreachable
(each store call then waits out its driver's timeout: 5 s busy timeout, 10 s connect timeout)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

STORE_WAIT_SECONDS = 3.0  # how long /readyz and a scrape wait for the store (a load balancer's check allows about 5 s)

T = TypeVar("T")


class BoundedCall(Generic[T]):
    """`function` run in a thread of its own (named `name`), waited for at most `seconds` by each call.

    A run still going from an earlier call is waited for again, never started twice: a store that hangs holds one
    thread and one connection, however often it is asked."""

    def __init__(self, function: Callable[[], T], name: str, seconds: float = STORE_WAIT_SECONDS) -> None:
        self.function = function
        self.seconds = seconds
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._running: Future[T] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        """What `function` returned, or raised; TimeoutError if it did not end within `seconds`."""
        with self._lock:
            if self._running is None or self._running.done():
                self._running = self._thread.submit(self.function)
            running = self._running
        return running.result(timeout=self.seconds)

    def close(self) -> None:
        """Let the thread end once a run still going ends (not waited for)."""
        self._thread.shutdown(wait=False, cancel_futures=True)
