"""A private Samba AD DC for tests: `samba-tool domain provision` into a temp dir, then `samba` in the foreground.

    with SambaDC.start() as dc:
        dc.tool("user", "add", "alice", "Passw0rd-alice!", "--telephone-number=+14155550100")
        conn = dc.admin()        # ldap3, bound as Administrator over ldap://127.0.0.1:389

Samba's LDAP ports are fixed (389 and 636), so there is one DC per machine: provision it once per
session. Only the LDAP service runs, on the loopback interface, and simple binds are allowed on
389 (`ldap server require strong auth = no`; provisioning cannot set that option, so it is written
into smb.conf afterwards). The pid files stay in the temp dir, so a DC left over by a killed run
does not block the next one. Needs Debian's samba, samba-ad-dc and winbind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import ldap3
from ldap3.core.exceptions import LDAPException

from tests.ldap.slapd_server import bound

REALM = "CORP.EXAMPLE.TEST"
DOMAIN_DN = "DC=corp,DC=example,DC=test"
ADMIN_DN = f"CN=Administrator,CN=Users,{DOMAIN_DN}"
ADMIN_PASSWORD = "Adm1n-pa55word!"
URL = "ldap://127.0.0.1:389"


class ServerUnavailable(RuntimeError):
    """This machine cannot run a Samba AD DC; the message says what to install or free."""


class SambaDC:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.conf = directory / "etc" / "smb.conf"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls) -> SambaDC:
        for program in ("samba", "samba-tool"):
            if shutil.which(program) is None:
                raise ServerUnavailable(f"no {program}: install samba, samba-ad-dc and winbind with apt-get "
                                        "(`make test` does so from .ci/apt-packages)")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", 389)) == 0:
                raise ServerUnavailable("127.0.0.1:389 is taken by another LDAP server; stop it to run the AD tests")
        dc = cls(Path(tempfile.mkdtemp(prefix="connector-samba-")))
        try:
            dc._provision()
            dc._run()
        except BaseException:
            dc.stop()
            raise
        return dc

    def __enter__(self) -> SambaDC:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _provision(self) -> None:
        (self.directory / "run").mkdir()
        self._check(["samba-tool", "domain", "provision", f"--targetdir={self.directory}", f"--realm={REALM}",
                     "--domain=CORP", "--server-role=dc", "--dns-backend=NONE", f"--adminpass={ADMIN_PASSWORD}",
                     "--use-rfc2307", "--option=interfaces=lo", "--option=bind interfaces only=yes",
                     f"--option=pid directory={self.directory / 'run'}"], timeout=120)
        text = self.conf.read_text()
        text = re.sub(r"(?m)^\s*server services = .*$", "\tserver services = ldap", text)
        text = re.sub(r"(?m)^\s*log file = .*$", f"\tlog file = {self.directory / 'samba.log'}", text)
        text = text.replace("[global]\n", "[global]\n\tldap server require strong auth = no\n", 1)
        self.conf.write_text(text)

    def _run(self) -> None:
        with (self.directory / "stdout.log").open("ab") as log:  # samba keeps its own copy of the descriptor
            self.process = subprocess.Popen(["samba", "-s", str(self.conf), "-F", "--no-process-group", "-M", "single"],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"samba exited with {self.process.returncode}: "
                                   f"{(self.directory / 'stdout.log').read_text(errors='replace')[-2000:]}")
            try:
                self.admin().unbind()
                return
            except LDAPException:
                time.sleep(0.2)
        raise RuntimeError("samba did not answer LDAP binds on 127.0.0.1:389 within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)

    def admin(self) -> ldap3.Connection:
        """A connection bound as the Administrator, for the caller to unbind; if the bind fails, its socket is closed
        (ldap3 leaves the socket of a failed open) and LDAPException raised."""
        server = ldap3.Server(URL, get_info=ldap3.NONE, connect_timeout=5)
        return bound(ldap3.Connection(server, ADMIN_DN, ADMIN_PASSWORD, raise_exceptions=False, check_names=False,
                                      auto_referrals=False))

    def tool(self, *args: str) -> str:
        """Run `samba-tool ARGS -s smb.conf` on the DC's database; raise with its output if it fails."""
        return self._check(["samba-tool", *args, "-s", str(self.conf)], timeout=60)

    def _check(self, command: list[str], timeout: float) -> str:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "LANG": "C.UTF-8"})
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:3])} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result.stdout
