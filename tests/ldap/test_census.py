"""The watcher never loses sight of the users in scope, on a real slapd, end to end to the Verba simulator, on SQLite
and PostgreSQL.

Before, the watcher forgot the users of the deletes the mass-change guard held, and discarding those deletes after a
restore left the users unknown: a later leaver among them was never stopped, not even by a full run, which compared
only the users it knew. A subtree moved back into the base was never read (OpenLDAP writes no stamp to the users under
a moved entry), and a subtree deleted among the other users was found a scope-check batch at a time, each batch's few
below the guard's limits. Now a census of the ids in scope finds them all at once: when a container changed, when the
scope check finds a user gone, and after an operator discarded deletes; and a full run stops the users the store
still records that are not in scope.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from connector.config import Config
from connector.sources.ldap.dialects import generalized
from connector.sources.ldap.watcher import Watcher
from connector.store import EventState, Store
from tests.ldap.conftest import Pipeline
from tests.ldap.helpers import events_of, slapd_section
from tests.ldap.slapd_server import RELAX_RULES
from tests.plugins.simulator import Simulator
from tests.plugins.stores import Opener

pytestmark = pytest.mark.slow
USERS = 12  # more than the guard's guard_max_count below lets go at once
# What slapd computes or keeps of its own on an entry, which an add cannot give (a backup restored keeps the rest:
# entryUUID, the stamps).
COMPUTED = {"entrydn", "subschemasubentry", "hassubordinates", "structuralobjectclass", "entrycsn", "memberof"}


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 100 + n, "loginName": f"u{n}", "displayName": f"U{n}", "eid": "0000"} for n in range(USERS)]


@pytest.fixture
def site(slapd: Any, base: str, tmp_path: Path, make_config: Callable[..., Config], simulator: Simulator,
         store_url: str) -> Iterator[Callable[..., Pipeline]]:
    """site(**keys): ou=people of the test's subtree watched into the store and pushed to the simulator with the
    default mapping (every user's telephoneNumber recorded, the Verba user found by uid); keys override the
    [ldap.corp] section's."""
    opened: list[Pipeline] = []

    def make(**keys: Any) -> Pipeline:
        section = slapd_section(tmp_path, slapd.url, f"ou=people,{base}", dialect="openldap", overlap_seconds=5,
                                **keys)
        opened.append(Pipeline(make_config("mappings/default.toml", ldap={"corp": section}, store={"url": store_url}),
                               simulator))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def phone(n: int) -> str:
    return f"+1415555{n:04d}"


def add_users(slapd: Any, admin: ldap3.Connection, parent: str, numbers: range) -> list[str]:
    dns = [f"uid=u{n},{parent}" for n in numbers]
    for n, dn in zip(numbers, dns, strict=True):
        slapd.check(admin, admin.add(dn, ["inetOrgPerson"], {"cn": f"U{n}", "sn": "U", "uid": f"u{n}",
                                                            "telephoneNumber": phone(n)}))
    return dns


def subtree(admin: ldap3.Connection, top: str) -> list[str]:
    """The DNs of `top` and every entry below it."""
    admin.search(top, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
    return [str(item["dn"]) for item in admin.response if item.get("type") == "searchResEntry"]


def backdate(slapd: Any, admin: ldap3.Connection, dns: list[str]) -> None:
    """Stamp these entries an hour ago (Relax Rules), as entries written long before the polls: what a poll then
    sees of them comes only from what it looks for besides the changed users."""
    stamp = generalized(datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
    for dn in dns:
        slapd.relax(admin, dn, modifyTimestamp=stamp)


def backup(admin: ldap3.Connection, dns: list[str]) -> list[tuple[str, dict[str, list[bytes]]]]:
    """These entries as slapcat writes them: every attribute, operational ones too."""
    entries = []
    for dn in dns:
        admin.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["*", "+"])
        raw = admin.response[0]["raw_attributes"]
        entries.append((dn, {name: values for name, values in raw.items() if name.lower() not in COMPUTED}))
    return entries


def restore(slapd: Any, admin: ldap3.Connection, entries: list[tuple[str, dict[str, list[bytes]]]]) -> None:
    """Add the entries back as slapadd restores a backup: with their entryUUID and their old stamps."""
    for dn, attributes in entries:
        slapd.check(admin, admin.add(dn, attributes=attributes, controls=[(RELAX_RULES, True, None)]))


def recorded(site: Pipeline, n: int) -> bool:
    return bool(site.extension(phone(n))["voice"])


def held(store: Store) -> list[int]:
    return [e.id for e in store.list_events(state=EventState.HELD, limit=100_000)]


# --- 1. the users of discarded deletes ---------------------------------------------------------------------------
def deleted_held_and_restored(slapd: Any, admin: ldap3.Connection, base: str, site: Pipeline) -> list[str]:
    """Every user of ou=people recorded, then deleted (the guard holds the deletes: recording goes on) and restored
    from a backup; their DNs."""
    dns = add_users(slapd, admin, f"ou=people,{base}", range(USERS))
    backdate(slapd, admin, subtree(admin, base))  # the backup keeps these old stamps: no poll's window holds them
    site.poll()
    assert all(recorded(site, n) for n in range(USERS))
    saved = backup(admin, dns)
    for dn in dns:
        slapd.check(admin, admin.delete(dn))
    site.poll()  # the scope check finds them gone, and the census every one of them: all held
    assert site.last is not None and site.last.counts["held"] == USERS, site.last
    assert all(recorded(site, n) for n in range(USERS))
    restore(slapd, admin, saved)
    return dns


def test_discarded_deletes_of_restored_users_are_known_again_at_the_next_poll(slapd, admin, base, site):
    corp = site(guard_max_count=3, guard_max_share=1.0)
    dns = deleted_held_and_restored(slapd, admin, base, corp)
    assert corp.store.discard(held(corp.store), "restored from last night's backup") == USERS
    relearned = corp.poll()  # the census the discard asked for reads them: their state as it is now, pushed again
    assert sorted(c.state["userName"] for c in relearned if c.kind == "upsert") == sorted(f"u{n}" for n in range(USERS))
    assert corp.store.ldap_watermark("corp").known == USERS  # `connector ldap status`: known users 12

    slapd.check(admin, admin.delete(dns[2]))  # a real leaver among them
    [stop] = corp.poll()
    assert (stop.kind, stop.cause, stop.state["userName"]) == ("delete", "ldap:vanished", "u2")
    assert not recorded(corp, 2) and all(recorded(corp, n) for n in range(USERS) if n != 2)


def test_a_full_run_stops_a_user_still_recorded_that_is_known_no_longer(slapd, admin, base, site):
    corp = site(guard_max_count=3, guard_max_share=1.0)
    dns = deleted_held_and_restored(slapd, admin, base, corp)
    slapd.check(admin, admin.delete(dns[2]))  # gone before the discard: the census cannot know u2 again
    corp.store.discard(held(corp.store), "restored from last night's backup")
    relearned = corp.poll()  # the 11 others are known again; u2 is neither in scope nor known
    assert sorted(c.state["userName"] for c in relearned if c.kind == "upsert") == sorted(
        f"u{n}" for n in range(USERS) if n != 2)
    assert corp.store.ldap_watermark("corp").known == USERS - 1 and recorded(corp, 2)

    preview = corp.watcher.preview()  # `connector ldap sync corp --dry-run` foretells it
    assert [(c.kind, c.state["userName"]) for c in preview.users if c.kind == "delete"] == [("delete", "u2")]
    [stop] = corp.poll(full=True)
    assert (stop.kind, stop.cause, stop.state["userName"]) == ("delete", "ldap:vanished", "u2")
    assert not recorded(corp, 2) and all(recorded(corp, n) for n in range(USERS) if n != 2)
    assert corp.poll(full=True) == []  # stopped once: the user's current event is the delete


# --- 2. a subtree moved out of the base and back ----------------------------------------------------------------
def test_a_subtree_moved_back_into_the_base_is_recorded_again_at_the_next_poll(slapd, admin, base, site):
    sales, leavers = f"ou=sales,ou=people,{base}", f"ou=leavers,{base}"
    for dn in (sales, leavers):
        slapd.check(admin, admin.add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]}))
    add_users(slapd, admin, sales, range(5))
    backdate(slapd, admin, subtree(admin, base))  # a move writes no stamp to the users below the moved entry
    corp = site(full_sync_cron="")
    corp.poll()
    assert all(recorded(corp, n) for n in range(5))

    slapd.check(admin, admin.modify_dn(sales, "ou=sales", new_superior=leavers))
    gone = corp.poll()
    assert sorted((c.kind, c.state["userName"]) for c in gone) == [("delete", f"u{n}") for n in range(5)]
    assert not any(recorded(corp, n) for n in range(5))

    slapd.check(admin, admin.modify_dn(f"ou=sales,{leavers}", "ou=sales", new_superior=f"ou=people,{base}"))
    back = corp.poll()
    assert sorted((c.kind, c.state["userName"]) for c in back) == [("upsert", f"u{n}") for n in range(5)]
    assert {c.state["attributes"]["dn"] for c in back} == {f"uid=u{n},{sales}" for n in range(5)}
    assert all(recorded(corp, n) for n in range(5))
    assert corp.store.ldap_watermark("corp").known == 5


