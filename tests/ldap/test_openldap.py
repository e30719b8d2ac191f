"""The openldap dialect against a real slapd: creates, modifies, renames, group changes and deletes between polls."""

from __future__ import annotations

import datetime
import time

import ldap3
import pytest

from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.dialects import generalized, parse_time
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import events_of
from tests.ldap.slapd_server import READER_DN, READER_PASSWORD, SlapdServer


def test_the_first_run_is_a_full_sync_with_normalized_states(slapd, admin, base, watcher, store):
    dn = slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100", mail="alice@example.test",
                        givenName="Alice", displayName="Alice Liddell")
    result = watcher.run()
    assert result.full and result.counts["upsert"] == 1
    [event] = events_of(store)
    change = event.change
    assert change.source == "corp" and change.external_id == slapd.entry_uuid(admin, dn)
    assert change.kind == "upsert" and change.cause == "ldap:reconcile-create"
    assert change.state["userName"] == "alice" and change.state["active"] is True
    assert change.state["displayName"] == "Alice Liddell"
    assert change.state["phoneNumbers"] == [{"value": "+14155550100", "type": "work"}]
    assert change.state["emails"][0]["value"] == "alice@example.test"
    assert change.state["attributes"]["telephoneNumber"] == "+14155550100"
    assert change.state["attributes"]["dn"] == dn
    assert "entryUUID" not in change.state["attributes"]
    assert store.ldap_watermark("corp").cursor["stamp"].endswith("Z")


def test_created_modified_renamed_and_deleted_between_polls(slapd, admin, base, watcher, store):
    alice = slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    watcher.run()
    alice_id = slapd.entry_uuid(admin, alice)

    bob = slapd.add_user(admin, base, "bob", telephoneNumber="+14155550101")
    slapd.modify(admin, alice, telephoneNumber="+14155550199")
    mark = events_of(store)[-1].id
    result = watcher.run()
    assert not result.full
    changes = {e.change.state["userName"]: e.change for e in events_of(store, mark)}
    assert changes["bob"].cause == "ldap:create" and changes["bob"].kind == "upsert"
    assert changes["alice"].cause == "ldap:change"
    assert changes["alice"].state["phoneNumbers"][0]["value"] == "+14155550199"

    mark = events_of(store)[-1].id
    slapd.check(admin, admin.modify_dn(alice, "uid=alice2"))
    watcher.run()
    [renamed] = events_of(store, mark)
    assert renamed.change.external_id == alice_id  # the id survives the rename
    assert renamed.change.state["attributes"]["dn"].startswith("uid=alice2,")

    mark = renamed.id
    slapd.check(admin, admin.delete(bob))
    result = watcher.run()  # no timestamp shows a delete: the check of known users still in scope does
    assert not result.full and result.counts["delete"] == 1
    [deleted] = events_of(store, mark)
    assert deleted.change.kind == "delete" and deleted.change.cause == "ldap:vanished"
    assert deleted.change.state["userName"] == "bob" and deleted.change.state["active"] is False
    assert store.ldap_watermark("corp").known == 1
    assert watcher.run(full=True).counts["delete"] == 0  # the reconciliation finds nothing left to do


def test_without_the_scope_check_deletes_wait_for_the_full_sync(slapd, admin, base, ldap_config, store):
    bob = slapd.add_user(admin, base, "bob")
    watcher = Watcher(store, ldap_config(scope_check_per_poll=0))
    watcher.run()
    watcher.run()  # takes a census, as the test's containers were just made: they changed since the cursor
    slapd.check(admin, admin.delete(bob))
    assert watcher.run().counts["delete"] == 0
    assert watcher.run(full=True).counts["delete"] == 1
    assert "scope_check_per_poll = 0" in " ".join(store.ldap_watermark("corp").cursor["notes"])
    watcher.close()


def test_the_scope_check_goes_through_the_known_users_in_turn(slapd, admin, base, ldap_config, store):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(5)]
    watcher = Watcher(store, ldap_config(scope_check_per_poll=2))
    watcher.run()
    ids = sorted(store.ldap_entries("corp"))
    checked = []
    for _ in range(3):  # 2 a poll: the 5 in 3 polls, from the first again after the last
        watcher.run()
        checked.append(store.ldap_watermark("corp").cursor["scope_after"])
    assert checked == [ids[1], ids[3], ids[0]]
    [third] = [dn for dn in dns if slapd.entry_uuid(admin, dn) == ids[2]]
    slapd.check(admin, admin.delete(third))
    result = watcher.run()  # checks ids[1] and ids[2]
    assert result.counts["delete"] == 1 and events_of(store)[-1].change.external_id == ids[2]
    watcher.close()


