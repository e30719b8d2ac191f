"""What differs between directories: the stable id, the change cursor, disabled and expired accounts.

    openldap  entryUUID; the later of the latest modifyTimestamp and the previous run's start, minus an
              overlap window, bounded by the server's time; the newest users with their stamps, read
              again each run: one stamped older now is a restore (a full run);
              expiry by shadowExpire and pwdEndTime
    generic   entryUUID, nsUniqueId or ipaUniqueID (or `id_attribute`); like openldap
    ad        objectGUID; uSNChanged above the watermark on one pinned DC (highestCommittedUSN and
              the DC's invocationId from the rootDSE); tombstones with the Show Deleted control;
              expiry by accountExpires

An expiry value that cannot be read (a date out of range, a malformed value) counts as "never expires", with one
warning naming the entry and the attribute (`Dialect.expiries`, the one place that reads them): a typo in one
account must not stop the directory's sync, nor take a recorded user's recording away.

A value no store can hold (`connector.events.unstorable`: a NUL character, which slapd lets a directoryString, an
IA5String or an octet string hold) is in the user's state with each such character as U+FFFD, and NULs at either
end dropped (`connector.events.storable`), with one warning naming the entry and the attribute
(`Dialect.warn_unstorable`): one user's value must not stop the directory's sync on PostgreSQL, nor be kept on
SQLite as it is; nor may it vanish, or a recorded number or address would read as gone and its recording stop:
a mapping refuses U+FFFD in an extension as invalid, so its `on_invalid` decides (dead letter, or the extension
kept recording). The id and the login name are not replaced (the user would become another one): an entry whose id
or login name holds one stops the run, as one without them does. ldap3 reads each value as UTF-8, else as latin-1
(its ADDITIONAL_SERVER_ENCODINGS), so a value that is not UTF-8 (only an octet string can hold one: slapd refuses
it in the text syntaxes) reads as its latin-1 text: never an unpaired surrogate.

A user is keyed by a stable id, never silently by DN: `id_attribute = "dn"` must be chosen, and is
warned about, because a rename or a move then becomes a delete and a create.

A search asks for the dialect's own attributes and those the config adds. The attribute names the
config gives are checked against the directory's schema (rootDSE subschemaSubentry, attributeTypes)
before the first run reads a user: a server ignores a name it does not know, so a misspelled one
would read as absent on every user. So are the names in its filter, and the matching rule each term
needs (ORDERING for >=): a term the server cannot evaluate matches no user, so that a full run would
delete them all.

Sources: reference/ldap.md §1 (a), (c) and §4; Microsoft, "Polling for Changes Using uSNChanged";
[MS-ADA1] Account-Expires; shadow(5) and shadow-utils isexpired(); draft-behera-ldap-password-policy
(pwdEndTime; pwdAccountLockedTime, 000001010000Z); RFC 4512 §4.2 (subschema); RFC 4511 §4.5.1.8.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import (
    MATCH_EQUAL,
    MATCH_GREATER_OR_EQUAL,
    MATCH_LESS_OR_EQUAL,
    MATCH_SUBSTRING,
    parse_filter,
)
from ldap3.protocol.rfc4512 import AttributeTypeInfo
from ldap3.utils.conv import escape_bytes, escape_filter_chars

from connector.config import LdapConfig
from connector.dn import dn_key
from connector.errors import closest
from connector.events import REPLACEMENT_CHARACTER, storable, unstorable
from connector.sources.ldap.connection import DirectoryError, first_raw, read_entry, sample, search

log = logging.getLogger("connector.ldap")

COMMON_ATTRIBUTES = ("cn", "sn", "givenName", "displayName", "mail", "telephoneNumber", "mobile", "memberOf")
UAC_ACCOUNTDISABLE = 0x2
AD_NEVER_EXPIRES = (0, 0x7FFFFFFFFFFFFFFF)  # accountExpires values that mean "never"
FILETIME_EPOCH = datetime.datetime(1601, 1, 1, tzinfo=datetime.UTC)
UNIX_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MONITOR_TIME = "cn=Current,cn=Time,cn=Monitor"  # OpenLDAP back-monitor: monitorTimestamp is the server's clock
UTC = datetime.UTC
_FALSE = ("", "false", "0", "no")
PWD_LOCKED_TIME = "pwdAccountLockedTime"  # ppolicy: when the account was locked
PERMANENT_LOCK = "000001010000Z"  # ppolicy: a lock only an administrator lifts; any other value is a lockout
SUBSCHEMA = "subschemaSubentry"  # the rootDSE attribute naming the entry that holds the schema (RFC 4512 §4.2)
NEWEST_KEPT = 5  # users the cursor keeps, with their stamps, to notice a directory gone back in time


@dataclasses.dataclass(frozen=True)
class Expiry:
    """One expiry attribute of an entry, as read: when it expires (None: never), and why a value that was there
    counts as never (`problem`: it cannot be read, or is out of range)."""

    attribute: str
    value: Any
    at: datetime.datetime | None
    problem: str | None = None


@dataclasses.dataclass(frozen=True)
class Begin:
    """How a run starts: `since` narrows the search to changes (None: read everything)."""

    since: str | None
    cursor: dict[str, Any]  # the cursor to store when nothing newer is seen
    full_reason: str | None = None  # why an incremental run must be a full one
    tombstone_base: str | None = None
    bound: datetime.datetime | None = None  # timestamp cursors: no stamp counts as later than this


class Dialect:
    name = "generic"
    default_ids: tuple[str, ...] = ("entryUUID", "nsUniqueId", "ipaUniqueID")
    stamp_attribute = "modifyTimestamp"
    default_filter = "(objectClass=person)"
    group_filter = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"
    user_attributes: tuple[str, ...] = (*COMMON_ATTRIBUTES, "uid")
    username_attributes: tuple[str, ...] = ("uid", "mail", "cn")
    expiry_attributes: tuple[str, ...] = ("shadowExpire", "pwdEndTime")
    root_dse_attributes: tuple[str, ...] = ("namingContexts", "currentTime", SUBSCHEMA)
    #: the server keeps several paged searches per connection; else a run pages its users on a second one
    interleaved_paging = False

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        chosen = config.id_attribute
        #: users keyed by DN, as explicitly chosen with id_attribute = "dn"
        self.by_dn = chosen is not None and chosen.lower() == "dn"
        self.id_attributes: tuple[str, ...] = () if self.by_dn else (chosen,) if chosen else self.default_ids
        self.filter = config.filter or self.default_filter
        extra = [*(config.attributes or ()), config.username_attribute, config.disabled_attribute,
                 *self.technical_attributes]
        #: what every user search asks for: the dialect's own attributes, and those the config adds
        self.attributes = _distinct([*self.user_attributes, *(a for a in extra if a)])
        #: what goes into the state's `attributes`: not the id, cursor and binary attributes, which change nothing
        hidden = {a.lower() for a in (*self.id_attributes, self.stamp_attribute, "objectSid")}
        self.state_attributes = tuple(a for a in self.attributes if a.lower() not in hidden)
        #: the configured attribute names were checked against the directory's schema (`check_names`)
        self.names_checked = False
        #: a configured name (lower-cased) -> the name the schema gives it, which the server answers an alias or
        #: an OID with ("rfc822Mailbox" -> "mail"); filled by `check_names`
        self.schema_names: dict[str, str] = {}
        self._warned: set[tuple[str, str, str]] = set()  # values logged (`warn_unreadable_expiry`, `warn_unstorable`)

    @property
    def technical_attributes(self) -> tuple[str, ...]:
        return (*self.id_attributes, self.stamp_attribute, *self.expiry_attributes)

    def spellings(self, name: str) -> tuple[str, ...]:
        """The names under which the server may return the configured attribute `name`: as configured, and as
        the schema names it (when `check_names` found it to be an alias or an OID)."""
        return _distinct([name, self.schema_names.get(name.lower(), name)])

    def configured_value(self, values: dict[str, Any], name: str) -> Any:
        """The first value of the configured attribute `name` (case-insensitive, under any of its spellings), or
        None."""
        return next((v for each in self.spellings(name) if (v := first_value(values, each)) is not None), None)

    # --- identity ----------------------------------------------------------
    def find_id(self, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]]) -> str | None:
        """The entry's stable id, or None if it has none (or the bind account may not read it, or it holds what no
        store can hold, so that no known user has it: `unstorable_id`)."""
        if self.by_dn:
            return dn_key(dn)
        for name in self.id_attributes:
            if name.lower() == "objectguid":
                guid = first_raw(raw, "objectGUID")
                if guid is not None and len(guid) == 16:
                    return str(uuid.UUID(bytes_le=guid))  # the mixed-endian form AD tools print
                continue
            found = self.configured_value(values, name)
            if found not in (None, ""):
                return None if unstorable(str(found)) else str(found)
        return None

    def external_id(self, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]]) -> str:
        found = self.find_id(dn, values, raw)
        if found is None:
            raise DirectoryError(self.unstorable_id(dn, values) or self.missing_id(dn))
        return found

    def unstorable_id(self, dn: str, values: dict[str, Any]) -> str | None:
        """Why the entry at `dn` has no id a store can hold, when its id attribute holds what none can (a NUL
        character): a sentence naming the entry, the attribute and the fix; else None."""
        for name in self.id_attributes:
            found = self.configured_value(values, name)
            if found not in (None, "") and (problem := unstorable(str(found))):
                return (f"the {name} of {dn} ({shown(str(found))}) {problem}, so it has no stable id the store can "
                        "hold, and the run stops at it: correct the value in the directory")
        return None

    def missing_id(self, dn: str) -> str:
        names = " or ".join(self.id_attributes)
        return (f"{dn} has no {names} that {self.config.bind_dn or 'an anonymous bind'} may read, so it has no "
                "stable id: let the bind account read it, or set id_attribute to an attribute that never changes "
                "for a user (nsUniqueId, ipaUniqueID, an employee number). id_attribute = \"dn\" keys users by DN: "
                "a rename or a move then becomes a delete and a create")

    def id_filter(self, external_id: str) -> str:
        """An LDAP filter that finds the entry with this stable id."""
        if self.by_dn:
            return f"(entryDN={escape_filter_chars(external_id)})"
        terms = []
        for name in self.id_attributes:
            if name.lower() == "objectguid":
                try:
                    terms.append(f"(objectGUID={escape_bytes(uuid.UUID(external_id).bytes_le)})")
                except ValueError:
                    continue
            else:
                terms.append(f"({name}={escape_filter_chars(external_id)})")
        if not terms:  # no id this dialect could hold (an objectGUID that is no UUID): matches nothing
            return "(!(objectClass=*))"
        return terms[0] if len(terms) == 1 else "(|" + "".join(terms) + ")"

    # --- disabled and expired accounts ----------------------------------------
    def is_active(self, values: dict[str, Any], now: float) -> bool:
        """Neither disabled nor expired at `now` (Unix time)."""
        expires = self.expiry(values)
        if expires is not None and expires.timestamp() <= now:
            return False
        return not self.is_disabled(values)

    def is_disabled(self, values: dict[str, Any]) -> bool:
        """`disabled_attribute` marks the account disabled: any value but false/0/no/empty, except for
        pwdAccountLockedTime, where only 000001010000Z does.

        ppolicy writes pwdAccountLockedTime with the time of a lockout after too many failed binds, which ends by
        itself (pwdLockoutDuration) or when an administrator unlocks it: a person who mistyped a password is
        still there and still to be recorded. 000001010000Z is the lock only an administrator sets and lifts
        (draft-behera-ldap-password-policy, slapo-ppolicy(5)).
        """
        name = self.config.disabled_attribute
        if name is None:
            return False
        flag = self.configured_value(values, name)
        text = "" if flag is None else str(flag).strip()
        if any(each.lower() == PWD_LOCKED_TIME.lower() for each in self.spellings(name)):
            return text.upper() == PERMANENT_LOCK
        return text.lower() not in _FALSE

    def expiry(self, values: dict[str, Any]) -> datetime.datetime | None:
        """When the account expires, the earliest of its expiry attributes (`expiries`); None: never."""
        found = [each.at for each in self.expiries(values) if each.at is not None]
        return min(found) if found else None

    def expiries(self, values: dict[str, Any]) -> list[Expiry]:
        """The dialect's expiry attributes the entry has (shadowExpire and pwdEndTime; accountExpires on AD), each
        as read by `EXPIRY_READERS`. The one place that decides what an unreadable value means: a value that
        cannot be read, or names a date no clock reaches (shadowExpire 2147483647), counts as never expiring,
        with its `problem` (`warn_unreadable_expiry` logs it)."""
        found = []
        for attribute in self.expiry_attributes:
            value = first_value(values, attribute)
            if value in (None, "", b""):
                continue
            try:
                found.append(Expiry(attribute, value, EXPIRY_READERS[attribute.lower()](value)))
            except (ValueError, OverflowError) as exc:
                found.append(Expiry(attribute, value, None, str(exc) or type(exc).__name__))
        return found

    def warn_unreadable_expiry(self, dn: str, values: dict[str, Any]) -> None:
        """Log once (per entry, attribute and value, for the life of this dialect) each expiry value of the entry
        at `dn` that counts as never expiring because it cannot be read."""
        for each in self.expiries(values):
            key = (dn_key(dn), each.attribute.lower(), str(each.value))
            if each.problem is None or key in self._warned:
                continue
            self._warned.add(key)
            log.warning("ldap %s: %s: %s %r cannot be read as an expiry date (%s): the account counts as never "
                        "expiring; correct the value in the directory", self.config.name, dn, each.attribute,
                        _text(each.value), each.problem)

    def warn_unstorable(self, dn: str, replaced: Iterable[tuple[str, str, str]]) -> None:
        """Log once (per entry, attribute and value, for the life of this dialect) each (attribute, value, problem)
        of the entry at `dn` that no store can hold, and what its state holds instead (`Snapshot.replaced`)."""
        configured = {each.lower() for name in self.config.attributes or () for each in self.spellings(name)}
        for attribute, text, problem in replaced:
            key = (dn_key(dn), attribute.lower(), text)
            if key in self._warned:
                continue
            self._warned.add(key)
            kept = storable(text)
            refused = " (a mapping refuses U+FFFD in an extension as invalid)" if REPLACEMENT_CHARACTER in kept else ""
            binary = (f", or, if it holds binary data, which is no text, take {attribute} out of attributes in "
                      f"[ldap.{self.config.name}]" if attribute.lower() in configured else "")
            log.warning("ldap %s: %s: %s %s %s: the user syncs with %s instead%s until it is corrected in the "
                        "directory%s", self.config.name, dn, attribute, shown(text), problem, shown(kept), refused,
                        binary)

    # --- the change cursor -------------------------------------------------------
    def begin(self, conn: ldap3.Connection, cursor: dict[str, Any], dse: dict[str, Any]) -> Begin:
        """Where a run starts (`start`). The first run of this dialect checks the configured attribute names first
        (`check_names`): UnknownAttributes before any user is read; a schema it cannot read is logged, not fatal."""
        if not self.names_checked:
            warning = self.check_names(conn, dse)
            if warning is not None:
                log.warning("ldap %s: %s", self.config.name, warning)
        return self.start(conn, cursor, dse)

    def check_names(self, conn: ldap3.Connection, dse: dict[str, Any]) -> str | None:
        """Refuse the attribute names of the config that the directory's schema does not define, and the terms of
        its `filter` the server cannot evaluate (`filter_problems`); learn the name the server returns for each
        alias or OID given (`schema_names`). `dse` is the rootDSE with its subschemaSubentry.

        Returns None when every name is defined (or none is configured), else a warning sentence when the schema
        cannot be read: nothing is refused then. Raises UnknownAttributes, with a sentence per problem.
        """
        given = configured_names(self.config)
        terms = filter_terms(self.config)
        if not given and not terms:
            self.names_checked = True
            return None
        try:
            schema = read_schema(conn, dse)
        except DirectoryError as exc:
            self.names_checked = True
            keys = ", ".join(dict.fromkeys([*(key.split("[")[0] for key, _ in given),
                                            *([f"ldap.{self.config.name}.filter"] if terms else [])]))
            return (f"{keys} not checked against the directory's schema, which cannot be read ({exc}); a misspelled "
                    "name reads as absent on every user: let the bind account read the subschema entry")
        problems = [unknown_name(self.config, schema, f"{key} is {name!r}", name) for key, name in given
                    if schema.lookup(name) is None]
        problems += filter_problems(self.config, schema, terms)
        if problems:
            raise UnknownAttributes(problems)
        self.schema_names = {name.lower(): str(schema.lookup(name)) for _, name in given}
        self.names_checked = True
        return None

    def start(self, conn: ldap3.Connection, cursor: dict[str, Any], dse: dict[str, Any]) -> Begin:
        """Where an incremental run starts: changes since the later of the cursor (the latest stamp seen) and the
        start of the run before, minus overlap_seconds; bounded by the server's time. A full run when the
        directory went back in time (`went_back`).

        The run before read every entry the server held when it started. What it could not see was written,
        or reached this server, after that start, so it is stamped at most overlap_seconds before it (clocks
        that differ between servers, replication lag, a write that commits late). Without that start the
        window would stay at the latest stamp: after a bulk load and no write since, every poll would read
        the whole load again.
        """
        earliest, latest, clock = self.server_time(conn, dse)
        after: dict[str, Any] = {"started": generalized(earliest), "clock": clock}
        stamp = cursor.get("stamp")
        if not stamp:
            return Begin(None, after, "no watermark yet", bound=latest)
        start = min(parse_time(stamp), latest)  # a cursor stored ahead of the server comes back to it
        newest, back = self.went_back(conn, cursor.get("newest") or {}, start)
        if back is not None:
            return Begin(None, after, back, bound=latest)
        started = cursor.get("started")
        since = min(max(start, parse_time(started)), latest) if started else start
        window = generalized(since - datetime.timedelta(seconds=self.config.overlap_seconds))
        return Begin(f"({self.stamp_attribute}>={window})", {"stamp": generalized(start), **after, "newest": newest},
                     bound=latest)

    def went_back(self, conn: ldap3.Connection, newest: dict[str, str],
                  start: datetime.datetime) -> tuple[dict[str, str], str | None]:
        """Whether the directory went back in time since the cursor: restored from a backup (slapadd of an older
        slapcat, a disk or virtual machine snapshot), which brings back old values with their old stamps, below the
        cursor, where no incremental run looks. `newest` (the cursor's) holds the stable id and stamp of the users
        stamped last, as the run before found them: one of them there now with an older stamp went back. One
        deleted since, or changed again (stamped later), is no sign, nor one a size limit leaves unread. Two
        reads: the users of `newest` by id, and at most NEWEST_KEPT users stamped at `start` (the cursor's stamp)
        or later.

        Returns (the users to keep as the newest now, by id: their stamps as read; why a full run is due, or None).
        """
        now: dict[str, tuple[str, str]] = {}  # id -> (DN, stamp) of the users of `newest` still under `base`
        if newest:
            wanted = "".join(self.id_filter(external_id) for external_id in newest)
            now = {i: found for i, found in self._stamps(sample(conn, self.config.base, f"(|{wanted})",
                                                                self._stamped, NEWEST_KEPT)).items() if i in newest}
        for external_id, (dn, stamp) in now.items():
            if parse_time(stamp) < parse_time(newest[external_id]):
                return {}, (f"the directory went back in time: {dn} is stamped {stamp} ({self.stamp_attribute}), "
                            f"before the {newest[external_id]} a run saw: it was restored from an older backup "
                            "(slapadd, a disk or virtual machine snapshot), so its stamps cannot tell what changed "
                            "since (if url reaches several replicas, one lagging behind reads so too: point url at "
                            "one server)")
        later = self._stamps(sample(conn, self.config.base,
                                    f"(&{self.filter}({self.stamp_attribute}>={generalized(start)}))", self._stamped,
                                    NEWEST_KEPT))
        kept = {external_id: stamp for external_id, (_, stamp) in {**now, **later}.items()}
        return dict(sorted(kept.items(), key=lambda item: parse_time(item[1]), reverse=True)[:NEWEST_KEPT]), None

    def _stamps(self, entries: Iterable[tuple[str, dict[str, Any], dict[str, list[bytes]]]]
                ) -> dict[str, tuple[str, str]]:
        """The stable id -> (DN, stamp as the server sent it) of each of `entries` that has both."""
        found = {}
        for dn, values, raw in entries:
            external_id, stamp = self.find_id(dn, values, raw), first_raw(raw, self.stamp_attribute)
            if external_id is not None and stamp is not None:
                found[external_id] = (dn, stamp.decode("utf-8", "replace"))
        return found

    @property
    def _stamped(self) -> tuple[str, ...]:
        """What `went_back` reads of a user: its id and its stamp."""
        return (*self.id_attributes, self.stamp_attribute)

    def server_time(self, conn: ldap3.Connection, dse: dict[str, Any]) -> tuple[datetime.datetime, datetime.datetime,
                                                                               str]:
        """The server's time now, as (earliest, latest, where it comes from).

        A replica with a fast clock, or an import that kept its source's stamps, writes
        modifyTimestamps ahead of the server: taken as the cursor, one of them would hide every
        later change until the full sync. So no stamp counts as later than the server's time
        (rootDSE currentTime, as AD and Samba give it; OpenLDAP's cn=Monitor where it is
        configured and readable: earliest and latest are the same), else the connector's clock
        plus or minus clock_tolerance_seconds.
        """
        current = first_value(dse, "currentTime")
        if current:
            return parse_time(current), parse_time(current), "server currentTime"
        monitor = read_entry(conn, MONITOR_TIME, ["monitorTimestamp"])
        stamp = first_value(monitor[1], "monitorTimestamp") if monitor else None
        if stamp:
            return parse_time(stamp), parse_time(stamp), "server cn=Monitor"
        tolerance = datetime.timedelta(seconds=self.config.clock_tolerance_seconds)
        now = datetime.datetime.now(UTC)
        return now - tolerance, now + tolerance, f"connector clock + {tolerance.total_seconds():g} s"

    def advance(self, begin: Begin, stamps: list[Any]) -> dict[str, Any]:
        """The cursor after a run that saw entries stamped `stamps`; a stamp past the bound counts as the bound."""
        bound = begin.bound or datetime.datetime.max.replace(tzinfo=UTC)
        seen = [min(parse_time(s), bound) for s in set(stamps) if s]  # a full sync has few distinct stamps
        if begin.cursor.get("stamp"):
            seen.append(parse_time(begin.cursor["stamp"]))
        rest = {k: v for k, v in begin.cursor.items() if k != "stamp"}
        return {"stamp": generalized(max(seen)), **rest} if seen else rest


class OpenLdapDialect(Dialect):
    name = "openldap"
    default_ids = ("entryUUID",)
    default_filter = "(objectClass=inetOrgPerson)"

    def missing_id(self, dn: str) -> str:
        if self.id_attributes != ("entryUUID",):
            return super().missing_id(dn)
        who = self.config.bind_dn or "anonymous"
        return (
            f"{dn} has no entryUUID that {who} may read: an access rule hides it. entryUUID is the stable id "
            "that keeps a user through renames and moves; let the bind account read it with a rule placed before "
            f"the one that hides it, in slapd.conf: access to attrs=entryUUID by dn.exact=\"{who}\" read by * break "
            f"(cn=config: add olcAccess: {{0}}to attrs=entryUUID by dn.exact=\"{who}\" read by * break to the "
            "database). Or set id_attribute to another attribute that never changes for a user (an employee "
            "number); id_attribute = \"dn\" keys users by DN, so a rename or a move becomes a delete and a create"
        )


class ActiveDirectoryDialect(Dialect):
    name = "ad"
    default_ids = ("objectGUID",)
    stamp_attribute = "uSNChanged"
    default_filter = "(&(objectCategory=person)(objectClass=user))"
    group_filter = "(objectClass=group)"
    user_attributes = (*COMMON_ATTRIBUTES, "userPrincipalName", "sAMAccountName", "ipPhone", "msRTCSIP-Line",
                       "msRTCSIP-PrimaryUserAddress", "department")
    username_attributes = ("userPrincipalName", "sAMAccountName")
    expiry_attributes = ("accountExpires",)
    root_dse_attributes = ("highestCommittedUSN", "dsServiceName", "defaultNamingContext", "namingContexts",
                           SUBSCHEMA)
    # MaxResultSetsPerConn (10 by default; Samba too): the users are paged on the run's one connection, so that
    # they come from the DC whose USN the cursor read, even where the url's name reaches several DCs.
    interleaved_paging = True

    @property
    def technical_attributes(self) -> tuple[str, ...]:
        return (*self.id_attributes, "userAccountControl", "accountExpires", "primaryGroupID", "objectSid")

    def missing_id(self, dn: str) -> str:
        if self.id_attributes != ("objectGUID",):
            return super().missing_id(dn)
        return (f"{dn} has no objectGUID that {self.config.bind_dn} may read; every Active Directory object has one: "
                "check that url points at a domain controller and that the bind account may read the users")

    def is_active(self, values: dict[str, Any], now: float) -> bool:
        control = first_value(values, "userAccountControl")
        if control is not None and int(control) & UAC_ACCOUNTDISABLE:
            return False
        return super().is_active(values, now)

    def start(self, conn: ldap3.Connection, cursor: dict[str, Any], dse: dict[str, Any]) -> Begin:
        # Read highestCommittedUSN *before* searching and store it with the data (Microsoft's procedure).
        dc, usn = str(first_value(dse, "dsServiceName")), int(first_value(dse, "highestCommittedUSN"))
        ntds = list(search(conn, dc, "(objectClass=*)", ["invocationId"], None, scope=ldap3.BASE))
        raw = (first_raw(ntds[0][2], "invocationId") or b"") if ntds else b""
        if len(raw) != 16:
            raise DirectoryError(f"cannot read the invocationId of {dc}; let the bind account read it")
        after = {"usn": usn, "invocation_id": str(uuid.UUID(bytes_le=raw)), "dc": dc}
        base = str(first_value(dse, "defaultNamingContext"))
        if "usn" not in cursor:
            return Begin(None, after, "no watermark yet", base)
        if cursor.get("dc") != dc or cursor.get("invocation_id") != after["invocation_id"]:
            return Begin(None, after, f"the DC's identity changed ({cursor.get('dc')} "
                                      f"{cursor.get('invocation_id')} -> {dc} {after['invocation_id']}): "
                                      "restored or another DC", base)
        if usn < int(cursor["usn"]):  # the same DC went back in time: changes since could reuse the USNs seen
            return Begin(None, after, f"the highestCommittedUSN of {dc} ({usn}) is below the watermark's "
                                      f"({cursor['usn']}) with the same invocationId {after['invocation_id']}: the DC "
                                      "was rolled back (a virtual machine snapshot or disk image restored, which AD "
                                      "does not support), so its uSNChanged cannot tell what changed since", base)
        return Begin(f"(uSNChanged>={int(cursor['usn']) + 1})", after, None, base)

    def advance(self, begin: Begin, stamps: list[Any]) -> dict[str, Any]:
        return begin.cursor  # a USN is no clock: nothing to bound


DIALECTS: dict[str, type[Dialect]] = {"generic": Dialect, "openldap": OpenLdapDialect, "ad": ActiveDirectoryDialect}


# --- the attribute names the config gives, against the directory's schema ----------------------------------------
class UnknownAttributes(DirectoryError):
    """Attribute names of an [ldap.NAME] section that the directory's schema does not define, or terms of its filter
    the server cannot evaluate: a search ignores an unknown name (RFC 4511 §4.5.1.8), so it would read as absent on
    every user, and a filter term on one matches no user (§4.5.1.7: Undefined). `problems` holds one sentence per
    name or term, `advice` what to do."""

    advice = ("a search ignores a name the server does not know, so it would read as absent on every user, and a "
              "filter term the server cannot evaluate matches no user: correct the config")

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join([*problems, self.advice]))
        self.problems = problems


@dataclasses.dataclass(frozen=True)
class Schema:
    """The attribute types of a directory's subschema entry (RFC 4512 §4.2)."""

    where: str  # the subschema entry's DN
    names: dict[str, str]  # every NAME and OID, lower-cased -> the type's first NAME, which the server returns
    #: the type's first NAME -> the kinds of matching rule it has, its own or its SUP's ("equality", "ordering",
    #: "substring"); empty when the schema states none (Active Directory's and Samba's: they match by syntax)
    rules: dict[str, frozenset[str]] = dataclasses.field(default_factory=dict)

    def lookup(self, name: str) -> str | None:
        """The first NAME of the type `name` stands for (any case, an alias or the OID; options such as ;binary
        left out), or None if the schema defines no such type."""
        return self.names.get(name.split(";")[0].strip().lower())

    def similar(self, name: str) -> str | None:
        """The name the schema defines that looks most like `name` (for a did-you-mean), or None."""
        close = closest(name.split(";")[0].strip(), self.names, cutoff=0.75)
        return None if close is None else self.names[close]

    def lacks(self, name: str, kind: str) -> bool:
        """Whether the type `name` stands for has no matching rule of `kind` ("equality", "ordering",
        "substring"), so that the server cannot evaluate a filter term that needs one (RFC 4511 §4.5.1.7: the term
        is Undefined, and matches no entry). False when the schema states no rules, or defines no such type."""
        first = self.lookup(name)
        return bool(self.rules) and first is not None and kind not in self.rules.get(first, frozenset())


def read_schema(conn: ldap3.Connection, dse: dict[str, Any]) -> Schema:
    """The attribute types of the subschema entry the rootDSE `dse` names (OpenLDAP cn=Subschema, AD
    CN=Aggregate,CN=Schema,...). Raises DirectoryError when the rootDSE names none, the bind account may not read
    it, or it holds no definition that parses."""
    where = first_value(dse, SUBSCHEMA)
    if not where:
        raise DirectoryError("the rootDSE names no subschemaSubentry")
    entries = search(conn, str(where), "(objectClass=subschema)", ["attributeTypes"], None, scope=ldap3.BASE)
    definitions = [_text(d) for _, values, _ in entries for d in all_values(values, "attributeTypes")]
    try:
        parsed = AttributeTypeInfo.from_definition(definitions)  # type: ignore[no-untyped-call]
    except (LDAPException, ValueError, IndexError) as exc:
        raise DirectoryError(f"the attributeTypes of {where} do not parse ({exc})") from None
    names: dict[str, str] = {}
    for info in parsed.values():
        spelled = [*(info.name or ()), info.oid]
        for each in spelled:
            names.setdefault(str(each).lower(), str(spelled[0]))
    if not names:
        raise DirectoryError(f"{where} shows the bind account no attributeTypes")
    return Schema(str(where), names, _matching_rules(parsed, names))


def _matching_rules(parsed: dict[str, AttributeTypeInfo], names: dict[str, str]) -> dict[str, frozenset[str]]:
    """The kinds of matching rule of each type (by its first NAME), its own or inherited from its SUP (RFC 4512
    §4.1.2); {} when no type states one."""
    by_first = {names[str(info.oid).lower()]: info for info in parsed.values()}
    # ldap3 2.9 parses SUBSTR into `substr`, not the `substring` its AttributeTypeInfo declares
    fields = {"equality": "equality", "ordering": "ordering", "substring": "substr"}
    own = {first: frozenset(kind for kind, field in fields.items() if getattr(info, field, None))
           for first, info in by_first.items()}
    if not any(own.values()):
        return {}

    def kinds(first: str, below: frozenset[str]) -> frozenset[str]:
        found = own[first]
        for superior in by_first[first].superior or ():
            parent = names.get(str(superior).lower())
            if parent is not None and parent not in below:  # a SUP cycle is no schema slapd loads, but stops here
                found |= kinds(parent, below | {parent})
        return found

    return {first: kinds(first, frozenset([first])) for first in by_first}


def configured_names(config: LdapConfig) -> list[tuple[str, str]]:
    """(key, name) of every attribute name the section gives: attributes, username_attribute,
    disabled_attribute and id_attribute (but "dn")."""
    section = f"ldap.{config.name}"
    found = [(f"{section}.attributes[{i}]", name) for i, name in enumerate(config.attributes or ())]
    for key in ("username_attribute", "disabled_attribute", "id_attribute"):
        name = getattr(config, key)
        if name and not (key == "id_attribute" and name.lower() == "dn"):
            found.append((f"{section}.{key}", name))
    return found


def unknown_name(config: LdapConfig, schema: Schema, given: str, name: str) -> str:
    """The sentence that refuses `name`, `given` as the config gives it ("ldap.corp.username_attribute is 'mial'"):
    what is wrong, and a did-you-mean or where to look."""
    similar = schema.similar(name)
    hint = (f"did you mean {similar!r}?" if similar else f"list the names it defines with `ldapsearch -H "
            f"{config.url} -b \"{schema.where}\" -s base attributeTypes`")
    return f"{given}, which the directory's schema ({schema.where}) does not define: {hint}"


#: what a filter term needs of its attribute's type (ldap3's tag for the term -> the kind of matching rule, as
#: Schema.rules names it, the term's operator, and what to write instead); RFC 4511 §4.5.1.7
_ORDERED = "match it with = or a substring (*) instead, or use an attribute whose type has an ORDERING rule"
_TERM_RULES = {
    MATCH_EQUAL: ("equality", "=", "test only that it is there, (NAME=*), or use another attribute"),
    MATCH_GREATER_OR_EQUAL: ("ordering", ">=", _ORDERED),
    MATCH_LESS_OR_EQUAL: ("ordering", "<=", _ORDERED),
    MATCH_SUBSTRING: ("substring", "a substring (*)", "match the whole value with = instead"),
}
_RULE_KEYWORDS = {"equality": "EQUALITY", "ordering": "ORDERING", "substring": "SUBSTR"}  # RFC 4512 §4.1.2


def filter_terms(config: LdapConfig) -> list[tuple[str, int]]:
    """(attribute name, ldap3's tag for the kind of term) of each term of the section's `filter`, as ldap3 parses
    it; [] without a filter (the dialect's default is not checked) or one ldap3 cannot parse (config validation
    refuses it)."""
    if config.filter is None:
        return []
    try:
        root = parse_filter(config.filter, None, True, True, None, False)  # type: ignore[no-untyped-call]
    except LDAPException:
        return []
    found: list[tuple[str, int]] = []
    nodes = [root]
    while nodes:
        node = nodes.pop()
        nodes.extend(reversed(node.elements))
        if node.assertion and node.assertion.get("attr"):  # an extensible match may name only a matching rule
            found.append((str(node.assertion["attr"]), node.tag))
    return found


def filter_problems(config: LdapConfig, schema: Schema, terms: list[tuple[str, int]]) -> list[str]:
    """A sentence for each name in the `filter` `terms` (`filter_terms`) that `schema` does not define, and for each
    term whose attribute's type has no matching rule of the kind the term needs (a >= on telephoneNumber, which
    has no ORDERING rule): such a term matches no user (Undefined), so that a filter that needs it matches nobody,
    and a full sync deletes every user. Rules are checked only where the schema states them (not on Active
    Directory)."""
    key = f"ldap.{config.name}.filter"
    problems: dict[str, str] = {}
    for name, tag in terms:
        if schema.lookup(name) is None:
            problems.setdefault(name.lower(), unknown_name(config, schema, f"{key} names {name!r}", name))
        elif tag in _TERM_RULES and schema.lacks(name, _TERM_RULES[tag][0]):
            kind, operator, fix = _TERM_RULES[tag]
            problems.setdefault(f"{name.lower()} {kind}", (
                f"{key} matches {name} with {operator}, but the directory's schema ({schema.where}) gives "
                f"{schema.lookup(name)} no {_RULE_KEYWORDS[kind]} rule: the server cannot evaluate that term, so it "
                f"matches no user; {fix.replace('NAME', name)}"))
    return list(problems.values())


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def shown(text: str, limit: int = 60) -> str:
    """`text` quoted in ASCII (a NUL shows as \\x00), for a message: at most `limit` characters of it, and then its
    length (a binary value read as text is long)."""
    return ascii(text) if len(text) <= limit else f"{ascii(text[:limit])}... ({len(text)} characters)"


def _distinct(names: list[str]) -> tuple[str, ...]:
    """`names` without repeats, compared case-insensitively (attribute names are): the first spelling is kept."""
    kept: dict[str, str] = {}
    for name in names:
        kept.setdefault(name.lower(), name)
    return tuple(kept.values())


def dialect_for(config: LdapConfig) -> Dialect:
    return DIALECTS[config.dialect](config)


def first_value(values: dict[str, Any], name: str) -> Any:
    """The first value of attribute `name` (case-insensitive), or None."""
    for key, value in values.items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return value[0] if value else None
            return value
    return None


def all_values(values: dict[str, Any], name: str) -> list[Any]:
    """Every value of attribute `name` (case-insensitive)."""
    for key, value in values.items():
        if key.lower() == name.lower():
            return value if isinstance(value, list) else [value]
    return []


# RFC 4517 §3.3.13 GeneralizedTime: century year month day hour [minute [second]] [fraction] (Z | +-hh[mm]); a time
# without zone (X.680's local time) is read as UTC.
_GENERALIZED = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?([Zz]|[+-]\d{2}(?:\d{2})?)?",
                          re.ASCII)  # a lower-case z, which some servers write, read as Z, as before


def parse_time(text: Any) -> datetime.datetime:
    """GeneralizedTime in every form RFC 4517 gives ("2024010112Z", "202401011230Z", "20240101123000.5Z",
    "20240101133000+0100", "2024010112,25Z") or a datetime ldap3 made of it, in UTC. A fraction is of the last unit
    given (of the hour in "2024010112.5Z"). ValueError when it is none, or names a moment datetime cannot hold."""
    if isinstance(text, datetime.datetime):
        return text.astimezone(UTC) if text.tzinfo else text.replace(tzinfo=UTC)
    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    match = _GENERALIZED.fullmatch(shown.strip())
    if match is None:
        raise ValueError(f"{shown!r} is no GeneralizedTime (YYYYMMDDHH[MM[SS]][.fraction] and Z or +-hhmm)")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    offset_zone = None if zone in (None, "Z", "z") else zone  # "+0100": a local time east (+) or west (-) of UTC
    try:
        if int(hour) > 23 or int(minute or 0) > 59 or int(second or 0) > 60:  # 60: a leap second
            raise ValueError("no such time of day")
        if offset_zone and (int(offset_zone[1:3]) > 23 or int(offset_zone[3:5] or 0) > 59):
            raise ValueError("no such time zone offset")
        unit = 3600 if minute is None else 60 if second is None else 1  # what a fraction is a fraction of
        micros = int(fraction) * unit * 1_000_000 // 10 ** len(fraction) if fraction else 0
        moment = datetime.datetime(int(year), int(month), int(day), tzinfo=UTC) + datetime.timedelta(
            hours=int(hour), minutes=int(minute or 0), seconds=int(second or 0), microseconds=micros)
        if offset_zone:
            offset = datetime.timedelta(hours=int(offset_zone[1:3]), minutes=int(offset_zone[3:5] or 0))
            moment = moment - offset if offset_zone[0] == "+" else moment + offset
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{shown!r} is no moment this connector can hold ({exc})") from None
    return moment


def _shadow_expire(value: Any) -> datetime.datetime | None:
    """shadowExpire: the day (since 1970-01-01, counted from 1 on) the account expires; -1 or 0: never (shadow(5))."""
    text = _text(value).strip()
    if not text.lstrip("-").isdigit():
        raise ValueError(f"{text!r} is no number of days")
    days = int(text)
    if days <= 0:
        return None
    try:
        return UNIX_EPOCH + datetime.timedelta(days=days)
    except OverflowError:
        raise ValueError(f"day {days} is out of the range of dates this connector can hold") from None


def _account_expires(value: Any) -> datetime.datetime | None:
    """accountExpires: 100-ns intervals since 1601 (FILETIME, UTC); 0 and 2^63-1 mean never ([MS-ADA1])."""
    text = _text(value).strip()
    if not text.lstrip("-").isdigit():
        raise ValueError(f"{text!r} is no FILETIME (100-ns intervals since 1601)")
    ticks = int(text)
    if ticks in AD_NEVER_EXPIRES:
        return None
    if ticks < 0:
        raise ValueError(f"{ticks} is before 1601")
    try:
        return FILETIME_EPOCH + datetime.timedelta(microseconds=ticks // 10)
    except OverflowError:
        raise ValueError(f"{ticks} is out of the range of dates this connector can hold") from None


#: how each expiry attribute reads (lower-cased name): when the account expires, None for never; ValueError (or
#: OverflowError) when the value cannot be read, which `Dialect.expiries` takes as never, with a warning
EXPIRY_READERS: dict[str, Callable[[Any], datetime.datetime | None]] = {
    "shadowexpire": _shadow_expire, "pwdendtime": parse_time, "accountexpires": _account_expires}


def generalized(moment: datetime.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")
