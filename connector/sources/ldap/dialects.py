"""What differs between directories: the stable id, the change cursor, disabled accounts, tombstones.

    openldap  entryUUID; modifyTimestamp minus an overlap window; deletes by reconciliation
    generic   entryUUID, nsUniqueId or ipaUniqueID (else the DN); like openldap
    ad        objectGUID; uSNChanged above the watermark on one pinned DC (highestCommittedUSN and
              the DC's invocationId from the rootDSE); tombstones with the Show Deleted control

Sources: reference/ldap.md §1 (a), (c) and §4; Microsoft, "Polling for Changes Using uSNChanged".
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import ldap3
from ldap3.utils.conv import escape_bytes, escape_filter_chars

from connector.config import LdapConfig
from connector.sources.ldap.connection import DirectoryError, root_dse, search

COMMON_ATTRIBUTES = ("cn", "sn", "givenName", "displayName", "mail", "telephoneNumber", "mobile", "memberOf")
UAC_ACCOUNTDISABLE = 0x2
_FALSE = ("", "false", "0", "no")


@dataclasses.dataclass(frozen=True)
class Begin:
    """How a run starts: `since` narrows the search to changes (None: read everything)."""

    since: str | None
    cursor: dict[str, Any]  # the cursor to store when nothing newer is seen
    full_reason: str | None = None  # why an incremental run must be a full one
    tombstone_base: str | None = None


class Dialect:
    name = "generic"
    id_attributes: tuple[str, ...] = ("entryUUID", "nsUniqueId", "ipaUniqueID")
    stamp_attribute = "modifyTimestamp"
    default_filter = "(objectClass=person)"
    group_filter = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))"
    user_attributes: tuple[str, ...] = (*COMMON_ATTRIBUTES, "uid")
    username_attributes: tuple[str, ...] = ("uid", "mail", "cn")

    def __init__(self, config: LdapConfig) -> None:
        self.config = config
        self.filter = config.filter or self.default_filter
        wanted = config.attributes or self.user_attributes
        extra = [config.username_attribute, config.disabled_attribute, *self.technical_attributes]
        #: what every user search asks for
        self.attributes = tuple(dict.fromkeys([*wanted, *(a for a in extra if a)]))
        #: what goes into the state's `attributes`: not the id and cursor attributes, which change nothing
        hidden = {a.lower() for a in (*self.id_attributes, self.stamp_attribute)}
        self.state_attributes = tuple(a for a in self.attributes if a.lower() not in hidden)

    @property
    def technical_attributes(self) -> tuple[str, ...]:
        return (*self.id_attributes, self.stamp_attribute)

    def external_id(self, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]]) -> str:
        for name in self.id_attributes:
            found = _first(values, name)
            if found:
                return str(found)
        return dn.lower()

    def id_filter(self, external_id: str) -> str:
        if "=" in external_id:  # a DN, the generic dialect's last resort
            return f"(entryDN={escape_filter_chars(external_id)})"
        return "(|" + "".join(f"({name}={external_id})" for name in self.id_attributes) + ")"

    def is_active(self, values: dict[str, Any]) -> bool:
        if self.config.disabled_attribute is None:
            return True
        flag = _first(values, self.config.disabled_attribute)
        return flag is None or str(flag).strip().lower() in _FALSE

    def begin(self, conn: ldap3.Connection, cursor: dict[str, Any]) -> Begin:
        stamp = cursor.get("stamp")
        if not stamp:
            return Begin(None, {}, "no watermark yet")
        since = _generalized(_parse_time(stamp) - datetime.timedelta(seconds=self.config.overlap_seconds))
        return Begin(f"({self.stamp_attribute}>={since})", cursor)

    def advance(self, begin: Begin, stamps: list[Any]) -> dict[str, Any]:
        """The cursor after a run that saw entries stamped `stamps`."""
        seen = [_parse_time(s) for s in set(stamps) if s]  # a full sync has few distinct stamps
        if begin.cursor.get("stamp"):
            seen.append(_parse_time(begin.cursor["stamp"]))
        return {"stamp": _generalized(max(seen))} if seen else {}


class OpenLdapDialect(Dialect):
    name = "openldap"
    id_attributes = ("entryUUID",)
    default_filter = "(objectClass=inetOrgPerson)"

    def external_id(self, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]]) -> str:
        found = _first(values, "entryUUID")
        if not found:
            raise DirectoryError(f"{dn} has no entryUUID; is this an OpenLDAP server? Use dialect = \"generic\"")
        return str(found)


class ActiveDirectoryDialect(Dialect):
    name = "ad"
    id_attributes = ("objectGUID",)
    stamp_attribute = "uSNChanged"
    default_filter = "(&(objectCategory=person)(objectClass=user))"
    group_filter = "(objectClass=group)"
    user_attributes = (*COMMON_ATTRIBUTES, "userPrincipalName", "sAMAccountName", "ipPhone", "msRTCSIP-Line",
                       "msRTCSIP-PrimaryUserAddress", "department")
    username_attributes = ("userPrincipalName", "sAMAccountName")

    @property
    def technical_attributes(self) -> tuple[str, ...]:
        return ("objectGUID", "userAccountControl")

    def external_id(self, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]]) -> str:
        guid = next((v[0] for k, v in raw.items() if k.lower() == "objectguid" and v), None)
        if guid is None or len(guid) != 16:
            raise DirectoryError(f"{dn} has no objectGUID; is this Active Directory? Use dialect = \"generic\"")
        return str(uuid.UUID(bytes_le=guid))  # the mixed-endian form AD tools print

    def id_filter(self, external_id: str) -> str:
        return f"(objectGUID={escape_bytes(uuid.UUID(external_id).bytes_le)})"

    def is_active(self, values: dict[str, Any]) -> bool:
        control = _first(values, "userAccountControl")
        if control is not None and int(control) & UAC_ACCOUNTDISABLE:
            return False
        return super().is_active(values)

    def begin(self, conn: ldap3.Connection, cursor: dict[str, Any]) -> Begin:
        # Read highestCommittedUSN *before* searching and store it with the data (Microsoft's procedure).
        dse = root_dse(conn, ["highestCommittedUSN", "dsServiceName", "defaultNamingContext"])
        dc, usn = str(_first(dse, "dsServiceName")), int(_first(dse, "highestCommittedUSN"))
        ntds = list(search(conn, dc, "(objectClass=*)", ["invocationId"], None, scope=ldap3.BASE))
        raw = next((v[0] for k, v in ntds[0][2].items() if k.lower() == "invocationid"), b"") if ntds else b""
        if len(raw) != 16:
            raise DirectoryError(f"cannot read the invocationId of {dc}; let the bind account read it")
        after = {"usn": usn, "invocation_id": str(uuid.UUID(bytes_le=raw)), "dc": dc}
        base = str(_first(dse, "defaultNamingContext"))
        if "usn" not in cursor:
            return Begin(None, after, "no watermark yet", base)
        if cursor.get("dc") != dc or cursor.get("invocation_id") != after["invocation_id"]:
            return Begin(None, after, f"the DC's identity changed ({cursor.get('dc')} "
                                      f"{cursor.get('invocation_id')} -> {dc} {after['invocation_id']}): "
                                      "restored or another DC", base)
        return Begin(f"(uSNChanged>={int(cursor['usn']) + 1})", after, None, base)

    def advance(self, begin: Begin, stamps: list[Any]) -> dict[str, Any]:
        return begin.cursor


DIALECTS: dict[str, type[Dialect]] = {"generic": Dialect, "openldap": OpenLdapDialect, "ad": ActiveDirectoryDialect}


def dialect_for(config: LdapConfig) -> Dialect:
    return DIALECTS[config.dialect](config)


def _first(values: dict[str, Any], name: str) -> Any:
    """The first value of attribute `name` (case-insensitive), or None."""
    for key, value in values.items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return value[0] if value else None
            return value
    return None


def _parse_time(text: Any) -> datetime.datetime:
    """GeneralizedTime ("20240101120000Z", "20240101120000.5Z") or a datetime ldap3 made of it."""
    if isinstance(text, datetime.datetime):
        return text.astimezone(datetime.timezone.utc)
    digits = str(text).rstrip("Z").split(".")[0]
    return datetime.datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(tzinfo=datetime.timezone.utc)


def _generalized(moment: datetime.datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")
