"""A search a server limit stops says which limit and what to change, and a full sync it stops does not stop the polls.

On a private slapd whose service accounts have limits (slapd.conf `limits`): cn=reader may read 3 entries per search
(OpenLDAP's default is 500), cn=pages may page at most 2 entries at a time, cn=unpaged may not page at all. The
scheduler tries a failed full sync again on a backoff of its own; the polls between read what changes, and /readyz
and `connector ldap status` say that the full sync fails until one succeeds (both stores)."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterator

import pytest

from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.dialects import generalized
from connector.sources.ldap.scheduler import LdapScheduler
from connector.sources.ldap.watcher import Watcher
from tests.ldap import slapd_server
from tests.ldap.conftest import unavailable
from tests.ldap.helpers import events_of
from tests.ldap.slapd_server import READER_DN, READER_PASSWORD, SUFFIX, ServerUnavailable, SlapdServer

PAGES_DN, UNPAGED_DN, PASSWORD = f"cn=pages,{SUFFIX}", f"cn=unpaged,{SUFFIX}", "limited-pa55"
ACCOUNT_LIMITS = f'limits dn.exact="{PAGES_DN}" size.pr=2\nlimits dn.exact="{UNPAGED_DN}" size.prtotal=disabled\n'
WHERE = "in slapd.conf (olcLimits on the database in cn=config)"
_subtrees = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[SlapdServer]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(slapd_server, "CONFIG", slapd_server.CONFIG.replace(
            'limits dn.exact="{reader}"', ACCOUNT_LIMITS + 'limits dn.exact="{reader}"'))
        try:
            started = SlapdServer.start()
        except ServerUnavailable as error:
            unavailable(error)
    with started:
        conn = started.admin()
        for dn in (PAGES_DN, UNPAGED_DN):
            started.check(conn, conn.add(dn, ["applicationProcess", "simpleSecurityObject"],
                                         {"cn": dn.split(",")[0][3:], "userPassword": PASSWORD}))
        conn.unbind()
        yield started


@pytest.fixture
def users(server: SlapdServer) -> tuple[str, list[str]]:
    """A subtree of this test's own with 5 users stamped an hour ago (no poll's window reads them again): its DN and
    the users' DNs."""
    conn = server.admin()
    base = server.add_ou(conn, f"t{next(_subtrees)}")
    dns = [server.add_user(conn, base, f"user{n}", telephoneNumber=f"+1415555{n:04d}") for n in range(5)]
    for dn in dns:
        server.relax(conn, dn, modifyTimestamp=generalized(datetime.datetime.now(datetime.UTC)
                                                           - datetime.timedelta(hours=1)))
    conn.unbind()
    return base, dns


def bound_as(ldap_config, server, base, tmp_path, bind_dn: str, password: str, **keys):
    (tmp_path / "account-password").write_text(password)
    return ldap_config(url=server.url, base=base, bind_dn=bind_dn, password_file=str(tmp_path / "account-password"),
                       **keys)


def test_a_full_sync_a_size_limit_stops_says_so_and_the_polls_go_on_until_one_succeeds(server, users, ldap_config,
                                                                                       store_opener, tmp_path):
    store = store_opener()
    base, dns = users
    first = Watcher(store, ldap_config(url=server.url, base=base))  # the admin, who has no limit: a watermark
    first.run()
    first.close()
    reader = bound_as(ldap_config, server, base, tmp_path, READER_DN, READER_PASSWORD, page_size=2,
                      scope_check_per_poll=2)
    scheduler = LdapScheduler(store, {"corp": reader}, backoff_base=60, backoff_max=60)

    scheduler.tick("corp", True)  # the nightly full sync: 5 users, of which the reader may read 3
    limit = (f"ended with sizeLimitExceeded (4) after 3 entries: the server lets {READER_DN} read at most 3 entries "
             f"in one search, and more match: raise that account's size limit (OpenLDAP: limits "
             f'dn.exact="{READER_DN}" size=unlimited size.prtotal=unlimited {WHERE}; its default is 500 entries, '
             "and page_size does not get round it), or bind as an account without one")
    failed = "the full sync failed (1 in a row; the polls go on, and it is tried again): search under "
    assert scheduler.degraded and limit in scheduler.probes()["ldap.corp"]()
    assert scheduler.probes()["ldap.corp"]().startswith(f"degraded: {failed}")
    assert limit in store.ldap_watermark("corp").last_error

    server.modify(conn := server.admin(), dns[0], telephoneNumber="+14155559999")
    mark = events_of(store)[-1].id
    scheduler.tick("corp", False)  # the poll after it reads the change
    scheduler.tick("corp", True)  # the next full sync waits for its backoff: this tick polls
    [change] = events_of(store, mark)
    assert change.change.state["phoneNumbers"][0]["value"] == "+14155559999"
    assert scheduler.health["corp"].failures == 0 and scheduler.health["corp"].full_failures == 1
    assert scheduler.probes()["ldap.corp"]().startswith(f"degraded: {failed}")  # until a full sync succeeds
    watermark = store.ldap_watermark("corp")
    assert watermark.last_error.startswith(failed) and limit in watermark.last_error  # `connector ldap status`

    for dn in dns[3:]:  # 3 users left: as many as the reader may read
        server.check(conn, conn.delete(dn))
    conn.unbind()
    scheduler.health["corp"].full_retry_at = 0.0  # its backoff is over
    scheduler.tick("corp", False)
    assert not scheduler.degraded and scheduler.probes()["ldap.corp"]() == "ok"
    assert store.ldap_watermark("corp").last_error is None and store.ldap_watermark("corp").known == 3
    scheduler.stop()


