"""A body over `[scim] max_body_bytes` gets the 413 SCIM error, not a connection reset (issue 11 item 6).

Real uvicorn, real sockets: httpx, and a strict client that sends its whole request before it reads (as .NET and
Java clients do) and fails if the server resets the connection under it. The server reads and discards the rest
of a body before answering, so closing the connection afterwards (`Connection: close`) resets nothing.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.scim.helpers import BASE, CONFIG, TOKENS

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIMIT = CONFIG.max_body_bytes
BIG = 16 * 1024 * 1024  # well over what the kernel's socket buffers take in without the server reading


def oversized(size: int) -> bytes:
    return b'{"userName": "big@example.com", "title": "' + b"x" * size + b'"}'


def assert_is_the_413(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413 and headers["content-type"] == "application/scim+json"
    error = json.loads(body)
    assert error == {"schemas": [ERROR], "status": "413", "detail": error["detail"]}  # RFC 7644 §3.12, no scimType
    assert f"over {LIMIT} bytes" in error["detail"]


class StrictClient:
    """One HTTP/1.1 request on a raw socket: the whole request is sent (any send error fails), then the answer read."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=20)
        self.buffer = b""

    def head(self, path: str, headers: dict[str, str]) -> None:
        lines = [f"POST {BASE}{path} HTTP/1.1", "Host: scim.test", "Content-Type: application/scim+json",
                 *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def send(self, body: bytes, chunked: bool) -> None:
        if not chunked:
            self.sock.sendall(body)
            return
        for start in range(0, len(body), 65536):
            piece = body[start:start + 65536]
            self.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.sock.sendall(b"0\r\n\r\n")

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += self.recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection before it answered"
        return chunk

    def closed_by_server(self) -> bool:
        return self.sock.recv(1) == b""


@pytest.fixture
def strict(server: str) -> Iterator[StrictClient]:
    client = StrictClient(server)
    yield client
    client.sock.close()


def auth(name: str = "entra") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_httpx_gets_the_413_for_a_body_over_the_limit(api: httpx.Client, chunked: bool) -> None:
    for size in (LIMIT, 1024 * 1024, BIG):
        body = oversized(size)
        for path in ("/Users", "/Groups/.search"):
            content = iter([body[i:i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
            answer = api.post(path, content=content)
            assert_is_the_413(answer.status_code, dict(answer.headers), answer.content)
    # The connection is still good for the next request.
    assert api.post("/Users", json={"userName": "small@example.com"}).status_code == 201


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_a_client_that_sends_everything_first_gets_the_413(strict: StrictClient, chunked: bool, close: bool) -> None:
    body = oversized(BIG)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(body))}
    strict.head("/Users", {**auth(), **framing, **({"Connection": "close"} if close else {})})
    strict.send(body, chunked)  # a reset here is what clients saw before
    assert_is_the_413(*strict.answer())


def test_a_401_with_a_big_body_reaches_the_client_too(strict: StrictClient) -> None:
    body = oversized(BIG)
    strict.head("/Users", {"Authorization": "Bearer wrong", "Content-Length": str(len(body)), "Connection": "close"})
    strict.send(body, chunked=False)
    status, _, answer = strict.answer()
    assert status == 401 and json.loads(answer)["status"] == "401"


def test_a_client_waiting_for_100_continue_gets_the_413_instead(strict: StrictClient) -> None:
    # RFC 9110 §10.1.1: the server may answer with the final status instead of 100 Continue; the body is never sent.
    strict.head("/Users", {**auth(), "Content-Length": str(BIG), "Expect": "100-continue"})
    status, headers, body = strict.answer()
    assert_is_the_413(status, headers, body)
    assert headers["connection"] == "close" and strict.closed_by_server()


def test_a_client_waiting_for_100_continue_with_a_body_within_the_limit_is_served(strict: StrictClient) -> None:
    body = json.dumps({"userName": "curl@example.com", "title": "t" * (LIMIT // 2)}).encode()
    strict.head("/Users", {**auth(), "Content-Length": str(len(body)), "Expect": "100-continue"})
    assert strict.answer()[0] == 100
    strict.send(body, chunked=False)
    status, headers, created = strict.answer()
    assert status == 201 and json.loads(created)["userName"] == "curl@example.com"
    assert headers.get("connection") != "close"


def test_a_body_declared_far_over_the_limit_is_answered_at_once_and_the_connection_closed(strict: StrictClient) -> None:
    strict.head("/Users", {**auth(), "Content-Length": str(10**12)})  # more than is ever read and discarded
    status, headers, body = strict.answer()
    assert_is_the_413(status, headers, body)
    assert headers["connection"] == "close" and strict.closed_by_server()


def test_a_body_within_the_limit_is_still_accepted_whole(api: httpx.Client) -> None:
    title = "t" * (LIMIT - 200)
    created = api.post("/Users", json={"userName": "fits@example.com", "title": title})
    assert created.status_code == 201 and created.json()["title"] == title
    chunked = api.post("/Users", content=iter([b'{"userName": "chunks@example.com", ', b'"title": "c"}']))
    assert chunked.status_code == 201 and chunked.json()["title"] == "c"
