"""The connector's version, from the installed package's metadata (pyproject.toml's `version`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

PACKAGE = "connector"


def connector_version() -> str:
    """The installed package's version; "unknown" when the code runs without being installed."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


VERSION = connector_version()
