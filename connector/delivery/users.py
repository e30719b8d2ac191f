"""Find the Verba user id for a user state: from an attribute, or listUsers by login name (cached)."""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from connector.events import UserChange
from connector.mapping import Mapping, UnresolvedUser
from connector.records import not_xml
from connector.verba.client import ListedUser, VerbaClient, by_login_name
from connector.verba.errors import LeaseEnding, VerbaAmbiguous, VerbaError, VerbaStatusError
from connector.verba.status import ALREADY_EXISTS

log = logging.getLogger(__name__)

# Where a login name is read from: what to change when Verba's login names are another attribute of the user.
WHERE_READ = "[user_id] login_name in the mapping, or the LDAP directory's username_attribute"
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
    user has is unresolved with the fix, and no user is created for it, when Verba holds the person under another
    login name (`held_elsewhere`): the id last pushed for the user has another login name now (renamed in Verba, or
    at the source), or a login name equals it but for case or a domain (`differs_only_by`). Without [user_id]
    create_missing that is read from the cache (a look-up's, or the list's). Before a user is created, every user is
    read (one listUsers, unless one read within `ttl` is cached: in a first sync the first creation reads it for all
    the others), so that the person is found in Verba whatever the cache held; and when createUser answers
    ERROR_ALREADY_EXISTS for a login name listUsers does not find, every user is read again to tell a login name in
    another case (Verba's may ignore case) from a user listUsers leaves out.

    A cached id is dropped as soon as Verba refuses a write that names it (`refused`): the vendor documents no answer
    for a user deleted in Verba, so any refusal may say so.
    """

    def __init__(self, client: VerbaClient, mapping: Mapping, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.mapping = mapping
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[int, float]] = {}  # login name -> (Verba id, when Verba answered it)
        self._by_name: dict[str, set[str]] = {}  # _bare(login name) -> the cached login names of that name
        self._lock = threading.Lock()
        self._listing = threading.Lock()  # held while every user is read (by the burst's thread, or before a creation)
        self._misses: collections.deque[float] = collections.deque(maxlen=BURST)  # when the last look-ups began
        self._listed_at = -float("inf")  # when the last list of every user was asked for (answered or refused)
        self._gone: set[int] = set()  # ids dropped while a list of every user is read: it does not cache them again
        self.lister: threading.Thread | None = None  # the last thread started to read every user

    def resolve(self, change: UserChange, known: int | None) -> int:
        """The user's Verba id (Mapping.user_id_or_login decides how); `known` is the id last pushed for this user.

        Raises MappingFailure or UnresolvedUser as that does, and UnresolvedUser when listUsers finds no one (unless
        [user_id] create_missing: then the user is created, `_create`).
        """
        found = self.mapping.user_id_or_login(change, known)
        return found if isinstance(found, int) else self._lookup(found, change, known)

    def refused(self, change: UserChange, refused: int, refusal: VerbaError) -> int | None:
        """The user's Verba id, looked up again after Verba refused a write naming Verba user `refused` (`refusal`);
        None when the refusal stands: the login name is still Verba user `refused`, or the mapping gives the id
        without a look-up (an attribute, a leaver's last pushed id).

        The vendor does not document how Verba answers a write naming a user it no longer holds (deleted by an
        admin since it was cached): any refusal may say so, so the id is dropped from the cache and the login name
        asked for again, which creates the user with [user_id] create_missing. Raises UnresolvedUser (saying what
        Verba answered) when no Verba user has the login name, and what a look-up raises.
        """
        self._forget(refused)
        found = self.mapping.user_id_or_login(change, refused)
        if isinstance(found, int):
            return None
        user_id = self._lookup(found, change, refused, refusal)
        if user_id == refused:
            return None
        log.warning("Verba refused a write for Verba user %s (%s): loginName %r is Verba user %s now, which is used",
                    refused, refusal, found, user_id)
        return user_id

    def _lookup(self, login: str, change: UserChange, known: int | None, refusal: VerbaError | None = None) -> int:
        """`login`'s id, cached or looked up (`known`: the id last pushed for the user; `refusal`: Verba refused a
        write naming it, see `refused`)."""
        cached = self._cached(login)
        if cached is not None:
            return cached
        if self.ttl > 0 and self._burst() and self._listing.acquire(blocking=False):
            self.lister = threading.Thread(target=self._list_in_background, name="verba-user-list", daemon=True)
            try:
                self.lister.start()
            except BaseException:  # no thread (the process is out of them): the next burst may try again
                self._listing.release()
                raise
        user_id = self.client.find_user_id(login)
        if user_id is None:
            user_id = self._without_user(login, change, known, refusal)
        with self._lock:
            self._remember(login, user_id, self.clock())
        return user_id

    def _without_user(self, login: str, change: UserChange, known: int | None, refusal: VerbaError | None) -> int:
        """No Verba user has `login`: the id of the user created for it ([user_id] create_missing, an upsert, and Verba
        holds the person under no other login name: `held_elsewhere`), else UnresolvedUser with the fix."""
        with self._lock:
            self._uncache(login)  # Verba says no user has it
        creating = self.mapping.create_missing_users and change.kind == "upsert"
        elsewhere = (self._in_every_user(login, known, fresh=refusal is not None) if creating
                     else self._cached_elsewhere(login, known))
        if elsewhere is not None:
            raise UnresolvedUser(f"{elsewhere}, then replay the event")
        if creating:
            return self._create(login, change, known)
        create = "create the user in Verba (or set [user_id] create_missing = true in the mapping)"
        if refusal is not None:
            raise UnresolvedUser(f"no Verba user has loginName {login!r} any more: Verba refused a write for Verba "
                                 f"user {known}, its user until then ({refusal}); {create}, then replay the event")
        renamed = ("" if known is None else f"; it was Verba user {known} when last pushed: if the user was renamed at "
                   f"the source, rename that Verba user's loginName to {login!r} instead")
        raise UnresolvedUser(f"no Verba user has loginName {login!r}; {create}, or, if Verba's login names are another "
                             f"attribute of the user, read them from it ({WHERE_READ}){renamed}, then replay the event")

    def _create(self, login: str, change: UserChange, known: int | None) -> int:
        """createUser for `login` from the user's state; when Verba answers ERROR_ALREADY_EXISTS (another source of
        the same person, or another instance, created it since the look-up), the id of the user it holds.

        Raises UnresolvedUser when Verba says the user exists, listUsers finds nobody with that login name, and a list
        of every user read then holds the person under another login name (`held_elsewhere`; `known`: the id last
        pushed for the user); VerbaAmbiguous (retried a few times, then a dead letter) when that list does not either;
        and the client's VerbaErrors. The login name is sent as it is (a character XML cannot carry in it fails the
        push, `UnsendableValue`); the other fields are the Verba user's description (`_described`)."""
        state = change.state
        emails = [e["value"] for e in state.get("emails", []) if e.get("primary")] or [
            e["value"] for e in state.get("emails", [])
        ]
        described = _described(change, login, {"displayName": state.get("displayName"),
                                         "email": emails[0] if emails else None, "externalId": change.external_id})
        try:
            return self.client.create_user(login, display_name=described["displayName"], email=described["email"],
                                           external_id=described["externalId"])
        except VerbaStatusError as exc:
            if exc.status_code != ALREADY_EXISTS:
                raise
        user_id = self.client.find_user_id(login)
        if user_id is None:
            with self._listing:
                listed = self._read_every_user()
            elsewhere = None if listed is None else VerbaLogins.of(listed).held_elsewhere(login, known)
            if elsewhere is not None:
                raise UnresolvedUser(f"{elsewhere}, then replay the event")
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
        self._by_name.setdefault(_bare(login), set()).add(login)

    def _uncache(self, login: str) -> None:
        """Forget `login`'s cached id (under _lock)."""
        self._cache.pop(login, None)
        same = self._by_name.get(_bare(login), set())
        same.discard(login)
        if not same:
            self._by_name.pop(_bare(login), None)

    def _forget(self, user_id: int) -> None:
        """Forget every login name cached as Verba user `user_id`; a list of every user under way does not cache it
        again (its answer may predate the refusal)."""
        with self._lock:
            for login in [login for login, (cached, _) in self._cache.items() if cached == user_id]:
                self._uncache(login)
            if self._listing.locked():
                self._gone.add(user_id)

    def _twins(self, login: str) -> list[str]:
        """The login names Verba answered within `ttl` that are `login` but for case or a domain (`differs_only_by`),
        sorted."""
        now = self.clock()
        with self._lock:
            return sorted(other for other in self._by_name.get(_bare(login), ()) if differs_only_by(login, other)
                          and now - self._cache[other][1] < self.ttl)

    def _login_of(self, user_id: int) -> str | None:
        """The login name Verba answered within `ttl` for Verba user `user_id` (the newest answer), or None."""
        now = self.clock()
        with self._lock:
            answers = [(at, login) for login, (cached, at) in self._cache.items()
                       if cached == user_id and now - at < self.ttl]
        return max(answers)[1] if answers else None

    def _cached_elsewhere(self, login: str, known: int | None) -> str | None:
        """`held_elsewhere` of `login` as the cache tells it."""
        return held_elsewhere(login, known, None if known is None else self._login_of(known), self._twins(login))

    def _in_every_user(self, login: str, known: int | None, fresh: bool = False) -> str | None:
        """`held_elsewhere` of `login` from a list of every user read now, unless one was read (or refused) within
        `ttl` (a list under way is waited for): then from the cache, which holds that list and every look-up since. A
        list Verba refuses or fails to give leaves only the cache.

        `fresh`: Verba refused a write for Verba user `known` and `refused` dropped what the cache knew of that user,
        so only a list read now tells whether it was renamed (held elsewhere) or deleted; when Verba gives none, the
        user is not to be created either."""
        with self._listing:
            listed = self._read_every_user() if fresh or self.clock() - self._listed_at >= self.ttl else None
        if listed is None and fresh:
            return (f"no Verba user has loginName {login!r} any more, Verba refused a write for Verba user {known}, "
                    "its user until then, and its list of every user, which says whether that user now has another "
                    "loginName, could not be read: check Verba (do not create another user)")
        if listed is None:
            return self._cached_elsewhere(login, known)
        return VerbaLogins.of(listed).held_elsewhere(login, known)

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

    def _list_in_background(self) -> None:
        """`_read_every_user` in a thread of its own, which holds `_listing` until it is done."""
        try:
            self._read_every_user()
        finally:
            self._listing.release()

    def _read_every_user(self) -> list[ListedUser] | None:
        """Every user one listUsers answers (the caller holds `_listing`), the id of each login name listed once
        cached (a login listed twice is left to its own look-up, which refuses it); None when Verba refuses or
        cannot give that list: logged, and not asked for again within `ttl` (but for a createUser's
        ERROR_ALREADY_EXISTS). Raises LeaseEnding when the push's lease ends before the call could."""
        with self._lock:
            started = self.clock()
            self._gone.clear()  # dropped before this list was asked for: its answer is newer
        listed: list[ListedUser] | None = None
        try:
            listed = self.client.every_user(extensions=False)
        except LeaseEnding:
            raise  # not sent: asked for again next time
        except VerbaError as exc:
            log.warning("could not list every Verba user (%s); each login name is looked up on its own, and a user "
                        "created is not checked for a login name that differs only in case", exc)
        unique = {} if listed is None else by_login_name(listed)
        with self._lock:
            self._listed_at = started
            for login, user in unique.items():
                if user.user_id not in self._gone and self._cache.get(login, (0, started))[1] <= started:
                    self._remember(login, user.user_id, started)  # (a look-up since then is fresher)
        if listed is not None:
            log.info("cached the Verba user ids of %d login names from one listUsers", len(unique))
        return listed


