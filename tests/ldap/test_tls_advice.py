"""A refused server certificate is explained with its own fix, against a slapd of this module whose certificate each
test chooses (expired, not yet valid, self-signed, for other names, an IP address only); host names are checked by
the ssl module on any Python; the warnings of tls_verify = false reach validate-config --connect and the run log."""

from __future__ import annotations

import datetime
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import ldap3.core.tls
import ldap3.utils.tls_backport
import pytest

from connector.cli.run import _check_ldap
from connector.config import LdapConfig, parse_config
from connector.sources.ldap.connection import DirectoryError, close, open_connection
from connector.sources.ldap.scheduler import LdapScheduler
from tests.ldap.conftest import unavailable
from tests.ldap.slapd_server import ADMIN_DN, ADMIN_PASSWORD, OPENSSL, SUFFIX, ServerUnavailable, SlapdServer

CA_CONFIG = """\
[ca]
default_ca = test
[test]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
"""
EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
"""
KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def server() -> Iterator[SlapdServer]:
    """A slapd of this module's own: its certificate is swapped by `certify`, which restarts it."""
    try:
        started = SlapdServer.start(monitor=False)
    except ServerUnavailable as error:
        unavailable(error)
    with started:
        (started.directory / "ca.cnf").write_text(CA_CONFIG.format(dir=started.directory))
        (started.directory / "index.txt").write_text("")
        (started.directory / "serial").write_text("10\n")
        yield started


def openssl(directory: Path, *command: str) -> None:
    done = subprocess.run([OPENSSL, *command], cwd=directory, capture_output=True, text=True)
    assert done.returncode == 0, f"openssl {command[0]} failed: {done.stderr}"


def certify(server: SlapdServer, subject: str = "/CN=ldap test server", san: str | None = "IP:127.0.0.1", *,
            valid: tuple[datetime.timedelta, datetime.timedelta] = (-DAY, DAY), self_signed: bool = False) -> None:
    """Give `server` a new certificate (signed by its CA, valid from now + valid[0] to now + valid[1]) and restart
    it with it."""
    directory = server.directory
    (directory / "new.ext").write_text(EXTENSIONS + (f"subjectAltName = {san}\n" if san else ""))
    if self_signed:
        openssl(directory, "req", "-x509", *KEY, "-keyout", "server.key", "-out", "server.pem", "-days", "2",
                "-subj", subject, "-config", "/dev/null", "-addext", f"subjectAltName = {san}")
    else:
        now = datetime.datetime.now(datetime.UTC)
        start, end = ((now + delta).strftime("%Y%m%d%H%M%SZ") for delta in valid)
        openssl(directory, "req", *KEY, "-keyout", "server.key", "-out", "new.csr", "-subj", subject,
                "-config", "/dev/null")
        openssl(directory, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
                "-in", "new.csr", "-out", "server.pem", "-notext", "-startdate", start, "-enddate", end,
                "-extfile", "new.ext")
    server.pause()
    server.resume()


def section(server: SlapdServer, url: str | None = None, **keys: object) -> LdapConfig:
    """An [ldap.corp] for the server's ldaps:// url (or `url`) with its CA, bound as the admin."""
    values = {"url": url or server.ldaps_url, "base": SUFFIX, "bind_dn": ADMIN_DN, "password": ADMIN_PASSWORD,
              "ca_file": server.ca_file, **keys}
    return LdapConfig(name="corp", **values)


def refused(config: LdapConfig) -> str:
    with pytest.raises(DirectoryError) as info:
        open_connection(config)
    return str(info.value)


def connects(config: LdapConfig) -> None:
    close(open_connection(config))


@pytest.fixture
def python_3_12(monkeypatch: pytest.MonkeyPatch) -> None:
    """ldap3's host name check as on Python 3.12, which has no ssl.match_hostname: ldap3's backport instead."""
    monkeypatch.setattr(ldap3.core.tls, "match_hostname", ldap3.utils.tls_backport.match_hostname)


def test_an_expired_certificate_says_to_renew_it_not_to_change_the_ca(server):
    certify(server, valid=(-10 * DAY, -DAY))
    message = refused(section(server))
    assert "the server's TLS certificate has expired (certificate has expired); renew the server's certificate" \
        in message
    assert f"openssl s_client -connect 127.0.0.1:{server.tls_port} </dev/null | openssl x509 -noout -dates" \
        in message and "clock" in message
    assert "not signed by the CA" not in message and "set ca_file" not in message


