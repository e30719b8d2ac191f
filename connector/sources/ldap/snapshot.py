"""One directory entry as the normalized user state of connector/events.py, with a digest to compare."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from typing import Any

from connector.sources.ldap.dialects import Dialect
from connector.store.base import LdapEntry


@dataclasses.dataclass(frozen=True)
class Snapshot:
    entry: LdapEntry
    stamp: Any  # modifyTimestamp or uSNChanged as the server sent it

    @property
    def external_id(self) -> str:
        return self.entry.external_id


def snapshot(dialect: Dialect, dn: str, values: dict[str, Any], raw: dict[str, list[bytes]]) -> Snapshot:
    """Normalize one search result; the digest covers everything the mapping may read."""
    texts: dict[str, tuple[str, list[str]]] = {}
    for key, value in values.items():
        found = [_text(v) for v in (value if isinstance(value, list) else [value]) if v not in (None, "", b"")]
        if found:
            texts[key.lower()] = (key, found)

    def all_of(name: str) -> list[str]:
        return texts.get(name.lower(), ("", []))[1]

    def first(*names: str | None) -> str | None:
        return next((texts[n.lower()][1][0] for n in names if n and n.lower() in texts), None)

    active = dialect.is_active(values)
    groups = all_of("memberOf")
    state: dict[str, Any] = {
        "userName": first(dialect.config.username_attribute, *dialect.username_attributes) or dn,
        "active": active,
        "displayName": first("displayName", "cn") or "",
        "emails": [{"value": v, "type": "work", "primary": i == 0} for i, v in enumerate(all_of("mail"))],
        "phoneNumbers": [{"value": v, "type": "work"} for v in all_of("telephoneNumber")]
        + [{"value": v, "type": "mobile"} for v in all_of("mobile")],
        "groups": groups,
        "attributes": {"dn": dn},
    }
    name = {key: value for key, value in (("givenName", first("givenName")), ("familyName", first("sn"))) if value}
    if name:
        state["name"] = name
    for wanted in dialect.state_attributes:
        found = texts.get(wanted.lower())
        if found:
            state["attributes"][wanted] = found[1][0] if len(found[1]) == 1 else found[1]
    digest = hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    entry = LdapEntry(dialect.external_id(dn, values, raw), digest, active, tuple(g.lower() for g in groups), state)
    stamp = texts.get(dialect.stamp_attribute.lower(), ("", [None]))[1][0]
    return Snapshot(entry, stamp)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y%m%d%H%M%SZ")
    return str(value)
