"""A password a server refused is not sent again for a while unless it changes: probing with it every few seconds
locks the account out where a lockout policy counts refused logins (Active Directory, ppolicy, a directory-backed
Verba).

Only the process that was refused holds the password back, in memory: the running connector (`connector run`) for
15 minutes; a one-shot command (`connector ldap sync`, `validate-config --connect`) ends after its one try, and the
next run of it tries again. Such a command runs within `one_shot_command()`, so that what a refusal tells is true
there too.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator

REFUSED_PASSWORD_SECONDS = 900.0  # how long a refused password is not sent again, unless it changes
_one_shot = False  # within `one_shot_command()`: this process tries a password once and ends


@contextlib.contextmanager
def one_shot_command() -> Iterator[None]:
    """Within (also as a decorator, `@one_shot_command()`): this process is a one-shot command, so a refusal says
    that each run of it sends the password again and only the running connector holds it back. Every thread of the
    process sees it (a dry run asks Verba from several)."""
    global _one_shot
    before, _one_shot = _one_shot, True
    try:
        yield
    finally:
        _one_shot = before


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
        min unless it changes", or, within `one_shot_command()`, "this command sent it once, and each run of it
        sends it again, which a lockout policy counts; only the running connector holds a refused password back,
        for 15 min unless it changes". Either ends with how long it is held back, for the caller to go on (", or
        until SIGHUP")."""
        now, wall = self._clock(), time.time()
        self._refused = (_digest(password), now + self.seconds, _utc(wall), _utc(wall + self.seconds))
        held = f"for {self.seconds / 60:g} min unless it changes"
        if _one_shot:
            return ("this command sent it once, and each run of it sends it again, which a lockout policy counts; "
                    f"only the running connector holds a refused password back, {held}")
        return f"this password is not sent again {held}"

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
