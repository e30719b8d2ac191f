"""Bearer-token authentication for the SCIM endpoint, by named client (RFC 6750).

A client may have several valid tokens at once: the lines of its `token_file`, which is looked at again
(a `stat`) at most every CHECK_SECONDS while requests come in and re-read once it changed and has been
still for SETTLE_SECONDS, or at once on `ScimTokens.reload` (SIGHUP), so a token is rotated without a
restart and without a failed request. A
file that cannot be read, holds no token, a token too short or a token of another client keeps the last
good tokens and logs one error line with the fix; until it is fixed, /readyz says "degraded" with the
reason (`ScimTokens.problems`) and connector_scim_token_file_ok{client} is 0. A token from `token_env` is
read at start only.

Tokens are compared with hmac.compare_digest against every token of every client, so timing tells
nothing. They are never logged, stored or echoed. The name of the matching client lands in
`scope["state"]["scim_client"]`: it becomes the `source` of the events that client causes.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from connector.config import OWN_TOKEN, ScimClient, read_tokens
from connector.ops.logs import register_secret
from connector.ops.metrics import SCIM_TOKEN_FILE_OK
from connector.sources.scim.errors import ScimError

log = logging.getLogger("connector.scim")
MEDIA_TYPE = "application/scim+json"
# Why a request is refused, first in its 401 and last in its access log line: what it sent, never which tokens exist.
NO_CLIENTS = "no SCIM clients are configured"
NO_HEADER = "no Authorization header"
NOT_BEARER = 'the Authorization header is not "Bearer <token>"'
UNKNOWN_TOKEN = "a token no SCIM client has"
ADD_CLIENT = "add a [[scim.clients]] entry with a token_env or token_file"
BAD_TOKEN = "send the bearer token configured for your SCIM client: Authorization: Bearer <token>"
CHECK_SECONDS = 1.0  # a token_file is looked at, on a request, at most this often
# A file changed less than this ago may still be being written (an editor saving in place empties it first): it is
# read at a later check, so that neither half a token nor an empty moment is ever taken for the file's tokens.
SETTLE_SECONDS = 2.0


class ClientTokens:
    """The valid tokens of one SCIM client; those of a token_file follow the file."""

    def __init__(self, client: ScimClient, clock: Callable[[], float] = time.monotonic,
                 holder: Callable[[str, tuple[bytes, ...]], str | None] | None = None) -> None:
        """`holder(name, tokens)` names another client than `name` that accepts one of `tokens`, if any: a file
        that gives this client such a token is refused."""
        assert client.tokens and all(client.tokens), "every SCIM client needs a non-empty token"
        self.name = client.name
        self.file = client.token_file
        self.tokens: tuple[bytes, ...] = tuple(token.encode() for token in client.tokens)
        self._clock = clock
        self._holder = holder
        self._lock = threading.Lock()
        self._next_check = clock() + CHECK_SECONDS
        self._seen: tuple[int, ...] | None = None  # the file's stat when it was last read; None: read it again
        self._failure: str | None = None  # the problem last logged, until the file is good again
        if self.file is not None:
            SCIM_TOKEN_FILE_OK.labels(self.name).set(1)

    @property
    def problem(self) -> str | None:
        """What is wrong with the token_file since it was last looked at (its last good tokens stay valid), or None."""
        return None if self._failure is None else f"token_file {self.file!r} {self._failure}"

    def current(self) -> tuple[bytes, ...]:
        """The tokens valid now; a token_file that changed since the last check (CHECK_SECONDS ago) is re-read."""
        if self.file is not None and self._clock() >= self._next_check:
            with self._lock:
                if self._clock() >= self._next_check:
                    self._check(forced=False)
        return self.tokens

    def reload(self) -> bool:
        """Re-read the token_file now, changed or not (SIGHUP); a token_env token stays until a restart. Whether a
        token_file was read."""
        if self.file is None:
            log.info("SCIM client %s: its token comes from token_env and is read at start only; restart the "
                     "connector to change it, or use a token_file", self.name)
            return False
        with self._lock:
            self._check(forced=True)
        return True

    def _check(self, forced: bool) -> None:
        assert self.file is not None
        self._next_check = self._clock() + CHECK_SECONDS
        try:
            before = os.stat(self.file)
        except OSError as exc:
            self._failed(f"cannot be read ({exc.strerror}); check the path and permissions")
            return
        if not forced and _signature(before) == self._seen:
            return
        if not forced and 0 <= time.time() - before.st_mtime < SETTLE_SECONDS:
            return  # perhaps still being written (an editor saving in place): read it once it has been still
        try:
            tokens = tuple(token.encode() for token in read_tokens(self.file))
            after = os.stat(self.file)
        except (OSError, ValueError) as exc:
            self._seen = _signature(before)
            self._failed(str(exc) if isinstance(exc, ValueError) else
                         f"cannot be read ({exc.strerror}); check the path and permissions")
            return
        self._seen = _signature(before) if _signature(after) == _signature(before) else None
        other = None if self._holder is None else self._holder(self.name, tokens)
        if other is not None:
            self._seen = None  # read again at each check: fixing the other client's file mends this one too
            self._failed(f"holds a token SCIM client {other} also accepts: requests with it could not be told apart; "
                         f"{OWN_TOKEN}")
            return
        self._use(tokens, forced)

    def _use(self, tokens: tuple[bytes, ...], forced: bool) -> None:
        for token in tokens:
            register_secret(token.decode())
        if tokens != self.tokens or forced or self._failure is not None:
            change = "unchanged" if set(tokens) == set(self.tokens) else f"were {len(self.tokens)}"
            log.info("SCIM client %s: %d valid token(s) from token_file %s (%s)", self.name, len(tokens), self.file,
                     change)
        self.tokens = tokens
        self._failure = None
        SCIM_TOKEN_FILE_OK.labels(self.name).set(1)

    def _failed(self, problem: str) -> None:
        if problem != self._failure:
            log.error("SCIM client %s: token_file %r %s; its last good tokens (%d) stay valid until it is fixed",
                      self.name, self.file, problem, len(self.tokens))
        self._failure = problem
        SCIM_TOKEN_FILE_OK.labels(self.name).set(0)


def _signature(stat: os.stat_result) -> tuple[int, ...]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


class ScimTokens:
    """Every SCIM client's valid tokens: which client a bearer token belongs to."""

    def __init__(self, clients: Sequence[ScimClient]) -> None:
        self.clients = [ClientTokens(client, holder=self._holder) for client in clients]

    def client_for(self, token: bytes | None) -> str | None:
        found = None
        for client in self.clients:
            for expected in client.current():
                # Compare with every token, whatever matched, so timing does not tell which one did.
                if hmac.compare_digest(token or b"\0", expected) and found is None:
                    found = client.name
        return found

    def reload(self) -> list[str]:
        """Re-read every client's token_file now (SIGHUP); the names of the clients that have one."""
        return [client.name for client in self.clients if client.reload()]

    def problems(self) -> dict[str, str]:
        """What is wrong with each client's token_file that broke (ClientTokens.problem), by client name; each file
        is looked at again first if it is due (CHECK_SECONDS), as on a request."""
        found = {}
        for client in self.clients:
            client.current()
            if client.problem is not None:
                found[client.name] = client.problem
        return found

    def _holder(self, name: str, tokens: tuple[bytes, ...]) -> str | None:
        """Another client than `name` that accepts one of `tokens`, if any."""
        return next((c.name for c in self.clients if c.name != name and set(c.tokens) & set(tokens)), None)