# --- 3. a subtree deleted among the other users, found by the scope check ---------------------------------------
def test_a_subtree_deleted_among_other_users_is_held_whole(slapd, admin, base, ldap_config, store_opener: Opener):
    """120 users, every tenth in ou=east (so spread over the ids), checked 20 a poll: each scope-check batch finds 2
    of east's 12 gone, below any limit; the whole 12 are more than guard_max_count."""
    people = f"ou=people,{base}"
    east, west = f"ou=east,{people}", f"ou=west,{people}"
    for dn in (east, west):
        slapd.check(admin, admin.add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]}))
    for n in range(120):
        add_users(slapd, admin, east if n % 10 == 0 else west, range(n, n + 1))
    backdate(slapd, admin, subtree(admin, base))
    store = store_opener()
    watcher = Watcher(store, ldap_config(base=people, scope_check_per_poll=20, guard_max_count=10,
                                         guard_max_share=0.5))
    watcher.run()
    watcher.run()  # past the census of the containers other tests just made in the naming context
    mark = events_of(store)[-1].id

    for dn in reversed(subtree(admin, east)):  # the users, then the OU: no tombstone, no stamp
        slapd.check(admin, admin.delete(dn))
    results = [watcher.run() for _ in range(6)]  # the scope check goes round the 120 known users
    assert [r.counts["delete"] for r in results] == [12, 0, 0, 0, 0, 0]
    assert "12 of 120 known users (10%)" in str(results[0].guard_message)
    stops = events_of(store, mark)
    assert len(stops) == 12 and {(e.change.kind, e.state) for e in stops} == {("delete", EventState.HELD)}
    assert {e.change.state["userName"] for e in stops} == {f"u{n}" for n in range(0, 120, 10)}
    watcher.close()
