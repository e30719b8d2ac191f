"""Find the Verba user id for a user state: from an attribute, or listUsers by login name (cached)."""

from __future__ import annotations

import threading
import time
from typing import Callable

from connector.errors import ConnectorError
from connector.events import UserChange
from connector.mapping import Mapping
from connector.verba.client import VerbaClient


class UnresolvedUser(ConnectorError):
    """The Verba user id of this user cannot be found."""


class UserIdResolver:
    """Resolves Verba user ids; positive lookups are cached for `ttl` seconds."""

    def __init__(self, client: VerbaClient, mapping: Mapping, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.mapping = mapping
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def resolve(self, change: UserChange, known: int | None) -> int:
        """The user's Verba id; `known` is the id last pushed for this user, used when the user is going away."""
        if self.mapping.user_id_attribute is not None:
            user_id = self.mapping.user_id_from_state(change.state)
            if user_id is not None:
                return user_id
            if known is not None:
                return known
            raise UnresolvedUser(
                f"the state has no Verba user id in {self.mapping.user_id_attribute!r}; "
                "fill that attribute at the source, then replay the event"
            )
        if known is not None and change.kind != "upsert":
            return known
        login = self.mapping.login_name(change.state)
        if login is None:
            raise UnresolvedUser("the state has no login name to look the Verba user up by; check [user_id].login_name in the mapping")
        return self._lookup(login, change)

    def _lookup(self, login: str, change: UserChange) -> int:
        with self._lock:
            cached = self._cache.get(login)
        if cached is not None and self.clock() - cached[1] < self.ttl:
            return cached[0]
        user_id = self.client.find_user_id(login)
        if user_id is None and self.mapping.create_missing_users and change.kind == "upsert":
            state = change.state
            emails = [e["value"] for e in state.get("emails", []) if e.get("primary")] or [e["value"] for e in state.get("emails", [])]
            user_id = self.client.create_user(
                login, display_name=state.get("displayName"), email=emails[0] if emails else None, external_id=change.external_id
            )
        if user_id is None:
            raise UnresolvedUser(
                f"no Verba user has loginName {login!r}; create the user in Verba "
                "(or set [user_id] create_missing = true in the mapping), then replay the event"
            )
        with self._lock:
            self._cache[login] = (user_id, self.clock())
        return user_id
