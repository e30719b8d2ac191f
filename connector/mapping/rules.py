"""Recording rules: the first rule whose conditions all hold decides how a user is recorded."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

from connector.mapping.paths import AttributePath, same_value

_CN = re.compile(r"\s*cn=((?:\\.|[^,\\])+)", re.IGNORECASE)
_ESCAPE = re.compile(r"\\(.)")


@dataclasses.dataclass(frozen=True)
class RecordingSettings:
    recording_mode: str
    voice: bool
    im: bool
    video: bool
    screen_capture_enabled: bool


@dataclasses.dataclass(frozen=True)
class Condition:
    """Every given part must hold: membership of `group`, and a test of `attribute`."""

    group: str | None = None
    attribute: AttributePath | None = None
    equals: str | bool | None = None
    pattern: re.Pattern[str] | None = None
    present: bool | None = None

    def holds(self, state: dict[str, Any]) -> bool:
        if self.group is not None and not in_group(state, self.group):
            return False
        if self.attribute is None:
            return True
        values = [v for v in self.attribute.values(state) if not (isinstance(v, str) and not v.strip())]
        if self.present is not None:
            return bool(values) == self.present
        if self.pattern is not None:
            return any(isinstance(v, str) and self.pattern.fullmatch(v) for v in values)
        return self.equals is not None and any(same_value(v, self.equals) for v in values)


@dataclasses.dataclass(frozen=True)
class Rule:
    """`settings` None means: do not record this user."""

    when: Condition
    settings: RecordingSettings | None


def first_match(rules: Sequence[Rule], state: dict[str, Any]) -> Rule | None:
    return next((rule for rule in rules if rule.when.holds(state)), None)


def in_group(state: dict[str, Any], group: str) -> bool:
    """Case-insensitive; a DN such as CN=Traders,OU=Groups,DC=corp also matches by its CN, "Traders"."""
    wanted = group.casefold()
    for name in state.get("groups") or []:
        if not isinstance(name, str):
            continue
        cn = _CN.match(name)
        if name.casefold() == wanted or (cn and _ESCAPE.sub(r"\1", cn[1]).strip().casefold() == wanted):
            return True
    return False
