"""What an LDAP admin sees when connecting goes wrong, against a real slapd.

The bind password is read again before each bind, and a password the directory refused is not sent again until it
changes: a rotated password_file needs no restart, and a wrong one does not lock the account out. A url whose scheme
does not fit its port says so in plain words, with the fix; so do a connection the server closed and a base that does
not exist. What a run did is logged as key=value pairs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import ldap3
import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.passwords import RefusedPassword, one_shot_command
from connector.runtime import Connector
from connector.sources.ldap.connection import DirectoryError, _bind_failure, open_connection, refused_password
from connector.sources.ldap.scheduler import LdapScheduler
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import config_file
from tests.ldap.slapd_server import ADMIN_DN
from tests.ldap.test_preview import write_config


def service_account(slapd, admin, base: str, password: str) -> str:
    dn = f"cn=svc,{base}"
    slapd.check(admin, admin.add(dn, ["applicationProcess", "simpleSecurityObject"],
                                 {"cn": "svc", "userPassword": password.encode("utf-8")}))
    return dn


def rotate(slapd, admin, dn: str, password: str) -> None:
    """The directory admin's part of a rotation: the account's new password."""
    slapd.check(admin, admin.modify(dn, {"userPassword": [(ldap3.MODIFY_REPLACE, [password.encode("utf-8")])]}))


@pytest.fixture
def binds(monkeypatch) -> list[str]:
    """The bind DN of every bind request sent to a server."""
    sent: list[str] = []
    real = ldap3.Connection.bind

    def bind(self, *args, **kwargs):
        sent.append(self.user)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ldap3.Connection, "bind", bind)
    return sent


def test_a_password_rotated_in_the_file_is_used_at_the_next_bind_without_a_restart(
    slapd, admin, base, ldap_config, store, tmp_path
):
    svc = service_account(slapd, admin, base, "old12")
    file = tmp_path / "svc-password"
    file.write_text("old12\n")
    watcher = Watcher(store, ldap_config(bind_dn=svc, password_file=str(file)))
    assert watcher.run().full
    rotate(slapd, admin, svc, "new-pw-8")
    file.write_text("new-pw-8\n")
    watcher.close()  # the connection dropped (a DC restarted): the next run binds again
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    assert watcher.run().counts["upsert"] == 1
    watcher.close()


def test_a_password_from_the_environment_is_read_again_before_each_bind(
    slapd, admin, base, ldap_config, store, monkeypatch
):
    svc = service_account(slapd, admin, base, "first-pw")
    monkeypatch.setenv("SVC_PASSWORD", "first-pw")
    watcher = Watcher(store, ldap_config(bind_dn=svc, password_env="SVC_PASSWORD", password_file=None))
    assert watcher.run().full
    rotate(slapd, admin, svc, "second-pw")
    monkeypatch.setenv("SVC_PASSWORD", "second-pw")
    watcher.close()
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    assert watcher.run().counts["upsert"] == 1
    watcher.close()


def test_a_refused_password_is_not_sent_again_until_the_file_changes(
    slapd, admin, base, ldap_config, store, tmp_path, caplog, binds
):
    svc = service_account(slapd, admin, base, "new-pw-8")
    file = tmp_path / "svc-password"
    file.write_text("old12\n")  # the admin rotated the password but has not written the new one yet
    scheduler = LdapScheduler(store, {"corp": ldap_config(bind_dn=svc, password_file=str(file))},
                              backoff_base=0.001, backoff_max=0.001)
    caplog.set_level(logging.INFO, "connector.ldap")
    for _ in range(5):  # five polls in a row, as the backoff would retry them
        scheduler.health["corp"].retry_at = 0
        scheduler.tick("corp", False)
    assert binds == [svc]  # one bind: the account's lockout counter moved once
    first, *withheld = [r.getMessage() for r in caplog.records if "run failed" in r.getMessage()]
    assert f"bind as {svc} failed (invalidCredentials)" in first
    assert "the password sent has 5 characters (5 bytes as UTF-8), from file" in first
    assert (f"this password is not sent again for 15 min unless it changes, so that the account is not locked out: "
            f"put the right password in {file} (read again before each bind), or reload the connector (SIGHUP: "
            "systemctl reload) once the account is fixed") in first
    assert len(withheld) == 4
    assert re.search(
        f"bind as {svc} not attempted: the password from file {file} \\(ldap.corp.password_file; a trailing newline "
        "is not sent\\) was refused at [0-9:]{8} UTC and unchanged since: not sent again before [0-9:]{8} UTC unless "
        f"it changes, so that the account is not locked out: put the right password in {file} \\(read again",
        withheld[-1])
    assert scheduler.degraded and "not attempted" in store.ldap_watermark("corp").last_error

    file.write_text("new-pw-8\n")  # now it changed: sent at the next poll
    scheduler.health["corp"].retry_at = 0
    scheduler.tick("corp", False)
    assert len(binds) > 1 and not scheduler.degraded
    assert "ldap corp: runs succeed again after 5 failed runs" in caplog.text
    scheduler.stop()


def test_a_refused_password_is_sent_again_after_a_reload(slapd, admin, base, ldap_config, store, tmp_path, binds):
    """The account was locked, or its password reset to the one in the file, on the directory's side."""
    svc = service_account(slapd, admin, base, "other-pw")
    file = tmp_path / "svc-password"
    file.write_text("right-pw")
    scheduler = LdapScheduler(store, {"corp": ldap_config(bind_dn=svc, password_file=str(file))})
    watcher = scheduler.watchers["corp"]
    with pytest.raises(DirectoryError, match="failed"):
        watcher.run()
    rotate(slapd, admin, svc, "right-pw")
    with pytest.raises(DirectoryError, match="not attempted"):
        watcher.run()
    assert len(binds) == 1
    scheduler.reload()  # SIGHUP
    assert watcher.run().full
    assert len(binds) > 2
    scheduler.stop()


