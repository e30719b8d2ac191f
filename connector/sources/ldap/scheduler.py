"""In-process triggers (APScheduler 3.x): an incremental poll every poll_seconds, a full sync on a cron.

The cursor lives in the store, not in APScheduler: the scheduler only says "now". Each job runs
with max_instances=1 and coalescing, so a slow run is never doubled up. A failing directory is
retried with full-jitter backoff and reported degraded until a run succeeds; a full sync that
failed is repeated by the next tick, so no reconciliation is skipped. When several instances share
the store, only the one that leads a directory polls it (connector/liveness.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import time
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import LdapConfig
from connector.delivery.backoff import full_jitter_delay
from connector.sources.ldap.connection import DirectoryError, forget_refused_passwords
from connector.sources.ldap.watcher import Watcher
from connector.store import LdapMarks, StoreError, WatermarkMoved

log = logging.getLogger("connector.ldap")

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0


@dataclasses.dataclass
class DirectoryHealth:
    failures: int = 0
    retry_at: float = 0.0
    full_due: bool = False
    last_error: str | None = None
    elsewhere: bool = False  # the last tick found another instance polling the directory

    @property
    def status(self) -> str:
        return "degraded" if self.failures else "ok"


class LdapScheduler:
    """Runs the watchers of every `[ldap.NAME]` directory in background threads."""

    def __init__(self, store: LdapMarks, configs: dict[str, LdapConfig], *, backoff_base: float = BACKOFF_BASE_SECONDS,
                 backoff_max: float = BACKOFF_MAX_SECONDS, leads: Callable[[str], bool] = lambda name: True) -> None:
        """`leads(directory)` says whether this instance polls the directory now (connector/liveness.py: one
        instance per directory); a tick of a directory it does not lead does nothing."""
        self.leads = leads
        self.watchers = {name: Watcher(store, config) for name, config in configs.items()}
        self.health = {name: DirectoryHealth() for name in configs}
        self.backoff = (backoff_base, backoff_max)
        self.scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True})

    def start(self) -> None:
        if not self.watchers:
            return
        for name, watcher in self.watchers.items():
            config = watcher.config
            for warning in config.warnings:
                log.warning("ldap %s: %s", name, warning)
            self.scheduler.add_job(self.tick, IntervalTrigger(seconds=config.poll_seconds), args=[name, False],
                                   id=f"ldap-{name}-poll", next_run_time=datetime.datetime.now(datetime.UTC),
                                   misfire_grace_time=max(1, int(config.poll_seconds)))
            if config.full_sync_cron:
                self.scheduler.add_job(self.tick, CronTrigger.from_crontab(config.full_sync_cron), args=[name, True],
                                       id=f"ldap-{name}-full", misfire_grace_time=3600)
        self.scheduler.start()
        log.info("ldap: watching %s (each polled by one instance of those sharing the store)",
                 ", ".join(f"{n} every {w.config.poll_seconds:g} s" for n, w in self.watchers.items()))

    def stop(self) -> None:
        """Wait for running polls to finish (they commit or leave nothing), then close the connections."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        for watcher in self.watchers.values():
            watcher.close()

    def reload(self) -> list[str]:
        """SIGHUP: send the bind passwords the directories refused again at the next run (the account was unlocked
        or fixed on the server's side; a password_file is read again before each bind anyway); the names of the
        directories whose password was withheld until now."""
        forgotten = forget_refused_passwords()
        return [name for name, w in self.watchers.items() if (w.config.url, w.config.bind_dn) in forgotten]

    @property
    def degraded(self) -> bool:
        return any(h.failures for h in self.health.values())

    def probes(self) -> dict[str, Callable[[], str]]:
        """For /readyz: each directory says "ok", or why it is degraded while its runs are retried."""
        return {f"ldap.{name}": functools.partial(self._state, name) for name in self.watchers}

    def _state(self, name: str) -> str:
        health = self.health[name]
        if health.elsewhere:
            return "ok: another instance polls it (one instance polls each directory)"
        return "ok" if not health.failures else f"degraded: {health.failures} failed runs, last: {health.last_error}"

    def tick(self, name: str, full: bool) -> None:
        """One scheduled run; never raises, so the scheduler keeps its job."""
        health = self.health[name]
        if time.monotonic() < health.retry_at:
            health.full_due = health.full_due or full
            return
        full = full or health.full_due
        try:
            if not self.leads(name):  # another instance polls it: its failures here are over
                self.health[name] = DirectoryHealth(elsewhere=True)
                return
            health.elsewhere = False
            self.watchers[name].run(full=full)
        except WatermarkMoved:
            log.info("ldap %s: another poller committed first; polling again at the next tick", name)
        except StoreError as exc:  # the store's outage, not the directory's: no backoff, tried at the next poll
            health.failures += 1
            health.full_due = full
            health.last_error = f"the store is unavailable, not the directory: {exc}"
            log.warning("ldap %s: run not done (%d in a row), readiness degraded: %s; trying again at the next poll",
                        name, health.failures, health.last_error)
        except Exception as exc:  # the schedule goes on; the cursor did not move, so nothing is skipped
            health.failures += 1
            health.full_due = full
            health.last_error = str(exc)
            delay = full_jitter_delay(health.failures, *self.backoff)
            health.retry_at = time.monotonic() + delay
            expected = isinstance(exc, DirectoryError)
            log.log(logging.WARNING if expected else logging.ERROR,
                    "ldap %s: run failed (%d in a row), readiness degraded; next try at the first poll after %.0f s: "
                    "%s", name, health.failures, max(delay, self.watchers[name].config.poll_seconds), exc,
                    exc_info=not expected)
        else:
            if health.failures:
                log.info("ldap %s: runs succeed again after %d failed runs", name, health.failures)
            self.health[name] = DirectoryHealth()
