"""APScheduler triggers, backoff and readiness; `connector ldap sync` and `connector ldap status`."""

from __future__ import annotations

import json
import re
import time

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.sources.ldap.scheduler import LdapScheduler
from connector.store import open_store
from tests.ldap.helpers import config_file, events_of
from tests.ldap.slapd_server import ADMIN_PASSWORD, free_port


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_interval_trigger_sees_a_change_within_a_poll(slapd, admin, base, ldap_config, store, caplog):
    scheduler = LdapScheduler(store, {"corp": ldap_config(poll_seconds=0.3)})
    scheduler.start()
    try:
        # slapd here listens on ldap:// without StartTLS: the bind password is sent in clear, and the log says so
        assert "ldap corp: the bind password crosses the network unencrypted" in caplog.text
        wait_for(lambda: store.ldap_watermark("corp") is not None)
        slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
        wait_for(lambda: len(events_of(store)) == 1)
        assert not scheduler.degraded
        job = scheduler.scheduler.get_job("ldap-corp-poll")
        assert job.max_instances == 1 and job.coalesce
        assert scheduler.scheduler.get_job("ldap-corp-full") is not None
    finally:
        scheduler.stop()


def test_an_unreachable_directory_backs_off_and_reports_degraded(ldap_config, store, caplog):
    scheduler = LdapScheduler(store, {"corp": ldap_config(url=f"ldap://127.0.0.1:{free_port()}", timeout_seconds=1,
                                                          poll_seconds=45)},
                              backoff_base=1, backoff_max=2)
    assert scheduler.probes()["ldap.corp"]() == "ok"
    scheduler.tick("corp", False)
    # The backoff only skips ticks: the next try is a poll, however short the backoff.
    assert "run failed (1 in a row), readiness degraded; next try at the first poll after 45 s: " in caplog.text
    health = scheduler.health["corp"]
    health.retry_at += 60  # inside the backoff
    assert scheduler.degraded and health.failures == 1 and "cannot connect" in health.last_error
    assert scheduler.probes()["ldap.corp"]().startswith("degraded: 1 failed runs, last: directory corp")
    assert "cannot connect" in store.ldap_watermark("corp").last_error
    scheduler.tick("corp", True)  # inside the backoff: skipped, but the full sync is remembered
    assert health.failures == 1 and health.full_due


def test_a_store_outage_is_not_blamed_on_the_directory_nor_backed_off(ldap_config, tmp_path, caplog):
    """PostgreSQL down: the runs fail, but the directory is fine; readiness says which, and the run is tried again at
    the next poll (no backoff growing while the store is away)."""
    store = open_store(f"sqlite:///{tmp_path / 'gone.db'}")
    store.migrate()
    scheduler = LdapScheduler(store, {"corp": ldap_config()}, backoff_base=30, backoff_max=60)
    store.close()  # every read and write now fails with StoreError, as in an outage
    for _ in range(3):
        scheduler.tick("corp", False)
    health = scheduler.health["corp"]
    assert health.failures == 3 and health.retry_at == 0.0
    assert scheduler.probes()["ldap.corp"]().startswith(
        "degraded: 3 failed runs, last: the store is unavailable, not the directory: the store ")
    assert "ldap corp: run not done (3 in a row), readiness degraded: the store is unavailable" in caplog.text


def test_a_directory_another_instance_took_over_is_no_longer_degraded_here(ldap_config, store):
    """After an outage another instance leads the directory: this one's /readyz said degraded for good."""
    leading = [True]
    scheduler = LdapScheduler(store, {"corp": ldap_config(url=f"ldap://127.0.0.1:{free_port()}", timeout_seconds=1)},
                              backoff_base=0.01, backoff_max=0.01, leads=lambda name: leading[0])
    scheduler.tick("corp", False)
    assert scheduler.probes()["ldap.corp"]().startswith("degraded: 1 failed runs")
    leading[0] = False
    time.sleep(0.05)  # past the backoff
    scheduler.tick("corp", False)
    assert scheduler.probes()["ldap.corp"]() == "ok: another instance polls it (one instance polls each directory)"
    assert not scheduler.degraded


