"""The `connector` command's entry point (and `python -m connector`): the CLI (connector/cli/), with a Ctrl-C
while it is still being imported ending quietly, as one after it does (exit status 130, no traceback)."""

from __future__ import annotations

import sys

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C


def main() -> None:
    try:
        from connector.cli import main as cli  # imports every command and its libraries: about 0.3 s
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    cli()


if __name__ == "__main__":
    main()
