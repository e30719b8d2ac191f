"""Who may write an extension, end to end over a real slapd to the Verba simulator: a desk number
passed from a leaver to a joiner in one poll ends recorded for the joiner (audited hand-over), and
two directory users given one number keep it with the first, never relinking it, until the directory
takes it off the holder: then the waiting user gets it without on-call work."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from connector.config import Config, LdapConfig
from connector.delivery.worker import Deliverer, WorkerPool
from connector.mapping import load_mapping
from connector.runtime import open_client
from connector.sources.ldap.watcher import Watcher
from connector.store import EventState, Store
from tests.ldap.helpers import events_of
from tests.ldap.slapd_server import SlapdServer
from tests.plugins.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "mappings" / "default.toml"  # LDAP telephoneNumber (e164, US); Verba user by uid via listUsers
ROUNDS = 5
WORKERS = 4
VERBA_IDS = {
    **{f"leaver{i}": 200 + i for i in range(ROUNDS)},
    **{f"joiner{i}": 300 + i for i in range(ROUNDS)},
    "ann": 400, "ben": 401, "carl": 402,
}


def desk(i: int) -> str:
    return f"+1212555{i:04d}"


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    """A Verba user for every directory user of this module, loginName == uid."""
    return [{"id": verba_id, "loginName": uid, "displayName": uid.title(), "eid": "0000"}
            for uid, verba_id in VERBA_IDS.items()]


class Site:
    """One LDAP directory watched into the store, delivered to the simulator by several workers."""

    def __init__(self, slapd: SlapdServer, admin: ldap3.Connection, base: str, store: Store, watcher: Watcher,
                 deliverer: Deliverer, simulator: Simulator) -> None:
        self.slapd, self.admin, self.base = slapd, admin, base
        self.store, self.watcher, self.deliverer, self.simulator = store, watcher, deliverer, simulator
        self.dns: dict[str, str] = {}

    def add(self, uid: str, **attributes: Any) -> None:
        self.dns[uid] = self.slapd.add_user(self.admin, self.base, uid, **attributes)

    def modify(self, uid: str, **attributes: Any) -> None:
        self.slapd.modify(self.admin, self.dns[uid], **attributes)

    def delete(self, uid: str) -> None:
        self.slapd.check(self.admin, self.admin.delete(self.dns[uid]))

    def external_id(self, uid: str) -> str:
        return self.slapd.entry_uuid(self.admin, self.dns[uid])

    def poll(self, *, full: bool = False) -> list[Any]:
        """One watcher run; the changes it stored."""
        mark = max((e.id for e in events_of(self.store)), default=0)
        self.watcher.run(full=full)
        return [e.change for e in events_of(self.store, mark)]

    def deliver(self, timeout: float = 30.0) -> None:
        """Run a pool of workers until nothing is pending or in flight (woken users included)."""
        pool = WorkerPool(self.deliverer, WORKERS, idle_poll_seconds=0.01)
        pool.start()
        try:
            deadline = time.monotonic() + timeout
            while True:
                counts = self.store.count_by_state()
                if counts[EventState.PENDING] == 0 and counts[EventState.IN_FLIGHT] == 0:
                    break
                assert time.monotonic() < deadline, f"delivery did not settle: {counts}"
                time.sleep(0.05)
        finally:
            pool.stop(10)
        assert self.store.list_events(state=EventState.DEAD) == []
        assert self.store.list_events(state=EventState.HELD) == []

    def extension(self, number: str) -> dict[str, Any]:
        return self.simulator.extensions()[number]

    def writes(self, number: str) -> list[dict[str, Any]]:
        """createExtension / updateExtension calls of `number` that Verba accepted, in order."""
        return sorted((c for c in self.simulator.calls() if c["extension"] == number and c["status"] == "OK"
                       and c["operation"] in ("createExtension", "updateExtension")), key=lambda c: c["seq"])


@pytest.fixture
def site(slapd: SlapdServer, admin: ldap3.Connection, base: str, store: Store, ldap_config: Callable[..., LdapConfig],
         make_config: Callable[..., Config], simulator: Simulator) -> Iterator[Site]:
    config = make_config(str(MAPPING), delivery={"workers": WORKERS})
    client = open_client(config)
    watcher = Watcher(store, ldap_config(disabled_attribute="description"))
    deliverer = Deliverer(store, client, load_mapping(config.mapping_file), config.delivery)
    yield Site(slapd, admin, base, store, watcher, deliverer, simulator)
    watcher.close()
    client.close()


def recorded_for(extension: dict[str, Any], uid: str) -> bool:
    return extension["user_id"] == VERBA_IDS[uid] and extension["voice"] is True


def test_a_desk_number_passes_from_a_leaver_to_a_joiner_in_one_poll(site: Site):
    for i in range(ROUNDS):
        site.add(f"leaver{i}", telephoneNumber=desk(i))
    site.poll()
    site.deliver()
    for i in range(ROUNDS):
        assert recorded_for(site.extension(desk(i)), f"leaver{i}")

    for i in range(ROUNDS):
        leaver, joiner = f"leaver{i}", f"joiner{i}"
        deleted = i % 2 == 1  # alternate: the leaver disabled, or the leaver's entry deleted
        leaver_id = site.external_id(leaver)
        if deleted:
            site.delete(leaver)
        else:
            site.modify(leaver, description="TRUE")
        site.add(joiner, telephoneNumber=desk(i))
        joiner_id = site.external_id(joiner)
        changes = site.poll(full=deleted)  # one poll sees both (a delete only shows in a full reconciliation)
        assert sorted((c.external_id, c.kind) for c in changes) == sorted(
            [(leaver_id, "delete" if deleted else "deactivate"), (joiner_id, "upsert")]), changes
        site.deliver()

        number = desk(i)
        extension = site.extension(number)
        assert recorded_for(extension, joiner), (i, extension)  # the joiner has it, recorded
        assert extension["recordingMode"] == "FULL"
        # It went over audited, from the leaver's Verba user to the joiner's.
        [hand_over] = [a for a in site.store.list_audit(1000)
                       if a.action == "hand_over" and a.detail["extension"] == number]
        assert hand_over.actor == "connector"
        assert hand_over.detail["from_user_id"] == VERBA_IDS[leaver] and hand_over.detail["from_login"] == leaver
        assert hand_over.detail["user_id"] == VERBA_IDS[joiner]
        assert hand_over.detail["user"] == f"corp/{joiner_id}"
        # In Verba: the leaver's recording was stopped while still linked to the leaver, then the joiner's
        # write relinked it; nothing wrote it for the leaver after that.
        writes = [(c["user_id"], c["voice"]) for c in site.writes(number)]
        joined_at = writes.index((VERBA_IDS[joiner], True))
        assert (VERBA_IDS[leaver], False) in writes[:joined_at], writes
        assert all(user_id == VERBA_IDS[joiner] for user_id, _ in writes[joined_at:]), writes
        # Nothing left for on-call: no open conflict, no clash, nobody else's number touched.
        assert site.store.open_conflicts() == []
        assert site.store.extension_clashes() == []
        for j in range(i + 1, ROUNDS):
            assert recorded_for(site.extension(desk(j)), f"leaver{j}")
    assert [a.action for a in site.store.list_audit(1000)].count("hand_over") == ROUNDS
    assert [a for a in site.store.list_audit(1000) if a.action in ("take_over", "left_alone")] == []


@pytest.mark.parametrize("first", ["leaver", "joiner"])
def test_the_hand_over_ends_with_the_joiner_whichever_push_goes_first(site: Site, first: str):
    """The race of the test above, with each order forced: both users claimed, then pushed one after the other."""
    number = desk(0)
    site.add("leaver0", telephoneNumber=number)
    site.poll()
    site.deliver()
    site.modify("leaver0", description="TRUE")
    site.add("joiner0", telephoneNumber=number)
    leaver_id, joiner_id = site.external_id("leaver0"), site.external_id("joiner0")
    assert len(site.poll()) == 2
    now = time.time()
    claims = {c.external_id: c for c in (site.store.claim(f"worker-{n}", now, 30.0) for n in range(2))}
    assert set(claims) == {leaver_id, joiner_id}
    order = [joiner_id, leaver_id] if first == "joiner" else [leaver_id, joiner_id]

    site.deliverer.deliver(claims[order[0]])
    if first == "joiner":  # the leaver still claims it and holds it: the joiner waits, Verba untouched
        [conflict] = site.store.open_conflicts()
        assert conflict.extension == number and conflict.claimant.external_id == joiner_id
        assert conflict.owner_user_id == VERBA_IDS["leaver0"] and leaver_id in (conflict.owner_claimant or "")
        assert recorded_for(site.extension(number), "leaver0")
    site.deliverer.deliver(claims[order[1]])
    site.deliver()  # the joiner, woken when the leaver released it (if it waited)

    assert recorded_for(site.extension(number), "joiner0")
    assert site.store.open_conflicts() == []
    [hand_over] = [a for a in site.store.list_audit() if a.action == "hand_over"]
    assert hand_over.detail["extension"] == number and hand_over.detail["from_user_id"] == VERBA_IDS["leaver0"]
    assert hand_over.detail["user_id"] == VERBA_IDS["joiner0"]
    writes = [(c["user_id"], c["voice"]) for c in site.writes(number)]
    assert writes[-2:] == [(VERBA_IDS["leaver0"], False), (VERBA_IDS["joiner0"], True)], writes
    woken = [e.change.cause for e in events_of(site.store) if e.change.external_id == joiner_id]
    assert woken == (["ldap:create", "extension_released"] if first == "joiner" else ["ldap:create"])


def test_a_clash_keeps_the_number_with_its_holder_until_the_directory_frees_it(site: Site):
    number = "+12125550777"
    site.add("carl", telephoneNumber="+12125550778")  # a bystander
    site.add("ann", telephoneNumber=number)
    site.add("ben", telephoneNumber=number)  # given the same number at the same time
    site.poll()
    site.deliver()

    extension = site.extension(number)
    holder = next(uid for uid in ("ann", "ben") if extension["user_id"] == VERBA_IDS[uid])
    waiting = "ben" if holder == "ann" else "ann"
    holder_id, waiting_id = site.external_id(holder), site.external_id(waiting)
    assert recorded_for(extension, holder)
    assert recorded_for(site.extension("+12125550778"), "carl")

    # The waiting user's push ended done (the rest of it went through), with an open conflict.
    [waiting_event] = [e for e in events_of(site.store) if e.change.external_id == waiting_id]
    assert waiting_event.state is EventState.DONE
    [conflict] = site.store.open_conflicts()
    assert conflict.extension == number
    assert conflict.claimant.external_id == waiting_id and conflict.claimant.verba_user_id == VERBA_IDS[waiting]
    assert conflict.owner_user_id == VERBA_IDS[holder] and conflict.event_id == waiting_event.id
    assert conflict.owner_claimant is not None and holder_id in conflict.owner_claimant
    assert holder_id in conflict.message and waiting_id in conflict.message and number in conflict.message
    assert "remove the number from one of them" in conflict.message
    assert [e.id for e in site.store.list_events(cause="extension_conflict")] == [waiting_event.id]
    [(clashing, claimants)] = site.store.extension_clashes()
    assert clashing == number and {c.external_id for c in claimants} == {holder_id, waiting_id}
    # Never relinked: every write of the number carried the holder's Verba user.
    writes = site.writes(number)
    assert writes and all(c["user_id"] == VERBA_IDS[holder] for c in writes), writes
    assert [a for a in site.store.list_audit(1000) if a.action in ("hand_over", "take_over")] == []

    # Polling and delivering again changes nothing: the holder keeps it.
    assert site.poll() == []
    assert recorded_for(site.extension(number), holder)

    # The directory takes the number off the holder: the waiting user gets it, with no one replaying anything.
    site.modify(holder, telephoneNumber=[])
    [change] = site.poll()
    assert change.external_id == holder_id and change.kind == "upsert"
    site.deliver()

    extension = site.extension(number)
    assert recorded_for(extension, waiting), extension
    assert site.store.open_conflicts() == []
    assert site.store.extension_clashes() == []
    assert site.store.list_events(cause="extension_conflict") == []
    woken = [e for e in events_of(site.store) if e.change.external_id == waiting_id and e.id > waiting_event.id]
    assert [e.change.cause for e in woken] == ["extension_released"]
    assert woken[0].state is EventState.DONE
    [hand_over] = [a for a in site.store.list_audit(1000) if a.action == "hand_over"]
    assert hand_over.detail["extension"] == number and hand_over.detail["from_user_id"] == VERBA_IDS[holder]
    assert hand_over.detail["user_id"] == VERBA_IDS[waiting]
    writes = [(c["user_id"], c["voice"]) for c in site.writes(number)]
    assert writes[-2:] == [(VERBA_IDS[holder], False), (VERBA_IDS[waiting], True)], writes
    assert recorded_for(site.extension("+12125550778"), "carl")
