"""The store's SQL and schema: named queries per dialect, versioned migrations, the start-up check."""

from __future__ import annotations

import hashlib
import json
import pathlib
import sqlite3

import pytest

from connector.events import UserChange
from connector.records import ExtensionRecord
from connector.store import Store, StoreError, StoreMissing, open_store
from connector.store.queries import SQL, migrations, named, parse, placeholders
from tests.plugins.stores import BACKENDS
from tests.store.test_conformance import claim_now
from tests.store.test_waiting_behind_held import claim_reads


def test_both_dialects_define_the_same_named_queries() -> None:
    sqlite, postgres = parse((SQL / "sqlite.sql").read_text()), parse((SQL / "postgres.sql").read_text())
    assert sorted(sqlite) == sorted(postgres)
    assert not set(sqlite) & set(parse((SQL / "queries.sql").read_text())), "a dialect redefines a shared query"
    assert sorted(named("sqlite")) == sorted(named("postgres"))


def test_both_dialects_have_the_same_migration_versions() -> None:
    assert [v for v, _ in migrations("sqlite")] == [v for v, _ in migrations("postgres")]
    assert [v for v, _ in migrations("sqlite")] == list(range(1, len(migrations("sqlite")) + 1))


# What each released migration runs (its statements without comments: sha256, 12 hex digits). A store that applied a
# version never runs it again, so an edit reaches no existing store: it keeps the old schema under the new number
# (seen: a table renamed in 0007 after stores had applied it). Change the schema with a new migration; add its digest
# here when it is released (the test prints it).
RELEASED = {
    "sqlite": {1: "355debcb1268", 2: "b7cf5cfb8e06", 3: "939d68dcfe01", 4: "59b08081398b", 5: "1bcdf5af5388",
               6: "9bee1aa692f3", 7: "bb19da8ca718", 8: "14f4d271c0c5", 9: "7bc16538d572", 10: "840d606792a8",
               11: "8c682455456e", 12: "8e003586d433", 13: "8296f71894db", 14: "043a1823a695", 15: "a16ac37d8a35",
               16: "e6e8526efddf", 17: "bc654491293f", 18: "9a9d8004ead7", 19: "0485eca2d552", 20: "dd08c687100c",
               21: "3f9cac59584c", 22: "8253aa1380c8"},
    "postgres": {1: "b7e467797a95", 2: "249d1cb47699", 3: "6d5e9bd75e31", 4: "74767c38079a", 5: "e3b0c44298fc",
                 6: "9bee1aa692f3", 7: "bb19da8ca718", 8: "14f4d271c0c5", 9: "7bc16538d572", 10: "840d606792a8",
                 11: "8c682455456e", 12: "8e003586d433", 13: "e3b0c44298fc", 14: "043a1823a695", 15: "a16ac37d8a35",
                 16: "adb10562bda5", 17: "bc654491293f", 18: "9a9d8004ead7", 19: "0485eca2d552",
                 20: "dd08c687100c", 21: "3f9cac59584c",
                 22: "caf7d1608115"},
}


@pytest.mark.parametrize("dialect", sorted(RELEASED))
def test_a_released_migration_is_never_edited(dialect: str) -> None:
    digests = {version: hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()[:12]
               for version, statements in migrations(dialect)}
    edited = [version for version, digest in RELEASED[dialect].items() if digests.get(version) != digest]
    assert not edited, (f"{dialect} migrations {edited} differ from what stores applied: put the change in a new "
                        "migration and restore these")
    new = {version: digest for version, digest in digests.items() if version not in RELEASED[dialect]}
    assert not new, f"new {dialect} migrations: add {new} to RELEASED"


def test_sqlite_placeholders_are_translated_and_percent_signs_kept() -> None:
    assert placeholders("sqlite", "a = %s AND b = %(name)s AND c LIKE 'x%%'") == "a = ? AND b = :name AND c LIKE 'x%'"
    assert placeholders("postgres", "a = %s") == "a = %s"


@pytest.fixture(params=sorted(BACKENDS))
def fresh(request: pytest.FixtureRequest, tmp_path: pathlib.Path):
    """Opens new, unmigrated stores on one fresh database of the backend."""
    opener = BACKENDS[request.param](request, tmp_path)
    opened: list[Store] = []

    def open_fresh() -> Store:
        opened.append(opener())
        return opened[-1]

    yield open_fresh
    for store in opened:
        store.close()


def _apply(store: Store, upto: int) -> None:
    """The schema as a connector that knew only the first `upto` migrations left it."""
    with store._write() as conn:
        conn.execute(store._q["schema_version"])
        for version, statements in migrations(store.dialect)[:upto]:
            for statement in statements:
                conn.execute(statement)
            conn.execute(store._q["add_version"], (version,))


def tables(store: Store) -> set[str]:
    query = ("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
             if store.dialect == "postgres" else "SELECT name FROM sqlite_master WHERE type = 'table'")
    with store._read() as conn:
        return {row["name"] for row in conn.execute(query)}


