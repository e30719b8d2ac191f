"""Prometheus metrics (prefix `connector_`). The store's figures (queue, dead letters, events accepted, ...) are
read from the store at scrape time, so they count what every process and instance sharing it did (SCIM, LDAP,
`events ingest`): the same on every instance, not to be summed across them."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from connector.ops.bounded import BoundedCall
from connector.store import DriftFailure, DriftRun, EventState, RecorderState, Store, StoreError
from connector.version import VERSION

log = logging.getLogger("connector.metrics")

SOAP_CALLS = Counter(
    "connector_soap_calls_total",
    "SOAP calls to Verba, every operation (requestToken, listUsers, getExtension, createExtension, ...; pushes, "
    "look-ups, drift checks and health probes alike), by operation and answer status (the vendor's status code, "
    "or the cause of a call that got no answer).",
    ["operation", "status"],
)
SOAP_SECONDS = Histogram(
    "connector_soap_call_duration_seconds", "Time of one SOAP call to Verba, by operation.", ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BUILD_INFO = Gauge("connector_build_info", "Always 1; `version` is the running connector's.", ["version"])
BUILD_INFO.labels(VERSION).set(1)
COALESCED = Counter("connector_events_coalesced_total", "Events delivered as part of a newer event's push.")
SKIPPED = Counter("connector_pushes_skipped_total",
                  "Pushes not sent: the user's records equal those Verba last confirmed (no SOAP call).")
SCIM_REQUESTS = Counter(
    "connector_scim_requests_total",
    "SCIM requests by method, HTTP status and SCIM client (the [[scim.clients]] name its bearer token matched; "
    "\"-\" for none: a 401, or /healthz).",
    ["method", "status", "client"],
)
SCIM_REQUEST_SECONDS = Histogram(
    "connector_scim_request_duration_seconds", "Time of one SCIM request, until its answer is sent, by SCIM client.",
    ["client"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SCIM_IGNORED_ATTRIBUTES = Counter(
    "connector_scim_ignored_attributes_total",
    "Attributes the SCIM endpoint ignored in a write: those of a schema it does not define, and those a Group does "
    "not define (each name is logged once per process); [scim] strict_attributes = true refuses them with 400.",
    ["resource"],
)
SCIM_PENDING_MEMBERS = Counter(
    "connector_scim_pending_members_total",
    "Group member ids naming no User or Group of the SCIM client: pending (kept aside, not shown, no events), "
    "applied (a resource with that id appeared), dropped (over the limit kept per group); by SCIM client.",
    ["outcome", "client"],
)
OWNERSHIP_DECISIONS = Counter(
    "connector_extension_ownership_decisions_total",
    "Ownership decisions: conflict (an extension held for another user; counted at every push that meets it), "
    "hand_over, take_over, left_alone (a stop-recording write not sent).",
    ["decision"],
)
STOP_RECORDING_HELD = Counter("connector_stop_recording_guard_held_total",
                              "Pushes held by the stop-recording guard, by source.", ["source"])
SCIM_TOKEN_FILE_OK = Gauge(
    "connector_scim_token_file_ok",
    "1 while the SCIM client's token_file held good tokens when last read, 0 while it is broken (unreadable, empty, a "
    "token too short or another client's): its last good tokens stay valid, but the next start would refuse the "
    "file. Only clients with a token_file; the file is looked at on each SCIM request, /readyz and /metrics.",
    ["client"],
)
LDAP_POLL_SECONDS = Histogram("connector_ldap_poll_duration_seconds", "Time of one LDAP poll.", ["directory"])


UNSETTLED = (EventState.PENDING, EventState.IN_FLIGHT, EventState.HELD, EventState.DEAD)


def observe_soap_call(operation: str, status: str, seconds: float) -> None:
    SOAP_CALLS.labels(operation, status).inc()
    SOAP_SECONDS.labels(operation).observe(seconds)


class StoreCollector(Collector):
    """Queue depth, pending events, oldest pending age, dead letters by cause, LDAP watermark lag and events
    accepted, from the store, read in a thread of its own for at most `reading.seconds` a scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reading = BoundedCall(lambda: list(self._read()), "metrics-store")  # one connection, reused

    def close(self) -> None:
        """Let the reading thread end (it is not waited for)."""
        self.reading.close()

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # read the store at scrape time only, not at registration

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """The store's figures, read whole first: when the store cannot be read (a database outage), a scrape
        still answers with the process's own metrics, `connector_store_up` 0 and none of the store's."""
        try:
            families = self._figures()
        except StoreError as exc:
            log.warning("metrics: the store's figures are left out of this scrape: %s", exc)
            families = []
        yield GaugeMetricFamily("connector_store_up", "1 when this scrape read the store's figures, 0 when the store "
                                "could not be read (they are left out).", value=1 if families else 0)
        yield from families

    def _figures(self) -> list[CounterMetricFamily | GaugeMetricFamily]:
        """The store's figures; StoreError when the store fails, or does not answer within `reading.seconds`, so that
        a scrape answers well within Prometheus' 10 s (see BoundedCall)."""
        try:
            return self.reading()
        except TimeoutError:
            raise StoreError(f"the store did not answer within {self.reading.seconds:g} s") from None

    def _read(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        counts = self.store.count_by_state()
        depth = GaugeMetricFamily("connector_queue_depth",
                                  "Every event in the store by state, done and discarded included (those only "
                                  "grow): for work still to do, see connector_pending_events.", labels=["state"])
        pending = GaugeMetricFamily("connector_pending_events",
                                    "Events not settled yet, by state: pending (waiting for delivery), in_flight "
                                    "(being pushed), held (waiting for `connector events approve`), dead (waiting for "
                                    "a replay or a discard); done and discarded are not counted.", labels=["state"])
        for state, count in counts.items():
            depth.add_metric([state.value], count)
            if state in UNSETTLED:
                pending.add_metric([state.value], count)
        yield depth
        yield pending
        oldest = self.store.oldest_pending_at()
        yield GaugeMetricFamily(
            "connector_queue_oldest_pending_age_seconds", "Age of the oldest event not yet delivered.",
            value=0.0 if oldest is None else max(0.0, time.time() - oldest),
        )
        dead = GaugeMetricFamily("connector_dead_letters", "Dead letters by cause.", labels=["cause"])
        for group in sorted(self.store.dead_letter_summary()):  # one per cause
            dead.add_metric([group.cause], group.size)
        yield dead
        lag = GaugeMetricFamily("connector_ldap_watermark_lag_seconds",
                                "Seconds since each directory's watermark last moved (its last successful run).",
                                labels=["directory"])
        for mark in self.store.ldap_watermarks():
            if mark.last_success_at is not None:
                lag.add_metric([mark.directory], max(0.0, time.time() - mark.last_success_at))
        yield lag
        conflicts, clashes = self.store.ownership_counts()
        yield GaugeMetricFamily("connector_extension_conflicts",
                                "Open extension conflicts: an extension a user claims but another Verba user holds.",
                                value=conflicts)
        yield GaugeMetricFamily("connector_extension_clashes",
                                "Extensions that users of two or more Verba users claim at once (claim index).",
                                value=clashes)
        breakers = self.store.open_breakers()
        yield GaugeMetricFamily("connector_target_breaker_open", "1 while the circuit breaker on Verba is open.",
                                value=1 if breakers else 0)
        opened = GaugeMetricFamily("connector_target_breaker_opened_timestamp_seconds",
                                   "When each instance's open circuit breaker on Verba opened.", labels=["instance"])
        for breaker in breakers:
            opened.add_metric([breaker.instance], breaker.opened_at)
        yield opened
        yield GaugeMetricFamily("connector_instances_dead",
                                "Instances counted dead that have neither started again nor been forgotten "
                                "(`connector instances forget`).", value=len(self.store.dead_instances()))
        yield from _drift_metrics(self.store.last_drift_run())
        yield from _drift_failure_metrics(self.store.last_drift_failure())
        yield from _recorder_metrics(self.store.recorders())
        accepted = CounterMetricFamily("connector_events_accepted", "Events accepted by source and kind.",
                                       labels=["source", "kind"])
        for source, kind, count in self.store.count_by_source_and_kind():
            accepted.add_metric([source, kind], count)
        yield accepted


def _drift_metrics(run: DriftRun | None) -> Iterator[GaugeMetricFamily]:
    """The last drift check's figures (connector/ops/drift.py); none before the first."""
    if run is None:
        return
    yield GaugeMetricFamily("connector_drift_last_run_timestamp_seconds", "When the last drift check ended.",
                            value=run.finished_at)
    yield GaugeMetricFamily("connector_drift_last_run_duration_seconds", "How long the last drift check took.",
                            value=run.finished_at - run.started_at)
    yield GaugeMetricFamily("connector_drift_extensions_checked", "Extensions the last drift check compared.",
                            value=run.extensions)
    yield GaugeMetricFamily("connector_drift_users_not_checked",
                            "Users the last drift check could not compare (a change waiting to be pushed, a Verba "
                            "user under another loginName, ...): its drift counts say nothing of them.",
                            value=run.unchecked)
    found = GaugeMetricFamily("connector_drift_found", "Drift the last check found, by kind: extensions, but for "
                              "no_user, users no Verba user has the loginName of (recorded on none of their "
                              "extensions).", labels=["kind"])
    for kind, count in run.counts.items():
        found.add_metric([kind], count)
    yield found


def _drift_failure_metrics(failure: DriftFailure | None) -> Iterator[GaugeMetricFamily]:
    """Whether the scheduled drift check failed and no check has been recorded since, and when it failed."""
    yield GaugeMetricFamily("connector_drift_check_failing",
                            "1 while the last scheduled drift check failed (Verba failing as a whole mid-run, a store "
                            "error) and no check has been recorded since: the connector_drift_* figures are older; "
                            "`connector status` says why.", value=0 if failure is None else 1)
    if failure is not None:
        yield GaugeMetricFamily("connector_drift_failed_timestamp_seconds",
                                "When the failing scheduled drift check failed (only while "
                                "connector_drift_check_failing is 1).", value=failure.failed_at)


def _recorder_metrics(recorders: list[RecorderState]) -> Iterator[GaugeMetricFamily]:
    """Each recording server's last answer to applyExtensionConfiguration ([target] apply_configuration)."""
    took = GaugeMetricFamily("connector_recorder_in_step",
                             "1 when the recording server took the extension table at the last "
                             "applyExtensionConfiguration that named it, 0 when it did not.", labels=["recorder"])
    answered = GaugeMetricFamily("connector_recorder_answered_timestamp_seconds",
                                 "When the recording server last answered applyExtensionConfiguration (took the "
                                 "table or not).", labels=["recorder"])
    for recorder in recorders:
        took.add_metric([recorder.location], 1 if recorder.took_table else 0)
        answered.add_metric([recorder.location], recorder.applied_at)
    yield took
    yield answered


# By registry, held weakly: keyed by id(), a registry collected and a new one at its address took its collector.
_registered: weakref.WeakKeyDictionary[CollectorRegistry, StoreCollector] = weakref.WeakKeyDictionary()


def register_store(store: Store, registry: CollectorRegistry = REGISTRY) -> StoreCollector:
    """Expose `store`'s figures in `registry`, replacing the store registered there before."""
    previous = _registered.pop(registry, None)
    if previous is not None:
        registry.unregister(previous)
        previous.close()
    collector = _registered[registry] = StoreCollector(store)
    registry.register(collector)
    return collector


def unregister_store(store: Store, registry: CollectorRegistry = REGISTRY) -> None:
    """Stop exposing `store`'s figures in `registry` (it is closing), if it is the store registered there."""
    collector = _registered.get(registry)
    if collector is not None and collector.store is store:
        del _registered[registry]
        registry.unregister(collector)
        collector.close()
