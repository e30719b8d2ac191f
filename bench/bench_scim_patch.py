"""SCIM member pushes on a large group: one member added and removed by PATCH, against the same on a small group.

    python bench/bench_scim_patch.py [--members N] [--baseline B] [--repeat K]

A SQLite store (WAL, synchronous=FULL) holds two Groups of the client "entra": one of B members (the baseline,
100 by default) and one of N (20,000 by default), each member a User. K times for each group, a PATCH adds one
new member ({"op": "Add", "path": "members", "value": [{"value": <id>}]}, what Entra sends) and another removes it
(`members[value eq "<id>"]`), through the SCIM service as the endpoint calls it; each runs in one store
transaction, which on SQLite holds the process's only write lock. It prints the median time of each, and the
ratio of the large group's to the baseline's: work linear in the members makes it at most N / B (fixed costs,
the commit's fsync among them, keep it lower); quadratic work made it far more (15 s for one add on 15,000
members before PATCH indexed the elements it searches). It also times the PATCH alone (apply_patch, no store).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connector.sources.scim.index import index_values  # noqa: E402
from connector.sources.scim.patch import apply_patch  # noqa: E402
from connector.sources.scim.schema import GROUPS, USERS  # noqa: E402
from connector.sources.scim.service import ScimService  # noqa: E402
from connector.store import ScimResource  # noqa: E402
from connector.store.sqlite import SQLiteStore  # noqa: E402

CLIENT = "entra"
NOW = "2026-01-01T00:00:00.000000Z"


def seed(store: SQLiteStore, group_id: str, size: int) -> None:
    """A Group `group_id` of `size` new Users, written in one transaction."""
    user_ids = [str(uuid.uuid4()) for _ in range(size)]
    with store.scim_transaction(CLIENT) as tx:
        for user_id in user_ids:
            body = {"userName": f"{user_id}@example.com"}
            tx.put(ScimResource(CLIENT, USERS.name, user_id, body, 1, NOW, NOW, body["userName"]),
                   index_values(USERS, body))
        body = {"displayName": group_id, "members": [{"value": user_id} for user_id in user_ids]}
        tx.put(ScimResource(CLIENT, GROUPS.name, group_id, body, 1, NOW, NOW, display=group_id),
               index_values(GROUPS, body))


def add(member: str) -> dict[str, Any]:
    return {"Operations": [{"op": "Add", "path": "members", "value": [{"value": member}]}]}


def remove(member: str) -> dict[str, Any]:
    return {"Operations": [{"op": "remove", "path": f'members[value eq "{member}"]'}]}


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(service: ScimService, group_id: str, member: str, repeat: int) -> dict[str, float]:
    """Median seconds of a member add and of its removal through the service, and of the add's PATCH alone."""
    adds, removes = [], []
    for _ in range(repeat):
        adds.append(seconds(lambda: service.patch(CLIENT, GROUPS, group_id, add(member), None)))
        removes.append(seconds(lambda: service.patch(CLIENT, GROUPS, group_id, remove(member), None)))
    body = service.get(CLIENT, GROUPS, group_id).row.body
    alone = [seconds(lambda: apply_patch(GROUPS, body, group_id, add(member))) for _ in range(repeat)]
    return {"add": statistics.median(adds), "remove": statistics.median(removes),
            "patch alone": statistics.median(alone)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(os.path.join(tmp, "connector.db"))
        store.migrate()
        try:
            seed(store, "small", args.baseline)
            seed(store, "large", args.members)
            service = ScimService(store)
            member = service.create(CLIENT, USERS, {"userName": "newcomer@example.com"}).row.id
            small = measure(service, "small", member, args.repeat)
            large = measure(service, "large", member, args.repeat)
        finally:
            store.close()
    print(f"PATCH of one member, SQLite synchronous=FULL, median of {args.repeat}:")
    for name in ("add", "remove", "patch alone"):
        ratio, linear = large[name] / small[name], args.members / args.baseline
        print(f"  {name:11} {args.baseline:>6} members {small[name] * 1000:8.1f} ms   {args.members:>6} members "
              f"{large[name] * 1000:8.1f} ms   ratio {ratio:6.1f}x  (linear: at most {linear:.0f}x)")


if __name__ == "__main__":
    main()
