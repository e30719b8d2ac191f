"""Find the Verba user id for a user state: from an attribute, or listUsers by login name (cached)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from connector.events import UserChange
from connector.mapping import Mapping, UnresolvedUser
from connector.verba.client import VerbaClient


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
        """The user's Verba id (Mapping.user_id_or_login decides how); `known` is the id last pushed for this user.

        Raises MappingFailure or UnresolvedUser as that does, and UnresolvedUser when listUsers finds no one.
        """
        found = self.mapping.user_id_or_login(change, known)
        return found if isinstance(found, int) else self._lookup(found, change)

    def _lookup(self, login: str, change: UserChange) -> int:
        with self._lock:
            cached = self._cache.get(login)
        if cached is not None and self.clock() - cached[1] < self.ttl:
            return cached[0]
        user_id = self.client.find_user_id(login)
        if user_id is None and self.mapping.create_missing_users and change.kind == "upsert":
            state = change.state
            emails = [e["value"] for e in state.get("emails", []) if e.get("primary")] or [
                e["value"] for e in state.get("emails", [])
            ]
            user_id = self.client.create_user(
                login,
                display_name=state.get("displayName"),
                email=emails[0] if emails else None,
                external_id=change.external_id,
            )
        if user_id is None:
            raise UnresolvedUser(
                f"no Verba user has loginName {login!r}; create the user in Verba "
                "(or set [user_id] create_missing = true in the mapping), then replay the event"
            )
        with self._lock:
            self._cache[login] = (user_id, self.clock())
        return user_id
