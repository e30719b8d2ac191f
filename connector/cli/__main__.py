"""`python -m connector.cli ...`, the same as the `connector` command."""

from __future__ import annotations

from connector.cli import main

main()
