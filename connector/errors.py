"""The connector's error base (the docstring is the default message), and what messages share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