def test_unchanged_entries_in_the_overlap_window_make_no_events(slapd, admin, base, watcher, store):
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    watcher.run()
    for _ in range(3):
        result = watcher.run()
        assert result.counts["seen"] == 1  # re-read inside the overlap window ...
    assert len(events_of(store)) == 1  # ... and deduplicated


def test_once_the_overlap_has_passed_since_a_bulk_load_a_poll_reads_none_of_it(slapd, admin, base, ldap_config,
                                                                                store):
    """The window starts overlap_seconds before the later of the latest stamp and the previous run's start, not
    before the latest stamp alone: with no write since a load, polls stop re-reading every loaded entry."""
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(3)]
    watcher = Watcher(store, ldap_config(overlap_seconds=1))
    time.sleep(2.1)  # the first run starts more than overlap_seconds (and a second of stamp granularity) later
    watcher.run()
    assert watcher.run().counts["seen"] == 0
    slapd.modify(admin, dns[0], telephoneNumber="+14155550111")
    result = watcher.run()
    assert result.counts["seen"] == 1 and result.counts["upsert"] == 1
    watcher.close()


def test_a_write_stamped_before_a_poll_began_that_arrives_after_it_is_read(slapd, admin, base, watcher, store):
    """What the run before could not see reached the server after it began (a replica's write, a late commit): it
    is stamped at most overlap_seconds (5 here) before that start, and the next run reads it."""
    slapd.add_user(admin, base, "alice")
    watcher.run()
    started = parse_time(store.ldap_watermark("corp").cursor["started"])
    late = slapd.add_user(admin, base, "late")
    slapd.relax(admin, late, modifyTimestamp=generalized(started - datetime.timedelta(seconds=3)))
    mark = events_of(store)[-1].id
    watcher.run()
    [arrived] = events_of(store, mark)
    assert arrived.change.state["userName"] == "late" and arrived.change.cause == "ldap:create"


def test_two_edits_in_one_second_are_both_seen(slapd, admin, base, watcher, store):
    dn = slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    watcher.run()
    slapd.modify(admin, dn, telephoneNumber="+14155550111")
    watcher.run()
    slapd.modify(admin, dn, telephoneNumber="+14155550122")  # very likely the same modifyTimestamp second
    watcher.run()
    phones = [e.change.state["phoneNumbers"][0]["value"] for e in events_of(store)]
    assert phones == ["+14155550100", "+14155550111", "+14155550122"]


def test_group_membership_changes_reach_the_members(slapd, admin, base, watcher, store):
    alice = slapd.add_user(admin, base, "alice")
    watcher.run()
    group = f"cn=Verba-Recorded,ou=groups,{base}"
    slapd.check(admin, admin.add(group, ["groupOfNames"], {"cn": "Verba-Recorded", "member": [alice]}))
    mark = events_of(store)[-1].id
    watcher.run()
    [joined] = events_of(store, mark)
    assert joined.change.state["groups"] == [group]

    slapd.check(admin, admin.modify(group, {"member": [(ldap3.MODIFY_REPLACE, [f"cn=nobody,{base}"])]}))
    watcher.run()
    [left] = events_of(store, joined.id)
    assert left.change.state["groups"] == []


def test_an_entry_leaving_the_filter_is_deleted_at_once(slapd, admin, base, ldap_config, store):
    slapd.add_user(admin, base, "alice", employeeType="staff")
    bob = slapd.add_user(admin, base, "bob", employeeType="staff")
    watcher = Watcher(store, ldap_config(filter="(&(objectClass=inetOrgPerson)(employeeType=staff))"))
    watcher.run()
    slapd.modify(admin, bob, employeeType="contractor")
    result = watcher.run()
    assert result.counts["delete"] == 1
    assert events_of(store)[-1].change.cause == "ldap:out-of-scope"
    watcher.close()


def test_a_disabled_attribute_makes_deactivate_events(slapd, admin, base, ldap_config, store):
    dn = slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100", employeeType="active")
    watcher = Watcher(store, ldap_config(disabled_attribute="description"))
    watcher.run()
    slapd.modify(admin, dn, description="TRUE")
    watcher.run()
    last = events_of(store)[-1].change
    assert last.kind == "deactivate" and last.state["active"] is False
    slapd.modify(admin, dn, description="false")
    watcher.run()
    assert events_of(store)[-1].change.kind == "upsert"
    watcher.close()