def test_prepare_creates_the_schema_of_an_empty_store_only_when_told(fresh) -> None:
    store = fresh()
    with pytest.raises(StoreMissing, match=r"the store .* is empty: check \[store\] url"):
        store.prepare(create=False)  # a command that only uses a store
    assert tables(store) == set()  # and it left the empty store as it was
    store.prepare()
    assert store.enqueue([UserChange("hr", "u1", "upsert", {"userName": "alice"}, 1.0)]) == [1]
    store.prepare()  # and then has nothing to do
    assert store.migrate() == 0


def test_another_programs_database_is_never_taken_for_an_empty_store(fresh) -> None:
    store = fresh()
    with store._write() as conn:
        conn.execute("CREATE TABLE invoices (id integer PRIMARY KEY)")
    for step in (store.prepare, store.migrate, lambda: store.prepare(create=False)):
        with pytest.raises(StoreError, match=r"holds tables that are not the connector's \(invoices\): point "):
            step()
    assert tables(store) == {"invoices"}  # nothing was written into it


def test_prepare_refuses_an_older_schema_and_db_upgrade_brings_it_up(fresh) -> None:
    store = fresh()
    _apply(store, len(migrations(store.dialect)) - 1)
    with pytest.raises(StoreError, match=r"schema version \d+ and this connector needs \d+: .*connector db upgrade"):
        store.prepare()
    assert store.migrate() == 1
    store.prepare()


def test_a_schema_newer_than_the_connector_is_refused(fresh) -> None:
    store = fresh()
    store.migrate()
    with store._write() as conn:
        conn.execute(store._q["add_version"], (99,))
    for step in (store.prepare, store.migrate):
        with pytest.raises(StoreError, match="newer than this connector knows.*upgrade the connector"):
            step()


def test_pushed_extensions_keep_their_order_through_the_position_migration(fresh) -> None:
    store = fresh()
    _apply(store, 4)  # before 0005, SQLite kept the order by rowid
    columns = "source, external_id, extension, record, pushed_at" + (
        ", position" if store.dialect == "postgres" else ""
    )
    with store._write() as conn:
        for n, extension in enumerate(["300", "100", "200"]):
            record = ExtensionRecord(extension, 7, "FULL", True, False, False, False, eid="1234")
            values = ("hr", "u1", extension, json.dumps(record.to_dict()), 1.0)
            values += (n,) if store.dialect == "postgres" else ()
            conn.execute(
                store._sql(f"INSERT INTO pushed_extensions ({columns}) VALUES ({', '.join(['%s'] * len(values))})"),
                values,
            )
    store.migrate()
    assert [r.extension for r in store.pushed_extensions("hr", "u1")] == ["300", "100", "200"]


def test_stop_recordings_keep_each_user_s_latest_stop_through_the_per_user_migration(fresh) -> None:
    store = fresh()
    _apply(store, 11)  # before 0012, one row per stop-recording push
    with store._write() as conn:
        for source, external_id, at in [("hr", "u1", 10.0), ("hr", "u1", 30.0), ("hr", "u2", 20.0),
                                         ("hr", "u1", 25.0), ("ldap", "u1", 5.0)]:
            conn.execute(store._sql("INSERT INTO stop_recordings (source, external_id, at) VALUES (%s, %s, %s)"),
                         (source, external_id, at))
    store.migrate()
    with store._read() as conn:
        rows = conn.execute("SELECT source, external_id, at FROM stop_recordings ORDER BY source, external_id")
        assert [(r["source"], r["external_id"], r["at"]) for r in rows] == [
            ("hr", "u1", 30.0), ("hr", "u2", 20.0), ("ldap", "u1", 5.0)]
    with store._write() as conn:  # a later stop of the user replaces its time; an earlier one does not
        conn.execute(store._q["add_stop"], ("hr", "u1", 40.0))
        conn.execute(store._q["add_stop"], ("hr", "u2", 15.0))
    with store._read() as conn:
        assert [float(r["at"]) for r in conn.execute("SELECT at FROM stop_recordings WHERE source = 'hr' "
                                                     "ORDER BY external_id")] == [40.0, 20.0]


