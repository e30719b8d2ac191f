"""The simulator's in-memory Verba: environments, API users, users, extensions and tokens.

Callers hold `state.lock` around anything that reads and then writes.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import string
import threading
import time
from typing import Any

# The API user of the default seed (and config/simulator-seed.json): `make run` logs in with it. A password that is
# no word and not the login, so that masking it in logs garbles no message.
DEMO_LOGIN = "connector"
DEMO_PASSWORD = "demo-pw-7002"
DEFAULT_SEED: dict[str, Any] = {
    "environments": [{"eid": "0000", "shortName": "default"}],
    "api_users": [{"loginName": DEMO_LOGIN, "password": DEMO_PASSWORD}],
    "users": [],
    "extensions": [],
    "recorders": [{"location": "recorder-1"}],
}

TOKEN_ALPHABET = string.ascii_letters + string.digits
# What PUT /_sim/extensions/{eid}/{extension} may set: JSON name -> Extension attribute.
EDITABLE_FIELDS = {
    "recordingMode": "recording_mode",
    "voice": "voice",
    "im": "im",
    "video": "video",
    "screenCaptureEnabled": "screen_capture_enabled",
    "user_id": "user_id",
}


@dataclasses.dataclass(frozen=True)
class Environment:
    eid: str
    short_name: str


@dataclasses.dataclass
class User:
    id: int
    login_name: str
    eid: str
    display_name: str | None = None
    email: str | None = None
    external_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "loginName": self.login_name,
            "displayName": self.display_name,
            "email": self.email,
            "eid": self.eid,
            "externalId": self.external_id,
        }


@dataclasses.dataclass
class Extension:
    id: int
    eid: str
    extension: str
    recording_mode: str | None = None
    voice: bool | None = None
    im: bool | None = None
    video: bool | None = None
    screen_capture_enabled: bool | None = None
    user_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "eid": self.eid,
            "extension": self.extension,
            "recordingMode": self.recording_mode,
            "voice": self.voice,
            "im": self.im,
            "video": self.video,
            "screenCaptureEnabled": self.screen_capture_enabled,
            "user_id": self.user_id,
        }


@dataclasses.dataclass(frozen=True)
class MissingAnswer:
    """A missing extension's answer of a test's choosing (the `missing_extension` setting as a JSON object): both
    getExtension and updateExtension answer this status code and message; "{eid}" and "{extension}" in the message
    become the missing extension's."""

    status: str
    message: str | None = None

    EXAMPLE = '{"status": "ERROR_NOT_FOUND", "message": "Extension {eid}:{extension} not found"}'

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MissingAnswer:
        """From {"status": <a non-OK status code>, "message"?: <text or null>}; ValueError for anything else."""
        unknown = sorted(set(data) - {"status", "message"})
        if unknown:
            raise ValueError(f"missing_extension: unknown key {', '.join(map(repr, unknown))}; an answer has a status "
                             f"and a message, such as {cls.EXAMPLE}")
        status, message = data.get("status"), data.get("message")
        if not isinstance(status, str) or not _STATUS_CODE.fullmatch(status) or status == "OK":
            raise ValueError(f"missing_extension: status must be a status code other than OK (an empty OK is the "
                             f"ok_empty shape), such as ERROR_NOT_FOUND, got {status!r}")
        if message is not None and not isinstance(message, str):
            raise ValueError(f"missing_extension: message must be text or null, got {message!r}")
        return cls(status, message)

    def to_json(self) -> dict[str, str | None]:
        return {"status": self.status, "message": self.message}

    def message_for(self, eid: str, extension: str) -> str | None:
        """The message for this missing extension."""
        return None if self.message is None else self.message.replace("{eid}", eid).replace("{extension}", extension)


# A status code as MissingAnswer takes one (the connector reads no other as a status).
_STATUS_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,79}")
# A behaviour setting's value: a shape's name (operations.BEHAVIOURS), or for missing_extension an answer.
Shape = str | MissingAnswer


