"""An OpenLDAP directory restored from an older backup (slapcat, then slapadd) is read again in full, on a private slapd
and both stores: the restore brings back old values with their old modifyTimestamps, below the cursor, where no
incremental poll looks. The user stamped last deleted, or changed again, is no sign of one."""

from __future__ import annotations

import datetime
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.sources.ldap.dialects import generalized
from connector.sources.ldap.watcher import Watcher
from tests.ldap.conftest import unavailable
from tests.ldap.helpers import events_of
from tests.ldap.slapd_server import ServerUnavailable, SlapdServer

SLAPCAT, SLAPADD = "/usr/sbin/slapcat", "/usr/sbin/slapadd"
STAMP_SECOND = 1.1  # modifyTimestamp counts whole seconds: a change this much later is stamped later
HOURS_BEFORE = datetime.timedelta(hours=10)


@pytest.fixture
def server() -> Iterator[SlapdServer]:
    """A slapd of this test's own: a restore replaces its whole database."""
    try:
        started = SlapdServer.start()
    except ServerUnavailable as error:
        unavailable(error)
    with started:
        yield started


def backup(server: SlapdServer) -> Path:
    """slapcat of the running server's database, as a nightly backup takes it."""
    path = server.directory / "backup.ldif"
    subprocess.run([SLAPCAT, "-f", str(server.directory / "slapd.conf"), "-l", str(path)], check=True,
                   capture_output=True)
    return path


def restore(server: SlapdServer, ldif: Path) -> None:
    """Stop the server, load `ldif` into an empty database with slapadd (which keeps every entry's stamps), start it."""
    server.pause()
    database = server.directory / "db"
    shutil.rmtree(database)
    database.mkdir()
    subprocess.run([SLAPADD, "-f", str(server.directory / "slapd.conf"), "-l", str(ldif)], check=True,
                   capture_output=True)
    server.resume()


def phones(store, since: int = 0) -> dict[str, tuple[str, str | None]]:
    """(kind, work number) of each user's last event after `since`, by userName."""
    return {e.change.state["userName"]: (e.change.kind, next((p["value"] for p in e.change.state.get("phoneNumbers")
                                                               or ()), None)) for e in events_of(store, since)}


def test_a_restored_directory_is_read_again_in_full_and_said_why(server, ldap_config, store_opener, caplog):
    store = store_opener()
    admin = server.admin()
    base = server.add_ou(admin, "corp")
    dns = {uid: server.add_user(admin, base, uid, telephoneNumber=f"+1415555{n:04d}")
           for n, uid in enumerate(("u11", "u12", "u13"), start=11)}
    last_night = generalized(datetime.datetime.now(datetime.UTC) - HOURS_BEFORE)
    for dn in dns.values():  # as the users of a backup taken last night are stamped: long before the cursor's window
        server.relax(admin, dn, modifyTimestamp=last_night)
    watcher = Watcher(store, ldap_config(url=server.url, base=base))
    watcher.run()
    taken = backup(server)
    server.modify(admin, dns["u11"], telephoneNumber="+14155559911")
    server.check(admin, admin.delete(dns["u12"]))
    server.add_user(admin, base, "u30", telephoneNumber="+14155550030")
    for _ in range(2):
        assert not watcher.run().full
    # No sign of a restore: the user stamped last changed again (stamped later), the one stamped last deleted.
    time.sleep(STAMP_SECOND)
    server.modify(admin, dns["u11"], telephoneNumber="+14155559922")
    u31 = server.add_user(admin, base, "u31", telephoneNumber="+14155550031")
    for _ in range(2):
        assert not watcher.run().full
    server.check(admin, admin.delete(u31))
    for _ in range(2):
        assert not watcher.run().full
    mark = events_of(store)[-1].id
    assert phones(store)["u31"] == ("delete", "+14155550031")
    seen = store.ldap_watermark("corp").cursor["newest"][server.entry_uuid(admin, dns["u11"])]

    watcher.close()  # its connection does not outlive the server's restart (a run would fail, and bind again)
    admin.unbind()
    restore(server, taken)
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        result = watcher.run()
    assert result.full
    assert phones(store, mark) == {"u11": ("upsert", "+14155550011"), "u12": ("upsert", "+14155550012"),
                                   "u30": ("delete", "+14155550030")}
    assert (f"ldap corp: full sync: the directory went back in time: {dns['u11']} is stamped {last_night} "
            f"(modifyTimestamp), before the {seen} a run saw: it was restored from an older backup (slapadd, a disk or "
            "virtual machine snapshot), so its stamps cannot tell what changed since (if url reaches several replicas, "
            "one lagging behind reads so too: point url at one server)") in caplog.text
    assert not watcher.run().full  # once read again, polls are incremental again
    watcher.close()
