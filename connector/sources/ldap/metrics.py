"""Prometheus metrics of the LDAP watcher (prefix `connector_ldap_`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LAST_SUCCESS = Gauge("connector_ldap_poll_last_success_timestamp_seconds",
                     "When a run of this directory last completed.", ["directory"])
FAILURES = Counter("connector_ldap_poll_failures_total", "Runs that failed (directory unreachable, "
                   "search incomplete, store unavailable).", ["directory"])
HELD = Counter("connector_ldap_guard_held_events_total",
               "Deactivate and delete events the mass-change guard held for approval.", ["directory"])
