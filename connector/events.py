"""The user-change event shared by every source (SCIM, LDAP, file ingest).

A `UserChange` carries the *full* normalized state of one user after the change,
never a delta, so that pending changes can be coalesced and replays re-map the
latest state.  The normalized state is a dict with these keys (all optional but
`userName`):

    userName      str            login name, e.g. "alice@example.com"
    active        bool           False once the user is disabled
    displayName   str
    name          {"givenName": str, "familyName": str}
    emails        [{"value": str, "type": str, "primary": bool}]
    phoneNumbers  [{"value": str, "type": str}]
    groups        [str]          group display names or DNs; from LDAP, effective membership
                                 (direct, primary and nested groups)
    direct_groups [str]          LDAP only: the direct memberOf DNs
    expiresAt     str            LDAP only, when set: when the account expires (RFC 3339, UTC)
    attributes    {str: value}   raw source attributes the mapping may read
                                 (LDAP attributes, SCIM enterprise extension, ...)
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from typing import Any, Literal

Kind = Literal["upsert", "deactivate", "delete"]
KINDS: tuple[str, ...] = ("upsert", "deactivate", "delete")
STATE_FIELDS = ("userName", "active", "displayName", "name", "emails", "phoneNumbers", "groups", "direct_groups",
                "expiresAt", "attributes")  # as the module docstring describes them
# How far in the future an `accepted_at` may be (another host's clock running ahead): an event is due at its
# accepted_at, so one later than this would hold its user back that long, unseen by the age alerts.
MAX_CLOCK_SKEW_SECONDS = 300.0


@dataclasses.dataclass(frozen=True)
class UserChange:
    source: str
    external_id: str
    kind: Kind
    state: dict[str, Any]
    accepted_at: float = dataclasses.field(default_factory=time.time)
    cause: str = ""
    idem_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_user_change(data: Any, *, default_cause: str = "") -> UserChange:
    """Validate one event as any source would hand it in; raise ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("an event must be a JSON object")
    unknown = set(data) - {"source", "external_id", "kind", "state", "cause", "id", "accepted_at"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: source, external_id, kind, state, cause, id")
    for key in ("source", "external_id"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ValueError(f"'{key}' must be a non-empty string")
    kind = data.get("kind", "upsert")
    if kind not in KINDS:
        raise ValueError(f"'kind' is {kind!r}; use one of {', '.join(KINDS)}")
    state = data.get("state")
    if not isinstance(state, dict):
        raise ValueError("'state' must be an object holding the user's full state")
    _check_state(state)
    idem_key = data.get("id")
    if idem_key is not None and not isinstance(idem_key, str):
        raise ValueError("'id' (the idempotency key) must be a string")
    accepted_at = data.get("accepted_at", time.time())
    if not isinstance(accepted_at, (int, float)) or isinstance(accepted_at, bool):
        raise ValueError("'accepted_at' must be a Unix timestamp: seconds since the epoch, such as "
                         f"{time.time():.0f} (or leave it out: the time the event is accepted)")
    _check_text(data, "")
    return UserChange(
        source=data["source"],
        external_id=data["external_id"],
        kind=kind,
        state=state,
        accepted_at=check_accepted_at(float(accepted_at)),
        cause=str(data.get("cause") or default_cause),
        idem_key=idem_key,
    )


def _check_text(value: Any, where: str) -> None:
    """ValueError naming where (e.g. 'state.attributes.x') a string of `value`, a key or a value at any depth, holds
    what a store cannot hold: a NUL character (PostgreSQL refuses it, SQLite would keep it, so both refuse it here)
    or an unpaired surrogate (JSON's "\\ud800" alone, which is not text)."""
    if isinstance(value, str):
        if problem := unstorable(value):
            raise ValueError(f"'{where}' {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else key
            if problem := unstorable(key):
                raise ValueError(f"the key {key!r} of '{where or 'the event'}' {problem}")
            _check_text(item, inner)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{where}[{index}]")


REPLACEMENT_CHARACTER = "\ufffd"  # U+FFFD: what `storable` writes for a character no store can hold
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a character (not UTF-8: JSON's "\ud800" alone)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str:
    """What in `text` no store can hold (PostgreSQL cannot even compare it), and what to do ("holds a NUL character
    ..."); "" when nothing. SCIM and events ingest refuse such text; LDAP keeps it `storable`."""
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which the store cannot hold; the source must drop it"
    if surrogate := _SURROGATE.search(text):
        return (f"holds an unpaired surrogate ({surrogate.group()!a}, half of a character), which the store cannot "
                "hold; the source must send the character whole")
    return ""


def storable(text: str) -> str:
    r"""`text` as a store can hold it: each character `unstorable` names (a NUL, an unpaired surrogate) as
    REPLACEMENT_CHARACTER, which a mapping refuses in an extension (connector/mapping/normalize.py), so that the
    mapping's `on_invalid` decides; but NULs at either end are dropped, as the mapping drops any other control
    character there (a C string's terminator written along): "ali\x00ce" -> "ali\ufffdce", "alice\x00" -> "alice",
    "\x00" -> "\ufffd". For a source that must not lose a user's value to one character (LDAP)."""
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, text.strip("\x00") or text)


def read_json(text: str) -> Any:
    """`text` read as JSON, as json.loads does, but for numbers a double cannot hold: NaN, Infinity and -Infinity
    (which are not JSON, though Python writes them) and numbers out of a double's range (1e999, an integer of 400
    digits) raise ValueError saying which (JSON readers take numbers as doubles; the store writes no infinity).
    Raises json.JSONDecodeError (a ValueError) as json.loads does."""
    return json.loads(text, parse_constant=_not_a_number, parse_float=_float, parse_int=_int)


def _not_a_number(text: str) -> float:
    raise ValueError(f"not valid JSON ({text} is not a JSON number; send a number, or null)")


def _float(text: str) -> float:
    return float(_in_range(text))


def _int(text: str) -> int:
    return int(_in_range(text))


def _in_range(text: str) -> str:
    if not math.isfinite(float(text)):
        shown = text if len(text) <= 20 else f"{text[:20]}... ({len(text)} characters)"
        raise ValueError(f"not valid JSON ({shown} is out of the range of a number)")
    return text

def check_accepted_at(accepted_at: float, now: float | None = None) -> float:
    """`accepted_at` if it may be stored: a finite Unix time at most MAX_CLOCK_SKEW_SECONDS after `now` (this host's
    clock). Else ValueError saying what is wrong and what to send: an event is due at its accepted_at, so one in the
    future (milliseconds, say) would hold its user back until then while every age alert stays green."""
    now = time.time() if now is None else now
    if not math.isfinite(accepted_at):
        raise ValueError(f"'accepted_at' is {accepted_at}, not a time; send seconds since the epoch, such as "
                         f"{now:.0f} (or leave it out: the time the event is accepted)")
    ahead = accepted_at - now
    if ahead <= MAX_CLOCK_SKEW_SECONDS:
        return accepted_at
    seconds = accepted_at / 1000.0
    guess = (f" It looks like milliseconds ({seconds:.0f} in seconds)." if abs(seconds - now) <= 366 * 86400
             else "")
    raise ValueError(f"'accepted_at' is {accepted_at:.15g}: {_duration(ahead)} in the future (more than "
                     f"{MAX_CLOCK_SKEW_SECONDS / 60:g} minutes ahead of this host's clock), so the event would wait "
                     f"until then.{guess} Send seconds since the epoch (now: {now:.0f}), not milliseconds, or leave "
                     "'accepted_at' out to use the time the event is accepted")


def _duration(seconds: float) -> str:
    """A long time, roughly: "6.2 minutes", "3.0 days", "56,918 years"."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}" if seconds < 100 * size else f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} seconds"


def _check_state(state: dict[str, Any]) -> None:
    """ValueError naming the first field of `state` that is not as the module says: a misspelled field (`actve`)
    must not leave a leaver recorded."""
    unknown = sorted(set(state) - set(STATE_FIELDS))
    if unknown:
        raise ValueError(f"'state' has unknown field(s) {unknown}; its fields are {', '.join(STATE_FIELDS)} "
                         "(other source attributes go under 'state.attributes')")
    if not isinstance(state.get("userName"), str) or not state["userName"].strip():
        raise ValueError("'state.userName' must be a non-empty string")
    if "active" in state and not isinstance(state["active"], bool):
        raise ValueError("'state.active' must be true or false")
    for key in ("displayName", "expiresAt"):
        if not isinstance(state.get(key, ""), str):
            raise ValueError(f"'state.{key}' must be a string")
    if not isinstance(state.get("name", {}), dict):
        raise ValueError("'state.name' must be an object such as {\"givenName\": \"Alice\", \"familyName\": \"Smith\"}")
    for key in ("emails", "phoneNumbers"):
        items = state.get(key, [])
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("value"), str) for i in items
        ):
            raise ValueError(f"'state.{key}' must be a list of objects with a string 'value'")
    for key in ("groups", "direct_groups"):
        groups = state.get(key, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"'state.{key}' must be a list of strings")
    if not isinstance(state.get("attributes", {}), dict):
        raise ValueError("'state.attributes' must be an object")
