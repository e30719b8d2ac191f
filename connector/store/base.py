"""The store: durable state of the connector, written once for both dialects.

Each concern is a class of its own module, all over `Database` (database.py), whose few hooks
each dialect fills (sqlite.py, postgres.py); consumers depend on the concern classes they use.
The schema is versioned by the files in `migrations/` and `migrations/<dialect>/`.
"""

from __future__ import annotations

from typing import Any

from connector.store.database import StoreError, StoreMissing
from connector.store.instances import Instance, Instances
from connector.store.ldap import LdapMarks
from connector.store.log import EventLog
from connector.store.queries import migrations
from connector.store.queue import EventQueue
from connector.store.scim import ScimResources

UPGRADE = "stop the connectors using it and run `connector db upgrade --config <your config>`, then start them again"
MISSING = ("check [store] url, which may name the wrong store; `connector run` or `connector db upgrade --config "
           "<your config>` creates a new one")


class Store(EventQueue, EventLog, LdapMarks, ScimResources, Instances):
    """Durable state of the connector. Every write is one transaction; `with store:` closes it."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def migrate(self, *, alone_within: float | None = None) -> int:
        """Create or upgrade the schema to this connector's version; return how many migrations ran.
        Safe to run again and from several connectors at once. With `alone_within` ([instance] liveness_seconds:
        `connector db upgrade`), a schema behind is upgraded only while no connector runs on the store (see
        `_refuse_running`)."""
        steps = migrations(self.dialect)
        with self._write() as conn:
            self._lock(conn, "connector.store.migrate")
            conn.execute(self._q["schema_version"])
            current = self._version(conn, len(steps))
            if current < len(steps) and alone_within is not None:
                self._refuse_running(conn, alone_within)
            for version, statements in steps[current:]:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(self._q["add_version"], (version,))
        return len(steps) - current

    def _refuse_running(self, conn: Any, liveness_seconds: float) -> None:
        """StoreError naming them if connectors run on the store (heard from within `liveness_seconds`, or holding a
        SQLite file): one made for the schema as it was fails on the new one, or loses changes. One that starts
        meanwhile finds the schema behind (or waits for the upgrade's write lock) and is refused."""
        if holder := self._running_pid():
            raise StoreError(f"a connector (pid {holder}) is running on the store {self.name}, or upgrading it: stop "
                             "it, run this again, then start it with this version")
        if "instances" not in {row["name"] for row in conn.execute(self._q["table_names"])}:
            return  # a store from before migration 7: its connectors register nowhere
        now = self._now(conn)
        running = [Instance(**row) for row in conn.execute(self._q["heard_instances"], (now - liveness_seconds,))]
        if running:
            who = ", ".join(f"{i.name} on {i.host} (pid {i.pid}, heard from {now - i.heartbeat_at:.0f} s ago)"
                            for i in running)
            raise StoreError(f"connectors run on the store {self.name}: {who}; stop every one, run this again, then "
                             "start them with this version (one that crashed counts as stopped once silent for "
                             f"[instance] liveness_seconds, {liveness_seconds:g} s)")

    def prepare(self, *, create: bool = True) -> None:
        """Make the store ready for this connector: create the schema in an empty store (StoreMissing instead
        without `create`); raise StoreError, saying what to do, if an existing schema is older or newer than
        this connector's."""
        latest = len(migrations(self.dialect))
        with self._write() if create else self._read() as conn:  # a command that creates nothing only reads
            current = self._version(conn, latest)
        if current == 0 and not create:
            raise StoreMissing(f"the store {self.name} is empty: {MISSING}")
        if current == 0:
            self.migrate()
        elif current < latest:
            raise StoreError(f"the store {self.name} has schema version {current} and this connector needs "
                             f"{latest}: {UPGRADE}")

    def _version(self, conn: Any, latest: int) -> int:
        """The schema version (0: empty store); StoreError if it is newer than `latest`, or if a store without one
        holds other tables (another program's database: never written into)."""
        tables = {row["name"] for row in conn.execute(self._q["table_names"])}
        versioned = "schema_version" in tables
        current = int(conn.execute(self._q["current_version"]).fetchone()["version"]) if versioned else 0
        others = [] if current else sorted(tables - {"schema_version"})
        if others:
            raise StoreError(f"the store {self.name} holds tables that are not the connector's ({', '.join(others[:5])}"
                             f"{', ...' if len(others) > 5 else ''}): point [store] url at the connector's store, "
                             "or at a new file or database")
        if current > latest:
            raise StoreError(f"the store {self.name} has schema version {current}, newer than this connector "
                             f"knows ({latest}); upgrade the connector")
        return current
