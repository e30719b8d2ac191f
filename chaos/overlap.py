"""Never two instances pushing one user at once, checked on the simulator's call log.

Each call-log entry says when the request arrived (`started`, before any injected latency), when
it was answered (`at`) and who sent it (`agent`, the User-Agent header: `verba-connector
(instance NAME)`). Calls that name an extension (createExtension, updateExtension, getExtension)
are grouped by extension (and environment); two of them from different agents whose
[started, at] intervals overlap mean two instances worked on the same user at the same time.
Calls of one agent may overlap (a retry after a client-side timeout is that agent's business).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

EXTENSION_CALLS = frozenset({"createExtension", "updateExtension", "getExtension"})


def instance_of(agent: str | None) -> str:
    """The instance name in `verba-connector (instance NAME)`, else the agent as sent (or "no agent")."""
    if agent is None:
        return "no agent"
    match = re.fullmatch(r"verba-connector \(instance (.+)\)", agent)
    return match.group(1) if match else agent


def overlaps(calls: Iterable[dict[str, Any]]) -> list[str]:
    """One readable line per pair of overlapping calls on one extension from different agents."""
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for call in calls:
        if call.get("operation") in EXTENSION_CALLS and call.get("extension") is not None:
            groups.setdefault((call["extension"], call.get("eid")), []).append(call)
    problems: list[str] = []
    for (extension, _eid), group in sorted(groups.items(), key=lambda item: str(item[0])):
        group.sort(key=lambda call: (_started(call), call.get("seq", 0)))
        running: list[dict[str, Any]] = []  # calls that started earlier and may still be unanswered
        for call in group:
            running = [other for other in running if other["at"] > _started(call)]
            problems += [f"{extension}: {_describe(other)} and {_describe(call)} overlap by "
                         f"{min(other['at'], call['at']) - _started(call):.3f} s"
                         for other in running if other.get("agent") != call.get("agent")]
            running.append(call)
    return problems


def _started(call: dict[str, Any]) -> float:
    """When the call arrived; an entry without `started` (an older simulator) is taken as instantaneous."""
    return float(call.get("started", call["at"]))


def _describe(call: dict[str, Any]) -> str:
    return (f"{call['operation']} by instance {instance_of(call.get('agent'))} (seq {call.get('seq')}, "
            f"{_clock(_started(call))}-{_clock(call['at'])}, {call.get('status')})")


def _clock(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