def test_events_waiting_behind_held_ones_still_wait_through_the_migration_that_marks_them(fresh) -> None:
    """Before 0018, whether an event waited behind a held one was worked out at each read, by every claim too."""
    store = fresh()
    _apply(store, 17)
    users = [f"u{n}" for n in range(40)]
    insert = store._sql("INSERT INTO events (source, external_id, kind, state_json, cause, accepted_at, state, "
                        "next_attempt_at, updated_at) VALUES ('hr', %s, 'upsert', '{}', 'test', 1.0, %s, 1.0, 1.0) "
                        "RETURNING id")
    with store._write() as conn:  # a change of each user, a held one, a later one; bob: a change
        before, held, after = ([conn.execute(insert, (user, state)).fetchone()["id"] for user in users]
                               for state in ("pending", "held", "pending"))
        bob = conn.execute(insert, ("bob", "pending")).fetchone()["id"]
    store.migrate()

    assert [store.get_event(i).waits_behind for i in (*before, *after)] == held + held
    assert store.get_event(bob).waits_behind is None and store.waiting_behind_held() == (80, 40)
    reads_waiting = claim_reads(store, 2.0)
    store.complete(claim_now(store, 2.0), [], None)
    assert store.claim("w1", 2.0, 60.0) is None
    # The same reads once nothing waits any more: the waiting events were not read.
    assert store.discard(held, "not leavers") == 40
    for _ in users:
        store.complete(claim_now(store, 2.0), [], None)
    store.enqueue([UserChange("hr", "bob", "upsert", {}, 1.0)])
    assert reads_waiting - claim_reads(store, 2.0) < len(users) // 2


PUSH_TABLE_ROWS = {
    "extension_owners": ("extension, verba_user_id, source, external_id", ("+1555", 7, "hr", "u1")),
    "extension_locks": ("extension, owner, lock_until", ("+1555", "a:w1", 99.0)),
    "pushed_extensions": ("source, external_id, extension, record, pushed_at, position",
                          ("hr", "u1", "+1555", '{"extension": "+1555"}', 3.0, 2)),
    "extension_claims": ("extension, source, external_id, verba_user_id, login_name, claimed_at",
                         ("+1555", "hr", "u1", 7, "alice", 4.0)),
    "stop_recordings": ("source, external_id, at", ("hr", "u1", 5.0)),
    "verba_users": ("source, external_id, user_id", ("hr", "u1", 7)),
}


def test_the_push_tables_keep_their_rows_and_indexes_through_the_without_rowid_migration(fresh) -> None:
    store = fresh()
    _apply(store, 12)  # before 0013, SQLite kept these rows in rowid tables beside their key index
    with store._write() as conn:
        for table, (columns, values) in PUSH_TABLE_ROWS.items():
            conn.execute(store._sql(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(values))})"),
                         values)
    store.migrate()
    with store._read() as conn:
        for table, (columns, values) in PUSH_TABLE_ROWS.items():
            rows = conn.execute(f"SELECT {columns} FROM {table}").fetchall()
            assert [tuple(row[column] for column in columns.split(", ")) for row in rows] == [values], table
        if store.dialect == "sqlite":
            tables = {row["name"]: row["sql"] for row in conn.execute("SELECT name, sql FROM sqlite_master")}
            assert all(tables[table].endswith("WITHOUT ROWID") for table in PUSH_TABLE_ROWS)
            assert {"extension_locks_owner", "extension_claims_user", "stop_recordings_window"} <= set(tables)
    with pytest.raises(StoreError, match="(?i)unique|duplicate"), store._write() as conn:  # the key still holds
        conn.execute(store._sql("INSERT INTO extension_owners (extension, verba_user_id, source, external_id) "
                                "VALUES (%s, %s, %s, %s)"), ("+1555", 8, "hr", "u2"))


def test_an_event_s_audit_is_found_by_index_for_entries_written_before_and_after_the_audit_events_migration(
        fresh) -> None:
    store = fresh()
    _apply(store, 21)  # before 0022, an event's audit was found by reading every entry's event_ids
    store.add_audit("jane", "replay", [5, 7], "Verba was down", {})
    store.add_audit("connector", "conflict", [7, 7], "+1555 is held by bob", {})
    store.migrate()
    store.add_audit("sam", "discard", [7, 9], "a test user", {})
    assert [(e.actor, e.event_ids) for e in store.audit_of_event(7)] == [
        ("jane", (5, 7)), ("connector", (7, 7)), ("sam", (7, 9))]
    assert [e.actor for e in store.audit_of_event(5)] == ["jane"]
    assert [e.actor for e in store.audit_of_event(9)] == ["sam"]
    assert store.audit_of_event(8) == []


def test_a_command_that_only_reads_the_store_checks_its_schema_while_another_process_writes(tmp_path) -> None:
    """`status`, `events list`, `audit` check the schema version with a read: in WAL mode they run while another
    process holds the write lock (a long transaction), instead of failing after the 5 s busy timeout."""
    path = tmp_path / "c.db"
    with open_store(f"sqlite:///{path}") as store:
        store.migrate()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO audit (at, actor, action, event_ids, reason, detail) "
                   "VALUES (1, 'a', 'b', '[]', '', '{}')")
    try:
        with open_store(f"sqlite:///{path}", create=False) as reader:
            reader.prepare(create=False)
            assert reader.list_audit() == []  # the uncommitted write is not seen, and nothing waited for it
    finally:
        writer.execute("ROLLBACK")
        writer.close()
