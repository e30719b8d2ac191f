"""PostgreSQL specifics: schema, locking, errors and URLs. The shared contract is in test_conformance.py."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from connector.config import InstanceConfig
from connector.liveness import Liveness
from connector.store import EventState, Instance, StoreError, open_store
from connector.store.postgres import PostgresStore
from connector.store.queries import migrations
from tests.ops.helpers import wait_for
from tests.postgres_server import PASSWORD, PostgresServer

from .test_conformance import LEASE, NOW, change, claim_now, state_of


@pytest.fixture
def dsn(postgres_server: PostgresServer) -> str:
    return postgres_server.create_schema()


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresStore]:
    store = PostgresStore(dsn)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def raw(dsn: str) -> Iterator[psycopg.Connection[tuple]]:
    """Another session on the store's schema, as a second connector would have."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def test_schema_is_versioned_typed_and_tuned_for_a_queue(store: PostgresStore, raw: psycopg.Connection[tuple]) -> None:
    store.migrate()

    assert raw.execute("SELECT version FROM schema_version").fetchall() == [
        (n,) for n in range(1, len(migrations("postgres")) + 1)
    ]
    types = dict(
        raw.execute(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type = 'jsonb'"
        ).fetchall()
    )
    assert {
        "events.state_json": "jsonb",
        "pushed_extensions.record": "jsonb",
        "audit.detail": "jsonb",
    }.items() <= types.items()
    [options] = raw.execute("SELECT reloptions FROM pg_class WHERE oid = 'events'::regclass").fetchone()
    assert {"fillfactor=70", "autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_cost_delay=0"} <= set(options)
    store.enqueue([change("alice")])
    with pytest.raises(psycopg.errors.CheckViolation):
        raw.execute("UPDATE events SET state = 'lost'")


def test_migrate_is_idempotent_and_required(dsn: str) -> None:
    store = PostgresStore(dsn)
    try:
        with pytest.raises(StoreError, match="db upgrade"):
            store.enqueue([change("alice")])
        store.migrate()
        [event_id] = store.enqueue([change("alice")])
        store.migrate()
        assert state_of(store, event_id) is EventState.PENDING
    finally:
        store.close()


def test_claim_skips_a_user_whose_advisory_lock_another_session_holds(
    store: PostgresStore, raw: psycopg.Connection[tuple]
) -> None:
    [alice] = store.enqueue([change("alice")])
    [bob] = store.enqueue([change("bob")])

    with raw.transaction():
        raw.execute("SELECT pg_advisory_xact_lock(hashtext('scim' || chr(31) || 'alice'))")
        assert claim_now(store).event_ids == (bob,)
        assert store.claim("w2", NOW, LEASE) is None

    assert claim_now(store, owner="w2").event_ids == (alice,)


def test_claim_skips_a_head_event_another_session_has_locked(
    store: PostgresStore, raw: psycopg.Connection[tuple]
) -> None:
    [alice] = store.enqueue([change("alice")])
    [bob] = store.enqueue([change("bob")])

    with raw.transaction():
        raw.execute("SELECT 1 FROM events WHERE id = %s FOR UPDATE", (alice,))
        assert claim_now(store).event_ids == (bob,)

    assert claim_now(store, owner="w2").event_ids == (alice,)


def test_an_expired_lease_being_settled_elsewhere_is_not_released(
    store: PostgresStore, raw: psycopg.Connection[tuple]
) -> None:
    [event_id] = store.enqueue([change("alice")])
    stale = store.claim("w1", NOW, 10)
    assert stale is not None

    with raw.transaction():  # what complete() holds while it writes
        raw.execute("SELECT pg_advisory_xact_lock(hashtext('scim' || chr(31) || 'alice'))")
        assert store.claim("w2", NOW + 11, 10) is None
        assert state_of(store, event_id) is EventState.IN_FLIGHT

    store.complete(stale, [], None)
    assert state_of(store, event_id) is EventState.DONE


def lock_waits(raw: psycopg.Connection[tuple]) -> int:
    """How many lock requests wait on the server now."""
    row = raw.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    return int(row[0]) if row else 0