def test_the_running_connector_s_sighup_forgets_the_directories_refusals(ldap_config, make_config) -> None:
    """`systemctl reload` (SIGHUP) calls Connector.reload, which must reach the directories, not only Verba."""
    corp = ldap_config()
    refused_password(corp).refuse("locked-out-pw")
    connector = Connector(dataclasses.replace(make_config(), ldap={"corp": corp}))
    try:
        assert refused_password(corp).withheld("locked-out-pw") is not None
        connector.reload()
        assert refused_password(corp).withheld("locked-out-pw") is None
    finally:
        connector.store.close()


def test_an_unreadable_password_file_fails_the_run_and_sends_nothing(
    slapd, admin, base, ldap_config, store, tmp_path, binds
):
    svc = service_account(slapd, admin, base, "right-pw")
    file = tmp_path / "svc-password"
    file.write_text("right-pw")
    watcher = Watcher(store, ldap_config(bind_dn=svc, password_file=str(file)))
    file.unlink()  # mid-rotation
    with pytest.raises(DirectoryError) as info:
        watcher.run()
    assert str(info.value) == (
        f"directory corp ({slapd.url}): the bind password cannot be read again: ldap.corp.password_file "
        f"'{file}' cannot be read (No such file or directory); check the path and permissions; nothing was sent")
    assert binds == []


ONE_SHOT = ("this command sent it once, and each run of it sends it again, which a lockout policy counts; only the "
            "running connector holds a refused password back, for 15 min unless it changes")
HELD = "this password is not sent again for 15 min unless it changes"


