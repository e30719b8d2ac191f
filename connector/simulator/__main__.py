"""python -m connector.simulator [--host H] [--port P] [--seed FILE] [--token-ttl SECONDS]
[--missing-extension SHAPE]"""

from __future__ import annotations

import argparse

from connector.simulator.app import serve
from connector.simulator.operations import MISSING_EXTENSION_SHAPES
from connector.simulator.seed import SeedError, load_seed


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m connector.simulator", description="Verba Provisioning API v2 simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7002)
    parser.add_argument("--seed", help="JSON seed file (see connector/simulator/__init__.py)")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="token lifetime in seconds")
    parser.add_argument("--missing-extension", choices=MISSING_EXTENSION_SHAPES, default=MISSING_EXTENSION_SHAPES[0],
                        help="how getExtension/updateExtension answer for a missing extension (see operations.py)")
    args = parser.parse_args()
    try:
        seed = load_seed(args.seed) if args.seed else None
    except SeedError as exc:
        parser.error(str(exc))
    serve(args.host, args.port, seed, args.token_ttl, args.missing_extension)


if __name__ == "__main__":
    main()
