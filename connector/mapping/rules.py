"""Recording rules: the first rule whose conditions all hold decides how a user is recorded."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

from connector.dn import InvalidDn, fold, normalize_dn, parse_dn
from connector.mapping.paths import AttributePath, blank, matches, same_value


@dataclasses.dataclass(frozen=True)
class RecordingSettings:
    recording_mode: str
    voice: bool
    im: bool
    video: bool
    screen_capture_enabled: bool


@dataclasses.dataclass(frozen=True)
class Condition:
    """Every given part must hold: membership of `group`, and a test of `attribute`: some value `equals` (as
    paths.same_value compares), matches `pattern` as a whole (paths.matches), or is `present` (a blank value is none).
    """

    group: str | None = None
    attribute: AttributePath | None = None
    equals: str | bool | None = None
    pattern: re.Pattern[str] | None = None
    present: bool | None = None

    def describe(self) -> str:
        """The condition as the mapping file writes it, e.g. 'group = "Traders", attribute = "title", equals = "VP"'."""
        parts = [] if self.group is None else [f"group = {json.dumps(self.group)}"]
        if self.attribute is not None:
            parts.append(f"attribute = {json.dumps(str(self.attribute))}")
            if self.present is not None:
                parts.append(f"present = {json.dumps(self.present)}")
            elif self.pattern is not None:
                parts.append(f"matches = {json.dumps(self.pattern.pattern)}")
            else:
                parts.append(f"equals = {json.dumps(self.equals)}")
        return ", ".join(parts)

    def holds(self, state: dict[str, Any]) -> bool:
        if self.group is not None and not in_group(state, self.group):
            return False
        if self.attribute is None:
            return True
        # Values compare as paths.same_value and paths.matches read them; a blank one is no value.
        values = [v for v in self.attribute.values(state) if not blank(v)]
        if self.present is not None:
            return bool(values) == self.present
        if self.pattern is not None:
            return any(matches(v, self.pattern) for v in values)
        return self.equals is not None and any(same_value(v, self.equals) for v in values)


@dataclasses.dataclass(frozen=True)
class Rule:
    """`settings` None means: do not record this user."""

    when: Condition
    settings: RecordingSettings | None


def first_match(rules: Sequence[Rule], state: dict[str, Any]) -> Rule | None:
    return next((rule for rule in rules if rule.when.holds(state)), None)


def in_group(state: dict[str, Any], group: str) -> bool:
    """Whether `group` is one of the state's groups (for LDAP: effective membership, nested groups included).

    A DN compares with DNs in any RFC 4514 spelling (`CN=Sales\\2BTrading` is `cn=Sales\\+Trading`);
    a plain name such as "Traders" matches a group DN by the value of its CN (CN=Traders,OU=Groups,DC=corp)
    and a group name as SCIM sends it; case and runs of spaces do not count.
    """
    wanted = _group_key(group)
    return any(wanted in _names(name) for name in state.get("groups") or [] if isinstance(name, str))


def _group_key(group: str) -> tuple[str, str]:
    try:
        return "dn", normalize_dn(group)
    except InvalidDn:
        return "name", fold(group)


def _names(group: str) -> set[tuple[str, str]]:
    """The keys a group of the state answers to: its normalized DN and the value of its CN, or its plain name."""
    try:
        rdns = parse_dn(group)
    except InvalidDn:
        return {("name", fold(group))}
    keys = {("dn", normalize_dn(group))}
    attribute, value = rdns[0][0]
    if attribute == "cn":
        keys.add(("name", fold(value)))
    return keys
