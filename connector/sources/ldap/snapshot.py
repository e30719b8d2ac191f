"""One directory entry as the normalized user state of connector/events.py, with a digest to compare.

Beyond the keys of connector/events.py, an LDAP state holds `direct_groups` (the `memberOf`
DNs) next to `groups` (effective membership: direct, primary and nested, as the rules see it),
and `expiresAt` (ISO 8601, UTC) when the account has an expiry date. A value no store can hold is kept with each
such character as U+FFFD, which a mapping refuses as invalid (`Snapshot.replaced`; see
connector/sources/ldap/dialects.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from typing import Any

from connector.dn import dn_key
from connector.events import storable, unstorable
from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.dialects import UTC, Dialect, shown
from connector.store import LdapEntry


class NoLoginName(DirectoryError):
    """An entry in scope has no login name: a run stops at it; a dry run lists it (`snapshot(without_login=True)`).
    `why` says which entry and what it lacks, `fix` what to do."""

    def __init__(self, directory: str, why: str, fix: str) -> None:
        super().__init__(f"{why}, so it has no login name (userName) for Verba, and the run stops at it (the first "
                         f"such entry: `connector ldap sync {directory} --dry-run` lists them all): {fix}")
        self.why, self.fix = why, fix


@dataclasses.dataclass(frozen=True)
class Snapshot:
    entry: LdapEntry
    stamp: Any  # modifyTimestamp or uSNChanged as the server sent it
    expired: bool = False  # inactive because its expiry date has passed
    login_from: str | None = None  # the attribute its login name (userName) was read from, as configured
    no_login: str | None = None  # why it has no login name (`snapshot(without_login=True)` only; userName is None)
    #: (attribute, value, problem) of each value no store can hold (a NUL character), which the state holds
    #: `storable` instead
    replaced: tuple[tuple[str, str, str], ...] = ()

    @property
    def external_id(self) -> str:
        return self.entry.external_id


def snapshot(dialect: Dialect, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]],
             groups: tuple[list[str], list[str]], now: float, without_login: bool = False) -> Snapshot:
    """Normalize one search result; `groups` are its (direct, effective) groups; the digest covers all the mapping
    may read. Raises NoLoginName for an entry with no login name, unless `without_login` (a dry run, which lists
    them): its userName is None then, and `no_login` says why. A value no store can hold is in the state
    `storable` (`replaced`), but for the login name, which is then none (and DirectoryError for such an id)."""
    texts: dict[str, list[str]] = {}  # lower-cased attribute name -> its non-empty values as text
    replaced: list[tuple[str, str, str]] = []
    for key, value in values.items():
        found = [v if type(v) is str else _text(v) for v in (value if isinstance(value, list) else (value,))
                 if v not in _EMPTY]
        if found:
            texts[key.lower()] = found
            replaced += [(key, text, problem) for text in found if (problem := unstorable(text))]
    empty: list[str] = []
    direct, effective = groups
    active = dialect.is_active(values, now)
    expires = dialect.expiry(values)
    login: str | None = None
    login_from = no_login = None
    try:
        login, login_from = login_name(dialect, dn, texts)
    except NoLoginName as exc:
        if not without_login:
            raise
        no_login = f"{exc.why}: {exc.fix}"
    if replaced:
        texts = {key: [storable(text) for text in found] for key, found in texts.items()}
    display = texts.get("displayname") or texts.get("cn")
    state: dict[str, Any] = {
        "userName": login,
        "active": active,
        "displayName": display[0] if display else "",
        "emails": [{"value": v, "type": "work", "primary": i == 0} for i, v in enumerate(texts.get("mail", empty))],
        "phoneNumbers": [{"value": v, "type": "work"} for v in texts.get("telephonenumber", empty)]
        + [{"value": v, "type": "mobile"} for v in texts.get("mobile", empty)],
        "groups": effective,
        "direct_groups": direct,
        "attributes": {"dn": dn},
    }
    if expires is not None:
        state["expiresAt"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    given, family = texts.get("givenname"), texts.get("sn")
    if given or family:
        state["name"] = {**({"givenName": given[0]} if given else {}), **({"familyName": family[0]} if family else {})}
    attributes = state["attributes"]
    for wanted in dialect.state_attributes:
        text = _configured(dialect, texts, wanted)
        if text:
            attributes[wanted] = text[0] if len(text) == 1 else text
    digest = hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    entry = LdapEntry(dialect.external_id(dn, values, raw), digest, active, tuple(dn_key(g) for g in effective), state)
    expired = expires is not None and expires.timestamp() <= now
    return Snapshot(entry, texts.get(dialect.stamp_attribute.lower(), [None])[0], expired, login_from, no_login,
                    tuple(replaced))


def login_name(dialect: Dialect, dn: str, texts: dict[str, list[str]]) -> tuple[str, str]:
    """The user's login name (the state's userName) and the attribute it is read from (as configured):
    `username_attribute` when set, only it; else the first the entry has of the dialect's (uid, mail, cn;
    userPrincipalName, sAMAccountName). `texts` maps lower-cased attribute names to their values.

    Raises NoLoginName naming the entry and the fix when it has none: a DN is no login name, and Verba would
    be asked for (or, with create_missing, given) a user called by it. Also when it holds what no store can hold:
    left out, the next attribute would make the user another one.
    """
    chosen = dialect.config.username_attribute
    names = (chosen,) if chosen else dialect.username_attributes
    found = next(((text[0], name) for name in names if (text := _configured(dialect, texts, name))), None)
    config = dialect.config
    if found is not None and (problem := unstorable(found[0])):
        raise NoLoginName(config.name, f"the {found[1]} of {dn} ({shown(found[0])}) {problem}",
                          "correct the value in the directory")
    if found is not None:
        return found
    raise NoLoginName(
        config.name, f"{dn} has no {' or '.join(names)} that {config.bind_dn or 'an anonymous bind'} may read",
        "give it one, let the bind account read it, set username_attribute to an attribute every user has, or leave "
        f"such entries out with filter = \"(&{dialect.filter}({names[0]}=*))\"")


def _configured(dialect: Dialect, texts: dict[str, list[str]], name: str) -> list[str] | None:
    """The values of the configured attribute `name`, under any of its spellings (`Dialect.spellings`)."""
    return next((texts[each.lower()] for each in dialect.spellings(name) if each.lower() in texts), None)


def expires_at(text: Any) -> float | None:
    """A state's `expiresAt` (ISO 8601, UTC, as the snapshot writes it) as a Unix time; None when it is absent
    or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


_EMPTY = (None, "", b"")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y%m%d%H%M%SZ")
    return str(value)
