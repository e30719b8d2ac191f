"""Preview: what pushing users' current states would do in Verba, found by reading Verba and the store only.

For `connector ldap sync --dry-run`, and usable for the users of any source. Each user's Verba id is
resolved read-only (listUsers; never createUser, whatever [user_id] create_missing says), the state
is mapped, and Verba is asked what it holds where that decides the outcome: the user's extensions
(listUsers, as drift reads them: for LIST_FROM users or more, every Verba user with one listUsers, and
one per user it leaves out) and getExtension for the others. For a user no Verba user has the login name of,
Verba's list of every user tells whether Verba holds the person under another login name (read once, when the
first such user is found, unless it was read up front). Each extension then gets the
outcome the delivery's ownership rules (connector/delivery/ownership.py) would give it, with the
store's claim index and the previewed users themselves as the rival claimants (earlier claims
first, then the previewed users in order):

    create      Verba has no such extension, and no earlier claimant of another Verba user waits for it
    update      linked to this user with other settings, linked to no user, last written for this user by
                the connector, or handed over (its holder is one of the connector's users who let it go
                through the connector) or taken over ([ownership] on_conflict = "take_over"); it says when
                another source of the same Verba user, which claimed it later with the settings it had, then
                waits in a conflict
    stop        the user no longer wants it (inactive, left, number changed) and Verba records it for them, or
                does not say whether it does
    unchanged   Verba holds it as wanted; or, to stop, it is gone or not recorded
    left_alone  to stop, but Verba links it to another user, or the same Verba user claims it elsewhere
    conflict    another Verba user holds it and claims it, claimed it first, or is not managed by the connector;
                or another source of the same Verba user claimed it first with other settings
and for whole users:
    no_login    the source gives the user no login name, and says why (LDAP: an entry without the username
                attribute, at the first of which a sync stops)
    unresolved  no Verba user has the login name (create_missing: the push would create one); the detail says where
                the login name was read from when it is not plainly userName (LDAP: the attribute, "from uid")
    held_elsewhere  no Verba user has the login name, but Verba holds the person under another one (the Verba user
                last pushed for them renamed, or a login name that differs only in case or by a domain: "bob" for
                "bob@example.com", a login name read from another attribute than Verba's): the push creates no
                second Verba user, whatever create_missing says, and is a dead letter (unresolved_user) until the
                names match; `held_elsewhere` in connector/delivery/users.py decides it, for delivery and drift too
    mapping     the state cannot be mapped (the message names the attribute and value)
    error       Verba answered an error about this user alone (e.g. several users with its login name);
                an outage, a refused login or a misconfigured target.url ends the preview instead

Nothing is written, neither to Verba nor to the store.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from connector.delivery.ownership import differing_twins, may_record, same_person_fix
from connector.delivery.users import differs_only_by
from connector.events import UserChange
from connector.mapping import MappedUser, Mapping, MappingFailure, UnresolvedUser
from connector.ops.drift import LazyVerbaLogins, compare, look_up, recorded, verba_directory
from connector.records import ExtensionRecord
from connector.store import Store
from connector.verba.client import ListedUser, VerbaClient
from connector.verba.errors import VerbaError

OUTCOMES = {
    "create": "would create",
    "update": "would update",
    "stop": "would stop recording",
    "unchanged": "unchanged",
    "no_login": "no login name (a sync stops at the first)",
    "unresolved": "unresolved (no Verba user)",
    "held_elsewhere": "held under another loginName (never created twice)",
    "conflict": "conflicts (extension held by another Verba user)",
    "mapping": "mapping failures",
    "left_alone": "left alone (to stop, but not this user's in Verba)",
    "error": "Verba errors (for this user only)",
}
LIST_FROM = 50  # a dry run of this many users or more reads every Verba user with one listUsers (verba_directory)
FATAL_CAUSES = ("auth", "target_misconfigured")  # besides the target-wide ones: the preview ends
# The outcomes of whole users; the others are of extensions.
USER_OUTCOMES = ("no_login", "unresolved", "held_elsewhere", "mapping", "error")
ALWAYS_LISTED = ("create", "update", "stop", "unchanged", "unresolved", "conflict", "mapping")


@dataclasses.dataclass(frozen=True)
class Item:
    """One outcome: of an extension, or of a whole user (`extension` None) for those of USER_OUTCOMES."""

    outcome: str  # a key of OUTCOMES
    user: str  # "source/external_id (login name)"
    extension: str | None
    detail: str


@dataclasses.dataclass
class PreviewReport:
    users: int = 0  # users previewed
    items: list[Item] = dataclasses.field(default_factory=list)
    no_extension: int = 0  # users mapped to no extension at all
    # users whose Verba user was found (under another login name too: held_elsewhere, unless by a domain)
    resolved: int = 0
    # Users whose login name no Verba user has, by where it was read from ("uid", "userName", a mapping's path).
    unknown_logins: Counter[str] = dataclasses.field(default_factory=Counter)
    # Of those, the users Verba holds under the same name with a domain or without one: no push creates them.
    with_domain: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Items by outcome, every outcome listed."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for item in self.items:
            counts[item.outcome] += 1
        return counts

    def of(self, outcome: str) -> list[Item]:
        return [item for item in self.items if item.outcome == outcome]


@dataclasses.dataclass
class _Looked:
    """What reading Verba told about one user (phase one, run in parallel)."""

    index: int
    change: UserChange
    label: str
    user_id: int | None = None
    mapped: MappedUser | None = None
    found: dict[str, dict[str, Any] | None] = dataclasses.field(default_factory=dict)  # extension -> Verba's
    failure: Item | None = None
    unknown_login: str | None = None  # where its login name, which no Verba user has, was read from
    with_domain: bool = False  # Verba has its login name with a domain or without one (held_elsewhere)

    @property
    def key(self) -> tuple[str, str]:
        return self.change.source, self.change.external_id


@dataclasses.dataclass(frozen=True)
class _Rival:
    """A claimant of an extension: from the store's claim index, or a previewed user who wants it."""

    order: tuple[int, float]  # store claims first (by when accepted), then previewed users in order
    key: tuple[str, str]
    verba_user_id: int | None
    label: str