def test_a_batch_of_changes_and_an_approval_of_their_users_held_events_never_deadlock(
    store: PostgresStore, raw: psycopg.Connection[tuple]
) -> None:
    """A SCIM group change (as an LDAP poll or `events ingest`) stores several users' changes in one transaction while
    on-call approves those users' held events, the batch's first change's user's first and then the other way round:
    neither fails with a deadlock, and no change is left waiting behind an approved event."""
    for first, second in (("carol", "bob"), ("dave", "erin")):
        held = store.enqueue([change(user, 1, active=False) for user in sorted((first, second))],
                             state=EventState.HELD)
        with ThreadPoolExecutor(1) as other, store.scim_transaction("entra") as batch:
            batch.enqueue([change(first, 2)])
            approval = other.submit(store.requeue, held, NOW, approve=True)
            wait_for(lambda: lock_waits(raw), what="the approval to wait for the batch")
            batch.enqueue([change(second, 2)])
        assert approval.result() == 2

        later = [e for e in store.list_events(state=EventState.PENDING) if e.change.state["n"] == 2]
        assert sorted(e.change.external_id for e in later) == sorted((first, second))
        assert [e.waits_behind for e in later] == [None, None] and store.waiting_behind_held() == (0, 0)
        claims = [claim_now(store), claim_now(store, owner="w2")]
        assert sorted(c.external_id for c in claims) == sorted((first, second))
        assert sorted(i for c in claims for i in c.event_ids) == sorted([*held, *(e.id for e in later)])


def test_a_change_stored_while_its_user_s_held_event_is_being_discarded_waits_for_neither(
    store: PostgresStore, raw: psycopg.Connection[tuple]
) -> None:
    """The change waits neither for the discard (an insert waits for no lock, so it deadlocks with nothing) nor behind
    the event being discarded (nothing would ever let it go)."""
    [held] = store.enqueue([change("alice", 1, active=False)], state=EventState.HELD)

    with ThreadPoolExecutor(1) as other, raw.transaction():  # the discard, not committed yet
        raw.execute("UPDATE events SET state = 'discarded', discard_reason = 'a mistake' WHERE id = %s", (held,))
        stored = other.submit(store.enqueue, [change("alice", 2)])
        wait_for(stored.done, what="the change to be stored while the discard is under way")
        [later] = stored.result()
        assert store.get_event(later).waits_behind is None

    assert store.waiting_behind_held() == (0, 0)
    assert claim_now(store).event_ids == (later,)


def test_a_change_stored_while_a_discard_that_is_rolled_back_ran_waits_once_a_claim_finds_the_hold(
    store: PostgresStore, raw: psycopg.Connection[tuple]
) -> None:
    """The change waited behind nothing, as if the discard were done; the claim that picks it finds the user still
    held, claims nothing and makes it wait."""
    [held] = store.enqueue([change("alice", 1, active=False)], state=EventState.HELD)

    with ThreadPoolExecutor(1) as other, raw.transaction(force_rollback=True):
        raw.execute("UPDATE events SET state = 'discarded', discard_reason = 'a mistake' WHERE id = %s", (held,))
        stored = other.submit(store.enqueue, [change("alice", 2)])
        wait_for(stored.done, what="the change to be stored while the discard is under way")
    [later] = stored.result()
    [bob] = store.enqueue([change("bob")])

    assert claim_now(store).event_ids == (bob,)
    assert store.get_event(later).waits_behind == held and store.waiting_behind_held() == (1, 1)
    assert store.claim("w2", NOW, LEASE) is None


def test_a_change_stored_while_its_user_s_push_is_held_waits_once_a_claim_finds_the_hold(
    store: PostgresStore, raw: psycopg.Connection[tuple]
) -> None:
    """Neither sees the other uncommitted: the claim that picks the change finds the hold and makes it wait."""
    [stop] = store.enqueue([change("alice", 1, active=False)])
    claim_now(store)
    with raw.transaction():  # the stop-recording guard holds the push, not committed yet
        raw.execute("UPDATE events SET state = 'held', lease_owner = NULL, lease_until = NULL WHERE id = %s", (stop,))
        [meanwhile] = store.enqueue([change("alice", 2)])
    [bob] = store.enqueue([change("bob")])

    assert claim_now(store, owner="w2").event_ids == (bob,)

    assert store.get_event(meanwhile).waits_behind == stop and store.waiting_behind_held() == (1, 1)
    assert store.claim("w3", NOW, LEASE) is None


def test_a_state_with_a_nul_character_is_refused_and_nothing_is_stored(store: PostgresStore) -> None:
    with pytest.raises(ValueError, match=r"bob.*NUL"):
        store.enqueue([change("alice"), change("bob", note="a\x00b")])
    with pytest.raises(ValueError, match="NUL"):
        store.enqueue([change("carol\x00")])

    assert sum(store.count_by_state().values()) == 0


