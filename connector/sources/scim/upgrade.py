"""Resources stored by earlier versions, brought up to today's comparisons when the SCIM endpoint starts (in Python,
as the comparisons are: `caseless` and `searchable` in filters.py; no schema migration is needed).

A User's unique_key was its userName lower-cased as sent (before 8db0293), then `fold`ed (NFKC, case folded, spaces
collapsed: straße and strasse one name, before 02e552e); it is `caseless` now. A key of an older kind misses a User
of the same login (José decomposed, keyed as sent) or holds a key another login needs (straße held "strasse"), so
each such User is keyed again. Two Users stored when names compared otherwise can share a login now: the one holding
its key keeps it (the oldest if none does), the other is kept without a key, writable while its login is unchanged
and its login still taken (uniqueness finds Users as `userName eq` does), and a warning names both at each start.

A searchable value of an attribute that is not caseExact was stored as sent; it is stored composed now (NFC), so a
resource whose body is not all composed has its values written again, and `userName eq` finds it in any form.

Nothing a client sees changes: no version, lastModified or event. The store keeps how its resources compare
(filters.py COMPARISONS, with the Unicode version), so that this reads every resource only at the first start after
a change of the comparisons or of Python's Unicode version (6 s and 290 MB for 100,000 Users on SQLite on a busy
2-core machine); other starts only look for the Users kept without a key, to warn again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import unicodedata
from typing import Any

from connector.errors import counted
from connector.sources.scim.filters import COMPARISONS, caseless
from connector.sources.scim.index import index_values
from connector.sources.scim.schema import GROUPS, USERS
from connector.store import ScimResource, ScimResources, ScimTransaction

log = logging.getLogger("connector.scim")


def upgrade_stored(store: ScimResources) -> None:
    """Key every stored User by its `caseless` userName and store every searchable value as filters compare it (unless
    the store says its resources compare so already), then key each User kept without a key whose login is free and
    warn of each other."""
    upgrading = store.scim_comparisons() != COMPARISONS
    for client in store.scim_clients():
        with store.scim_transaction(client) as tx:
            written = _unkey_and_compose(tx) if upgrading else set()
            written |= _key(tx, client)
        if written:
            log.info("SCIM client %s: %s stored by an earlier version now compare as names do today (NFC, any case)",
                     client, counted(len(written), "resource"))
    if upgrading:
        store.set_scim_comparisons(COMPARISONS)


def _unkey_and_compose(tx: ScimTransaction) -> set[str]:
    """Leave every User whose key is not its `caseless` userName without one (`_key` gives them theirs: a User may
    need the key another holds under an older rule, straße held "strasse") and store the values of every resource
    as filters compare them; return the ids of those written."""
    users = tx.find(USERS.name, None)
    stale = [user for user in users if user.unique_key != _login(user)]
    for user in stale:
        tx.put(dataclasses.replace(user, unique_key=None), index_values(USERS, user.body))
    written = {user.id for user in stale}
    for resource, rows in ((USERS, users), (GROUPS, tx.find(GROUPS.name, None))):
        for row in rows:
            if row.id not in written and not _composed(row.body):
                tx.put(row, index_values(resource, row.body))
                written.add(row.id)
    return written


def _key(tx: ScimTransaction, client: str) -> set[str]:
    """Key each User kept without a key by its `caseless` userName, oldest first, where no other User holds it, and
    warn of each other; return the ids of those keyed."""
    keyed = set()
    for user in tx.keyless(USERS.name):
        holder = tx.find_unique(USERS.name, _login(user))
        if holder is None:
            tx.put(dataclasses.replace(user, unique_key=_login(user)), index_values(USERS, user.body))
            keyed.add(user.id)
            continue
        log.warning("SCIM client %s: Users %s and %s have one userName as names compare now (NFC, any case: %r); "
                    "both were stored when names compared otherwise and both are kept, %s without its key. Delete "
                    "or rename one of them in the IdP", client, holder, user.id, user.body.get("userName"), user.id)
    return keyed


def _login(user: ScimResource) -> str:
    return caseless(str(user.body.get("userName", "")))


def _composed(body: dict[str, Any]) -> bool:
    """Whether every text of `body` is in composed form (NFC): then its searchable values were stored so."""
    return unicodedata.is_normalized("NFC", json.dumps(body, ensure_ascii=False))
