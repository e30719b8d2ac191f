"""The stop-recording guard on SCIM deactivations, end to end: users provisioned over real HTTP and
recorded in the Verba simulator, then a burst of deactivations. The default guard (10 users and 10 %
of the source's recorded users within 300 s) lets the first 10 stop and holds the rest for on-call,
who release them with `connector events approve` (the CLI, as a subprocess on the same store).
Runs on both store backends."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.config import Config, DeliveryConfig
from connector.delivery.guard import CAUSE
from connector.delivery.worker import Deliverer, WorkerPool
from connector.mapping import load_mapping
from connector.runtime import open_client, open_configured_store
from connector.sources.scim import create_scim_app
from connector.store import EventState, Store
from tests.plugins.simulator import Simulator, drain
from tests.scim.helpers import CONFIG, client_for
from tests.scim.live import serve

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "mappings" / "default.toml"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USERS = 30
FIRST_ID = 100
POOL = 8  # workers of the concurrent variant (and the Verba client's connection pool)
SOURCE = "entra"  # SCIM events carry the client's name as their source


def login(n: int) -> str:
    return f"user{n:02d}@example.com"


def number(n: int) -> str:
    return f"+1415555{n:04d}"


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:  # overrides the default of tests/plugins/simulator.py
    """A Verba user for each SCIM user, with loginName == userName."""
    return [{"id": FIRST_ID + n, "loginName": login(n), "displayName": f"User {n}", "eid": "0000"}
            for n in range(USERS)]


class Connector:
    """The SCIM endpoint and a deliverer on one store, as `connector run` assembles them."""

    def __init__(self, config: Config, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.store: Store = open_configured_store(config, create=True)
        self.client = open_client(config)
        self.deliverer = Deliverer(self.store, self.client, load_mapping(config.mapping_file), config.delivery)

    def deliver(self, workers: int = 1) -> None:
        """Deliver everything due: one by one, or with a pool of workers as `connector run` does."""
        if workers == 1:
            drain(self.deliverer)
        else:
            pool = WorkerPool(self.deliverer, workers, idle_poll_seconds=0.02)
            pool.start()
            try:
                deadline = time.monotonic() + 30
                while not self._settled():
                    assert time.monotonic() < deadline, self.store.count_by_state()
                    time.sleep(0.05)
            finally:
                pool.stop(10)
        counts = self.store.count_by_state()
        assert counts[EventState.DEAD] == 0, self.store.list_events(state=EventState.DEAD)
        assert counts[EventState.PENDING] == 0 and counts[EventState.IN_FLIGHT] == 0

    def _settled(self) -> bool:
        counts = self.store.count_by_state()
        return counts[EventState.PENDING] == 0 and counts[EventState.IN_FLIGHT] == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "connector.cli", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    def close(self) -> None:
        self.client.close()
        self.store.close()


@pytest.fixture
def connector(make_config: Callable[..., Config], simulator: Simulator, store_url: str,
              tmp_path: Path) -> Iterator[tuple[Connector, httpx.Client]]:
    config = make_config(str(MAPPING), store={"url": store_url}, delivery={"workers": POOL})
    # The delivery section is left at its defaults for the guard.
    assert (config.delivery.guard_max_count, config.delivery.guard_max_share, config.delivery.guard_window_seconds) \
        == (DeliveryConfig.guard_max_count, DeliveryConfig.guard_max_share, DeliveryConfig.guard_window_seconds) \
        == (10, 0.1, 300.0)
    config_path = tmp_path / "connector.toml"  # the same store and target, for the CLI
    config_path.write_text(
        f"[store]\nurl = {json.dumps(store_url)}\n"
        f'[target]\nurl = "{simulator.url}"\nlogin = "connector"\npassword_file = "{tmp_path / "verba-password"}"\n'
        f'[mapping]\nfile = "{MAPPING}"\n')
    with contextlib.ExitStack() as stack:
        opened = Connector(config, config_path)
        stack.callback(opened.close)
        url = stack.enter_context(serve(create_scim_app(opened.store, CONFIG)))
        yield opened, stack.enter_context(client_for(url, SOURCE))


def provision(connector: Connector, entra: httpx.Client, simulator: Simulator) -> list[str]:
    """Create the SCIM users with work numbers, deliver, check every one is recorded; their SCIM ids."""
    ids = []
    for n in range(USERS):
        created = entra.post("/Users", json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": login(n), "active": True,
            "externalId": f"ext-{n}", "phoneNumbers": [{"type": "work", "value": number(n)}]})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    connector.deliver()
    extensions = simulator.extensions()
    for n in range(USERS):
        assert recorded(extensions, n), extensions.get(number(n))
    return ids


def deactivate(entra: httpx.Client, scim_id: str) -> None:
    response = entra.patch(f"/Users/{scim_id}", json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False


def recorded(extensions: dict[str, dict[str, Any]], n: int) -> bool:
    extension = extensions.get(number(n))
    return extension is not None and extension["user_id"] == FIRST_ID + n and extension["voice"] is True


def stopped(extensions: dict[str, dict[str, Any]], n: int) -> bool:
    """Recording off, the extension still linked to its user."""
    extension = extensions[number(n)]
    return extension["user_id"] == FIRST_ID + n and not any(
        extension[key] for key in ("voice", "im", "video", "screenCaptureEnabled"))


@pytest.mark.parametrize("workers", [1, POOL])
def test_a_burst_of_deactivations_is_held_past_the_guard_until_approved(connector, simulator, workers):
    connector, entra = connector
    ids = provision(connector, entra, simulator)
    leavers = list(range(0, USERS, 3)) + list(range(1, USERS, 3))[:10]  # 20 of 30
    assert len(leavers) == 20
    for n in leavers:
        deactivate(entra, ids[n])
    connector.deliver(workers)

    extensions = simulator.extensions()
    stopped_now = [n for n in leavers if stopped(extensions, n)]
    still_recording = [n for n in leavers if recorded(extensions, n)]
    assert len(stopped_now) == 10, (  # exactly guard_max_count were admitted ...
        f"{len(stopped_now)} users stopped before the guard held the rest; it must admit guard_max_count = 10")
    assert len(still_recording) == 10 and sorted(stopped_now + still_recording) == sorted(leavers)  # ... the rest wait
    assert all(recorded(extensions, n) for n in range(USERS) if n not in leavers)  # nobody else was touched

    held = connector.store.list_events(state=EventState.HELD, limit=1000)
    assert sorted(e.change.state["userName"] for e in held) == sorted(login(n) for n in still_recording)
    for event in held:
        assert event.change.kind == "deactivate" and event.change.source == SOURCE
        assert event.last_cause == CAUSE == "stop_recording_guard"
        assert "connector events approve" in event.last_error, event.last_error
        # Every held push would have been the 11th stop of about 30 recorded users (one by one exactly so;
        # with concurrent workers a stop being pushed may be counted twice in the estimate).
        found = re.search(
            rf"source {SOURCE!r} would stop recording (\d+) of about (\d+) recorded users", event.last_error
        )
        assert found is not None, event.last_error
        assert int(found[1]) == 11 and (int(found[2]) == 30 if workers == 1 else 30 <= int(found[2]) <= 30 + workers)
        assert "guard_max_count = 10" in event.last_error and "guard_max_share = 0.1" in event.last_error
        assert f"--source {SOURCE}" in event.last_error
    # No SOAP call turned recording off for a held user.
    held_numbers = {number(n) for n in still_recording}
    assert not [c for c in simulator.calls() if c["extension"] in held_numbers and c["voice"] is False]

    # On-call looks at them as the message says, then approves them.
    listed = connector.cli("events", "list", "--state", "held", "--source", SOURCE, "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["events"]) == 10
    reason = "CHG-4711: the Lisbon office closes, its users leave"
    approved = connector.cli("events", "approve", "--all", "--reason", reason, "--operator", "oncall")
    assert approved.returncode == 0, approved.stderr
    assert "approved 10 held event(s)" in approved.stdout
    assert connector.store.list_events(state=EventState.HELD) == []
    connector.deliver(workers)

    extensions = simulator.extensions()
    assert all(stopped(extensions, n) for n in leavers)  # all 20 stopped, each still linked to its user
    assert all(recorded(extensions, n) for n in range(USERS) if n not in leavers)
    assert {connector.store.get_event(e.id).state for e in held} == {EventState.DONE}
    assert connector.store.count_by_state()[EventState.HELD] == 0
    # Every write to a leaver's extension kept it linked to that leaver.
    for call in simulator.calls():
        if call["operation"] in ("createExtension", "updateExtension"):
            n = int(call["extension"][-4:])
            assert call["user_id"] == FIRST_ID + n, call

    [entry] = [a for a in connector.store.list_audit() if a.action == "approve"]
    assert entry.actor == "oncall" and entry.reason == reason
    assert sorted(entry.event_ids) == sorted(e.id for e in held) and entry.detail["requeued"] == 10
    audit = connector.cli("audit", "--json")
    assert audit.returncode == 0, audit.stderr
    [shown] = [a for a in json.loads(audit.stdout) if a["action"] == "approve"]
    assert shown["actor"] == "oncall" and shown["reason"] == reason and len(shown["event_ids"]) == 10


def test_a_few_deactivations_pass_the_guard_at_once(connector, simulator):
    connector, entra = connector
    ids = provision(connector, entra, simulator)
    leavers = [4, 17, 29]
    for n in leavers:
        deactivate(entra, ids[n])
    assert entra.delete(f"/Users/{ids[9]}").status_code == 204  # a hard delete counts the same
    leavers.append(9)
    connector.deliver()

    extensions = simulator.extensions()
    assert all(stopped(extensions, n) for n in leavers)
    assert all(recorded(extensions, n) for n in range(USERS) if n not in leavers)
    assert connector.store.list_events(state=EventState.HELD) == []
    assert connector.store.list_events(cause=CAUSE) == []
    assert [a for a in connector.store.list_audit() if a.action == "approve"] == []


def deliver_due(deliverer: Deliverer) -> None:
    """Deliver until no user can be claimed (events that wait behind a held one stay pending)."""
    for _ in range(1000):
        if not deliverer.deliver_one("test"):
            return
    raise AssertionError("delivery never ran out of claimable users")


def rename(entra: httpx.Client, scim_id: str, name: str) -> None:
    """A later change of a user (its displayName), accepted while it is still disabled."""
    response = entra.patch(f"/Users/{scim_id}", json={
        "schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": name}]})
    assert response.status_code == 200, response.text


def writes_to(simulator: Simulator, n: int) -> list[dict[str, Any]]:
    return [c for c in simulator.calls() if c["operation"] in ("createExtension", "updateExtension")
            and c["extension"] == number(n)]


def test_a_held_stop_is_not_delivered_by_the_user_s_next_change_but_waits_for_the_operator(connector, simulator):
    """The guard held a leaver's stop. Their next change (a rename, the window since passed) must not push the stop
    unapproved while `status` lists it as waiting for approval: it waits behind the held event, visibly, until
    on-call decides. Discarded: the next change goes through the guard as any push does. Approved: the user's
    newest state is pushed once, the held event and the later one together."""
    connector, entra = connector
    ids = provision(connector, entra, simulator)
    leavers = list(range(20))
    for n in leavers:
        deactivate(entra, ids[n])
    connector.deliver()
    store = connector.store
    held = {e.change.external_id: e for e in store.list_events(state=EventState.HELD, limit=1000)}
    held_users = sorted(n for n in leavers if ids[n] in held)
    assert len(held_users) == 10
    approved_n, discarded_n, waiting_n = held_users[:3]

    later = {}
    for n in (approved_n, discarded_n, waiting_n):
        rename(entra, ids[n], f"User {n} (left)")
        [later[n]] = [e.id for e in store.list_events(user=f"{SOURCE}/{ids[n]}", state=EventState.PENDING)]
    window = connector.config.delivery.guard_window_seconds
    after_window = Deliverer(store, connector.client, load_mapping(connector.config.mapping_file),
                             connector.config.delivery, clock=lambda: time.time() + window + 1)
    calls_before = len(simulator.calls())

    for deliverer in (after_window, connector.deliverer):  # once the window has passed, and within it
        deliver_due(deliverer)
        assert len(simulator.calls()) == calls_before  # nothing was pushed for them: not the stop, not the rename
    extensions = simulator.extensions()
    assert all(recorded(extensions, n) for n in held_users)
    for n in (approved_n, discarded_n, waiting_n):
        event = store.get_event(later[n])
        assert event.state is EventState.PENDING and event.waits_behind == held[ids[n]].id
        assert store.get_event(held[ids[n]].id).state is EventState.HELD  # still listed for approval

    # Visible: the waiting event says what it waits for, and status counts them under the held events.
    shown = connector.cli("events", "show", str(later[waiting_n]))
    assert shown.returncode == 0, shown.stderr
    assert (f"  waits behind held event {held[ids[waiting_n]].id} of this user: approve or discard that one first "
            f"(`connector events show {held[ids[waiting_n]].id}`)") in shown.stdout.splitlines()[0], shown.stdout
    status = connector.cli("status")
    assert "  3 other event(s) of 3 held user(s) wait behind their held event, not pushed until it is approved" in (
        status.stdout), status.stdout
    check = connector.cli("status", "--check", "--max-pending-age", "1")
    assert check.returncode == 3 and "3 other event(s) of 3 held user(s) wait behind" in check.stdout, check.stdout
    assert "the oldest undelivered event" not in check.stdout  # they wait for on-call, not for delivery

    # Discarded: the later change goes through the guard as any push does (the window has passed: it stops).
    discard = connector.cli("events", "discard", str(held[ids[discarded_n]].id), "--reason", "see the rename")
    assert discard.returncode == 0, discard.stderr
    deliver_due(after_window)
    assert store.get_event(later[discarded_n]).state is EventState.DONE
    assert stopped(simulator.extensions(), discarded_n)
    assert store.list_events(state=EventState.PENDING, limit=10) and all(
        e.waits_behind is not None for e in store.list_events(state=EventState.PENDING, limit=10))

    # Approved: the held stop and the later change are claimed together; the newest state is pushed once.
    before = len(writes_to(simulator, approved_n))
    approve = connector.cli("events", "approve", str(held[ids[approved_n]].id), "--reason", "CHG-4711",
                            "--operator", "oncall")
    assert approve.returncode == 0, approve.stderr
    deliver_due(after_window)
    assert {store.get_event(i).state for i in (held[ids[approved_n]].id, later[approved_n])} == {EventState.DONE}
    [write] = writes_to(simulator, approved_n)[before:]
    assert write["voice"] is False and write["user_id"] == FIRST_ID + approved_n
    assert stopped(simulator.extensions(), approved_n)
    # The one left waits still, and nobody else was touched.
    assert store.get_event(later[waiting_n]).state is EventState.PENDING
    assert recorded(simulator.extensions(), waiting_n)
    assert all(recorded(simulator.extensions(), n) for n in range(USERS) if n not in leavers)
