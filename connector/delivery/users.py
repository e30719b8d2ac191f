"""Find the Verba user id for a user state: from an attribute, or listUsers by login name (cached)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from connector.events import UserChange
from connector.mapping import Mapping, UnresolvedUser
from connector.verba.client import VerbaClient, by_login_name
from connector.verba.errors import VerbaAmbiguous, VerbaError, VerbaStatusError
from connector.verba.status import ALREADY_EXISTS

log = logging.getLogger(__name__)

# A burst of look-ups (a first sync, a mass change): this many within BURST_SECONDS read every Verba user at once.
BURST = 50
BURST_SECONDS = 10.0


class UserIdResolver:
    """Resolves Verba user ids; positive lookups are cached for `ttl` seconds.

    A login name is looked up with one listUsers. In a burst (BURST look-ups within BURST_SECONDS: a first
    sync, a mass change), a thread of its own reads every user of the environment at once
    (VerbaClient.every_user, at most once per `ttl`; it holds no user's lease) and caches the id of each
    login name listed once, while the workers go on looking up their own; a login name that list leaves
    out (Verba may cap it) is still looked up on its own.

    Login names are matched exactly (the vendor does not say whether Verba's are case-sensitive). A login name no
    user has, but that a cached one (a look-up's, or the list's) equals but for case, is unresolved with both names
    and the fix (and no user is created for it: that would be a duplicate in all but case).
    """

    def __init__(self, client: VerbaClient, mapping: Mapping, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.mapping = mapping
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[int, float]] = {}  # login name -> (Verba id, when Verba answered it)
        self._folded: dict[str, str] = {}  # login name casefolded -> the cached login name
        self._lock = threading.Lock()
        self._listing = threading.Lock()  # held by the thread reading every user
        self._misses: collections.deque[float] = collections.deque(maxlen=BURST)  # when the last look-ups began
        self._listed_at = -float("inf")
        self.lister: threading.Thread | None = None  # the last thread started to read every user

    def resolve(self, change: UserChange, known: int | None) -> int:
        """The user's Verba id (Mapping.user_id_or_login decides how); `known` is the id last pushed for this user.

        Raises MappingFailure or UnresolvedUser as that does, and UnresolvedUser when listUsers finds no one (unless
        [user_id] create_missing: then the user is created, `_create`).
        """
        found = self.mapping.user_id_or_login(change, known)
        return found if isinstance(found, int) else self._lookup(found, change, known)

    def _lookup(self, login: str, change: UserChange, known: int | None) -> int:
        cached = self._cached(login)
        if cached is not None:
            return cached
        if self.ttl > 0 and self._burst() and self._listing.acquire(blocking=False):
            self.lister = threading.Thread(target=self._list_every_user, name="verba-user-list", daemon=True)
            try:
                self.lister.start()
            except BaseException:  # no thread (the process is out of them): the next burst may try again
                self._listing.release()
                raise
        user_id = self.client.find_user_id(login)
        other = None if user_id is not None else self._other_case(login)
        if other is not None:
            raise UnresolvedUser(
                f"no Verba user has loginName {login!r}; Verba has {other!r}, which differs only in case: fix the "
                "case at the source or in Verba (do not create another user), then replay the event"
            )
        if user_id is None and self.mapping.create_missing_users and change.kind == "upsert":
            user_id = self._create(login, change)
        if user_id is None:
            renamed = ("" if known is None else f"; it was Verba user {known} when last pushed: if the user was "
                       f"renamed at the source, rename that Verba user's loginName to {login!r} instead")
            raise UnresolvedUser(
                f"no Verba user has loginName {login!r}; create the user in Verba "
                f"(or set [user_id] create_missing = true in the mapping){renamed}, then replay the event"
            )
        with self._lock:
            self._remember(login, user_id, self.clock())
        return user_id

    def _create(self, login: str, change: UserChange) -> int:
        """createUser for `login` from the user's state; when Verba answers ERROR_ALREADY_EXISTS (another source of
        the same person, or another instance, created it since the look-up), the id of the user it holds.

        Raises VerbaAmbiguous (retried a few times, then a dead letter) when Verba says the user exists but listUsers
        still finds nobody with that login name, and the client's VerbaErrors."""
        state = change.state
        emails = [e["value"] for e in state.get("emails", []) if e.get("primary")] or [
            e["value"] for e in state.get("emails", [])
        ]
        try:
            return self.client.create_user(login, display_name=state.get("displayName"),
                                           email=emails[0] if emails else None, external_id=change.external_id)
        except VerbaStatusError as exc:
            if exc.status_code != ALREADY_EXISTS:
                raise
        user_id = self.client.find_user_id(login)
        if user_id is None:
            raise VerbaAmbiguous(
                f"createUser says a Verba user with loginName {login!r} exists, but listUsers finds none: check "
                "Verba for an inactive or invalidated user with that login name (listUsers may leave such users "
                "out); reactivate it, or change its loginName to free the name, then replay the event"
            )
        log.info("Verba user %s (%s) was created meanwhile, by another source of the same person or another "
                 "instance: it is used", user_id, login)
        return user_id

    def _remember(self, login: str, user_id: int, at: float) -> None:
        """Cache Verba's id of `login` as answered at `at` (under _lock)."""
        self._cache[login] = (user_id, at)
        self._folded[login.casefold()] = login

    def _other_case(self, login: str) -> str | None:
        """A login name Verba answered within `ttl` that equals `login` but for case ("Oscar@example.com" for
        "oscar@example.com"), or None."""
        with self._lock:
            other = self._folded.get(login.casefold())
            cached = None if other is None or other == login else self._cache.get(other)
        return other if cached is not None and self.clock() - cached[1] < self.ttl else None

    def _cached(self, login: str) -> int | None:
        with self._lock:
            cached = self._cache.get(login)
        return cached[0] if cached is not None and self.clock() - cached[1] < self.ttl else None

    def _burst(self) -> bool:
        """Count a look-up; whether BURST of them began within BURST_SECONDS and no list is fresh."""
        now = self.clock()
        with self._lock:
            self._misses.append(now)
            return (len(self._misses) == BURST and now - self._misses[0] <= BURST_SECONDS
                    and now - self._listed_at >= self.ttl)

    def _list_every_user(self) -> None:
        """Cache the id of every login name one list holds once (a login listed twice is left to its own
        look-up, which refuses it); runs in its own thread, holding `_listing`. A list Verba refuses or
        cannot give is logged, and not asked for again within `ttl`."""
        started = self.clock()
        try:
            with self._lock:
                self._listed_at = started
            listed = by_login_name(self.client.every_user(extensions=False))
            with self._lock:
                for login, user in listed.items():
                    if self._cache.get(login, (0, started))[1] <= started:  # a look-up since then is fresher
                        self._remember(login, user.user_id, started)
            log.info("cached the Verba user ids of %d login names from one listUsers", len(listed))
        except VerbaError as exc:
            log.warning("could not list every Verba user (%s); each login name is looked up on its own", exc)
        finally:
            self._listing.release()
