"""ExtensionRecord: one Verba extension as the connector wants it to be (made by the mapping, pushed by
delivery, remembered by the store)."""

from __future__ import annotations

import dataclasses
from typing import Any

RECORDING_MODES: tuple[str, ...] = ("FULL", "ON_DEMAND", "CONTROLLED")


@dataclasses.dataclass(frozen=True)
class ExtensionRecord:
    """The full desired state of one extension.

    It cannot exist without a Verba user id: an updateExtension without
    <user><id> silently unlinks the extension from its user.
    """

    extension: str
    user_id: int
    recording_mode: str
    voice: bool
    im: bool
    video: bool
    screen_capture_enabled: bool
    eid: str | None = None
    environment_short_name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.user_id, bool) or not isinstance(self.user_id, int) or self.user_id <= 0:
            raise ValueError(
                f"extension {self.extension!r} needs a positive integer Verba user id, got {self.user_id!r}"
            )
        if not isinstance(self.extension, str) or not self.extension:
            raise ValueError("an extension record needs a non-empty extension string")
        if self.recording_mode not in RECORDING_MODES:
            raise ValueError(f"recordingMode {self.recording_mode!r} is not one of {', '.join(RECORDING_MODES)}")
        if (self.eid is None) == (self.environment_short_name is None):
            raise ValueError("give exactly one of eid or environmentShortName")
        if self.eid is not None and eid_problem(self.eid):
            raise ValueError(f"eid {eid_problem(self.eid)}")

    @property
    def recording(self) -> bool:
        return self.voice or self.im or self.video or self.screen_capture_enabled

    def stopped(self) -> ExtensionRecord:
        """The same extension, still linked to its user, with recording turned off."""
        return dataclasses.replace(self, voice=False, im=False, video=False, screen_capture_enabled=False)

    def differences(self, other: ExtensionRecord, here: str, there: str) -> str:
        """How this record differs from `other`, "" if it does not: "im False {here}, True {there}, video ..."
        (`here` and `there` say whose each is, e.g. "for okta/00u1")."""
        return ", ".join(f"{name} {mine} {here}, {theirs} {there}" for name, mine in vars(self).items()
                         if mine != (theirs := getattr(other, name)))

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))  # every field is a plain value: dataclasses.asdict's deep copy would only cost

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtensionRecord:
        return cls(**data)


def eid_problem(eid: object) -> str | None:
    """None for a valid Verba environment id (a string of exactly 4 characters, such as "0000"), else what is
    wrong and the fix; the one eid check of the config, the mapping, records and the client.

    The problem reads after the key: f"target.eid {problem}" -> "target.eid is '00000'; an eid has ...".
    """
    if isinstance(eid, str) and len(eid) == 4:
        return None
    if isinstance(eid, int) and not isinstance(eid, bool) and 0 <= eid <= 9999:  # TOML read eid = 0042 as 42
        return f'is the number {eid}; quote it so leading zeros stay: eid = "{eid:04d}"'
    return f'is {eid!r}; an eid has exactly 4 characters, such as "0000" (quote it)'