def test_synchronous_normal_turns_synchronous_commit_off(dsn: str) -> None:
    full, normal = PostgresStore(dsn), PostgresStore(dsn, synchronous="normal")
    try:
        assert full._connection().execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "on"}
        assert normal._connection().execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "off"}
    finally:
        full.close()
        normal.close()
    with pytest.raises(ValueError, match="FULL, NORMAL"):
        PostgresStore(dsn, synchronous="OFF")


def end_sessions(raw: psycopg.Connection[tuple], store: PostgresStore) -> None:
    """End every session of `store` from the server's side, as a restart (`pg_ctl restart -m fast`) or an
    administrator's pg_terminate_backend does; each is noticed only when next used."""
    pids = [conn.info.backend_pid for _, conn in store._connections if not conn.closed]
    ended = raw.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                        "WHERE application_name = 'connector' AND pid = ANY(%s)", (pids,)).fetchall()
    assert ended == [(True,)] * len(pids)


def test_a_session_the_server_ended_while_idle_costs_no_write(store: PostgresStore,
                                                             raw: psycopg.Connection[tuple]) -> None:
    """After a PostgreSQL restart, each thread's connection is dead; the server said so before closing it, so the
    store opens a new one before sending anything: a SCIM write or an enqueue 80 s later must not fail once per
    thread (review: 503s long after the restart)."""
    [event_id] = store.enqueue([change("alice")])
    for write in (lambda: store.enqueue([change("bob")]),  # one statement, not safe to repeat
                  lambda: store.enqueue([change("carol"), change("dave")]),  # a transaction
                  lambda: store.discard([event_id], "not safe to repeat either")):
        end_sessions(raw, store)
        write()
    assert store.count_by_state()[EventState.PENDING] == 4


def test_a_connection_lost_during_a_statement_fails_it_then_is_replaced(
        store: PostgresStore, raw: psycopg.Connection[tuple]) -> None:
    [event_id] = store.enqueue([change("alice")])
    with store._write() as conn:
        conn.execute("SELECT 1")
        end_sessions(raw, store)
        with pytest.raises(psycopg.OperationalError):  # a write may have reached the server: not tried again
            conn.execute("SELECT 1")
    assert state_of(store, event_id) is EventState.PENDING


def test_a_read_or_a_write_safe_to_repeat_is_tried_again_on_a_new_connection(
        store: PostgresStore, raw: psycopg.Connection[tuple]) -> None:
    [event_id] = store.enqueue([change("alice")])
    me, _ = store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)
    for call in (lambda: store.get_event(event_id).state, lambda: [i.run for i in store.live_instances()[1]],
                 lambda: store.heartbeat(me, 15).rejoined, lambda: store.lead("drift", "a"), store.leaders,
                 store.ping, lambda: store.leave_instance(me)):  # ping: /readyz after a restart is not unready
        expected = call()
        end_sessions(raw, store)
        assert call() == expected


def test_an_instance_whose_sessions_the_server_ended_unregisters_at_a_clean_stop(
        store: PostgresStore, raw: psycopg.Connection[tuple], caplog: pytest.LogCaptureFixture) -> None:
    """After a PostgreSQL restart, a clean stop unregisters: the others do not count it dead later."""
    mine = Liveness(store, InstanceConfig("a", heartbeat_seconds=60, liveness_seconds=15), shared=True)
    mine.start()
    with caplog.at_level(logging.INFO, logger="connector.instance"):
        end_sessions(raw, store)
        mine.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert store.live_instances()[1] == [] and store.dead_instances() == []


# --- errors name the server and the fix, never the password ------------------------------------


def test_a_wrong_password_is_reported_without_the_password(postgres_server: PostgresServer) -> None:
    secret = "hunter2-wrong"
    with pytest.raises(StoreError, match="refused the login.*PGPASSWORD") as error:
        PostgresStore(postgres_server.dsn(password=secret))
    assert f"127.0.0.1:{postgres_server.port}/postgres" in str(error.value)
    assert secret not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