def _described(change: UserChange, login: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The optional fields (displayName, email, externalId) of the Verba user created for `login` as createUser can
    send them: a character XML cannot carry (a control character, U+FFFF) is left out of a value, with a warning naming
    the user, the field and the character, instead of refusing to record the user for a cosmetic field."""
    described = dict(fields)
    for name, value in fields.items():
        if isinstance(value, str) and (problem := not_xml(value)):
            described[name] = "".join(c for c in value if not not_xml(c))
            log.warning("%s/%s: Verba user %r is created with %s %r sent as %r: it %s, left out; fix the value at the "
                        "source", change.source, change.external_id, login, name, value, described[name], problem)
    return described


@dataclasses.dataclass(frozen=True)
class VerbaLogins:
    """The login names of Verba's users, from one list of every user (VerbaClient.every_user)."""

    by_id: dict[int, str]  # Verba user id -> its login name
    by_name: dict[str, list[str]]  # _bare(login name) -> the login names of that name

    @classmethod
    def of(cls, users: Iterable[ListedUser]) -> VerbaLogins:
        named = [(user.user_id, user.login_name) for user in users if user.login_name is not None]
        by_name: dict[str, list[str]] = {}
        for _, login in named:
            by_name.setdefault(_bare(login), []).append(login)
        return cls(dict(named), by_name)

    def twins(self, login: str) -> list[str]:
        """The login names Verba holds that are `login` but for case or a domain (`differs_only_by`), sorted."""
        return sorted(other for other in self.by_name.get(_bare(login), ()) if differs_only_by(login, other))

    def held_elsewhere(self, login: str, known: int | None, read_from: str = "") -> str | None:
        """`held_elsewhere` of `login` as this list tells it."""
        return held_elsewhere(login, known, None if known is None else self.by_id.get(known), self.twins(login),
                              read_from)


def held_elsewhere(login: str, known: int | None, known_as: str | None, twins: Sequence[str],
                   read_from: str = "") -> str | None:
    """Why no Verba user may be created for `login`, which no Verba user has: Verba holds the person under another
    login name, and a creation would make them a second Verba user. Either `known_as`, the login name Verba user
    `known` (the id last pushed for them) has now, is not `login` (renamed in Verba, or at the source; the same:
    that user was deleted since Verba answered), or Verba has `twins`: login names that are `login` but for case or
    a domain ("Bob@example.com" or "bob" for "bob@example.com", "bob@example.com" for "bob": the login name is read
    from another attribute than Verba's). The message names one twin (and how many there are), says where `login` was
    read from when `read_from` is given ("uid"), and ends with the fix, to which the caller adds the step after it;
    None when neither."""
    named = f"loginName {login!r}" + (f" (from {read_from})" if read_from else "")
    if known_as is not None and known_as != login:
        return (f"no Verba user has {named}, but Verba user {known}, last pushed for it, now has loginName "
                f"{known_as!r}: make the two names match, in Verba or at the source (do not create another user)")
    in_case = [other for other in twins if differs_only_by(login, other) == "case"]
    other_domain = [other for other in twins if differs_only_by(login, other) == "domain"]
    for same in (in_case, other_domain):
        if same:
            one = f"{same[0]!r}" + (f" (one of {len(same)} such login names)" if len(same) > 1 else "")
            how = "which differs only in case" if same is in_case else _domain_change(login, same[0])
            return (f"no Verba user has {named}; Verba has {one}, {how}: {twin_fix(login, same[0])} (do not create "
                    "another user)")
    return None


def _domain_change(login: str, other: str) -> str:
    """How `other` writes `login`'s name with another domain (`differs_only_by` "domain"), for messages."""
    if not _domain_form(other):
        return "the same name without a domain"
    return "the same name with a domain" if not _domain_form(login) else "the same name in another domain form"


def differs_only_by(login: str, other: str) -> str | None:
    """How `other` is `login` written otherwise: "case" when they are equal but for case ("Oscar@example.com" for
    "oscar@example.com"); "domain" when they write one name with a domain in two ways (`_domain_form`: none, the
    part from "@", or Windows' down-level "DOMAIN\\" before it), in any case ("bob", "bob@example.com",
    "Bob@Example.com", "CORP\\bob"); None when they are equal, or differ otherwise ("bob@example.com" and
    "bob@example.org", or "CORP\\bob" and "LAB\\bob", are two names)."""
    if other == login:
        return None
    if other.casefold() == login.casefold():
        return "case"
    if _domain_form(other) != _domain_form(login) and _bare(other) == _bare(login):
        return "domain"
    return None


def twin_fix(login: str, other: str) -> str:
    """What makes `login` Verba's login name `other`, which it equals but for case or a domain (`differs_only_by`)."""
    if differs_only_by(login, other) == "case":
        return "fix the case at the source or in Verba"
    example = {"@": "mail or userPrincipalName", "\\": "one that holds DOMAIN\\name, as Verba does",
               "": "uid or sAMAccountName"}[_domain_form(other)]
    return f"read the login name from the attribute Verba's login names are in ({WHERE_READ}), e.g. {example}"


def _bare(login: str) -> str:
    """`login` casefolded, without its domain: what the ways of writing one login name share ("bob" for
    "Bob@Example.com" and "CORP\\Bob")."""
    return login.casefold().rpartition("\\")[2].partition("@")[0]


def _domain_form(login: str) -> str:
    """How `login` writes its domain: "@" (a UPN or mail, "bob@example.com"), "\\" (Windows' down-level logon name,
    "CORP\\bob") or "" (none)."""
    return "@" if "@" in login else "\\" if "\\" in login else ""
