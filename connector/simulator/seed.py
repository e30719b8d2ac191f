"""The simulator's seed: what it may hold, and every problem of one, found before anything listens.

A seed is a JSON object; every key is optional (connector/simulator/__init__.py shows a seed):

    environments  [{"eid": "0000", "shortName": "default"}]             eid: 4 characters
    api_users     [{"loginName": "connector", "password": "demo-pw-7002"}]
    users         [{"loginName": ..., "id"?: 3, "eid"?, "displayName"?, "email"?, "externalId"?}]
    extensions    [{"extension": ..., "eid"?, "recordingMode"?, "voice"?, "im"?, "video"?,
                    "screenCaptureEnabled"?, "user_id"?: a seeded user's id}]
    recorders     [{"location": ..., "eid"?}]
    tokens        ["a fixed token"]

A key marked ? may be left out or be null. The eid of a user, an extension or a recorder is that of a seeded
environment (a user's and an extension's is the first by default); a user without an id gets the highest id so
far plus one, as State.add_user gives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.errors import ConnectorError
from connector.records import eid_problem
from connector.simulator.operations import RECORDING_MODES
from connector.simulator.state import DEFAULT_SEED

Check = Callable[[Any], str | None]  # None for a good value, else what is wrong and the fix, read after the key


class SeedError(ConnectorError):
    """The simulator seed is not valid; the message has one line per problem: "file: key is ...; fix"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _kind(fits: Callable[[Any], bool], wanted: str) -> Check:
    """The check of a value that `fits`, and otherwise must be `wanted` ("a non-empty string")."""
    return lambda value: None if fits(value) else f"is {_shown(value)}; it must be {wanted}"


TEXT = _kind(lambda v: isinstance(v, str) and v != "", "a non-empty string")
OPTIONAL_TEXT = _kind(lambda v: v is None or isinstance(v, str), "a string or null")
FLAG = _kind(lambda v: v is None or isinstance(v, bool), "true, false or null")
USER_ID = _kind(lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
                "a positive integer, or null for the next free one")
LINKED_USER = _kind(lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
                    "the id of a seeded user, or null for none")
MODE = _kind(lambda v: v is None or v in RECORDING_MODES, f"one of {', '.join(RECORDING_MODES)} or null")

# Each list of objects: its entries' keys and their checks, the keys an entry needs, and an example entry.
ENTRIES: dict[str, dict[str, Check]] = {
    "environments": {"eid": eid_problem, "shortName": TEXT},
    "api_users": {"loginName": TEXT, "password": TEXT},
    "users": {"id": USER_ID, "loginName": TEXT, "eid": OPTIONAL_TEXT, "displayName": OPTIONAL_TEXT,
              "email": OPTIONAL_TEXT, "externalId": OPTIONAL_TEXT},
    "extensions": {"extension": TEXT, "eid": OPTIONAL_TEXT, "recordingMode": MODE, "voice": FLAG, "im": FLAG,
                   "video": FLAG, "screenCaptureEnabled": FLAG, "user_id": LINKED_USER},
    "recorders": {"location": TEXT, "eid": OPTIONAL_TEXT},
}
REQUIRED = {"environments": ("eid", "shortName"), "api_users": ("loginName", "password"), "users": ("loginName",),
            "extensions": ("extension",), "recorders": ("location",)}
EXAMPLES = {
    "environments": '{"eid": "0000", "shortName": "default"}',
    "api_users": '{"loginName": "connector", "password": "demo-pw-7002"}',
    "users": '{"id": 3, "loginName": "alice@example.com"}',
    "extensions": '{"extension": "+15550100", "recordingMode": "FULL", "user_id": 3}',
    "recorders": '{"location": "recorder-1"}',
}
KEYS = (*ENTRIES, "tokens")

Entry = tuple[str, dict[str, Any]]  # where it is ("users[2]"), the entry