class DryRun:
    """Previews users against Verba with `concurrency` calls at a time; reads Verba and the store, writes neither."""

    def __init__(self, store: Store, client: VerbaClient, mapping: Mapping, concurrency: int = 4) -> None:
        self.store = store
        self.client = client
        self.mapping = mapping
        self.concurrency = concurrency

    def preview(self, users: Sequence[UserChange], progress: Callable[[int], None] = lambda n: None,
                login_from: dict[tuple[str, str], str] | None = None,
                without_login: dict[tuple[str, str], str] | None = None) -> PreviewReport:
        """The outcome of pushing each of `users` now. What the source knows, by (source, external id): the
        attribute behind each userName (`login_from`, e.g. "uid"), and why a user has no login name
        (`without_login`: outcome no_login, Verba is not asked). Raises VerbaError when Verba cannot be read."""
        looked: list[_Looked] = []
        listing = len(users) >= LIST_FROM
        directory = verba_directory(self.client, "dry run") if listing else {}
        logins = LazyVerbaLogins(self.client, directory if listing else None, "dry run")
        given, missing = login_from or {}, without_login or {}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="preview") as pool:
            for user in pool.map(lambda i, change: self._look(i, change, directory, logins, given, missing),
                                 range(len(users)), users):
                looked.append(user)
                progress(1)
        report = PreviewReport(users=len(users))
        ready = [user for user in looked if user.failure is None]
        report.items.extend(user.failure for user in looked if user.failure is not None)
        report.resolved = sum(1 for user in looked if user.user_id is not None or not user.with_domain and (
            user.failure is not None and user.failure.outcome == "held_elsewhere"))
        report.unknown_logins.update(user.unknown_login for user in looked if user.unknown_login)
        report.with_domain = sum(1 for user in looked if user.with_domain)
        rivals = self._rivals(ready)
        # Extensions the previewed users' own pushes let go (a leaver, a number changed): handed over as delivery would.
        let_go = {r.extension: user.user_id for user in ready if user.mapped for r in user.mapped.deprovisions}
        last_written = self.store.owners(sorted({e for user in ready for e in user.found}))
        for user in ready:
            assert user.mapped is not None  # and a user_id unless it maps to nothing
            if not user.mapped.upserts and not user.mapped.deprovisions:
                report.no_extension += 1
            for record in user.mapped.upserts:
                report.items.append(self._upsert(user, record, rivals.get(record.extension, []), let_go,
                                                 last_written.get(record.extension)))
            for record in user.mapped.deprovisions:
                report.items.append(self._deprovision(user, record, rivals.get(record.extension, [])))
        return report

    # phase one: read Verba

    def _look(self, index: int, change: UserChange, directory: dict[str, ListedUser], logins: LazyVerbaLogins,
              login_from: dict[tuple[str, str], str], without_login: dict[tuple[str, str], str]) -> _Looked:
        login = self.mapping.login_name(change.state)
        user = _Looked(index, change, f"{change.source}/{change.external_id}" + (f" ({login})" if login else ""))
        if user.key in without_login:
            user.failure = Item("no_login", user.label, None, without_login[user.key])
            return user
        try:
            self._read_verba(user, directory, logins, login_from.get(user.key))
        except VerbaError as exc:
            if exc.target_wide or exc.cause in FATAL_CAUSES:  # Verba fails as a whole: the preview cannot go on
                raise
            user.failure = Item("error", user.label, None, f"{exc.cause}: {exc}")
        return user

    def _read_verba(self, user: _Looked, directory: dict[str, ListedUser], logins: LazyVerbaLogins,
                    login_from: str | None) -> None:
        change = user.change
        pushed = self.store.pushed_extensions(change.source, change.external_id)
        try:
            if self.mapping.needs_nothing(change, pushed) and not self.store.claimed(*user.key):
                user.mapped = MappedUser([], [])  # the push sends nothing: no Verba user to find
                return
            known = self.store.verba_user_id(change.source, change.external_id)
            verba = look_up(self.client, self.mapping, change, known, directory)
        except MappingFailure as exc:
            user.failure = Item("mapping", user.label, None, str(exc))
            return
        except UnresolvedUser as exc:
            user.failure = Item("unresolved", user.label, None, str(exc))
            return
        user.user_id = verba.user_id
        if user.user_id is None:
            self._without_verba_user(user, str(verba.found), known, logins, login_from)
            return
        try:
            user.mapped = self.mapping.map_user(change, user.user_id, pushed)
        except (MappingFailure, ValueError) as exc:
            user.failure = Item("mapping", user.label, None, str(exc))
            return
        linked = {e["extension"]: e for e in verba.held or [] if e["user_id"] == user.user_id}
        for record in [*user.mapped.upserts, *user.mapped.deprovisions]:
            if record.extension not in user.found:
                user.found[record.extension] = linked.get(record.extension) or self.client.get_extension(
                    record.extension)

    def _without_verba_user(self, user: _Looked, login: str, known: int | None, logins: LazyVerbaLogins,
                            login_from: str | None) -> None:
        """No Verba user has `login` (`known`: the id last pushed for the user): held_elsewhere when Verba's list of
        every user holds the person under another login name (`held_elsewhere`, as delivery decides it: the push
        creates no one), else unresolved. Raises VerbaError as reading that list does."""
        origin = login_read_from(self.mapping, user.change, login_from)
        verba = logins.get()
        elsewhere = verba.held_elsewhere(login, known, "" if origin == "userName" else origin)
        if elsewhere is not None:
            user.failure = Item("held_elsewhere", user.label, None,
                                f"{elsewhere}; the push would be a dead letter (unresolved_user), creating no one")
            # the login name is read from another attribute than Verba's: as much a hint at it as an unknown one
            user.with_domain = any(differs_only_by(login, other) == "domain" for other in verba.twins(login))
            user.unknown_login = origin if user.with_domain else None
            return
        user.unknown_login = origin
        user.failure = Item("unresolved", user.label, None, self._unresolved(login, user.unknown_login, user.change))

    def _unresolved(self, login: str, origin: str, change: UserChange) -> str:
        named = f"loginName {login!r}" + ("" if origin == "userName" else f" (from {origin})")
        if self.mapping.create_missing_users and change.kind == "upsert":
            return (f"no Verba user has {named}; the push would create one ([user_id] create_missing = true), then "
                    "its extensions")
        return (f"no Verba user has {named}; create the user in Verba (or set [user_id] create_missing = true in "
                "the mapping), or fix the login name at the source")

    def _rivals(self, users: list[_Looked]) -> dict[str, list[_Rival]]:
        """Every claimant of each extension the previewed users want: the store's claims of users not previewed
        or still wanting it (keeping their time), then the previewed users' new claims, in order."""
        wants: dict[tuple[str, str], set[str]] = {
            user.key: {r.extension for r in user.mapped.upserts} for user in users if user.mapped is not None}
        extensions = sorted({e for wanted in wants.values() for e in wanted})
        rivals: dict[str, list[_Rival]] = {}
        claimed: set[tuple[str, tuple[str, str]]] = set()
        for extension, claimants in self.store.claimants(extensions).items():
            for c in claimants:
                key = (c.source, c.external_id)
                if key in wants and extension not in wants[key]:
                    continue  # a previewed user who lets it go
                claimed.add((extension, key))
                rivals.setdefault(extension, []).append(_Rival((0, c.claimed_at), key, c.verba_user_id, c.name))
        for user in users:
            for extension in wants.get(user.key, ()):
                if (extension, user.key) not in claimed:
                    rivals.setdefault(extension, []).append(
                        _Rival((1, float(user.index)), user.key, user.user_id, user.label))
        for listed in rivals.values():
            listed.sort(key=lambda r: r.order)
        return rivals

    # phase two: decide, as the delivery would

    def _upsert(self, user: _Looked, record: ExtensionRecord, claimants: list[_Rival], let_go: dict[str, int | None],
                last_written: int | None) -> Item:
        extension, me = record.extension, user.user_id
        found = user.found.get(extension)
        mine = next((r for r in claimants if r.key == user.key), None)
        others = [r for r in claimants if r.key != user.key and r.verba_user_id != me]
        earlier = next((r for r in others if mine is None or r.order < mine.order), None)
        owner = None if found is None else found["user_id"]
        drift = compare(record, found, user.label)

        def item(outcome: str, detail: str) -> Item:
            return Item(outcome, user.label, extension, detail)

        twins = [r for r in claimants if r.key != user.key and r.verba_user_id == me and r.order[0] == 0]  # stored
        # Only once Verba holds it for this Verba user are there settings of an earlier source to keep.
        first = [r for r in twins if mine is None or r.order < mine.order] if owner == me else []
        name = "/".join(user.key)
        for twin, differences in differing_twins(self.store, record, name, first, _key):
            return item("conflict", f"{twin.label}, another source of the same Verba user, claimed it first with "
                                    f"other settings ({differences}), which it keeps")
        if owner == me:
            if drift is None:
                return item("unchanged", f"linked to Verba user {me} as wanted")
            later = [r for r in twins if mine is not None and mine.order < r.order]
            overwritten = [twin.label for twin, _ in differing_twins(self.store, record, name, later, _key)]
            then = (f"; then {', '.join(overwritten)}, another source of the same Verba user with the settings it had, "
                    "waits in a conflict" if overwritten else "")
            return item("update", drift.detail + then)
        holder = next((r for r in others if owner is not None and r.verba_user_id == owner), None)
        if holder is not None:
            return item("conflict", f"linked to Verba user {owner}, and {holder.label} claims it too and holds it")
        # One the connector last wrote for this user and Verba now links to no one is written whoever waits (delivery).
        if earlier is not None and not (last_written == me and owner is None):
            return item("conflict", f"{earlier.label} (Verba user {earlier.verba_user_id}) claimed it first: the "
                                    "earliest claim wins, this user waits")
        if found is None:
            return item("create", f"not in Verba: created for Verba user {me}")
        if owner is None:
            return item("update", f"linked to no user in Verba: linked to Verba user {me}")
        held_by = f"Verba user {owner}" + (f" ({found['user_login_name']})" if found.get("user_login_name") else "")
        if let_go.get(extension) == owner or self.store.let_go_by_holder(extension, owner):
            return item("update", f"handed over from {held_by}, a user of the connector who let it go")
        same = same_person_fix(self.mapping.login_name(user.change.state), me, found.get("user_login_name"), owner)
        if self.mapping.on_conflict == "take_over" and same is None:  # never from the same person (as delivery)
            return item("update", f'taken over from {held_by} ([ownership] on_conflict = "take_over")')
        whom = ("a user of the connector who never claimed it through the connector (linked by hand in Verba?)"
                if self.store.source_users_of(owner) else
                "whom the connector does not manage")
        return item("conflict", f"linked to {held_by}, {whom}: " + (same or (
            'free or relink it in Verba, or set [ownership] on_conflict = "take_over" in the mapping (then restart '
            "every instance: each reads the mapping at start)")))

    def _deprovision(self, user: _Looked, record: ExtensionRecord, claimants: list[_Rival]) -> Item:
        extension, me = record.extension, user.user_id
        found = user.found.get(extension)

        def item(outcome: str, detail: str) -> Item:
            return Item(outcome, user.label, extension, detail)

        if found is None:
            return item("unchanged", "to stop, but Verba has no such extension")
        owner = found["user_id"]
        if owner != me:
            held_by = "no user" if owner is None else f"Verba user {owner}"
            return item("left_alone", f"to stop, but Verba links it to {held_by}: left as it is")
        same = next((r for r in claimants if r.key != user.key and r.verba_user_id == me), None)
        if same is not None:
            return item("left_alone", f"to stop, but the same Verba user still claims it through {same.label}")
        recording = may_record(found)
        if recording is False:
            return item("unchanged", "to stop, and Verba does not record it")
        why = _why_stopped(user.change, user.mapped)
        if recording is None:  # delivery stops it, and audits the stop of a user who stays active, as if it records
            return item("stop", f"{why}: Verba did not say whether it records it for Verba user {me}")
        return item("stop", f"{why}: Verba records {recorded(found)} on it for Verba user {me}")


def login_read_from(mapping: Mapping, change: UserChange, given: str | None) -> str:
    """Where `mapping` reads the login name of `change` from: the first [user_id] login_name path that holds one, or,
    for userName, the source's attribute behind it (`given`, e.g. "uid") when it says; "userName" when none holds
    one."""
    for path in mapping.login_name_paths:
        if any(isinstance(value, str) and value.strip() for value in path.values(change.state)):
            name = path.text.strip()
            return given if given and name == "userName" else name
    return "userName"


def _key(rival: _Rival) -> tuple[str, str]:
    return rival.key


def _why_stopped(change: UserChange, mapped: MappedUser | None) -> str:
    if change.kind == "delete":
        return "gone from the source"
    if change.kind == "deactivate" or change.state.get("active") is False:
        return "inactive"
    if mapped is not None and not mapped.upserts:
        return "not recorded by the mapping's rules"
    return "no longer in the user's state"