def test_the_scheduler_recovers_and_clears_degraded(ldap_config, store, slapd, admin, base):
    scheduler = LdapScheduler(store, {"corp": ldap_config()}, backoff_base=0.01, backoff_max=0.01)
    scheduler.health["corp"].failures = 3
    time.sleep(0.02)
    scheduler.tick("corp", False)
    assert not scheduler.degraded
    scheduler.stop()


def test_sync_and_status_commands(slapd, admin, base, tmp_path):
    for uid in ("alice", "bob"):
        slapd.add_user(admin, base, uid, telephoneNumber="+14155550100")
    config = str(config_file(tmp_path, slapd.url, base, guard_max_count=0))
    runner = CliRunner()
    result = runner.invoke(main, ["ldap", "status", "--config", config])
    assert result.exit_code == 1 and "there is no store at" in result.output  # a status never makes a store
    assert runner.invoke(main, ["db", "upgrade", "--config", config]).exit_code == 0
    result = runner.invoke(main, ["ldap", "status", "--config", config])
    assert result.exit_code == 0 and "never run" in result.output

    result = runner.invoke(main, ["ldap", "sync", "corp", "--config", config])
    assert result.exit_code == 0, result.output
    assert "full run read 2 entries: 2 upserts" in result.output

    slapd.check(admin, admin.delete(f"uid=bob,ou=people,{base}"))
    result = runner.invoke(main, ["ldap", "sync", "corp", "--full", "--config", config])
    assert "1 deletes (1 held)" in result.output and "connector events approve" in result.output
    result = runner.invoke(main, ["ldap", "sync", "corp", "--full", "--force", "--config", config])
    assert result.exit_code == 0 and "0 deletes" in result.output  # bob's delete is already held, not redone

    result = runner.invoke(main, ["ldap", "status", "--config", config])
    assert "known users 1" in result.output and "last run" in result.output and "stamp" in result.output
    [last_ok] = [line for line in result.output.splitlines() if line.startswith("  last ok")]
    assert re.fullmatch(r"  last ok     \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  \(seen 1, .*\)", last_ok), last_ok
    [line] = runner.invoke(main, ["ldap", "status", "--json", "--config", config]).output.splitlines()
    assert json.loads(line)["known"] == 1

    result = runner.invoke(main, ["ldap", "sync", "lab", "--config", config])
    assert result.exit_code == 1 and "no [ldap.lab] section" in result.output


def test_sync_reports_an_unreachable_directory_without_a_traceback(tmp_path):
    config = str(config_file(tmp_path, f"ldap://127.0.0.1:{free_port()}", "dc=example,dc=test", guard_max_count=0))
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--config", config])
    assert result.exit_code == 1 and "cannot connect" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["ldap", "status", "--config", config])
    assert "FAILED" in result.output and "cannot connect" in result.output


def test_the_bind_password_is_a_secret_to_mask(tmp_path):
    from connector.config import load_config

    config = load_config(config_file(tmp_path, "ldap://127.0.0.1:389", "dc=example,dc=test", guard_max_count=0))
    assert ADMIN_PASSWORD in config.secrets()


def test_a_directory_another_instance_leads_is_not_polled(ldap_config, store):
    leading = {"corp": False}
    scheduler = LdapScheduler(store, {"corp": ldap_config(url=f"ldap://127.0.0.1:{free_port()}", timeout_seconds=1)},
                              backoff_base=30, backoff_max=60, leads=lambda name: leading[name])
    scheduler.tick("corp", False)
    assert not scheduler.degraded and store.ldap_watermark("corp") is None  # not even tried
    assert scheduler.probes()["ldap.corp"]() == "ok: another instance polls it (one instance polls each directory)"
    leading["corp"] = True  # the leader died: this instance took the directory over
    scheduler.tick("corp", False)
    assert scheduler.health["corp"].failures == 1 and "cannot connect" in store.ldap_watermark("corp").last_error
    assert scheduler.probes()["ldap.corp"]().startswith("degraded: 1 failed runs")


@pytest.mark.parametrize(("args", "says"), [
    (["--samples", "0"], "--samples only goes with --dry-run"),
    (["--samples", "2", "--concurrency", "4"], "--samples and --concurrency only go with --dry-run"),
    (["--dry-run", "--force"], "--force only goes with a sync, not with --dry-run"),
])
def test_options_of_the_other_mode_are_a_usage_error_not_ignored(args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", *args, "--config", "config/connector.toml"])
    assert result.exit_code == 2 and says in result.output, result.output
