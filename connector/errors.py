"""The connector's error base: the docstring is the default message."""

from __future__ import annotations


class ConnectorError(Exception):
    """The connector failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)
