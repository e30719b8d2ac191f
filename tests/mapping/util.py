from __future__ import annotations

import tomllib
from typing import Any

from connector.events import UserChange
from connector.mapping import Mapping, parse_mapping

BASE = """
[environment]
eid = "0000"

[[extensions]]
from = 'phoneNumbers[type eq "work"].value'
normalize = "e164"
default_country = "US"
"""


def mapping(extra: str = "", base: str = BASE) -> Mapping:
    return parse_mapping(tomllib.loads(base + extra), "test.toml")


def change(state: dict[str, Any], kind: str = "upsert") -> UserChange:
    return UserChange(source="test", external_id="u1", kind=kind, state={"userName": "alice", **state})  # type: ignore[arg-type]


def work(*numbers: str) -> dict[str, Any]:
    return {"phoneNumbers": [{"value": n, "type": "work"} for n in numbers]}