def test_a_certificate_not_yet_valid_says_to_check_the_clocks(server):
    certify(server, valid=(10 * DAY, 20 * DAY))
    message = refused(section(server, url=server.url, starttls=True))
    assert "the server's TLS certificate is not valid yet (certificate is not yet valid)" in message
    assert "check this machine's clock (timedatectl)" in message
    assert f"openssl s_client -connect 127.0.0.1:{server.port} -starttls ldap </dev/null" in message
    assert "ca_file" not in message


def test_a_self_signed_certificate_says_no_ca_vouches_for_it(server):
    certify(server, self_signed=True)
    message = refused(section(server))
    assert "the server's TLS certificate is self-signed (self-signed certificate): no CA vouches for it, and " \
           f"ca_file {server.ca_file} does not hold it" in message
    assert "set ca_file to a copy of this very certificate" in message
    assert "no CA vouches for it;" in refused(section(server, ca_file=None))


def test_a_certificate_for_an_ip_address_only_connects_on_any_python(server, python_3_12):
    """SAN IP:127.0.0.1 only, and a subject no name matches: ldap3's own check (Python 3.12+) refused it."""
    certify(server, san="IP:127.0.0.1")
    connects(section(server))
    connects(section(server, url=server.url, starttls=True))


@pytest.mark.parametrize("way", ["ldaps", "starttls"])
def test_a_name_the_certificate_does_not_carry_is_refused_and_its_names_are_said(server, python_3_12, way):
    certify(server, san="DNS:ldap.example.test, IP:127.0.0.1")
    url = f"ldaps://localhost:{server.tls_port}" if way == "ldaps" else f"ldap://localhost:{server.port}"
    message = refused(section(server, url=url, starttls=way == "starttls"))
    assert "the server's TLS certificate is not issued for localhost (Hostname mismatch" in message
    assert "it names DNS:ldap.example.test, IP:127.0.0.1: use one of those in url, or have the certificate " \
           "reissued with localhost in its subjectAltName" in message
    certify(server, san="DNS:ldap.example.test, IP:10.0.0.5")
    url = server.ldaps_url if way == "ldaps" else server.url
    message = refused(section(server, url=url, starttls=way == "starttls"))
    assert "not issued for 127.0.0.1 (IP address mismatch" in message
    assert "it names DNS:ldap.example.test, IP:10.0.0.5: use one of those in url" in message


def test_a_server_refusing_starttls_when_its_names_are_read_still_gets_the_advice(server, python_3_12, monkeypatch):
    """The names are read over a second connection; a server that refuses its StartTLS leaves them unknown, and
    the message says how to read them instead of failing."""
    certify(server, san="DNS:ldap.example.test, IP:127.0.0.1")
    real, calls = ldap3.Connection.start_tls, []

    def start_tls_once(conn: ldap3.Connection, *args: object, **kwargs: object) -> bool:
        calls.append(conn)
        return bool(real(conn, *args, **kwargs)) if len(calls) == 1 else False

    monkeypatch.setattr(ldap3.Connection, "start_tls", start_tls_once)
    message = refused(section(server, url=f"ldap://localhost:{server.port}", starttls=True))
    assert "the server's TLS certificate is not issued for localhost (Hostname mismatch" in message
    assert f"see the names it carries with `openssl s_client -connect localhost:{server.port} -starttls ldap " \
           "</dev/null | openssl x509 -noout -subject -ext subjectAltName`" in message
    assert len(calls) == 2


def test_an_ip_only_certificate_is_refused_for_a_host_name(server, python_3_12):
    certify(server, san="IP:127.0.0.1")
    message = refused(section(server, url=f"ldaps://localhost:{server.tls_port}"))
    assert "it names IP:127.0.0.1, CN:ldap test server" in message


def test_a_certificate_with_no_subject_alt_name_may_name_the_host_in_its_cn(server):
    """As ldap3 did (and libldap does), for the many directory certificates made with `openssl req -subj /CN=`."""
    certify(server, subject="/CN=localhost", san=None)
    connects(section(server, url=f"ldaps://localhost:{server.tls_port}"))
    assert "it names CN:localhost" in refused(section(server))


def test_tls_verify_false_is_warned_in_validate_config_and_the_run_log(server, store, caplog):
    certify(server)
    data = {"url": server.ldaps_url, "base": SUFFIX, "tls_verify": False}
    config = parse_config({"ldap": {"corp": data}}, "c.toml")
    ((ok, _, detail),) = _check_ldap(config)
    assert ok and detail.endswith("readable; WARNING: tls_verify = false: the server is not authenticated, so "
                                  "anyone in the middle can pose as it; set ca_file to the PEM file of the CA that "
                                  "issued the server's certificate and remove tls_verify")
    scheduler = LdapScheduler(store, config.ldap)
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        scheduler.start()
        scheduler.stop()
    assert "ldap corp: tls_verify = false: the server is not authenticated" in caplog.text
