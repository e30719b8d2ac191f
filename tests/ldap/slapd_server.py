"""A private OpenLDAP slapd for tests and benchmarks: a generated slapd.conf in a temp dir, a free port.

    with SlapdServer.start() as server:
        conn = server.admin()                      # an ldap3 connection bound as the rootdn
        base = server.add_ou(conn, "t1")           # ou=t1 with ou=people and ou=groups below it
        server.add_user(conn, base, "alice", telephoneNumber="+14155550100")

Needs Debian's `slapd` (and `ldap-utils` for people debugging by hand). The memberof overlay keeps
`memberOf` on users in step with `groupOfNames` groups, as many OpenLDAP sites run it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import ldap3

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "slapd-admin-pa55"
READER_DN = f"cn=reader,{SUFFIX}"  # a service account that may read at most READER_LIMIT entries per search
READER_PASSWORD = "slapd-reader-pa55"
READER_LIMIT = 3

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
database mdb
maxsize 1073741824
dbnosync
suffix "{suffix}"
rootdn "{admin}"
rootpw {password}
directory {dir}/db
limits dn.exact="{reader}" size={limit} size.prtotal={limit}
index objectClass eq
index entryUUID eq
index modifyTimestamp eq
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
"""


class ServerUnavailable(RuntimeError):
    """This machine cannot run slapd; the message says what to install."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SlapdServer:
    def __init__(self, directory: Path, port: int, process: subprocess.Popen[bytes] | None) -> None:
        self.directory = directory
        self.port = port
        self.process = process
        self.url = f"ldap://127.0.0.1:{port}"

    @classmethod
    def start(cls) -> SlapdServer:
        if not os.access(SLAPD, os.X_OK):
            raise ServerUnavailable(f"no {SLAPD}: install it with `apt-get install slapd ldap-utils` "
                                    "(`make test` does so from .ci/apt-packages)")
        directory = Path(tempfile.mkdtemp(prefix="connector-slapd-"))
        (directory / "db").mkdir()
        (directory / "slapd.conf").write_text(
            CONFIG.format(dir=directory, suffix=SUFFIX, admin=ADMIN_DN, password=ADMIN_PASSWORD, reader=READER_DN,
                          limit=READER_LIMIT))
        server = cls(directory, free_port(), None)
        try:
            server._launch()
            server._init_tree()
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> None:
        log = (self.directory / "slapd.log").open("ab")
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(self.directory / "slapd.conf"), "-h", f"ldap://127.0.0.1:{self.port}/"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def pause(self) -> None:
        """Stop the server, keeping its data: the directory is down until `resume()`."""
        self._terminate()

    def resume(self) -> None:
        self._launch()

    def __enter__(self) -> SlapdServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}: "
                                   f"{(self.directory / 'slapd.log').read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"slapd did not listen on port {self.port} within 15 s")

    def _init_tree(self) -> None:
        conn = self.admin()
        self.check(conn, conn.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"}))
        self.check(conn, conn.add(READER_DN, ["applicationProcess", "simpleSecurityObject"],
                                  {"cn": "reader", "userPassword": READER_PASSWORD}))
        conn.unbind()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    # --- directory content --------------------------------------------
    def admin(self) -> ldap3.Connection:
        server = ldap3.Server(self.url, get_info=ldap3.NONE)
        return ldap3.Connection(server, ADMIN_DN, ADMIN_PASSWORD, auto_bind=True, raise_exceptions=False)

    @staticmethod
    def check(conn: ldap3.Connection, ok: bool) -> None:
        if not ok:
            raise RuntimeError(f"slapd refused the change: {conn.result}")

    def add_ou(self, conn: ldap3.Connection, name: str) -> str:
        """A subtree `ou=NAME` with ou=people and ou=groups below it; returns its DN."""
        base = f"ou={name},{SUFFIX}"
        for dn in (base, f"ou=people,{base}", f"ou=groups,{base}"):
            self.check(conn, conn.add(dn, ["organizationalUnit"], {"ou": dn.split(",")[0][3:]}))
        return base

    def add_user(self, conn: ldap3.Connection, base: str, uid: str, **attributes: Any) -> str:
        values = {"cn": uid.title(), "sn": uid.title(), "uid": uid, **attributes}
        dn = f"uid={uid},ou=people,{base}"
        self.check(conn, conn.add(dn, ["inetOrgPerson"], values))
        return dn

    def modify(self, conn: ldap3.Connection, dn: str, **attributes: Any) -> None:
        changes = {name: [(ldap3.MODIFY_REPLACE, value if isinstance(value, list) else [value])]
                   for name, value in attributes.items()}
        self.check(conn, conn.modify(dn, changes))

    def entry_uuid(self, conn: ldap3.Connection, dn: str) -> str:
        self.check(conn, conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"]))
        return str(conn.response[0]["attributes"]["entryUUID"][0])
