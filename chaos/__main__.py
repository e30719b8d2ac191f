"""python -m chaos [--short | --full] [--store sqlite|postgres|both] [--seed N] [--kills N] [--workdir DIR]

Runs the campaign and prints one report; exit status 1 when anything was lost, a final Verba
state is wrong, a write went out without a user id, a dead letter appeared or a 5xx was seen.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from chaos.campaign import FULL, SHORT, Campaign, Plan
from chaos.disk import SmallDisk
from chaos.report import Report, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[2])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--short", action="store_const", const="short", dest="size", help="about a minute: 20 kills")
    size.add_argument("--full", action="store_const", const="full", dest="size", help="200 kills, long outage")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--seed", type=int, default=None, help="replays a run (default: random, printed)")
    parser.add_argument("--kills", type=int, help="override the plan's number of kills")
    parser.add_argument("--users", type=int, help="override the plan's number of users")
    parser.add_argument("--outage-seconds", type=float,
                        help="override the outage: this many seconds each of 503s, refused and slow answers")
    parser.add_argument("--fast-backoff", action="store_true",
                        help="backoff_base_seconds 0.2 and backoff_max_seconds 5 instead of the shipped 5 / 600")
    parser.add_argument("--workdir", type=Path, help="keep logs, config and SQLite store here (default: a temp dir, "
                                                      "kept when the run fails)")
    args = parser.parse_args(argv)
    plan = plan_from(args)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"chaos: seed {seed} (replay with --seed {seed})", flush=True)
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    reports = [run_one(plan, kind, seed, args.workdir) for kind in stores]
    print(render(reports), flush=True)
    return 1 if any(r.failed for r in reports) else 0


def plan_from(args: argparse.Namespace) -> Plan:
    plan = dataclasses.replace(FULL if args.size == "full" else SHORT)
    if args.kills is not None:
        plan.kills = args.kills
    if args.users is not None:
        plan.users = args.users
    if args.outage_seconds is not None:
        plan.outage_503 = plan.outage_refused = plan.outage_slow = args.outage_seconds
    if args.fast_backoff:
        plan.delivery = {**plan.delivery, "backoff_base_seconds": 0.2, "backoff_max_seconds": 5}
    return plan


def run_one(plan: Plan, kind: str, seed: int, workdir: Path | None) -> Report:
    """Run the campaign on a fresh store of this kind; keep the work directory when it fails."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix=f"chaos-{kind}-", dir=workdir))
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"{time.monotonic() - started:7.1f} s {line}", flush=True)

    if kind == "sqlite":
        disk, why = SmallDisk.mount(where / "disk") if plan.disk_full else (None, "")
        try:
            folder = where / "disk" if disk is not None else where
            report = Campaign(plan, kind, f"sqlite:///{folder / 'store.db'}", seed, where, say, disk).run()
        finally:
            if disk is not None:
                disk.unmount(keep=where)
        if why:
            report.problems.append(f"full disk: skipped ({why})")
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.postgres_server import PostgresServer

        with PostgresServer.start() as server:
            report = Campaign(plan, kind, server.create_schema(), seed, where, say).run()
    if report.failed or workdir is not None:
        print(f"chaos: logs, config and store of the {kind} run are in {where}", flush=True)
    else:
        shutil.rmtree(where, ignore_errors=True)
    return report


if __name__ == "__main__":
    sys.exit(main())
