"""Failures found in the field, on a private slapd (and one AD case on a fake connection, since AD needs Samba):
expiry dates in every GeneralizedTime form, an unexpected error recorded as the directory's failure, a moved subtree
found whole and held by the mass-change guard, a leaver of a filter on memberOf, and a DC
whose USN went back."""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import parse_config
from connector.sources.ldap.dialects import dialect_for, generalized, parse_time
from connector.sources.ldap.reading import Reader
from connector.sources.ldap.scheduler import LdapScheduler
from connector.sources.ldap.watcher import Watcher
from connector.store import EventState
from tests.ldap.helpers import config_file, events_of

UTC = datetime.UTC


def backdate(slapd, admin, dns: list[str], hours: float = 1.0) -> None:
    """Stamp these entries `hours` ago (Relax Rules), so that no poll's window re-reads them: what a poll then sees
    of them comes only from what it looks for besides the changed users."""
    stamp = generalized(datetime.datetime.now(UTC) - datetime.timedelta(hours=hours))
    for dn in dns:
        slapd.relax(admin, dn, modifyTimestamp=stamp)


def ldap_status(tmp_path: Path, slapd, base: str) -> str:
    """`connector ldap status` of the `store` fixture's database, as on-call reads it."""
    path = config_file(tmp_path, slapd.url, base)
    result = CliRunner().invoke(main, ["ldap", "status", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return result.output


def by_name(store, since: int = 0) -> dict[str, Any]:
    return {e.change.state["userName"]: e for e in events_of(store, since)}


# --- 1. expiry dates in every form; an error the run did not expect is its failure ---------------------------------
def test_parse_time_reads_every_generalized_time_form():
    assert parse_time("2099010100Z") == datetime.datetime(2099, 1, 1, tzinfo=UTC)  # hour only (RFC 4517)
    assert parse_time("209901011230Z") == datetime.datetime(2099, 1, 1, 12, 30, tzinfo=UTC)
    assert parse_time("20990101000000+0100") == datetime.datetime(2098, 12, 31, 23, tzinfo=UTC)  # an hour east
    assert parse_time("20990101000000-0130") == datetime.datetime(2099, 1, 1, 1, 30, tzinfo=UTC)
    assert parse_time("2099010112.5Z") == datetime.datetime(2099, 1, 1, 12, 30, tzinfo=UTC)  # half an hour
    assert parse_time("20240101120000,25Z") == datetime.datetime(2024, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert parse_time("20240101120000Z") == datetime.datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert parse_time("20240101120000z") == datetime.datetime(2024, 1, 1, 12, tzinfo=UTC)  # some servers write z
    for wrong in ("20241301000000Z", "2024010124Z", "99991231230000-0100", "yesterday"):
        with pytest.raises(ValueError, match=wrong):
            parse_time(wrong)


def test_an_expiry_in_any_form_is_read_and_one_out_of_range_never_expires_with_one_warning(slapd, admin, base,
                                                                                           ldap_config, store, caplog):
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    dave = slapd.add_user(admin, base, "dave", telephoneNumber="+14155550103")
    watcher = Watcher(store, ldap_config())
    watcher.run()
    # ppolicy's pwdEndTime without minutes and seconds (legal GeneralizedTime), and one with a time zone offset:
    # 30 minutes ago, written as the local time two hours east of UTC (read without the offset: 90 minutes ahead)
    bob = slapd.add_user(admin, base, "bob", telephoneNumber="+14155550101")
    slapd.modify(admin, bob, pwdEndTime="2099010100Z")
    past = datetime.datetime.now(UTC) - datetime.timedelta(minutes=30)
    slapd.modify(admin, dave, pwdEndTime=(past + datetime.timedelta(hours=2)).strftime("%Y%m%d%H%M%S+0200"))
    # shadowExpire past any date a clock holds: never, as an unreadable value is
    carol = f"uid=carol,ou=people,{base}"
    slapd.check(admin, admin.add(carol, ["inetOrgPerson", "shadowAccount"],
                                 {"cn": "Carol", "sn": "Carol", "uid": "carol", "shadowExpire": "2147483647",
                                  "telephoneNumber": "+14155550102"}))
    mark = events_of(store)[-1].id
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        result = watcher.run()
    assert result.counts["upsert"] == 2 and result.counts["deactivate"] == 1
    stored = by_name(store, mark)
    assert stored["bob"].change.kind == "upsert" and stored["bob"].change.state["expiresAt"] == "2099-01-01T00:00:00Z"
    assert stored["dave"].change.kind == "deactivate" and stored["dave"].change.cause == "ldap:expired"
    assert stored["dave"].change.state["expiresAt"] == past.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stored["carol"].change.kind == "upsert" and "expiresAt" not in stored["carol"].change.state
    warned = [r.getMessage() for r in caplog.records if "cannot be read as an expiry date" in r.getMessage()]
    assert warned == [f"ldap corp: {carol}: shadowExpire '2147483647' cannot be read as an expiry date (day 2147483647 "
                      "is out of the range of dates this connector can hold): the account counts as never expiring; "
                      "correct the value in the directory"]
    assert store.ldap_watermark("corp").last_error is None

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        assert watcher.run(full=True).counts["seen"] == 4  # read again: the warning is not repeated
    assert "cannot be read as an expiry date" not in caplog.text
    watcher.close()


def test_an_unexpected_error_is_the_directory_s_recorded_failure_with_its_traceback_logged_once(
        slapd, admin, base, ldap_config, store, tmp_path, monkeypatch, caplog):
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    scheduler = LdapScheduler(store, {"corp": ldap_config()}, backoff_base=0.01, backoff_max=0.01)
    scheduler.tick("corp", False)
    assert store.ldap_watermark("corp").last_error is None

    def broken(self: Reader, begin: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(Reader, "changed_groups", broken)  # a bug in the run
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        scheduler.tick("corp", False)
    error = ("the run stopped at an unexpected ZeroDivisionError: division by zero (a bug in the connector: its "
             "traceback is in the log; the cursor stays, so no change is skipped once it is fixed)")
    assert store.ldap_watermark("corp").last_error == error
    status = ldap_status(tmp_path, slapd, base)
    assert "  FAILED" in status and f"  last error  {error}" in status
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].exc_info[0] is ZeroDivisionError
    assert scheduler.probes()["ldap.corp"]().startswith("degraded: 1 failed runs, last: division by zero")

    monkeypatch.undo()
    time.sleep(0.02)  # past the backoff
    scheduler.tick("corp", False)
    assert store.ldap_watermark("corp").last_error is None and not scheduler.degraded
    assert "  ok" in ldap_status(tmp_path, slapd, base)
    scheduler.stop()


# --- 2. a subtree moved out of the base, found whole ----------------------------------------------------------------
def test_a_moved_subtree_is_found_whole_and_held(slapd, admin, base, ldap_config, store, caplog):
    people = f"ou=people,{base}"
    sales = f"ou=sales,{people}"
    slapd.check(admin, admin.add(sales, ["organizationalUnit"], {"ou": "sales"}))
    slapd.check(admin, admin.add(f"ou=archive,{base}", ["organizationalUnit"], {"ou": "archive"}))
    dns = []
    for n in range(25):
        dns.append(f"uid=s{n:02d},{sales}")
        slapd.check(admin, admin.add(dns[-1], ["inetOrgPerson"], {"cn": f"S{n}", "sn": "S", "uid": f"s{n:02d}",
                                                                  "telephoneNumber": f"+1415555{n:04d}"}))
    backdate(slapd, admin, dns)  # a subtree move writes nothing to the users in it: only the scope check sees it
    # Each scope-check batch is 10 users, no more than the limits: 10 users, or half the 25 known once 5 or more go.
    watcher = Watcher(store, ldap_config(base=people, scope_check_per_poll=10, guard_max_count=10,
                                         guard_max_share=0.5, guard_min_count=5))
    watcher.run()

    # One leaver is found by the scope check as before, and passes.
    slapd.check(admin, admin.delete(dns[7]))
    mark = events_of(store)[-1].id
    for _ in range(3):  # the batches go round the 25 known users in 3 polls
        result = watcher.run()
        assert result.guard_message is None
    [leaver] = [e for e in events_of(store, mark)]
    assert leaver.change.kind == "delete" and leaver.change.cause == "ldap:vanished"
    assert leaver.state is EventState.PENDING

    # The whole OU moves out of the base: the next poll finds the 24 users left in it gone, not a batch of them, and
    # holds them all.
    slapd.check(admin, admin.modify_dn(sales, "ou=sales", new_superior=f"ou=archive,{base}"))
    mark = leaver.id
    result = watcher.run()
    assert result.counts["delete"] == 24 and result.counts["held"] == 24
    assert "mass-change guard tripped: 24 of 24 known users (100%) would be deactivated" in result.guard_message
    assert "connector events approve --source corp" in result.guard_message
    assert result.guard_message in caplog.text
    moved = events_of(store, mark)
    assert len(moved) == 24 and {(e.change.kind, e.change.cause, e.state) for e in moved} == {
        ("delete", "ldap:vanished", EventState.HELD)}
    assert {e.last_error for e in moved} == {result.guard_message}
    # No recording stopped: every delete since the leaver's waits for an approval.
    assert [e for e in events_of(store, mark) if e.state is not EventState.HELD] == []
    watcher.close()


# --- 3. a leaver of a filter on memberOf ------------------------------------------------------------------------
def test_a_member_taken_out_of_the_filter_s_group_is_deleted_at_the_next_poll(slapd, admin, base, ldap_config, store):
    alice = slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    bob = slapd.add_user(admin, base, "bob", telephoneNumber="+14155550101")
    group = f"cn=recorded,ou=groups,{base}"
    slapd.check(admin, admin.add(group, ["groupOfNames"], {"cn": "recorded", "member": [alice, bob]}))
    backdate(slapd, admin, [alice, bob])  # the memberof overlay writes no modifyTimestamp: a poll re-reads neither
    # scope_check_per_poll = 0: as in a large directory, where the scope check reaches alice only polls later
    watcher = Watcher(store, ldap_config(filter=f"(&(objectClass=inetOrgPerson)(memberOf={group}))",
                                         scope_check_per_poll=0))
    watcher.run()
    assert set(by_name(store)) == {"alice", "bob"}
    mark = events_of(store)[-1].id

    slapd.modify(admin, group, member=[bob])
    result = watcher.run()
    [left] = events_of(store, mark)
    assert left.change.state["userName"] == "alice" and left.change.kind == "delete"
    assert left.change.cause == "ldap:out-of-scope" and left.state is EventState.PENDING
    assert result.counts["delete"] == 1 and result.counts["held"] == 0
    assert store.ldap_watermark("corp").known == 1
    assert watcher.run().counts["delete"] == 0  # said once
    watcher.close()


# --- 4. an AD DC whose USN went back under the same invocationId ---------------------------------------------------
class FakeDC:
    """The search of the NTDS Settings object's invocationId, as ldap3 answers it."""

    def __init__(self, invocation: uuid.UUID) -> None:
        self.invocation = invocation

    def search(self, base: str, search_filter: str, scope: Any, attributes: Any = None, paged_size: Any = None,
               paged_cookie: Any = None, controls: Any = None) -> bool:
        self.result = {"result": 0, "description": "success", "controls": {}}
        self.response = [{"type": "searchResEntry", "dn": base, "attributes": {},
                          "raw_attributes": {"invocationId": [self.invocation.bytes_le]}}]
        return True


@pytest.mark.parametrize("usn, full", [(5000, True), (9000, False), (9500, False)])
def test_a_dc_whose_usn_went_back_is_read_again_in_full(usn, full, tmp_path):
    config = parse_config({"ldap": {"corp": {"url": "ldaps://dc1.corp.example:636", "dialect": "ad",
                                             "base": "OU=Staff,DC=corp,DC=example", "tls_verify": False}}},
                          str(tmp_path / "c.toml")).ldap["corp"]
    invocation = uuid.uuid4()
    ntds = "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Site,CN=Sites,CN=Configuration,DC=corp,DC=example"
    dse = {"dsServiceName": [ntds], "highestCommittedUSN": [str(usn)], "defaultNamingContext": ["DC=corp,DC=example"]}
    cursor = {"usn": 9000, "invocation_id": str(invocation), "dc": ntds}
    begin = dialect_for(config).start(FakeDC(invocation), cursor, dse)  # type: ignore[arg-type]
    assert begin.cursor["usn"] == usn  # stored with the run's data, as ever
    if full:
        assert begin.since is None
        assert begin.full_reason == (
            f"the highestCommittedUSN of {ntds} (5000) is below the watermark's (9000) with the same invocationId "
            f"{invocation}: the DC was rolled back (a virtual machine snapshot or disk image restored, which AD does "
            "not support), so its uSNChanged cannot tell what changed since")
    else:
        assert begin.since == "(uSNChanged>=9001)" and begin.full_reason is None