@pytest.mark.parametrize(("error", "says"), [
    (psycopg.errors.SerializationFailure("could not serialize access"), "conflicted with another one"),
    (psycopg.errors.DeadlockDetected("deadlock detected"), "it was rolled back and nothing changed: try again"),
    (psycopg.errors.InsufficientPrivilege("permission denied for table events"), "lacks a privilege"),
    (psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT"), "is read-only (cannot execute INSERT): point"),
    (psycopg.errors.DiskFull("could not extend file"), "out of disk space"),
    (psycopg.errors.UndefinedTable('relation "events" does not exist'), "no schema yet"),
], ids=["serialization", "deadlock", "privilege", "read-only", "disk-full", "no-schema"])
def test_each_server_error_is_explained_with_what_to_do(store: PostgresStore, error: psycopg.Error, says: str) -> None:
    """By SQLSTATE class: a serialization failure or a deadlock (an OperationalError to psycopg, not a
    TransactionRollback) is a conflict to retry, not 'the store failed'."""
    explained = store._explain(error)
    assert says in explained and store.server in explained, explained


def test_no_password_is_a_refused_login_naming_the_password_file_in_effect(postgres_server: PostgresServer,
                                                                          tmp_path, monkeypatch) -> None:
    """The systemd unit sets PGPASSFILE: a missing password there read as 'cannot reach the server'."""
    (tmp_path / "pgpass").write_text("")
    (tmp_path / "pgpass").chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "pgpass"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = postgres_server.dsn().replace(f":{PASSWORD}@", "@")
    with pytest.raises(StoreError) as error:
        PostgresStore(url)
    assert "refused the login (connection failed: " in str(error.value) and "no password supplied" in str(error.value)
    assert f"the password in {tmp_path / 'pgpass'} or PGPASSWORD" in str(error.value)


def test_a_missing_database_is_reported(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match="does not exist.*createdb"):
        PostgresStore(postgres_server.dsn("no_such_db"))


def test_an_unreachable_server_is_reported_with_host_and_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens here once the probe closes
    with pytest.raises(StoreError, match=rf"cannot reach the PostgreSQL server postgresql://app@127.0.0.1:{port}/db"):
        PostgresStore(f"postgresql://app:s3cret@127.0.0.1:{port}/db?connect_timeout=2")


def test_a_malformed_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="postgresql://user@host:5432/dbname") as error:
        PostgresStore("postgresql://app:s3cr%zzet@host/db")  # libpq's own message would quote the password
    assert "s3cr" not in str(error.value)


# --- open_store -------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_open_store_opens_postgres_urls(postgres_server: PostgresServer, scheme: str) -> None:
    url = postgres_server.create_schema().replace("postgresql://", f"{scheme}://", 1)
    store = open_store(url)
    try:
        assert isinstance(store, PostgresStore)
        store.migrate()
        assert store.enqueue([change("alice")]) != []
    finally:
        store.close()


def test_open_store_refuses_other_urls_without_echoing_a_password() -> None:
    with pytest.raises(ValueError, match="sqlite:///.*postgresql://") as error:
        open_store("mysql://app:s3cr@t@db.example/connector")
    assert "s3cr" not in str(error.value)
    assert "db.example/connector" in str(error.value)


def test_a_scim_get_reads_one_row_on_a_store_just_filled(store: PostgresStore) -> None:
    """By (client, id): with the type in its WHERE, PostgreSQL without statistics (no ANALYZE yet: a store an IdP's
    first sync just filled) took the (client, resource_type, unique_key) index and read every User for each get."""
    with store._write() as conn:
        conn.execute("INSERT INTO scim_resources (client, resource_type, id, unique_key, display, body, version, "
                     "created, last_modified) SELECT 'entra', 'User', 'id-' || g, 'u' || g || '@x', '', '{}', 1, "
                     "'', '' FROM generate_series(1, 3000) AS g")
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + store._q["scim_get"],
                            ("entra", "id-2999")).fetchone()
    [root] = json.loads(plan["QUERY PLAN"])  # the store reads JSON back as text
    assert root["Plan"]["Actual Rows"] == 1 and root["Plan"]["Shared Hit Blocks"] + root["Plan"].get(
        "Shared Read Blocks", 0) < 10, root["Plan"]
    with store.scim_transaction("entra") as tx:
        assert tx.get("User", "id-2999") is not None and tx.get("Group", "id-2999") is None
        assert [r.id for r in tx.get_many("User", ["id-1", "id-2"])] == ["id-1", "id-2"]
        assert tx.get_many("Group", ["id-1", "id-2"]) == []
