"""The stop-recording guard: a burst of stop-recording pushes from one source is held for an operator.

A push "stops recording" when it turns recording off on an extension last pushed recording
(the user was disabled or deleted, lost a number, or no rule records them any more). When,
within `guard_window_seconds`, one source's pushes would stop recording for more than
`guard_max_count` users *and* more than `guard_max_share` of that source's recorded users, the
push is held (state `held`, cause `stop_recording_guard`) until `connector events approve`.
This covers every source: SCIM, LDAP and `events ingest` alike, and a changed normalization
that renames many extensions at once. A push whose stopped extensions another source user of the
same Verba user still claims (a deleted account re-created) stops nothing and is not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from connector.config import DeliveryConfig
from connector.mapping import MappedUser
from connector.ops.metrics import STOP_RECORDING_HELD
from connector.records import ExtensionRecord
from connector.store import Claim
from connector.store.ownership import StopRecordingBurst, StopRecordingWindow

CAUSE = "stop_recording_guard"


class StopRecordingGuard:
    """Decides which pushes the guard counts, and says why one is held (see the module doc). The count
    itself runs in the push's first transaction (`Store.begin_push`)."""

    def __init__(self, config: DeliveryConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    def window(self, previous: Sequence[ExtensionRecord], mapped: MappedUser) -> StopRecordingWindow | None:
        """What `begin_push` counts this push in, or None when it stops no recording."""
        recording = {r.extension for r in previous if r.recording}
        stopping = tuple(r.extension for r in mapped.deprovisions if r.extension in recording)
        if not stopping:
            return None
        config = self.config
        return StopRecordingWindow(self.clock(), config.guard_window_seconds, config.guard_max_count,
                                   config.guard_max_share, stopping)

    def hold_reason(self, claim: Claim, burst: StopRecordingBurst) -> str:
        """Why this push waits for an operator (counted in the metrics)."""
        config = self.config
        STOP_RECORDING_HELD.labels(claim.source).inc()
        return (f"source {claim.source!r} would stop recording {burst.stopping} of about {burst.recorded} recorded "
                f"users within {config.guard_window_seconds:g} s (more than guard_max_count = "
                f"{config.guard_max_count} and guard_max_share = {config.guard_max_share:g}); check them with "
                f"`connector events list --state held --source {claim.source}`, then release them with "
                f"`connector events approve --source {claim.source} --reason \"...\"` or discard them")
