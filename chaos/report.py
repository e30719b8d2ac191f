"""The campaign's report: one table of figures, and whether the run passed."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Report:
    """Figures of one campaign run on one store. Seconds are wall-clock seconds."""

    store: str
    seed: int
    runs: int = 0  # connector processes started
    kills: int = 0  # SIGKILLs of the connector
    writes_acknowledged: int = 0  # SCIM writes answered 2xx
    events_accepted: int = 0  # events in the store
    delivered: int = 0  # events done
    undelivered: int = 0  # pending or in flight when the campaign gave up waiting
    lost: int = 0  # acknowledged writes the connector does not have (SCIM read-back differs)
    dead_letters: int = 0  # every dead letter is unexpected: every user exists in Verba
    held: int = 0
    writes_without_user_id: int = 0  # createExtension/updateExtension calls without <user><id>
    wrong_final_states: int = 0  # users whose Verba state differs from the oracle's
    status_5xx: int = 0  # SCIM answers 500-599 other than 503 with Retry-After
    status_503: int = 0  # 503 with Retry-After (the store said "later")
    unexpected_answers: int = 0  # 4xx the workload did not expect
    tracebacks: int = 0  # log records with an exception in the connector's log, but for the full disk
    store_full_tracebacks: int = 0  # log records with a "database or disk is full" StoreError traceback
    directory_changes: int | None = None  # telephoneNumber changes in the watched OpenLDAP directory
    directory_outages: int | None = None  # times slapd was stopped between polls and restarted
    outage_dead_letters: int | None = None  # dead letters that appeared during the Verba outage phase
    outage_seconds: float | None = None
    drain_seconds_after_outage: float | None = None  # from Verba's return until nothing is pending
    disk_full_503: int | None = None  # SCIM answers 503 + Retry-After while the store was full
    disk_full_writes_acknowledged: int | None = None  # SCIM writes answered 2xx while the store was full
    disk_full_acknowledged_unstored: int | None = None  # writes answered 2xx during the full disk but not stored
    malformed_requests: int | None = None  # malformed SCIM requests sent (their 5xx count in status 5xx)
    malformed_dead_letters: int | None = None  # dead letters of the fuzz client (expected: no Verba user)
    harness_errors: int = 0  # a writer or the directory churn stopped, the watcher never caught up, a bad exit
    duration_seconds: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)  # one line per finding

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.undelivered or self.dead_letters or self.held or self.writes_without_user_id
                    or self.wrong_final_states or self.status_5xx or self.unexpected_answers or self.tracebacks
                    or self.disk_full_acknowledged_unstored or self.harness_errors)

    def rows(self) -> list[tuple[str, Any]]:
        return [(field.name.replace("_", " "), getattr(self, field.name)) for field in dataclasses.fields(self)
                if field.name != "problems"]


def render(reports: list[Report]) -> str:
    """One table, a column per store, then every problem found."""
    names = [name for name, _ in reports[0].rows()]
    columns = [[_cell(value) for _, value in report.rows()] for report in reports]
    width = max(len(name) for name in names)
    cell = max([len(c) for column in columns for c in column] + [8])
    lines = ["chaos campaign report", "-" * (width + (cell + 2) * len(reports))]
    for i, name in enumerate(names):
        lines.append(f"{name:<{width}}" + "".join(f"  {column[i]:>{cell}}" for column in columns))
    lines.append(f"{'verdict':<{width}}" + "".join(f"  {'FAIL' if r.failed else 'PASS':>{cell}}" for r in reports))
    for report in reports:
        for problem in report.problems[:50]:
            lines.append(f"[{report.store} seed {report.seed}] {problem}")
        if len(report.problems) > 50:
            lines.append(f"[{report.store}] ... and {len(report.problems) - 50} more")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
