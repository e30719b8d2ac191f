"""A run reads its users page by page and stores each page's events at once, holding one page, not the directory;
deletes by absence, the mass-change guard and the cursor still wait for the whole read."""

from __future__ import annotations

import pytest

from connector.config import parse_config
from connector.sources.ldap import watcher as watcher_module
from connector.sources.ldap.watcher import Watcher
from connector.store import EventState
from tests.ldap.helpers import ad_section, add_ad_user, events_of
from tests.ldap.samba_server import DOMAIN_DN


class Crash(Exception):
    """Stands in for a crash in the middle of a run."""


def test_a_page_is_stored_before_the_next_is_read(slapd, admin, base, ldap_config, store):
    for n in range(5):
        slapd.add_user(admin, base, f"user{n}")
    watcher = Watcher(store, ldap_config(page_size=2))
    stored_at: list[int] = []
    watcher.run(progress=lambda n: stored_at.append(len(events_of(store))))
    assert stored_at == [0, 0, 2, 2, 4]  # when each user was read: the pages before it are stored
    assert store.ldap_watermark("corp").known == 5
    watcher.close()


def test_a_run_that_stops_midway_leaves_the_cursor_and_the_next_stores_each_user_once(slapd, admin, base,
                                                                                      ldap_config, store):
    for n in range(5):
        slapd.add_user(admin, base, f"user{n}")
    watcher = Watcher(store, ldap_config(page_size=2))
    read: list[int] = []

    def crash_at_the_fourth(n: int) -> None:
        read.append(n)
        if len(read) == 4:
            raise Crash

    with pytest.raises(Crash):
        watcher.run(progress=crash_at_the_fourth)
    assert len(events_of(store)) == 2 and store.ldap_watermark("corp").cursor == {}  # one page stored, no cursor
    result = watcher.run()
    assert result.full and result.counts["upsert"] == 3  # the stored page made no second event
    assert sorted(e.change.state["userName"] for e in events_of(store)) == [f"user{n}" for n in range(5)]
    watcher.close()


def test_a_full_sync_read_page_by_page_still_finds_the_vanished(slapd, admin, base, ldap_config, store):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(5)]
    watcher = Watcher(store, ldap_config(page_size=2, scope_check_per_poll=0))
    watcher.run()
    slapd.check(admin, admin.delete(dns[2]))
    slapd.modify(admin, dns[4], telephoneNumber="+14155550104")
    mark = events_of(store)[-1].id
    result = watcher.run(full=True)
    assert result.counts == {"seen": 4, "upsert": 1, "deactivate": 0, "delete": 1, "held": 0}
    changes = {e.change.state["userName"]: e.change for e in events_of(store, mark)}
    assert changes["user2"].kind == "delete" and changes["user2"].cause == "ldap:vanished"
    assert changes["user4"].cause == "ldap:reconcile-change"
    assert store.ldap_watermark("corp").known == 4
    watcher.close()


def test_the_guard_counts_the_drops_of_every_page_and_holds_them_all(slapd, admin, base, ldap_config, store):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(10)]
    watcher = Watcher(store, ldap_config(page_size=2, disabled_attribute="description", guard_max_count=3,
                                         guard_max_share=1.0))
    watcher.run()
    for dn in (dns[0], dns[3], dns[6]):  # one drop on each of three pages, and a delete: 4 > 3
        slapd.modify(admin, dn, description="TRUE")
    slapd.check(admin, admin.delete(dns[9]))
    slapd.modify(admin, dns[1], telephoneNumber="+14155550101")  # no drop: stored with its page
    mark = events_of(store)[-1].id
    result = watcher.run(full=True)
    assert result.counts["held"] == 4 and result.guard_message is not None
    states = {e.change.state["userName"]: (e.change.kind, e.state) for e in events_of(store, mark)}
    assert states == {"user0": ("deactivate", EventState.HELD), "user3": ("deactivate", EventState.HELD),
                      "user6": ("deactivate", EventState.HELD), "user9": ("delete", EventState.HELD),
                      "user1": ("upsert", EventState.PENDING)}
    assert store.ldap_watermark("corp").known == 9
    watcher.close()


@pytest.mark.slow
def test_ad_pages_its_users_on_the_connection_that_read_the_usn(samba, tmp_path, store, monkeypatch):
    """A USN belongs to one DC: a second connection could reach another DC where the url's name resolves to
    several. AD (and Samba) keep several paged searches per connection, so the run pages on its one, with group
    look-ups in between."""
    samba.tool("ou", "add", f"OU=onepager,{DOMAIN_DN}")
    for n in range(3):
        add_ad_user(samba, "onepager", f"onepager{n}", f"+141555507{n}0")
    samba.tool("group", "add", "OnePagerGroup")
    samba.tool("group", "addmembers", "OnePagerGroup", "onepager0,onepager2")
    opened = []
    monkeypatch.setattr(watcher_module, "open_connection",
                        lambda config, real=watcher_module.open_connection: opened.append(real(config)) or opened[-1])
    watcher = Watcher(store, parse_config({"ldap": {"corp": ad_section(tmp_path, "onepager")}}, "c.toml").ldap["corp"])
    result = watcher.run()  # page_size 2: the group is looked up between the pages
    assert result.counts["upsert"] == 3 and len(opened) == 1
    assert sum(any("onepagergroup" in g.lower() for g in e.change.state["groups"]) for e in events_of(store)) == 2
    watcher.close()