def test_a_census_a_size_limit_stops_leaves_the_poll_to_go_on(server, users, ldap_config, store_opener, tmp_path):
    """A user found gone makes the poll take a census of every id in scope, which the reader's limit (3 entries)
    stops: the poll goes on without it (the delete found, the changes read), and `ldap status` says why."""
    store = store_opener()
    base, dns = users
    first = Watcher(store, ldap_config(url=server.url, base=base))  # the admin, who has no limit: 5 users known
    first.run()
    first.close()
    reader = bound_as(ldap_config, server, base, tmp_path, READER_DN, READER_PASSWORD, page_size=2,
                      scope_check_per_poll=5)
    scheduler = LdapScheduler(store, {"corp": reader}, backoff_base=60, backoff_max=60)
    conn = server.admin()
    server.check(conn, conn.delete(dns[0]))
    server.modify(conn, dns[1], telephoneNumber="+14155559999")
    conn.unbind()
    mark = events_of(store)[-1].id

    scheduler.tick("corp", False)
    assert scheduler.health["corp"].failures == 0, scheduler.probes()["ldap.corp"]()
    kinds = {(e.change.kind, e.change.state["phoneNumbers"][0]["value"]) for e in events_of(store, mark)}
    assert kinds == {("delete", "+14155550000"), ("upsert", "+14155559999")}, kinds  # the leaver, the number change
    [note] = [n for n in store.ldap_watermark("corp").cursor.get("notes", []) if "census" in n]
    assert note.startswith("a census (the scope check found 1 known users gone) exceeds the bind account's size or "
                           "time limit: users gone are judged as the scope check finds them"), note
    scheduler.stop()


@pytest.mark.parametrize(("bind_dn", "says"), [
    (PAGES_DN, "ended with adminLimitExceeded (11: illegal pagedResults page size): the server refuses pages of 5 "
               f"entries to {PAGES_DN}: lower page_size in the directory's [ldap.NAME] section to the largest page it "
               f'allows, or raise that limit (OpenLDAP: limits dn.exact="{PAGES_DN}" size.pr=unlimited {WHERE})'),
    (UNPAGED_DN, "ended with adminLimitExceeded (11: pagedResults control not allowed): the server "
                 f"does not let {UNPAGED_DN} page a search, and every search of a directory's users is paged: allow it "
                 f'(OpenLDAP: limits dn.exact="{UNPAGED_DN}" size.prtotal=unlimited {WHERE})'),
])
def test_an_administrative_limit_names_the_limit_and_what_to_change(server, users, ldap_config, store, tmp_path,
                                                                    bind_dn, says):
    base, _ = users
    watcher = Watcher(store, bound_as(ldap_config, server, base, tmp_path, bind_dn, PASSWORD, page_size=5))
    with pytest.raises(DirectoryError) as info:
        watcher.run()
    watcher.close()
    assert says in str(info.value)
    assert says in store.ldap_watermark("corp").last_error
    if bind_dn == PAGES_DN:  # the change it names does it
        fixed = Watcher(store, bound_as(ldap_config, server, base, tmp_path, bind_dn, PASSWORD, page_size=2))
        assert fixed.run().counts["upsert"] == 5
        fixed.close()