def cli(*args: str) -> str:
    """What a command run in a process of its own printed (stdout and stderr): each run is a new process, as an
    admin's are."""
    done = subprocess.run([sys.executable, "-m", "connector.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False)
    return done.stdout + done.stderr


def test_a_one_shot_command_says_each_run_sends_the_refused_password_again(slapd, base, simulator, tmp_path):
    """`connector ldap sync` and `validate-config --connect` end after one try, so no later run of them holds a
    refused password back: each run says so, instead of promising that it is not sent again."""
    config = write_config(tmp_path, slapd.url, base, simulator.url)
    (tmp_path / "ldap-pw").write_text("wrong-pw")
    (tmp_path / "verba-pw").write_text("wrong-pw")
    for _ in range(2):  # the second run sends it again, as it now says
        out = cli("ldap", "sync", "corp", "--config", config)
        assert f"bind as {ADMIN_DN} failed (invalidCredentials)" in out and "not attempted" not in out, out
        assert (f"; {ONE_SHOT}, so that the account is not locked out: put the right password in "
                f"{tmp_path / 'ldap-pw'}") in out and HELD not in out
    for _ in range(2):
        out = cli("validate-config", "--connect", "--config", config)
        failed = {line.split(": ", 1)[0].split()[-1]: line for line in out.splitlines() if "FAILED" in line}
        assert "failed (invalidCredentials)" in failed[f"({slapd.url})"] and ONE_SHOT in failed[f"({slapd.url})"]
        assert f"({ONE_SHOT}, or until SIGHUP)" in failed["requestToken"], out
        assert HELD not in out and "not sent:" not in out and "not attempted" not in out
    for command in (["drift"], ["mapping", "test", "--ldap", "corp", "--user", "alice"]):  # they log in too
        out = cli(*command, "--config", config)
        assert ONE_SHOT in out and HELD not in out, out


def test_the_running_connector_still_says_it_holds_the_refused_password_back():
    refused = RefusedPassword()
    with one_shot_command():
        assert refused.refuse("old12") == ONE_SHOT
    assert refused.refuse("old12") == HELD  # outside a one-shot command: as `connector run` tells it


def test_a_refused_password_is_sent_again_after_the_back_off():
    now = [1000.0]
    refused = RefusedPassword(clock=lambda: now[0])
    assert refused.refuse("old12") == "this password is not sent again for 15 min unless it changes"
    assert refused.withheld("old12") is not None and refused.withheld("new-pw-8") is None
    now[0] += 899
    assert refused.withheld("old12") is not None
    now[0] += 1
    assert refused.withheld("old12") is None


def test_active_directory_says_why_it_refused_the_bind(ldap_config):
    """AD's invalidCredentials carries its reason as "data 775" in the message; each reason has its fix."""
    config = ldap_config(bind_dn="CN=svc-ad-test,OU=Staff,DC=corp,DC=example")
    message = ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563")
    text = _bind_failure(config, {"result": 49, "description": "invalidCredentials", "message": message}, "pw-1234")
    assert text.startswith("bind as CN=svc-ad-test,OU=Staff,DC=corp,DC=example failed (invalidCredentials): the "
                           "account is locked out (data 775) after too many wrong passwords; have it unlocked once "
                           "the password is right; the password sent has 7 characters")
    assert "this password is not sent again for 15 min unless it changes, so that the account is not locked" in text


def test_ldaps_to_a_port_that_speaks_plain_ldap_says_so_and_the_fix(slapd, ldap_config):
    port = urlsplit(slapd.url).port
    with pytest.raises(DirectoryError) as info:
        open_connection(ldap_config(url=f"ldaps://127.0.0.1:{port}"))
    message = str(info.value)
    assert message.startswith(f"directory corp (ldaps://127.0.0.1:{port}): cannot connect: the TLS handshake failed "
                              "(socket ssl wrapping error: [SSL: ")
    assert message.endswith(f"); port {port} likely speaks plain LDAP, not LDAPS: use ldap://127.0.0.1:{port} with "
                            "starttls = true, or the LDAPS port, ldaps://127.0.0.1:636")
    assert "('" not in message and "((" not in message  # no tuple reprs


def test_ldap_to_the_ldaps_port_says_the_server_closed_the_connection_and_the_fix(slapd, ldap_config):
    port = urlsplit(slapd.ldaps_url).port
    with pytest.raises(DirectoryError) as info:
        open_connection(ldap_config(url=f"ldap://127.0.0.1:{port}"))
    assert str(info.value) == (
        f"directory corp (ldap://127.0.0.1:{port}): cannot connect (the server closed the connection); if port {port} "
        f"speaks LDAPS (TLS from the first byte, usually 636), use ldaps://127.0.0.1:{port}; else check that the "
        "server is up")


class ClosingProxy:
    """A TCP proxy to a server that closes its connections on `close_all()`, as a server or a firewall ending idle
    connections does (a FIN to the client; what the client sends after is read and dropped, so no RST)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.servers: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                self.clients.append(client)
                self.servers.append(socket.create_connection(("127.0.0.1", self.target)))
                for source, sink in ((client, self.servers[-1]), (self.servers[-1], client)):
                    threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)

    def close_all(self) -> None:
        for client in self.clients:
            client.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self.listener.close()
        for each in [*self.clients, *self.servers]:
            each.close()


def test_a_run_whose_connection_the_server_closed_says_so_and_the_next_run_connects_again(slapd, ldap_config, store):
    proxy = ClosingProxy(urlsplit(slapd.url).port)
    watcher = Watcher(store, ldap_config(url=f"ldap://127.0.0.1:{proxy.port}"))
    try:
        assert watcher.run().full
        proxy.close_all()  # between two polls
        with pytest.raises(DirectoryError) as info:
            watcher.run()
        assert str(info.value) == "reading the rootDSE failed (the server closed the connection)"
        assert store.ldap_watermark("corp").last_error == str(info.value)
        watcher.run()
    finally:
        watcher.close()
        proxy.stop()


def test_a_base_that_does_not_exist_names_the_directory_and_the_key_to_fix(slapd, base, tmp_path):
    wrong = f"ou=peopel,{base}"
    config = config_file(tmp_path, slapd.url, wrong)
    result = CliRunner().invoke(main, ["ldap", "sync", "corp", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: directory corp ({slapd.url}): base '{wrong}' does not exist, or the bind account may not see it "
        f"(noSuchObject); the closest entry above it that exists is '{base}': check the base in [ldap.corp] "
        f"(`ldapsearch -x -H {slapd.url} -s base -b \"\" namingContexts` lists the directory's naming contexts)")


def test_a_run_that_stored_events_logs_its_counts_as_key_value_pairs(slapd, admin, base, watcher, caplog):
    from connector.ops.logs import JSONFormatter

    caplog.set_level(logging.INFO, "connector.ldap")
    slapd.add_user(admin, base, "bob", telephoneNumber="+14155550101")
    watcher.run()
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100")
    watcher.run()
    [record] = [r for r in caplog.records if "incremental run" in r.getMessage()]
    assert record.getMessage() == "ldap corp: incremental run: seen=2 upsert=1 deactivate=0 delete=0 held=0"
    line = json.loads(JSONFormatter().format(record))  # what `connector run` logs as JSON lines
    assert (line["directory"], line["run"], line["counts"]) == (
        "corp", "incremental", {"seen": 2, "upsert": 1, "deactivate": 0, "delete": 0, "held": 0})