class BearerAuth:
    def __init__(self, app: ASGIApp, tokens: ScimTokens, open_paths: Sequence[str]) -> None:
        self.app = app
        self.tokens = tokens
        self.open_paths = tuple(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = [value for name, value in scope["headers"] if name == b"authorization"]
        token = next((token for header in headers if (token := _bearer(header))), None)
        client = self.tokens.client_for(token)
        if client is None:
            reason = self.refusal(headers, token)
            scope.setdefault("state", {})["scim_refused"] = reason
            await _unauthorized(send, f"{reason}; {BAD_TOKEN if self.tokens.clients else ADD_CLIENT}")
            return
        scope.setdefault("state", {})["scim_client"] = client
        await self.app(scope, receive, send)

    def refusal(self, headers: list[bytes], token: bytes | None) -> str:
        """Why a request whose Authorization `headers` hold the bearer `token` (None: none does) is refused."""
        if not self.tokens.clients:
            return NO_CLIENTS
        return UNKNOWN_TOKEN if token else NOT_BEARER if headers else NO_HEADER


def _bearer(header: bytes) -> bytes | None:
    """The token of an Authorization header "Bearer <token>", None for any other."""
    scheme, _, token = header.strip().partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" and token.strip() else None


async def _unauthorized(send: Send, detail: str) -> None:
    body = json.dumps(ScimError(401, detail).to_json()).encode()
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="SCIM"'),
        ],
    })
    await send({"type": "http.response.body", "body": body})