def seed_problems(seed: Any) -> list[str]:
    """Every problem in `seed`, the parsed JSON of a seed file, one line each: "{key} is ...; {fix}"."""
    if not isinstance(seed, dict):
        return [f"is {_shown(seed)}; a seed is a JSON object, e.g. {{\"users\": [{EXAMPLES['users']}]}}"]
    problems = [f"unknown key {key}; the keys are {', '.join(KEYS)}" for key in seed if key not in KEYS]
    entries = {section: _entries(seed.get(section, []), section, problems) for section in ENTRIES}
    tokens = seed.get("tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(token, str) and token for token in tokens):
        problems.append(f"tokens is {_shown(tokens)}; it must be a list of strings, e.g. [\"a-fixed-token\"]")
    return problems + _reference_problems(entries)


def _entries(value: Any, section: str, problems: list[str]) -> list[Entry]:
    """The good entries of list `section`; a problem for each bad one, or for `value` if it is no list."""
    if not isinstance(value, list):
        problems.append(f"{section} is {_shown(value)}; it must be a list of objects, e.g. [{EXAMPLES[section]}]")
        return []
    good = []
    for i, entry in enumerate(value):
        found = entry_problems(entry, f"{section}[{i}]", section)
        problems += found
        if not found:
            good.append((f"{section}[{i}]", entry))
    return good


def entry_problems(entry: Any, where: str, section: str) -> list[str]:
    """What is wrong with one entry of `section`: not an object, an unknown or missing key, a value of a wrong type."""
    checks = ENTRIES[section]
    if not isinstance(entry, dict):
        return [f"{where} is {_shown(entry)}; it must be an object, e.g. {EXAMPLES[section]}"]
    problems = [f"unknown key {where}.{key}; an entry of {section} has the keys {', '.join(checks)}"
                for key in entry if key not in checks]
    problems += [f"{where}.{key} is missing; each of {section} needs one, e.g. {EXAMPLES[section]}"
                 for key in REQUIRED[section] if key not in entry]
    for key, value in entry.items():
        problem = checks[key](value) if key in checks else None
        if problem:
            problems.append(f"{where}.{key} {problem}")
    return problems


def _reference_problems(entries: dict[str, list[Entry]]) -> list[str]:
    """Environments and users that good entries name but the seed does not hold, and users' ids and login names
    taken twice."""
    eids = [env["eid"] for _, env in entries["environments"]] or [env["eid"] for env in DEFAULT_SEED["environments"]]
    problems = [f"{where}.eid {_shown(entry['eid'])} is not a seeded environment; use one of {', '.join(eids)}, "
                "or add it to environments"
                for section in ("users", "extensions", "recorders") for where, entry in entries[section]
                if entry.get("eid") not in (None, "", *eids)]
    ids = _user_ids(entries["users"], eids[0], problems)
    linked = [(where, ext["user_id"]) for where, ext in entries["extensions"] if ext.get("user_id") is not None]
    problems += [f"{where}.user_id {user_id} is not a seeded user; use the id of one of users, or null"
                 for where, user_id in linked if user_id not in ids]
    return problems


def _user_ids(users: list[Entry], default_eid: str, problems: list[str]) -> dict[int, str]:
    """The users' ids as State.add_user gives them (without one: the highest so far plus one), id -> where; a problem
    for an id, or a login name in one environment, taken twice."""
    ids: dict[int, str] = {}  # id -> where
    logins: dict[tuple[str, str], str] = {}  # (loginName, eid) -> where
    highest = 0
    for where, user in users:
        user_id = user.get("id") or highest + 1
        highest = max(highest, user_id)
        login = (user["loginName"], user.get("eid") or default_eid)
        if user_id in ids:
            problems.append(f"{where}.id {user_id} is taken by {ids[user_id]}; give each user its own id, or leave "
                            "it out for the next free one")
        if login in logins:
            problems.append(f"{where}.loginName {_shown(login[0])} is taken by {logins[login]} in environment "
                            f"{login[1]}; give each user of an environment its own loginName")
        ids.setdefault(user_id, where if user.get("id") else f"{where}, which has no id and got the next free one")
        logins.setdefault(login, where)
    return ids


def _shown(value: Any) -> str:
    """`value` as JSON, cut to 60 characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else f"{text[:57]}..."


def load_seed(path: str | Path) -> dict[str, Any]:
    """The seed in the JSON file at `path`, checked whole (seed_problems); SeedError, one line per problem:
    "{path}: {key} is ...; {fix}"."""
    try:
        seed = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError([f"{path}: cannot be read ({exc.strerror or exc}); check the path and permissions"]) from None
    except UnicodeDecodeError as exc:
        raise SeedError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"]) from None
    except json.JSONDecodeError as exc:
        raise SeedError([f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); fix the "
                         "syntax there"]) from None
    problems = seed_problems(seed)
    if problems:
        raise SeedError([f"{path}: {problem}" for problem in problems])
    return dict(seed)
