"""The mass-change guard, and a watcher killed mid-poll: restart resumes from the watermark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.config import load_config, parse_config
from connector.sources.ldap.guard import judge
from connector.sources.ldap.watcher import Watcher
from connector.store import EventState
from tests.ldap.helpers import config_file, events_of


def test_the_guard_holds_mass_deletes_and_approve_releases_them(slapd, admin, base, store, tmp_path, caplog):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(10)]
    config = config_file(tmp_path, slapd.url, base, page_size=50, guard_max_count=3, guard_max_share=0.5)
    watcher = Watcher(store, load_config(str(config)).ldap["corp"])
    watcher.run()
    for dn in dns[:4]:
        slapd.check(admin, admin.delete(dn))
    result = watcher.run(full=True)
    assert result.counts["delete"] == 4 and result.counts["held"] == 4
    assert "mass-change guard tripped: 4 of 10 known users (40%)" in caplog.text
    assert "connector events approve --source corp --reason" in result.guard_message
    assert "--force" not in result.guard_message  # a forced sync releases nothing already held
    held = [e.id for e in store.list_events(state=EventState.HELD)]
    assert len(held) == 4 and {store.get_event(i).change.kind for i in held} == {"delete"}
    # each says why, where on-call looks (events list, status): the guard's message
    assert {store.get_event(i).last_error for i in held} == {result.guard_message}
    listed = cli(config, "events", "list", "--state", "held")
    assert "ldap_mass_change  source corp: ldap corp: mass-change guard tripped: 4 of 10" in listed.stdout, listed
    shown = cli(config, "events", "show", str(held[0])).stdout.splitlines()[0]
    assert "held       delete" in shown and shown.endswith(f"  ldap_mass_change: {result.guard_message}"), shown
    assert store.ldap_watermark("corp").known == 6  # the cursor and the entries moved on with the held events

    # A later change of a held user waits behind the held delete instead of overtaking it.
    slapd.add_user(admin, base, "user0")  # a new entry (new entryUUID) is another user: not held
    watcher.run()
    assert events_of(store)[-1].state is EventState.PENDING

    approved = cli(config, "events", "approve", "--all", "--reason", "CHG-1234: the old OU is retired",
                   "--operator", "oncall")
    assert approved.returncode == 0, approved.stderr
    assert "approved 4 held event(s)" in approved.stdout
    assert store.list_events(state=EventState.HELD) == []
    assert {store.get_event(i).state for i in held} == {EventState.PENDING}
    audit = cli(config, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    [entry] = [a for a in json.loads(audit.stdout) if a["action"] == "approve"]
    assert entry["actor"] == "oncall" and entry["reason"] == "CHG-1234: the old OU is retired"
    assert sorted(entry["event_ids"]) == sorted(held) and entry["detail"]["requeued"] == 4
    watcher.close()


def test_a_sync_the_guard_trips_exits_3_and_says_so_once(slapd, admin, base, tmp_path):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(10)]
    config = config_file(tmp_path, slapd.url, base, page_size=50, guard_max_count=3, guard_max_share=0.5)
    first = cli(config, "ldap", "sync", "corp")
    assert first.returncode == 0 and "10 upserts" in first.stdout and first.stderr == "", first
    for dn in dns[:4]:
        slapd.check(admin, admin.delete(dn))
    tripped = cli(config, "ldap", "sync", "corp", "--full")
    assert tripped.returncode == 3, tripped
    assert "4 deletes (4 held)" in tripped.stdout
    assert tripped.stderr.count("mass-change guard tripped") == 1, tripped.stderr
    assert "connector events approve" in tripped.stderr and "Traceback" not in tripped.stderr
    assert "--force" in cli(config, "ldap", "sync", "--help").stdout


@pytest.mark.parametrize("drops, known, min_count, tripped", [
    (1, 8, 10, False),  # one leaver of 8 is 12 %, but below guard_min_count
    (8, 8, 10, False),  # a directory smaller than guard_min_count relies on guard_max_count
    (8, 8, 0, True),
    (9, 50, 10, False),
    (10, 50, 10, True),  # 20 % and guard_min_count reached
    (101, 5000, 10, True),  # 2 %, but above guard_max_count
    (0, 0, 0, False),
])
def test_the_share_counts_from_guard_min_count_drops_on(drops, known, min_count, tripped, tmp_path):
    section = {"url": "ldap://127.0.0.1", "base": "dc=x", "guard_min_count": min_count}
    config = parse_config({"ldap": {"corp": section}}, str(tmp_path / "c.toml")).ldap["corp"]
    assert config.guard_max_count == 100 and config.guard_max_share == 0.1
    assert judge(config, drops, known).tripped is tripped


def test_one_leaver_in_a_small_directory_passes_the_default_guard(slapd, admin, base, ldap_config, store):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(8)]
    watcher = Watcher(store, ldap_config(guard_max_share=0.1))
    watcher.run()
    slapd.check(admin, admin.delete(dns[0]))
    result = watcher.run(full=True)
    assert result.counts["delete"] == 1 and result.counts["held"] == 0 and result.guard_message is None
    assert events_of(store)[-1].change.kind == "delete" and events_of(store)[-1].state is EventState.PENDING
    watcher.close()


def test_a_small_change_passes_the_guard_and_force_overrides_it(slapd, admin, base, ldap_config, store):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(5)]
    watcher = Watcher(store, ldap_config(guard_max_count=1, guard_max_share=0.5))
    watcher.run()
    slapd.check(admin, admin.delete(dns[0]))
    assert watcher.run(full=True).counts["held"] == 0  # 1 of 5 is within both limits
    for dn in dns[1:4]:
        slapd.check(admin, admin.delete(dn))
    result = watcher.run(full=True, force=True)
    assert result.counts["delete"] == 3 and result.counts["held"] == 0 and result.guard_message is None
    assert store.list_events(state=EventState.HELD) == []
    watcher.close()


def test_disables_count_for_the_guard_but_only_once(slapd, admin, base, ldap_config, store):
    dns = [slapd.add_user(admin, base, f"user{n}") for n in range(4)]
    watcher = Watcher(store, ldap_config(disabled_attribute="description", guard_max_count=1, guard_max_share=1.0))
    watcher.run()
    for dn in dns[:2]:
        slapd.modify(admin, dn, description="TRUE")
    assert watcher.run().counts["held"] == 2
    slapd.modify(admin, dns[0], telephoneNumber="+14155550100")  # already inactive: no new drop
    assert watcher.run().counts["held"] == 0  # already inactive: not a new drop for the guard ...
    later, held = events_of(store)[-1], store.list_events(state=EventState.HELD)
    assert later.state is EventState.PENDING  # ... but it waits behind its user's held event: never claimed before it
    assert store.get_event(later.id).waits_behind in {e.id for e in held}
    watcher.close()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def sync(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "connector.cli", "ldap", "sync", "corp", "--config", str(config),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_watcher_killed_mid_poll_resumes_from_the_watermark(slapd, admin, base, tmp_path, store):
    config = config_file(tmp_path, slapd.url, base, page_size=50, guard_max_share=1.0)
    dns = [slapd.add_user(admin, base, f"user{n:04d}", telephoneNumber=f"+1415555{n:04d}") for n in range(600)]
    with sync(config) as first:  # leaving the block closes its pipes
        assert first.wait(60) == 0, first.stderr.read()

    for dn in dns[::3]:
        slapd.modify(admin, dn, telephoneNumber="+14155559999")
    for n in range(600, 650):
        slapd.add_user(admin, base, f"user{n:04d}")
    killed = 0
    for delay in (0.05, 0.2, 0.4):  # kill the full reconciliation at different points of its reading
        with sync(config, "--full") as victim:
            time.sleep(delay)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            killed += victim.returncode == -signal.SIGKILL
    assert killed >= 1
    with sync(config) as last:
        assert last.wait(60) == 0, last.stderr.read()

    events = store.list_events(limit=100_000)
    latest = {}
    for event in sorted(events, key=lambda e: e.id):
        latest[event.change.state["userName"]] = event.change
    assert len(latest) == 650  # every user, nothing missed
    assert all(latest[f"user{n:04d}"].state["phoneNumbers"][0]["value"] == "+14155559999" for n in range(0, 600, 3))
    per_user = {}
    for event in events:
        per_user[event.change.external_id] = per_user.get(event.change.external_id, 0) + 1
    assert max(per_user.values()) <= 2  # a killed run stored whole pages, each with its entries: nothing twice
    assert store.ldap_watermark("corp").known == 650
