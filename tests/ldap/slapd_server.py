"""A private OpenLDAP slapd for tests and benchmarks: a generated slapd.conf in a temp dir, free ports.

    with SlapdServer.start() as server:
        conn = server.admin()                      # an ldap3 connection bound as the rootdn
        base = server.add_ou(conn, "t1")           # ou=t1 with ou=people and ou=groups below it
        server.add_user(conn, base, "alice", telephoneNumber="+14155550100")

It listens on `server.url` (ldap://, StartTLS offered) and `server.ldaps_url` (ldaps://) with a
certificate for 127.0.0.1 (not for localhost) signed by a throwaway CA made at start-up
(`server.ca_file`, `server.certificate_file`), which no system trust store knows.

Needs Debian's `slapd` and `openssl` (and `ldap-utils` for people debugging by hand). The memberof
overlay keeps `memberOf` on users in step with `groupOfNames` groups, as many OpenLDAP sites run it;
the ppolicy overlay brings `pwdEndTime`; `cn=Monitor` gives the server's clock to the admin (not with
`start(monitor=False)`); access rules hide `entryUUID` and the suffix entry from NOID_DN; `relax()` writes operational
attributes such as `modifyTimestamp` with the Relax Rules control.
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
from ldap3.core.exceptions import LDAPBindError

from connector.simulator.process import free_port
from connector.sources.ldap.connection import close

SLAPD = "/usr/sbin/slapd"
RELAX_RULES = "1.3.6.1.4.1.4203.666.5.12"
OPENSSL = "/usr/bin/openssl"
SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "slapd-admin-pa55"
READER_DN = f"cn=reader,{SUFFIX}"  # a service account that may read at most READER_LIMIT entries per search
READER_PASSWORD = "slapd-reader-pa55"
READER_LIMIT = 3
NOID_DN = f"cn=noid,{SUFFIX}"  # a service account from which access rules hide entryUUID and the suffix entry
NOID_PASSWORD = "slapd-noid-pa55"

CONFIG = """\
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
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
access to dn.exact="{suffix}" by dn.exact="{noid}" none by * read
access to attrs=entryUUID by dn.exact="{noid}" none by * read
access to * by * read
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
overlay ppolicy
{monitor}"""
MONITOR = """
database monitor
access to * by dn.exact="{admin}" read by * none
"""


SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class ServerUnavailable(RuntimeError):
    """This machine cannot run slapd; the message says what to install."""


def make_certificates(directory: Path) -> None:
    """ca.pem (a throwaway CA) and server.pem/server.key (127.0.0.1 and localhost, signed by it) in `directory`."""
    (directory / "server.ext").write_text(SERVER_EXTENSIONS)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=connector test CA",
         "-config", "/dev/null", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash"],
        ["req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", "-config", "/dev/null"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "2", "-days", "2",
         "-out", "server.pem", "-extfile", "server.ext"],
    ):
        done = subprocess.run([OPENSSL, *command], cwd=directory, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {command[0]} failed: {done.stderr.strip()}")


class SlapdServer:
    def __init__(self, directory: Path, port: int, tls_port: int) -> None:
        self.directory = directory
        self.port = port
        self.tls_port = tls_port
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"ldap://127.0.0.1:{port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{tls_port}"
        self.ca_file = str(directory / "ca.pem")
        self.certificate_file = str(directory / "server.pem")

    @classmethod
    def start(cls, monitor: bool = True) -> SlapdServer:
        """A running slapd; `monitor` adds the cn=Monitor database (readable by the admin), the server's clock."""
        for program, package in ((SLAPD, "slapd ldap-utils"), (OPENSSL, "openssl")):
            if not os.access(program, os.X_OK):
                raise ServerUnavailable(f"no {program}: install it with `apt-get install {package}` "
                                        "(`make test` does so from .ci/apt-packages)")
        directory = Path(tempfile.mkdtemp(prefix="connector-slapd-"))
        (directory / "db").mkdir()
        (directory / "slapd.conf").write_text(
            CONFIG.format(dir=directory, suffix=SUFFIX, admin=ADMIN_DN, password=ADMIN_PASSWORD, reader=READER_DN,
                          limit=READER_LIMIT, noid=NOID_DN, monitor=MONITOR.format(admin=ADMIN_DN) if monitor else ""))
        server = cls(directory, free_port(), free_port())
        try:
            make_certificates(directory)
            server._launch()
            server._init_tree()
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> None:
        with (self.directory / "slapd.log").open("ab") as log:  # slapd keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [SLAPD, "-d", "0", "-f", str(self.directory / "slapd.conf"), "-h", f"{self.url}/ {self.ldaps_url}/"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        for port in (self.port, self.tls_port):
            self._wait_ready(port)

    def pause(self) -> None:
        """Stop the server, keeping its data: the directory is down until `resume()`."""
        self._terminate()

    def resume(self) -> None:
        self._launch()

    def __enter__(self) -> SlapdServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}: "
                                   f"{(self.directory / 'slapd.log').read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"slapd did not listen on port {port} within 15 s")

    def _init_tree(self) -> None:
        conn = self.admin()
        try:
            self.check(conn, conn.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"}))
            self.check(conn, conn.add(READER_DN, ["applicationProcess", "simpleSecurityObject"],
                                      {"cn": "reader", "userPassword": READER_PASSWORD}))
            self.check(conn, conn.add(NOID_DN, ["applicationProcess", "simpleSecurityObject"],
                                      {"cn": "noid", "userPassword": NOID_PASSWORD}))
        finally:
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
        """A connection bound as the rootdn, for the caller to unbind; if the bind fails, its socket is closed (ldap3
        leaves the socket of a failed open) and LDAPException raised."""
        return bound(ldap3.Connection(ldap3.Server(self.url, get_info=ldap3.NONE), ADMIN_DN, ADMIN_PASSWORD,
                                      raise_exceptions=False))

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

    def relax(self, conn: ldap3.Connection, dn: str, **attributes: Any) -> None:
        """Modify with the Relax Rules control, which lets the rootdn write operational attributes such as
        modifyTimestamp (draft-zeilenga-ldap-relax)."""
        changes = {name: [(ldap3.MODIFY_REPLACE, [value])] for name, value in attributes.items()}
        self.check(conn, conn.modify(dn, changes, controls=[(RELAX_RULES, True, None)]))

    def entry_uuid(self, conn: ldap3.Connection, dn: str) -> str:
        self.check(conn, conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"]))
        return str(conn.response[0]["attributes"]["entryUUID"][0])


def bound(conn: ldap3.Connection) -> ldap3.Connection:
    """`conn`, bound; if the bind fails, its socket is closed (ldap3 leaves the socket of a failed open) and
    LDAPBindError raised."""
    try:
        if not conn.bind():
            raise LDAPBindError(f"bind as {conn.user} failed: {conn.result.get('description')}")
    except BaseException:
        close(conn)
        raise
    return conn
