"""In-process triggers (APScheduler 3.x): an incremental poll every poll_seconds, a full sync on a cron.

The cursor lives in the store, not in APScheduler: the scheduler only says "now". Each job runs
with max_instances=1 and coalescing, so a slow run is never doubled up. A failing directory is
retried with full-jitter backoff and reported degraded until a run succeeds. A full sync that
failed is tried again on a backoff of its own, so no reconciliation is skipped, while the polls go on
between its tries (a full sync stopped by a size limit must not stop the changes from being read),
and the directory is reported degraded, in /readyz and in the store (`connector ldap status`), until
a full sync succeeds. When several instances share the store, only the one that leads a directory
polls it (connector/liveness.py).
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
    """What the scheduler knows of one directory's runs: its polls' failures, and its full sync's apart."""

    failures: int = 0  # runs failed in a row (polls, and full syncs the directory or the store stopped)
    retry_at: float = 0.0  # time.monotonic(): no run before
    last_error: str | None = None
    full_due: bool = False  # a full sync was asked for (full_sync_cron) and has not succeeded since
    full_failures: int = 0  # full syncs failed in a row
    full_retry_at: float = 0.0  # time.monotonic(): no full sync before; the polls go on
    full_error: str | None = None  # why the last full sync failed, until one succeeds
    full_failed_at: float = 0.0  # time.time() of that failure
    elsewhere: bool = False  # the last tick found another instance polling the directory

    @property
    def status(self) -> str:
        return "degraded" if self.failures or self.full_error else "ok"


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
        return any(h.status == "degraded" for h in self.health.values())

    def probes(self) -> dict[str, Callable[[], str]]:
        """For /readyz: each directory says "ok", or why it is degraded while its runs are retried."""
        return {f"ldap.{name}": functools.partial(self._state, name) for name in self.watchers}

    def _state(self, name: str) -> str:
        health = self.health[name]
        if health.elsewhere:
            return "ok: another instance polls it (one instance polls each directory)"
        problems = [f"{health.failures} failed runs, last: {health.last_error}"] if health.failures else []
        if health.full_error:
            problems.append(_full_sync_failure(health))
        return "degraded: " + "; ".join(problems) if problems else "ok"

    def tick(self, name: str, full: bool) -> None:
        """One scheduled run; never raises, so the scheduler keeps its job. A full sync asked for (`full`) runs
        once no backoff holds it (the polls', or the full sync's own after it failed); until then the ticks
        poll."""
        health = self.health[name]
        health.full_due = health.full_due or full
        now = time.monotonic()
        full = health.full_due and now >= max(health.retry_at, health.full_retry_at)
        if not full and now < health.retry_at:
            return
        try:
            if not self.leads(name):  # another instance polls it: its failures here are over
                self.health[name] = DirectoryHealth(elsewhere=True)
                return
            health.elsewhere = False
            result = self.watchers[name].run(full=full)
        except WatermarkMoved:
            log.info("ldap %s: another poller committed first; polling again at the next tick", name)
        except StoreError as exc:  # the store's outage, not the directory's: no backoff, tried at the next poll
            health.failures += 1
            health.last_error = f"the store is unavailable, not the directory: {exc}"
            log.warning("ldap %s: run not done (%d in a row), readiness degraded: %s; trying again at the next poll",
                        name, health.failures, health.last_error)
        except Exception as exc:  # the schedule goes on; the cursor did not move, so nothing is skipped
            if full and isinstance(exc, DirectoryError):
                self._full_failed(name, exc)
                return
            health.failures += 1
            health.last_error = str(exc)
            delay = full_jitter_delay(health.failures, *self.backoff)
            health.retry_at = time.monotonic() + delay
            expected = isinstance(exc, DirectoryError)
            log.log(logging.WARNING if expected else logging.ERROR,
                    "ldap %s: run failed (%d in a row), readiness degraded; next try at the first poll after %.0f s: "
                    "%s", name, health.failures, max(delay, self.watchers[name].config.poll_seconds), exc,
                    exc_info=not expected)
        else:
            self._succeeded(name, result.full)

    def _full_failed(self, name: str, exc: DirectoryError) -> None:
        """A full sync the directory stopped (a size limit, an outage): tried again after a backoff of its own,
        while the ticks between poll (a directory that is down fails those too, and they back off)."""
        health = self.health[name]
        health.full_failures += 1
        health.full_error, health.full_failed_at = str(exc), time.time()
        delay = full_jitter_delay(health.full_failures, *self.backoff)
        health.full_retry_at = time.monotonic() + delay
        log.warning("ldap %s: full sync failed (%d in a row), readiness degraded; the polls go on, and the full sync "
                    "is tried again at the first poll after %.0f s: %s", name, health.full_failures,
                    max(delay, self.watchers[name].config.poll_seconds), exc)

    def _succeeded(self, name: str, full: bool) -> None:
        """A run that read the directory: its failures are over, and a full sync's too if it was one (also one the
        watcher chose, which reconciles as well)."""
        health = self.health[name]
        if health.failures:
            log.info("ldap %s: runs succeed again after %d failed runs", name, health.failures)
        if full and health.full_failures:
            log.info("ldap %s: the full sync succeeds again after %d failed", name, health.full_failures)
        if full:
            self.health[name] = DirectoryHealth()
            return
        self.health[name] = dataclasses.replace(health, failures=0, retry_at=0.0, last_error=None)
        if not health.full_error:
            return
        # The poll's success cleared the failure in the store: `connector ldap status` shows the full sync's again.
        try:
            self.watchers[name].store.note_poll_failure(name, _full_sync_failure(health), health.full_failed_at)
        except StoreError as exc:
            log.warning("ldap %s: the failed full sync could not be recorded in the store again: %s", name, exc)


def _full_sync_failure(health: DirectoryHealth) -> str:
    """What /readyz and `connector ldap status` say of a full sync that failed, until one succeeds."""
    return (f"the full sync failed ({health.full_failures} in a row; the polls go on, and it is tried again): "
            f"{health.full_error}")
