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
    texts: dict[str, list[str]] = {}  # lower-cased attribute name -> its non-empty values as text
    for key, value in values.items():
        found = [v if type(v) is str else _text(v) for v in (value if isinstance(value, list) else (value,))
                 if v not in _EMPTY]
        if found:
            texts[key.lower()] = found
    empty: list[str] = []
    names = (dialect.config.username_attribute, *dialect.username_attributes)
    username = next((texts[n.lower()][0] for n in names if n and n.lower() in texts), None)
    display = texts.get("displayname") or texts.get("cn")
    groups = texts.get("memberof", empty)
    active = dialect.is_active(values)
    state: dict[str, Any] = {
        "userName": username or dn,
        "active": active,
        "displayName": display[0] if display else "",
        "emails": [{"value": v, "type": "work", "primary": i == 0} for i, v in enumerate(texts.get("mail", empty))],
        "phoneNumbers": [{"value": v, "type": "work"} for v in texts.get("telephonenumber", empty)]
        + [{"value": v, "type": "mobile"} for v in texts.get("mobile", empty)],
        "groups": groups,
        "attributes": {"dn": dn},
    }
    given, family = texts.get("givenname"), texts.get("sn")
    if given or family:
        state["name"] = {**({"givenName": given[0]} if given else {}), **({"familyName": family[0]} if family else {})}
    attributes = state["attributes"]
    for wanted in dialect.state_attributes:
        found = texts.get(wanted.lower())
        if found:
            attributes[wanted] = found[0] if len(found) == 1 else found
    digest = hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    entry = LdapEntry(dialect.external_id(dn, values, raw), digest, active, tuple([g.lower() for g in groups]), state)
    return Snapshot(entry, texts.get(dialect.stamp_attribute.lower(), [None])[0])


_EMPTY = (None, "", b"")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y%m%d%H%M%SZ")
    return str(value)
