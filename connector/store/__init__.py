"""Durable state of the connector; `open_store(url)` picks the dialect (see base.py for the layout).

`Store` has every concern; code that needs one depends on its class alone: `EventQueue` (intake,
claims, leases), `EventLog` (events as on-call reads them, operator actions, audit, last pushes),
`ExtensionOwnership`, `LdapMarks` (LDAP watermarks), `ScimResources` or `Instances` (the connector
instances sharing the store, and which polls each directory).
"""

from __future__ import annotations

from connector.store.base import Store
from connector.store.database import Audit, StoreError, StoreMissing
from connector.store.instances import Beat, DeadInstance, Instance, Instances
from connector.store.ldap import LdapEntry, LdapMarks, LdapPoll, LdapWatermark, WatermarkMoved
from connector.store.log import (
    Attempt,
    AuditEntry,
    CauseGroup,
    DriftFailure,
    DriftRun,
    EventLog,
    HeldGroup,
    OpenBreaker,
    RecorderState,
    StoredUser,
    TargetProbe,
)
from connector.store.ownership import ExtensionOwnership
from connector.store.queue import Claim, EventQueue, EventState, StoredEvent
from connector.store.scim import ScimResource, ScimResources, ScimTransaction, ScimValue

__all__ = ["Attempt", "Audit", "AuditEntry", "Beat", "CauseGroup", "Claim", "DeadInstance", "DriftFailure", "DriftRun",
           "EventLog", "EventQueue", "EventState", "ExtensionOwnership", "HeldGroup", "Instance", "Instances",
           "LdapEntry", "LdapMarks", "LdapPoll", "LdapWatermark", "OpenBreaker", "RecorderState", "ScimResource",
           "ScimResources", "ScimTransaction", "ScimValue", "Store", "StoreError", "StoreMissing", "StoredEvent",
           "StoredUser", "TargetProbe", "WatermarkMoved", "open_store", "without_password"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str, *, synchronous: str = "FULL", create: bool = True) -> Store:
    """Open the store named by `url`.

    `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` for one connector on one host;
    `postgresql://user@host:5432/dbname` (or `postgres://`) for several, with the password in
    ~/.pgpass or PGPASSWORD. `synchronous` is "FULL" or "NORMAL" (see each backend). Without `create`,
    a SQLite file that does not exist is StoreMissing instead of a new file.
    """
    if url.startswith("sqlite:///"):
        from connector.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), synchronous=synchronous, create=create)
    if url.startswith(POSTGRES_SCHEMES):
        from connector.store.postgres import PostgresStore

        return PostgresStore(url, synchronous=synchronous)
    raise ValueError(
        f"store url {without_password(url)!r} is not supported; use sqlite:///path/to/connector.db "
        "or postgresql://user@host:5432/dbname"
    )


def without_password(url: str) -> str:
    """The url without the password between its user and its last '@', as the store's own messages name it:
    "postgresql://connector:s3cret@db1/connector" -> "postgresql://connector@db1/connector"."""
    userinfo, at, rest = url.rpartition("@")
    if not at:
        return url
    scheme, slashes, user = userinfo.rpartition("//")
    return f"{scheme}{slashes}{user.partition(':')[0]}@{rest}"