def test_a_truncated_search_deletes_nobody_and_keeps_the_cursor(slapd, admin, base, ldap_config, store, watcher,
                                                                tmp_path):
    for uid in ("a", "b", "c", "d", "e"):
        slapd.add_user(admin, base, uid)
    watcher.run()
    before = store.ldap_watermark("corp")
    (tmp_path / "reader-password").write_text(READER_PASSWORD)
    limited = Watcher(store, ldap_config(bind_dn=READER_DN, password_file=str(tmp_path / "reader-password"),
                                         page_size=2))
    with pytest.raises(DirectoryError, match="size"):
        limited.run(full=True)  # the reader may see 3 of the 5 users: that must not look like 2 deletes
    assert all(e.change.kind == "upsert" for e in events_of(store))
    watermark = store.ldap_watermark("corp")
    assert watermark.known == 5 and "size" in watermark.last_error.lower()
    assert watermark.cursor == before.cursor and watermark.version == before.version


def test_a_missing_base_is_an_error_that_says_what_to_check(ldap_config, store):
    watcher = Watcher(store, ldap_config(base="ou=nowhere,dc=example,dc=test"))
    with pytest.raises(DirectoryError, match="check the base"):
        watcher.run()
    watcher.close()
    assert store.ldap_watermark("corp").cursor == {}


def test_a_wrong_password_says_what_to_check_and_what_was_sent(ldap_config, store, tmp_path):
    (tmp_path / "secret").write_text("n0t-the-pa55word \n")
    watcher = Watcher(store, ldap_config(password_file=str(tmp_path / "secret")))
    with pytest.raises(DirectoryError, match="bind_dn and the password") as info:
        watcher.run()
    message = str(info.value)
    assert "n0t-the-pa55word" not in message  # the password is never echoed ...
    assert "the password sent has 17 characters (17 bytes as UTF-8)" in message  # ... but its length is
    assert f"from file {tmp_path / 'secret'} (ldap.corp.password_file; a trailing newline is not sent)" in message
    assert "it ends with white space, which is sent too" in message


def test_an_outage_moves_nothing_and_the_next_run_catches_up(admin, ldap_config, store, tmp_path):
    server = SlapdServer.start()
    try:
        conn = server.admin()
        base = server.add_ou(conn, "outage")
        dn = server.add_user(conn, base, "alice", telephoneNumber="+14155550100")
        (tmp_path / "p").write_text("slapd-admin-pa55")
        watcher = Watcher(store, ldap_config(url=server.url, base=base))
        watcher.run()
        before = store.ldap_watermark("corp")
        server.modify(conn, dn, telephoneNumber="+14155550177")
        conn.unbind()
        server.pause()
        with pytest.raises(DirectoryError, match="cannot connect|failed"):
            watcher.run()
        after = store.ldap_watermark("corp")
        assert after.cursor == before.cursor and after.version == before.version and after.last_error
        server.resume()
        time.sleep(0.1)
        watcher.run()
        assert events_of(store)[-1].change.state["phoneNumbers"][0]["value"] == "+14155550177"
        assert store.ldap_watermark("corp").last_error is None
        watcher.close()
    finally:
        server.stop()


def test_a_changed_base_or_filter_reads_every_user_again(slapd, admin, base, ldap_config, store):
    """Users a wider base or filter takes in may not have changed since the cursor: an incremental run would miss
    them until the nightly full sync. A run after such a change is a full one, and only such a run."""
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    contractors = f"ou=contractors,{base}"
    slapd.check(admin, admin.add(contractors, ["organizationalUnit"], {"ou": "contractors"}))
    carol = f"uid=carol,{contractors}"
    slapd.check(admin, admin.add(carol, ["inetOrgPerson"], {"cn": "Carol", "sn": "C", "uid": "carol"}))
    slapd.relax(admin, carol, modifyTimestamp="20200101000000Z")  # unchanged for years
    narrow = Watcher(store, ldap_config(base=f"ou=people,{base}"))
    assert narrow.run().counts["upsert"] == 1
    assert not narrow.run().full
    narrow.close()

    wide = Watcher(store, ldap_config())
    result = wide.run()
    assert result.full and result.counts["upsert"] == 1
    assert events_of(store)[-1].change.state["userName"] == "carol"
    assert not wide.run().full  # the new base is recorded: the next run is incremental again
    wide.close()

    filtered = Watcher(store, ldap_config(filter="(uid=alice)"))
    result = filtered.run()
    assert result.full and result.counts["delete"] == 1  # carol is out of scope at once, not at 3 a.m.
    filtered.close()
