"""A password a server refused is not sent again for a while unless it changes: probing with it every few seconds
locks the account out where a lockout policy counts refused logins (Active Directory, ppolicy, a directory-backed
Verba)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

REFUSED_PASSWORD_SECONDS = 900.0  # how long a refused password is not sent again, unless it changes


class RefusedPassword:
    """The password a server refused last, so that it is not sent again for `seconds` unless it changes: Verba's
    requestToken (connector/verba/client.py) and the LDAP binds (connector/sources/ldap/connection.py).

    Only a SHA-256 digest of it is kept, never the password. `clock` is a monotonic clock (seconds). Threads may
    share one: its state is replaced whole.
    """

    def __init__(self, seconds: float = REFUSED_PASSWORD_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._refused: tuple[bytes, float, str, str] | None = None  # (digest, until, refused at, until; UTC)

    def refuse(self, password: str) -> str:
        """Remember that the server refused `password` now; what to tell: "this password is not sent again for 15
        min unless it changes"."""
        now, wall = self._clock(), time.time()
        self._refused = (_digest(password), now + self.seconds, _utc(wall), _utc(wall + self.seconds))
        return f"this password is not sent again for {self.seconds / 60:g} min unless it changes"

    def withheld(self, password: str) -> str | None:
        """None when `password` may be sent; else why not, e.g. "refused at 10:02:03 UTC and unchanged since: not
        sent again before 10:17:03 UTC unless it changes"."""
        refused = self._refused
        if refused is None or refused[0] != _digest(password) or self._clock() >= refused[1]:
            return None
        return (f"refused at {refused[2]} UTC and unchanged since: not sent again before {refused[3]} UTC unless it "
                "changes")

    def forget(self) -> bool:
        """Send the password refused last again (accepted now, or fixed on the server's side); whether one was
        withheld until now."""
        refused, self._refused = self._refused, None
        return refused is not None and self._clock() < refused[1]


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


def _utc(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(moment))
