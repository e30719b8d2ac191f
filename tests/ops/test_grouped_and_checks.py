"""At 3,000 users: dead letters grouped by cause everywhere, the summaries honour the filters, and the exit
codes on-call scripts read (`status --check`, `events replay --wait`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from connector.config import load_config
from connector.events import UserChange
from connector.mapping import load_mapping
from connector.ops.drift import KINDS
from connector.ops.metrics import StoreCollector
from connector.ops.report import when
from connector.runtime import open_configured_store
from connector.store import DriftRun, EventState, Instance, LdapPoll, Store, TargetProbe, open_store
from tests.ops.helpers import run, unreachable_target, write_config
from tests.ops.test_replay import A, _record, alice, make_dead_letters
from tests.plugins.simulator import drain, free_port

USERS = 3000


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Store]]:
    """A store with 3,000 `unresolved_user` dead letters from LDAP (each message names its user), two mapping
    dead letters from SCIM, and a held event; the target is down (nothing answers at its port). Tests only read it."""
    config = write_config(tmp_path_factory.mktemp("crowded"), unreachable_target())
    store = open_store(load_config(config).store.url, synchronous="NORMAL")  # 3,000 commits: no fsync each
    store.prepare()
    store.enqueue([UserChange("corp", f"u{i}", "upsert", {"userName": f"user{i}@example.com"})
                   for i in range(USERS)])
    store.enqueue([UserChange("entra", f"e{i}", "upsert", {"userName": f"e{i}@example.com"}) for i in range(2)])
    while (claim := store.claim("test", time.time() + 60, 60)) is not None:
        if claim.source == "corp":
            store.dead_letter(claim, "unresolved_user", f"no Verba user has loginName 'user{claim.external_id[1:]}"
                                                        "@example.com'; create the user in Verba, then replay")
        else:
            store.dead_letter(claim, "mapping", f"{claim.external_id}: '020 7946 0018' is not a valid phone number")
    store.enqueue([UserChange("corp", "leaver", "delete", {"userName": "leaver@example.com"})], state=EventState.HELD)
    yield config, store
    store.close()


def test_status_prints_one_line_per_cause_however_many_users(crowded: tuple[Path, Store]) -> None:
    config, _ = crowded
    result = run(config, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) < 25, result.output
    [unresolved] = [line for line in lines if "unresolved_user" in line]
    assert unresolved.split()[0] == str(USERS) and "no Verba user has loginName" in unresolved
    [mapping] = [line for line in lines if " mapping: " in line]
    assert mapping.split()[0] == "2"
    assert any("ldap_mass_change  source corp" in line for line in lines)

    shown = json.loads(run(config, "status", "--json").output)
    assert [(g["cause"], g["count"]) for g in shown["dead_letters_by_cause"]] == [("unresolved_user", USERS),
                                                                                 ("mapping", 2)]
    assert shown["dead_letters_by_cause"][0]["error"].startswith("no Verba user has loginName 'user2999@")
    assert [(g["cause"], g["source"], g["count"]) for g in shown["held_by_cause"]] == [("ldap_mass_change", "corp", 1)]


def test_the_metric_has_one_series_per_cause(crowded: tuple[Path, Store]) -> None:
    _, store = crowded
    [dead] = [m for m in StoreCollector(store).collect() if m.name == "connector_dead_letters"]
    assert sorted((s.labels["cause"], s.value) for s in dead.samples) == [("mapping", 2), ("unresolved_user", USERS)]


def test_events_list_summarizes_only_what_its_filters_select(crowded: tuple[Path, Store]) -> None:
    config, _ = crowded
    everything = run(config, "events", "list", "--limit", "5")
    assert everything.exit_code == 0, everything.output
    assert f"dead={USERS + 2}" in everything.output and "held=1" in everything.output
    assert "unresolved_user" in everything.output and "ldap_mass_change" in everything.output
    assert len(everything.output.splitlines()) < 20

    held = run(config, "events", "list", "--state", "held").output
    assert "dead letters" not in held and "ldap_mass_change  source corp" in held and "leaver" in held

    by_cause = run(config, "events", "list", "--cause", "mapping").output
    assert " mapping: " in by_cause and "unresolved_user" not in by_cause and "held for" not in by_cause
    assert "dead=2 " in by_cause and "(of the events these filters select)" in by_cause

    by_source = json.loads(run(config, "events", "list", "--source", "entra", "--json").output)
    assert [(g["cause"], g["count"]) for g in by_source["dead_letters_by_cause"]] == [("mapping", 2)]
    assert by_source["held_by_cause"] == [] and by_source["counts"]["dead"] == 2

    mass = run(config, "events", "list", "--cause", "ldap_mass_change").output
    assert "1 event(s)" in mass and "corp/leaver" in mass

    misspelt = run(config, "events", "list", "--cause", "unresolved").output
    assert misspelt.splitlines()[-1] == ("no events match; the causes of dead and held events now: ldap_mass_change, "
                                         "mapping, unresolved_user (and extension_conflict for the events of open "
                                         "conflicts)"), misspelt


def test_status_check_exits_3_with_dead_letters_or_an_old_pending_event_else_0(tmp_path: Path,
                                                                               crowded: tuple[Path, Store]) -> None:
    config, _ = crowded
    failed = run(config, "status", "--check")
    assert failed.exit_code == 3, failed.output
    dead, held, stopped = failed.output.splitlines()  # one line per reason, however many users
    assert dead.startswith("CHECK FAILED: 3002 dead letter(s) (unresolved_user 3000, mapping 2)")
    assert held.startswith("CHECK FAILED: 1 event(s) held by a guard (ldap_mass_change 1 (source corp)): review")
    assert stopped.startswith("CHECK FAILED: no connector runs on the store sqlite:///"), stopped
    assert stopped.endswith(": nothing delivers events or polls the directories; start it (`systemctl start "
                            "connector@NAME`, or `connector run --config <your config>`)")

    (tmp_path / "clean").mkdir()
    clean = write_config(tmp_path / "clean", unreachable_target())
    missing = run(clean, "status", "--check")  # no store there yet: not a healthy empty one
    assert missing.exit_code == 1 and "there is no store at" in missing.output, missing.output
    with open_configured_store(load_config(clean), create=True) as store:
        idle = run(clean, "status", "--check")  # an empty store, but nothing runs on it
        assert idle.exit_code == 3 and idle.output.startswith("CHECK FAILED: no connector runs"), idle.output
        store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)
        ok = run(clean, "status", "--check")
        assert ok.exit_code == 0, ok.output
        assert ok.output.startswith("check ok: no dead letters; oldest undelivered none"), ok.output
        store.enqueue([UserChange("hr", "late", "upsert", {"userName": "late@example.com"},
                                  accepted_at=time.time() - 1200)])
    stale = run(clean, "status", "--check")
    assert stale.exit_code == 3
    assert "the oldest undelivered event (pending or in flight) is 20.0m old (more than 15.0m)" in stale.output
    assert run(clean, "status", "--check", "--max-pending-age", "3600").exit_code == 0
    verdict = json.loads(run(clean, "status", "--check", "--max-pending-age", "60", "--json").output)
    assert verdict["ok"] is False and len(verdict["problems"]) == 1
    broken = run(tmp_path / "nowhere.toml", "status", "--check")
    assert broken.exit_code == 1 and "no such file" in broken.output


def test_an_instance_started_before_the_mapping_changed_is_told_to_restart(tmp_path: Path) -> None:
    """`connector run` reads the mapping once: an edit reaches it only by a restart, while drift and the previews
    read the file as it is now (a repair then pushed the old mapping again)."""
    mapping = tmp_path / "m.toml"
    mapping.write_text(Path("mappings/default.toml").read_text())
    os.utime(mapping, (time.time() - 3600, time.time() - 3600))  # written before the instance started
    config = write_config(tmp_path, unreachable_target(),
                          extra=f'[mapping]\nfile = "{mapping}"\n')
    with open_configured_store(load_config(config, secrets=()), create=True) as store:
        store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)
        assert run(config, "status", "--check").exit_code == 0
        mapping.write_text(mapping.read_text() + "\n# a rule edited\n")
        edited = run(config, "status", "--check")
        shown = run(config, "status").output
    assert edited.exit_code == 3 and edited.output.startswith("CHECK FAILED: instance a started at "), edited.output
    assert f"with another mapping than {mapping} holds now: it still maps users" in edited.output
    assert "restart every instance to use it" in edited.output
    assert "WARNING: instance a started at " in shown


def test_the_mapping_an_instance_runs_with_is_told_by_its_text_not_the_files_time(tmp_path: Path) -> None:
    """A mapping copied in with its old time kept (cp -p, rsync -a, tar) went unnoticed, and a touch that changed
    nothing paged someone: an instance records the digest of the text it loaded."""
    mapping = tmp_path / "m.toml"
    mapping.write_text(Path("mappings/default.toml").read_text())
    config = write_config(tmp_path, unreachable_target(), extra=f'[mapping]\nfile = "{mapping}"\n')
    loaded = load_mapping(mapping)
    with open_configured_store(load_config(config, secrets=()), create=True) as store:
        store.register_instance(Instance("a", "run-a", "vm1", 101, mapping_digest=loaded.digest), 15,
                                lambda previous: True)
        mapping.touch()  # a newer time, the same text
        assert run(config, "status", "--check").exit_code == 0
        ten_minutes_ago = time.time() - 600  # before the instance started
        mapping.write_text(mapping.read_text().replace('recordingMode = "FULL"', 'recordingMode = "ON_DEMAND"'))
        os.utime(mapping, (ten_minutes_ago, ten_minutes_ago))  # copied in with its old time
        edited = run(config, "status", "--check")
        [started] = [i.started_at for i in store.live_instances()[1]]
    assert load_mapping(mapping).digest != loaded.digest
    assert edited.exit_code == 3, edited.output
    assert f"instance a started at {when(started)} with another mapping than {mapping} holds now" in edited.output


def test_status_check_exits_3_when_verba_an_instance_or_a_directory_is_down(tmp_path: Path) -> None:
    url = unreachable_target()
    directories = "".join(f'[ldap.{name}]\nurl = "ldap://127.0.0.1:{free_port()}"\nbase = "dc={name}"\n'
                          'bind_dn = "cn=reader"\npassword_env = "CONNECTOR_TEST_UNSET_LDAP_PASSWORD"\n'
                          for name in ("corp", "hr"))
    config = write_config(tmp_path, url, extra=directories)
    with open_configured_store(load_config(config, secrets=()), create=True) as store:
        store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)
        store.register_instance(Instance("b", "run-b", "vm2", 202), 15, lambda previous: True)
        assert run(config, "status", "--check").exit_code == 0  # directories never polled: a new connector
        store.note_target_probe(TargetProbe("a", url, time.time() - 3, 0.1, "transport", "could not reach Verba"))
        probed = run(config, "status", "--check")
        assert probed.exit_code == 3 and probed.output.startswith(
            f"CHECK FAILED: target {url} did not answer the last probe, "), probed.output
        assert "by instance a: transport: could not reach Verba" in probed.output

        store.note_breaker("b", time.time() - 60, error="requestToken could not reach Verba")
        down = run(config, "status", "--check").output.splitlines()
        assert len(down) == 1 and down[0].startswith(f"CHECK FAILED: target {url} DOWN: circuit breaker open since ")

        with store._write() as conn:  # instance a crashed a minute ago: its heartbeats stopped
            conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 60 WHERE name = 'a'")
        store.note_poll_failure("corp", "directory corp: cannot connect (Connection refused)", time.time())
        store.commit_poll(LdapPoll("hr", 0, {}, time.time() - 7200))  # read two hours ago, never since
        verdict = run(config, "status", "--check")
    assert verdict.exit_code == 3
    assert verdict.output.splitlines()[0].startswith(
        "CHECK FAILED: connector instance a (vm1, pid 101) has not been heard from for 1.0m (more than 15s): is it "
        "running?"), verdict.output
    assert "CHECK FAILED: directory corp: the last poll failed, at " in verdict.output
    assert ": directory corp: cannot connect (Connection refused)" in verdict.output
    assert ("CHECK FAILED: directory hr: no poll has read it for 2.0h (more than 15.0m): is a connector with "
            "[ldap.hr] in its config running?") in verdict.output
    assert len(json.loads(run(config, "status", "--check", "--json").output)["problems"]) == 4


def test_status_check_exits_3_when_the_last_drift_check_found_drift_it_did_not_repair(config: Path,
                                                                                     store: Store) -> None:
    """Every kind counts: each means Verba does not record someone as the directory wants (an extra records
    someone nobody wants recorded). A check that repaired queued ordinary events: their failures are dead letters."""
    none = dict.fromkeys(KINDS, 0)
    runs = iter(range(100))
    at = time.time() - 60

    def checked(found: dict[str, int], repaired: int | None = None, trigger: str = "schedule") -> Result:
        started = at - 50 + next(runs)  # a run is known by when it started
        store.add_drift_run(DriftRun(started, at, 3, 4, {**none, **found}, 0, repaired, trigger))
        return run(config, "status", "--check")

    store.register_instance(Instance("a", "run-a", "vm1", 101), 15, lambda previous: True)
    assert checked({}).exit_code == 0
    for kind in KINDS:
        assert checked({kind: 1}).exit_code == 3, kind
    failed = checked({"missing": 1, "extra": 2}, trigger="cli")
    verdict = json.loads(run(config, "status", "--check", "--json").output)
    repaired = checked({"missing": 1, "extra": 2}, repaired=2)
    problem = (f"the last drift check (at {when(at)}, cli) found drift it did not repair (missing 1, extra 2): Verba "
               "may not record someone as the directory wants; see which with `connector drift`, then queue the "
               "fixes with `connector drift --repair --reason REASON` (the running connector pushes them)")
    assert failed.exit_code == 3 and failed.output.splitlines() == [f"CHECK FAILED: {problem}"], failed.output
    assert verdict["ok"] is False and verdict["problems"] == [problem]
    assert repaired.exit_code == 0, repaired.output


def replay(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "connector.cli", "events", "replay", "--config", str(config),
                             "--reason", "Verba is back", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_while_delivering(deliverer, process: subprocess.Popen[str]) -> tuple[str, str]:
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        deliverer.deliver_one("test") or time.sleep(0.05)
    out, err = process.communicate(timeout=30)
    assert "Traceback" not in err, err
    return out, err


def test_replay_wait_exits_0_when_all_are_delivered_and_3_when_one_ends_dead_or_is_still_pending(
        deliverer, simulator, config_path):
    make_dead_letters(deliverer, simulator)  # alice and bob: fixed in Verba since; carol: still no Verba user
    fixed = [str(e.id) for e in deliverer.store.list_events(state=EventState.DEAD, cause="error_illegal_argument")]
    delivered = replay(config_path, *fixed, "--reason", "fixed", "--wait", "30")
    out, err = wait_while_delivering(deliverer, delivered)
    assert delivered.returncode == 0 and "outcome: done=2" in out, (out, err)

    still_dead = replay(config_path, "--state", "dead", "--wait", "30")
    out, err = wait_while_delivering(deliverer, still_dead)
    assert still_dead.returncode == 3, (out, err)
    assert "outcome: dead=1" in out and "1 dead again: " in out and "(unresolved_user)" in out

    pending = replay(config_path, "--cause", "unresolved_user", "--wait", "0.5")  # nobody delivers
    out, err = pending.communicate(timeout=30)
    assert pending.returncode == 3 and "outcome: pending=1" in out and "1 still waiting after 0.5 s" in out, out
    drain(deliverer)

    [carol] = deliverer.store.list_events(state=EventState.DEAD)
    deliverer.store.discard([carol.id], "left")
    nothing = replay(config_path, "--state", "dead", "--wait", "5")
    out, err = nothing.communicate(timeout=30)
    assert nothing.returncode == 0 and "nothing to replay" in out, (out, err)


def test_a_user_left_in_a_conflict_is_not_called_delivered(deliverer, simulator, config_path):
    """The push is done, yet the user is not recorded on the extension another Verba user holds: events show says
    so, a replay by id is allowed, and --wait does not end in exit 0 while the conflict stays."""
    deliverer.client.create_extension(_record(A, user_id=4))  # made by hand for bob, whom no source manages
    deliverer.store.enqueue([alice(A)])
    drain(deliverer)
    [event] = deliverer.store.list_events(cause="extension_conflict")
    shown = run(config_path, "events", "show", str(event.id)).output
    assert f"open extension conflicts of this user (it is not recorded on these):\n  {A}  event {event.id}" in shown
    assert f"upsert {A}: " in shown and "(in conflict since " in shown and "(new)" not in shown, shown

    again = replay(config_path, str(event.id), "--reason", "asked bob's admin", "--wait", "30")
    out, err = wait_while_delivering(deliverer, again)
    assert again.returncode == 3 and "outcome: done=1" in out, (out, err)
    assert f"still in conflict: {A} of test/u-alice (alice@example.com): " in out

    simulator.http.post("/_sim/reset").raise_for_status()  # on-call frees the extension in Verba
    freed = replay(config_path, str(event.id), "--reason", "freed it", "--wait", "30")
    out, err = wait_while_delivering(deliverer, freed)
    assert freed.returncode == 0 and "still in conflict" not in out, (out, err)
    again = run(config_path, "events", "replay", str(event.id), "--reason", "again")  # a rerun: harmless, said so
    assert again.exit_code == 0 and f"event {event.id}: already replayed by " in again.output, again.output
    assert "and delivered" in again.output
