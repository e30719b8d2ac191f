"""Malformed SCIM input (hypothesis) against the running connector: never a 5xx.

A second SCIM client, `fuzz`, sends what hypothesis makes of user bodies and PATCH
operations: wrong types, unknown and misspelt attributes, odd paths, broken values, bytes that
are not JSON. Its users have no Verba user, so whatever it gets accepted ends as an
`unresolved_user` (or `mapping`) dead letter of source `fuzz`, counted apart from the
campaign's own dead letters.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from chaos.processes import FUZZ_TOKEN

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)
names = st.sampled_from(["userName", "active", "phoneNumbers", "emails", "name", "displayName", "groups",
                         "phoneNumber", "phoneNumbers[type eq \"work\"].value", "name.givenName", "schemas", "id",
                         "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                         "urn:ietf:params:scim:schemas:extension:verba:2.0:User:verbaUserId", "meta", "externalId"])
phone_values = st.one_of(json_values, st.text(alphabet="+0123456789 ()-x.;=ext#", max_size=30))
user_bodies = st.fixed_dictionaries(
    {"schemas": st.one_of(st.just([USER_SCHEMA]), json_values)},
    optional={"userName": st.one_of(st.text(max_size=30).map(lambda t: f"fuzz-{t}"), json_values),
              "active": json_values,
              "phoneNumbers": st.one_of(st.lists(st.fixed_dictionaries({"type": st.sampled_from(["work", "mobile", 3]),
                                                                        "value": phone_values}), max_size=3),
                                        json_values),
              "name": json_values},
).flatmap(lambda body: st.dictionaries(names, json_values, max_size=3).map(lambda extra: {**extra, **body}))
operations = st.fixed_dictionaries({"op": st.sampled_from(["add", "replace", "remove", "Replace", "move", 7]),
                                    "path": st.one_of(names, st.text(max_size=30), json_values),
                                    "value": json_values})
patch_bodies = st.fixed_dictionaries({"schemas": st.one_of(st.just([PATCH_SCHEMA]), json_values),
                                      "Operations": st.one_of(st.lists(operations, max_size=3), json_values)})
raw_bodies = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode))


class Fuzzer:
    """Sends hypothesis's bodies; collects every answer of 500 or more."""

    def __init__(self, scim_url: str) -> None:
        self.http = httpx.Client(base_url=scim_url, timeout=30, headers={"Authorization": f"Bearer {FUZZ_TOKEN}",
                                                                          "Content-Type": "application/scim+json"})
        self.sent = 0
        self.status_5xx: list[str] = []
        self.target_id: str | None = None

    def send(self, method: str, path: str, content: bytes) -> None:
        answer = self.http.request(method, path, content=content)
        self.sent += 1
        if answer.status_code >= 500:
            self.status_5xx.append(f"{method} {path} {content[:200]!r}: {answer.status_code} {answer.text[:200]}")

    def run(self, examples: int, seed: int) -> None:
        made = self.http.post("/Users", json={"schemas": [USER_SCHEMA], "userName": f"fuzz-target-{seed}@example.com"})
        self.target_id = made.json().get("id") if made.status_code == 201 else None
        target = f"/Users/{self.target_id or 'missing'}"
        fast = settings(max_examples=examples, database=None, deadline=None, derandomize=False,
                        suppress_health_check=list(HealthCheck))

        @fast
        @given(user_bodies)
        def creates(body: dict[str, Any]) -> None:
            self.send("POST", "/Users", _encode(body))

        @fast
        @given(user_bodies)
        def replaces(body: dict[str, Any]) -> None:
            self.send("PUT", target, _encode(body))

        @fast
        @given(patch_bodies)
        def patches(body: dict[str, Any]) -> None:
            self.send("PATCH", target, _encode(body))

        @fast
        @given(st.sampled_from(["POST /Users", f"PUT {target}", f"PATCH {target}", "POST /Users/.search"]), raw_bodies)
        def raw(request: str, content: bytes) -> None:
            method, path = request.split(" ")
            self.send(method, path, content)

        for test in (creates, replaces, patches, raw):
            hypothesis_seed(seed)(test)()

    def close(self) -> None:
        self.http.close()


def _encode(body: Any) -> bytes:
    return json.dumps(body, allow_nan=False).encode()