@dataclasses.dataclass
class Recorder:
    """A recording server, which takes the extension table from applyExtensionConfiguration."""

    location: str  # its name
    eid: str | None = None
    failure: tuple[str, str] | None = None  # (statusCode, message) it answers instead of taking the table
    applied: int = -1  # State.changes when it last took the table

    def to_json(self, changes: int) -> dict[str, Any]:
        status, message = self.failure or ("OK", None)
        return {"location": self.location, "eid": self.eid, "status": status, "message": message,
                "in_step": self.applied == changes}


class State:
    """The simulator's Verba, from a seed (seed.py) that seed_problems finds nothing wrong with: load_seed reads
    one from a file; None is DEFAULT_SEED."""

    def __init__(
        self, seed: dict[str, Any] | None = None, *, token_ttl: float = 3600.0,
        missing_extension: str | dict[str, Any] = "ok_empty",
    ) -> None:
        self.lock = threading.RLock()
        self.token_ttl = token_ttl
        # How a missing extension is answered (one of operations.MISSING_EXTENSION_SHAPES, or a MissingAnswer's
        # JSON): a start setting, changeable at run time; reset() goes back to the start value.
        self._start_missing_extension: Shape = _shape("missing_extension", missing_extension)
        self.missing_extension = self._start_missing_extension
        self._seed = seed or DEFAULT_SEED
        self.reset()

    def reset(self, seed: dict[str, Any] | None = None) -> None:
        """Back to the seed and the start settings: its directory, no extra users, no tokens. A `seed` (one that
        seed_problems finds nothing wrong with) replaces the seed first."""
        with self.lock:
            if seed is not None:
                self._seed = seed
            seed = self._seed
            self.missing_extension = self._start_missing_extension
            # operations.UNFILTERED_LIST_USERS_SHAPES, UNKNOWN_USER_SHAPES and CASE_DUPLICATE_LOGIN_SHAPES: set at
            # run time only, the first of each by default
            self.unfiltered_list_users = "all"
            self.unknown_user = "error_illegal_argument"
            self.case_duplicate_login = "created"
            environments = seed.get("environments") or DEFAULT_SEED["environments"]
            self.environments = [Environment(env["eid"], env["shortName"]) for env in environments]
            api_users = seed.get("api_users") or DEFAULT_SEED["api_users"]
            self.api_users = {api["loginName"]: api["password"] for api in api_users}
            self.users: dict[int, User] = {}
            # Users by login name, in the order added: listUsers by exact loginName and the uniqueness
            # check stay O(1) with 100k seeded users (bench/bench_large.py).
            self.users_by_login: dict[str, list[User]] = {}
            self.users_by_folded_login: dict[str, list[User]] = {}  # the same by loginName.casefold()
            self._top_user_id = 0  # the highest id given so far: a deleted user's id is not given again
            for user in seed.get("users") or []:
                self.add_user(user)
            self.extensions: dict[tuple[str, str], Extension] = {}
            self._next_extension_id = 1
            self.changes = 0  # writes to the extension table (seeded, SOAP or behind the connector's back)
            for ext in seed.get("extensions") or []:
                self._add_seed_extension(ext)
            self.recorders: dict[str, Recorder] = {}
            for data in seed.get("recorders", DEFAULT_SEED["recorders"]):
                self.recorders[data["location"]] = Recorder(data["location"], data.get("eid"))
            # Fixed tokens from the seed stand for tokens an admin issued; they last until expired.
            self.tokens: dict[str, float] = {token: float("inf") for token in seed.get("tokens") or []}

    # behaviour

    def set_behaviour(self, settings: dict[str, Any]) -> None:
        """Change behaviour settings (keys of `behaviour()`) until the next reset(); ValueError, and nothing
        changed, for an unknown name or shape."""
        shapes = {name: _shape(name, shape) for name, shape in settings.items()}
        with self.lock:
            for name, shape in shapes.items():
                setattr(self, name, shape)

    def behaviour(self) -> dict[str, Any]:
        """How the undocumented answers are given: {"missing_extension": <a shape's name, or {"status": ...,
        "message": ...}>, "unfiltered_list_users": <a shape's name>, "unknown_user": ..., "case_duplicate_login":
        ...}."""
        missing = self.missing_extension
        return {"missing_extension": missing.to_json() if isinstance(missing, MissingAnswer) else missing,
                "unfiltered_list_users": self.unfiltered_list_users, "unknown_user": self.unknown_user,
                "case_duplicate_login": self.case_duplicate_login}

    # environments and users

    def environment(self, eid: str | None = None, short_name: str | None = None) -> Environment | None:
        for env in self.environments:
            if env.eid == eid or env.short_name == short_name:
                return env
        return None

    def add_user(self, data: dict[str, Any]) -> User:
        """Add a Verba user from JSON of the shape `seed.entry_problems` checks (loginName; optional id, eid,
        displayName, email, externalId); ValueError if its environment, login name or id do not fit the state."""
        with self.lock:
            login_name = data["loginName"]
            eid = data.get("eid") or self.environments[0].eid
            if self.environment(eid=eid) is None:
                raise ValueError(f"user: eid {eid!r} is not a seeded environment")
            if self.user_by_login(login_name, eid) is not None:
                raise ValueError(f"user: loginName {login_name!r} already exists in environment {eid}")
            user_id = data.get("id") or self.next_user_id()
            if user_id in self.users:
                raise ValueError(f"user: id {user_id} is taken; give a new one, or none for the next free one")
            user = User(user_id, login_name, eid, data.get("displayName"), data.get("email"), data.get("externalId"))
            self.users[user_id] = user
            self._top_user_id = max(self._top_user_id, user_id)
            self.users_by_login.setdefault(login_name, []).append(user)
            self.users_by_folded_login.setdefault(login_name.casefold(), []).append(user)
            return user

    def delete_user(self, user_id: int) -> User | None:
        """Remove a Verba user behind the connector's back (as an admin would; not a SOAP call): the one removed, or
        None. The extensions linked to it are linked to no one."""
        with self.lock:
            user = self.users.pop(user_id, None)
            if user is None:
                return None
            self.users_by_login[user.login_name].remove(user)
            self.users_by_folded_login[user.login_name.casefold()].remove(user)
            for extension in self.extensions.values():
                if extension.user_id == user_id:
                    extension.user_id = None
                    self.changes += 1
            return user

    def user_by_login(self, login_name: str, eid: str) -> User | None:
        return next((u for u in self.users_by_login.get(login_name, ()) if u.eid == eid), None)

    def user_in_other_case(self, login_name: str, eid: str) -> User | None:
        """A user of environment `eid` whose login name equals `login_name` but for case, or None."""
        return next((u for u in self.users_by_folded_login.get(login_name.casefold(), ())
                     if u.eid == eid and u.login_name != login_name), None)

    def next_user_id(self) -> int:
        return self._top_user_id + 1

    # extensions

    def put_extension(self, eid: str, extension: str, **fields: Any) -> Extension:
        """Create the extension or replace all of its fields (Verba's update is a full replace)."""
        key = (eid, extension)
        existing = self.extensions.get(key)
        if existing is None:
            existing = Extension(self._next_extension_id, eid, extension)
            self._next_extension_id += 1
            self.extensions[key] = existing
        for name in ("recording_mode", "voice", "im", "video", "screen_capture_enabled", "user_id"):
            setattr(existing, name, fields.get(name))
        self.changes += 1
        return existing

    def edit_extension(self, eid: str, extension: str, changes: Any) -> tuple[Extension, bool]:
        """Set some fields of an extension behind the connector's back (not a SOAP call), creating it
        if it does not exist: the extension and whether it was created. `changes` is JSON with any of
        EDITABLE_FIELDS; `user_id` is an int of a user in the same environment, or None to unlink.
        Raises ValueError for anything else."""
        example = '{"recordingMode": "ON_DEMAND", "user_id": 4}'
        if not isinstance(changes, dict):
            raise ValueError(f"PUT a JSON object of the fields to set, such as {example}")
        unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown field {', '.join(map(repr, unknown))}; the fields are {', '.join(EDITABLE_FIELDS)}"
            )
        with self.lock:
            if self.environment(eid=eid) is None:
                raise ValueError(f"eid {eid!r} is not a seeded environment")
            for name, value in changes.items():
                self._check_edit(name, value, eid)
            key = (eid, extension)
            found = self.extensions.get(key)
            created = found is None
            if found is None:
                found = self.put_extension(eid, extension)
            for name, value in changes.items():
                setattr(found, EDITABLE_FIELDS[name], value)
            self.changes += 1
            return found, created

    def delete_extension(self, eid: str, extension: str) -> Extension | None:
        """Remove an extension behind the connector's back (not a SOAP call): the one removed, or None."""
        with self.lock:
            self.changes += 1
            return self.extensions.pop((eid, extension), None)

    def _check_edit(self, name: str, value: Any, eid: str) -> None:
        from connector.simulator.operations import RECORDING_MODES  # operations imports this module

        if value is None:
            return
        if name == "recordingMode":
            if value not in RECORDING_MODES:
                raise ValueError(f"recordingMode must be one of {', '.join(RECORDING_MODES)} or null, got {value!r}")
        elif name == "user_id":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"user_id must be an integer, or null to unlink, got {value!r}")
            user = self.users.get(value)
            if user is None:
                raise ValueError(f"user_id {value} is not a Verba user")
            if user.eid != eid:
                raise ValueError(f"user_id {value} is a user of environment {user.eid}, not {eid}")
        elif not isinstance(value, bool):
            raise ValueError(f"{name} must be true, false or null, got {value!r}")

    def _add_seed_extension(self, data: dict[str, Any]) -> None:
        self.put_extension(
            data.get("eid") or self.environments[0].eid,
            data["extension"],
            recording_mode=data.get("recordingMode"),
            voice=data.get("voice"),
            im=data.get("im"),
            video=data.get("video"),
            screen_capture_enabled=data.get("screenCaptureEnabled"),
            user_id=data.get("user_id"),
        )

    # tokens

    def issue_token(self) -> str:
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(32))
        self.tokens[token] = time.monotonic() + self.token_ttl
        return token

    def token_valid(self, token: str | None) -> bool:
        expiry = self.tokens.get(token) if token else None
        return expiry is not None and expiry > time.monotonic()

    def release_token(self, token: str) -> None:
        self.tokens.pop(token, None)

    def expire_tokens(self) -> int:
        with self.lock:
            count = sum(1 for expiry in self.tokens.values() if expiry > time.monotonic())
            self.tokens.clear()
            return count

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "environments": [{"eid": e.eid, "shortName": e.short_name} for e in self.environments],
                "users": [u.to_json() for u in self.users.values()],
                "extensions": [e.to_json() for e in self.extensions.values()],
                "active_tokens": sum(1 for token in self.tokens if self.token_valid(token)),
                "recorders": [r.to_json(self.changes) for r in self.recorders.values()],
            }

    def set_recorder(self, location: str, data: Any) -> Recorder:
        """Make a recorder answer applyExtensionConfiguration with a failure ({"status": "ERROR_GENERAL",
        "message": "disk full"}) or take it again ({"status": "OK"}); creates it if absent. Raises
        ValueError for anything else."""
        example = '{"status": "ERROR_GENERAL", "message": "disk full"}'
        if not isinstance(data, dict) or not isinstance(data.get("status"), str) or set(data) - {"status", "message"}:
            raise ValueError(f"PUT a JSON object such as {example} (or {{\"status\": \"OK\"}})")
        with self.lock:
            recorder = self.recorders.setdefault(location, Recorder(location))
            recorder.failure = None if data["status"] == "OK" else (data["status"], str(data.get("message") or ""))
            return recorder


def _shape(name: str, shape: Any) -> Shape:
    """A behaviour setting checked: a shape's name, or for missing_extension a MissingAnswer from its JSON object."""
    # Imported here: operations imports this module.
    from connector.simulator.operations import BEHAVIOURS

    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {name!r}; the behaviours are {', '.join(BEHAVIOURS)}")
    if name == "missing_extension" and isinstance(shape, dict):
        return MissingAnswer.from_json(shape)
    if not isinstance(shape, str) or shape not in BEHAVIOURS[name]:
        answer = f", or an answer such as {MissingAnswer.EXAMPLE}" if name == "missing_extension" else ""
        raise ValueError(f"{name} must be one of {', '.join(BEHAVIOURS[name])}{answer}, got {shape!r}")
    return shape
