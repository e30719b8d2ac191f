"""The connector's error base (the docstring is the default message), and what messages share."""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable
from pathlib import Path


class ConnectorError(Exception):
    """The connector failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


def closest(typed: str, names: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The one of `names` that `typed` looks most like, compared case-insensitively, for a message's "did you mean
    'poll_seconds'?"; None when none is close enough (difflib's similarity ratio, 0 to 1, below `cutoff`)."""
    folded = {name.casefold(): name for name in names}
    close = difflib.get_close_matches(typed.casefold(), folded, n=1, cutoff=cutoff)
    return folded[close[0]] if close else None


def did_you_mean(typed: str, names: Iterable[str]) -> str:
    """"did you mean 'poll_seconds'? ", to put before the list of `names`, when `typed` is `closest` to one; "" when
    none is close."""
    meant = closest(typed, names)
    return f"did you mean {meant!r}? " if meant else ""


def counted(n: int, noun: str) -> str:
    """`n` `noun`s as a message counts them: "1 user", "2 users", "0 extensions"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def from_here(path: str | Path) -> str:
    """What to add to "not found" for a relative `path`: " (a relative path, read from the current directory,
    /srv)"; "" for an absolute one. A command run from another directory than the config's paths assume finds none
    of them, and the path alone does not say so."""
    return "" if Path(path).is_absolute() else f" (a relative path, read from the current directory, {os.getcwd()})"


def bind_fix(error: OSError, key: str) -> str:
    """What to do when listening on `key`'s host:port failed with `error`."""
    if error.errno == errno.EADDRNOTAVAIL:
        return f"the address is not one of this host's: set {key} to one of its addresses (or 0.0.0.0)"
    if error.errno == errno.EACCES:
        return f"a port below 1024 needs root: set {key} to a port above 1023"
    return f"free the port or set {key} to another host:port"
