"""The HTTP side: a Verba (or a web server or proxy in front of it) that compresses its answers is read
like any other; the proxy and CA bundle are read from the environment."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import uvicorn
from starlette.middleware.gzip import GZipMiddleware

from connector.simulator.app import create_app
from connector.simulator.process import free_port
from connector.verba import VerbaClient, VerbaTransportError, VerbaUnreachable
from connector.verba.transport import verba_pool
from tests.ldap.slapd_server import OPENSSL, make_certificates
from tests.verba.helpers import PASSWORD, SEED, Sim, in_threads, record


class Encodings:
    """ASGI middleware noting the Content-Encoding of every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message["headers"])
                self.seen.append(headers.get(b"content-encoding", b"").decode() or None)
            await send(message)
        await self.app(scope, receive, noting if scope["type"] == "http" else send)


@contextlib.contextmanager
def served(app: Any, **settings: Any) -> Iterator[int]:
    """`app` under uvicorn (with these Config settings) on a free 127.0.0.1 port, given while it runs."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def gzipping() -> Iterator[tuple[str, Encodings]]:
    """The simulator behind gzip compression, as a web server or proxy in front of Verba may do."""
    encodings = Encodings(GZipMiddleware(create_app(SEED), minimum_size=0))
    with served(encodings) as port:
        yield f"http://127.0.0.1:{port}/provisioning", encodings


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The simulator over https, its certificate (for 127.0.0.1) signed by a throwaway CA: its url and the
    directory that holds ca.pem."""
    make_certificates(tmp_path)
    with served(create_app(SEED), ssl_certfile=str(tmp_path / "server.pem"),
                ssl_keyfile=str(tmp_path / "server.key")) as port:
        yield f"https://127.0.0.1:{port}/provisioning", tmp_path


def test_compressed_answers_are_read(gzipping: tuple[str, Encodings]) -> None:
    url, encodings = gzipping
    with VerbaClient(url, eid="0000", login="connector", password=PASSWORD, timeout=2.0) as client:
        assert client.create_extension(record("+14155550100", user_id=3)) is True
        found = client.get_extension("+14155550100")
        assert found is not None and found["user_id"] == 3 and found["recording_mode"] == "FULL"
        assert client.find_user_id("bob@example.com") == 4
    assert encodings.seen and set(encodings.seen) == {"gzip"}, encodings.seen


def test_the_proxy_and_ca_bundle_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    direct = verba_pool("https://verba.example:443/provisioning", 4)
    assert not isinstance(direct, urllib3.ProxyManager)
    assert direct.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED" and direct.connection_pool_kw["ca_certs"]

    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://scott:tiger@proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    proxied = verba_pool("https://verba.example/provisioning", 4)
    assert isinstance(proxied, urllib3.ProxyManager) and proxied.proxy.host == "proxy.example"
    assert proxied.proxy_headers["proxy-authorization"].startswith("Basic ")
    assert proxied.connection_pool_kw["ca_certs"] == str(bundle)

    monkeypatch.setenv("NO_PROXY", "verba.example")
    assert not isinstance(verba_pool("https://verba.example/provisioning", 4), urllib3.ProxyManager)


def test_a_ca_bundle_directory_is_trusted_and_an_untrusted_certificate_says_why(
        https: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """REQUESTS_CA_BUNDLE may name a directory of hashed certificates (requests takes one): it was passed to urllib3 as
    a file and every call failed; and a refused certificate said "(SSLError); check target.url and that Provisioning
    API v2 is enabled", without why."""
    url, certificates = https
    for name in ("HTTPS_PROXY", "https_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)  # certifi's bundle: the throwaway CA is not in it
    with VerbaClient(url, eid="0000", login="connector", password=PASSWORD, timeout=5.0) as untrusting:
        with pytest.raises(VerbaUnreachable) as caught:
            untrusting.request_token()
    assert str(caught.value) == (
        f"requestToken could not reach {url}: Verba's TLS certificate is not trusted (unable to get local issuer "
        "certificate); check that the CA bundle (REQUESTS_CA_BUNDLE, else certifi's; read at start-up) holds the CA "
        "that issued Verba's certificate, and that the certificate names target.url's host")

    directory = tmp_path / "trusted"
    directory.mkdir()
    shutil.copy(certificates / "ca.pem", directory)
    subprocess.run([OPENSSL, "rehash", str(directory)], check=True, capture_output=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(directory))
    assert verba_pool(url, 1).connection_pool_kw["ca_cert_dir"] == str(directory)
    with VerbaClient(url, eid="0000", login="connector", password=PASSWORD, timeout=5.0) as trusting:
        assert trusting.create_extension(record("+14155550102", user_id=3)) is True


def test_https_to_a_plain_http_port_says_what_tls_answered(sim: Sim) -> None:
    url = sim.url.replace("http://", "https://")
    with VerbaClient(url, eid="0000", login="connector", password=PASSWORD, timeout=5.0) as client:
        with pytest.raises(VerbaTransportError) as caught:
            client.request_token()
    assert str(caught.value).startswith(f"requestToken to {url} failed in TLS (SSLError: [SSL: ")
    assert str(caught.value).endswith("; check that target.url's port serves https, and that the CA bundle "
                                      "(REQUESTS_CA_BUNDLE, else certifi's; read at start-up) holds the CA that issued "
                                      "Verba's certificate, and that the certificate names target.url's host")


def test_more_threads_than_the_pool_holds_share_it_without_errors(sim: Sim) -> None:
    """A pool already full closes a connection given back: a call must not touch the socket of an answer it
    has read (a drift check or the whole-user list beside the delivery workers)."""
    with VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD, timeout=5.0, pool_size=2) as client:
        client.request_token()

        def calls(thread: int) -> None:
            for i in range(40):
                client.create_extension(record(f"+1415{thread:02d}{i:05d}", user_id=3))
                client.find_user_id("alice@example.com")

        errors = in_threads(6, calls)
    assert errors == []
    assert len([c for c in sim.calls("createExtension") if c["status"] == "OK"]) == 6 * 40


def test_a_closed_client_opens_new_connections_when_used_again(sim: Sim) -> None:
    client = VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD, timeout=5.0)
    client.request_token()
    client.close()  # releases the token, closes the connections

    assert client.create_extension(record("+14155550100", user_id=3)) is True
    client.close()


def test_a_password_in_the_url_is_in_no_message(sim: Sim) -> None:
    """config.py refuses a login in target.url; a client given one anyway never names the password: the unreachable
    url was named password and all (urllib3 sends none of it: the calls go out as without it)."""
    closed = f"127.0.0.1:{free_port()}"
    with VerbaClient(f"http://proxyuser:Pr0xy-Secret-99@{closed}/provisioning", eid="0000", token="T0ken" * 6) as down:
        with pytest.raises(VerbaUnreachable) as caught:
            down.update_extension(record())
    assert down.url == f"http://proxyuser@{closed}/provisioning"
    assert str(caught.value).startswith(f"updateExtension could not reach http://proxyuser@{closed}/provisioning ")
    with VerbaClient(sim.url.replace("http://", "http://proxyuser:Pr0xy-Secret-99@"), eid="0000",
                     login="connector", password=PASSWORD) as client:
        assert client.create_extension(record("+14155550101", user_id=3)) is True
        assert "Pr0xy-Secret-99" not in client.url
