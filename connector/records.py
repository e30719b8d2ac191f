"""ExtensionRecord: one Verba extension as the connector wants it to be (made by the mapping, pushed by
delivery, remembered by the store)."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Any

RECORDING_MODES: tuple[str, ...] = ("FULL", "ON_DEMAND", "CONTROLLED")
# Every character but XML 1.0's (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


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
    """None for a valid Verba environment id (a string of exactly 4 characters XML can carry, such as "0000"), else
    what is wrong and the fix; the one eid check of the config, the mapping, records and the client.

    The problem reads after the key: f"target.eid {problem}" -> "target.eid is '00000'; an eid has ...".
    """
    if isinstance(eid, str) and len(eid) == 4:
        problem = not_xml(eid)
        return f'is {eid!r}: it {problem}; use the environment\'s id from Verba, such as "0000"' if problem else None
    if isinstance(eid, int) and not isinstance(eid, bool) and 0 <= eid <= 9999:  # TOML read eid = 0042 as 42
        return f'is the number {eid}; quote it so leading zeros stay: eid = "{eid:04d}"'
    return f'is {eid!r}; an eid has exactly 4 characters, such as "0000" (quote it)'


def not_xml(text: str) -> str:
    """What in `text` XML 1.0 cannot carry, so that no request to Verba can hold it (lxml refuses to build one): "holds
    U+001A (a control character), which XML 1.0 cannot carry"; "" when nothing. Such characters are NUL and the
    other control characters but tab, line feed and carriage return, unpaired surrogates (what Python makes of a
    byte that is not UTF-8), U+FFFE and U+FFFF. Reads after a name: f"target.login {problem}; fix"."""
    found = _NOT_XML.search(text)
    return f"holds {character(found[0])}, which XML 1.0 cannot carry" if found else ""


def character(char: str) -> str:
    """`char` as messages name one that cannot be shown: "U+001A (a control character)", "U+DCFC (an unpaired
    surrogate)", "U+FFFF (a noncharacter)"."""
    kind = {"Cc": "a control character", "Cs": "an unpaired surrogate", "Cn": "a noncharacter"}.get(
        unicodedata.category(char), "")
    return f"U+{ord(char):04X}" + (f" ({kind})" if kind else "")
