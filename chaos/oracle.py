"""The expected final Verba state, computed from the acknowledged writes alone.

Written without connector.mapping, from what `mappings/default.toml` and the README say: a
user's work number, as E.164 (`+1` and the 10 digits of a US number), is one extension linked
to the Verba user whose loginName is the SCIM userName, recorded FULL with voice on and
im, video and screen capture off, while the user exists and is active. Any other number the
workload ever used is absent from Verba or, when it was pushed once, no longer recorded and
still linked to a user who held it (deprovisioning keeps the link and stops recording).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chaos.workload import Model

RECORDED = {"recordingMode": "FULL", "voice": True, "im": False, "video": False, "screenCaptureEnabled": False}


def extension(digits: str) -> str:
    """The extension string of a US number's 10 digits."""
    return f"+1{digits}"


@dataclasses.dataclass
class Verdict:
    """What differs; each problem is one line naming the extension, the user and what was found."""

    wrong_users: set[str] = dataclasses.field(default_factory=set)  # userNames whose Verba state is wrong
    problems: list[str] = dataclasses.field(default_factory=list)


def expected(model: Model) -> dict[str, dict[str, Any]]:
    """extension -> the fields Verba must hold for every number a live, active user has now."""
    want: dict[str, dict[str, Any]] = {}
    for user in model.users + model.ldap_users:
        if user.exists and user.active and user.digits is not None:
            want[extension(user.digits)] = {**RECORDED, "user_id": user.verba_id, "userName": user.user_name}
    return want


def compare(model: Model, extensions: list[dict[str, Any]]) -> Verdict:
    """Compare the simulator's extensions (`/_sim/state`'s list) with the model."""
    verdict = Verdict()
    by_verba_id = {user.verba_id: user.user_name for user in model.users + model.ldap_users}
    actual = {ext["extension"]: ext for ext in extensions}
    want = expected(model)
    for name, fields in want.items():
        got = actual.get(name)
        if got is None:
            verdict.wrong_users.add(fields["userName"])
            verdict.problems.append(f"{name}: missing in Verba; {fields['userName']} has it and is active")
            continue
        differs = {key: got.get(key) for key in (*RECORDED, "user_id") if got.get(key) != fields[key]}
        if differs:
            verdict.wrong_users.add(fields["userName"])
            verdict.problems.append(f"{name}: {fields['userName']} (Verba user {fields['user_id']}) should hold it, "
                                    f"recorded; Verba has {differs}")
    known = {extension(digits): holders for digits, holders in model.holders.items()}
    for name, got in actual.items():
        if name in want:
            continue
        holder = by_verba_id.get(got.get("user_id") or 0, f"Verba user {got.get('user_id')}")
        if name not in known:
            verdict.wrong_users.add(holder)
            verdict.problems.append(f"{name}: in Verba (linked to {holder}) but no write ever named it")
        elif got.get("voice") or got.get("im") or got.get("video") or got.get("screenCaptureEnabled"):
            verdict.wrong_users.add(holder)
            verdict.problems.append(f"{name}: still recorded for {holder}, but no active user has it")
        elif got.get("user_id") not in known[name]:
            verdict.wrong_users.add(holder)
            verdict.problems.append(f"{name}: linked to {holder}, who never had it (held by Verba users "
                                    f"{sorted(known[name])})")
    return verdict
