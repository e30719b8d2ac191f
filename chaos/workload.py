"""SCIM writes as an identity provider sends them, and the model of what was acknowledged.

Each write is retried until it is answered 2xx, as an IdP retries: on connection errors (the
connector was killed) and on 5xx (waiting as Retry-After says, time-compressed to at most
`max_retry_wait` seconds). A create retried after a kill may find its user already made
(409): the user is then looked up by userName. A delete retried may find it gone (404).
Only a 2xx answer changes the model: `Model` is exactly what the connector acknowledged.
"""

from __future__ import annotations

import dataclasses
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
FORMATS: tuple[Callable[[str], str], ...] = (  # how an IdP may spell the 10 digits of a US number
    lambda d: f"+1{d}",
    lambda d: f"+1 {d[:3]} {d[3:6]} {d[6:]}",
    lambda d: f"({d[:3]}) {d[3:6]}-{d[6:]}",
    lambda d: f"{d[:3]}-{d[3:6]}-{d[6:]}",
)


@dataclasses.dataclass
class User:
    """One SCIM user as acknowledged: `digits` is the work number's 10 digits (None: no number)."""

    n: int
    user_name: str
    verba_id: int
    scim_id: str | None = None  # None: not created yet, or deleted
    digits: str | None = None
    active: bool = True
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    @property
    def exists(self) -> bool:
        return self.scim_id is not None


@dataclasses.dataclass
class Counters:
    """What the clients saw, for the report."""

    writes: int = 0  # writes answered 2xx
    retries: int = 0  # attempts that were retried (connection errors and 5xx)
    connection_errors: int = 0
    status_503: int = 0  # 503 with Retry-After: the store said "later"
    status_503_without_retry_after: int = 0
    status_5xx: int = 0  # any other 5xx: a bug
    unexpected: list[str] = dataclasses.field(default_factory=list)  # 4xx answers the workload did not expect
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)


class Model:
    """The users, the free numbers and who ever held each number (for the oracle)."""

    def __init__(self, users: int, seed: int, ldap_users: int = 0) -> None:
        self.users = [User(n, f"chaos{n:04d}@example.com", 1000 + n) for n in range(users)]
        # the directory's users (directory.py); the SCIM workload never touches them
        self.ldap_users = [User(n, f"ldap{n:04d}", 5000 + n) for n in range(ldap_users)]
        self.lock = threading.Lock()
        rng = random.Random(seed)
        self.free = [f"415555{i:04d}" for i in rng.sample(range(10000), min(10000, users * 6))]
        self.holders: dict[str, set[int]] = {}  # number digits -> Verba ids of users ever acknowledged with it

    def take_number(self, rng: random.Random) -> str:
        with self.lock:
            return self.free.pop(rng.randrange(len(self.free)))

    def give_back(self, digits: str | None) -> None:
        if digits is not None:
            with self.lock:
                self.free.append(digits)

    def held(self, user: User, digits: str | None) -> None:
        if digits is not None:
            with self.lock:
                self.holders.setdefault(digits, set()).add(user.verba_id)

    def verba_users(self) -> list[dict[str, Any]]:
        """The simulator's seed: one Verba user per SCIM userName."""
        return [{"id": u.verba_id, "loginName": u.user_name, "eid": "0000"} for u in self.users + self.ldap_users]


class Abandoned(Exception):
    """The campaign called the writers off while the connector answered 503 (nothing was changed)."""


class Balancer:
    """Several connector instances behind one address, as a load balancer spreads requests: round
    robin, and an instance that refused a connection is left out for `down_seconds` (as a failed
    health check takes it out of the pool). `sent` counts the requests each base URL got."""

    def __init__(self, base_urls: Sequence[str], headers: dict[str, str], timeout: float = 30,
                 down_seconds: float = 3.0) -> None:
        self.base_urls = list(base_urls)
        self.clients = [httpx.Client(base_url=url, timeout=timeout, headers=headers) for url in base_urls]
        self.sent = dict.fromkeys(base_urls, 0)
        self.down_seconds = down_seconds
        self._down_until = [0.0] * len(self.clients)
        self._next = 0
        self._lock = threading.Lock()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._lock:
            now = time.monotonic()
            order = [(self._next + i) % len(self.clients) for i in range(len(self.clients))]
            up = [i for i in order if self._down_until[i] <= now]
            chosen = (up or order)[0]  # all down: try the next one anyway
            self._next = (chosen + 1) % len(self.clients)
            self.sent[self.base_urls[chosen]] += 1
        try:
            return self.clients[chosen].request(method, path, **kwargs)
        except httpx.ConnectError:
            with self._lock:
                self._down_until[chosen] = time.monotonic() + self.down_seconds
            raise

    def close(self) -> None:
        for client in self.clients:
            client.close()


class ScimClient:
    """Writes to the connector's SCIM endpoint, retried until 2xx like an IdP.

    With several base URLs, the requests go through a `Balancer` (round robin over instances)."""

    def __init__(self, base_url: str | Sequence[str], token: str, counters: Counters, *,
                 max_retry_wait: float = 0.5, give_up_after: float = 300.0,
                 abandon: threading.Event | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.http: httpx.Client | Balancer = (httpx.Client(base_url=base_url, timeout=30, headers=headers)
                                              if isinstance(base_url, str) else Balancer(base_url, headers))
        self.counters = counters
        self.max_retry_wait = max_retry_wait
        self.give_up_after = give_up_after
        self.abandon = abandon  # set: a write answered 503 is given up (503 promises nothing was changed)

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> httpx.Response:
        """Send until answered below 500 (a 503 or another 5xx is retried); raise RuntimeError after
        `give_up_after` seconds."""
        deadline = time.monotonic() + self.give_up_after
        headers = {"Content-Type": "application/scim+json"} if body is not None else {}
        while True:
            try:
                answer = self.http.request(method, path, json=body, headers=headers, params=params)
            except httpx.TransportError:
                self.counters.add("connection_errors")
                wait = 0.1
            else:
                if answer.status_code < 500:
                    return answer
                if answer.status_code == 503 and answer.headers.get("Retry-After"):
                    self.counters.add("status_503")
                    wait = min(float(answer.headers["Retry-After"]), self.max_retry_wait)
                    if self.abandon is not None and self.abandon.is_set():
                        raise Abandoned(f"{method} {path}")
                elif answer.status_code == 503:
                    self.counters.add("status_503_without_retry_after")
                    wait = self.max_retry_wait
                else:
                    self.counters.add("status_5xx")
                    self.counters.unexpected.append(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
                    wait = self.max_retry_wait
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path} got no answer below 500 for {self.give_up_after} s: is the "
                                   "connector up? see connector.log in the campaign's work directory")
            self.counters.add("retries")
            time.sleep(wait)


def user_body(user: User, digits: str | None, active: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "userName": user.user_name, "active": active}
    if digits is not None:
        body["phoneNumbers"] = [{"type": "work", "value": digits}]
    return body


class Workload:
    """Random SCIM writes over the model's users: create, change number, move a number, deactivate,
    reactivate, delete. Every method changes the model only after a 2xx."""

    def __init__(self, model: Model, client: ScimClient, seed: int) -> None:
        self.model = model
        self.client = client
        self.counters = client.counters
        self.rng = random.Random(seed)
        self.ops: dict[str, int] = {}

    def _count(self, op: str) -> None:
        with self.counters.lock:
            self.ops[op] = self.ops.get(op, 0) + 1
            self.counters.writes += 1

    def _spell(self, digits: str) -> str:
        return self.rng.choice(FORMATS)(digits)

    def _expect(self, answer: httpx.Response, what: str, *codes: int) -> bool:
        if answer.status_code in codes:
            return True
        self.counters.unexpected.append(f"{what}: {answer.status_code} {answer.text[:300]}")
        return False

    def create(self, user: User) -> None:
        digits = self.model.take_number(self.rng)
        body = user_body(user, self._spell(digits), True)
        answer = self.client.send("POST", "/Users", body)
        if answer.status_code == 409:  # a retry after a kill: the first attempt was committed
            found = self.client.send("GET", "/Users", params={"filter": f'userName eq "{user.user_name}"'})
            resources = found.json().get("Resources", []) if found.status_code == 200 else []
            if not resources:
                self.counters.unexpected.append(f"create {user.user_name}: 409 but no such user: {answer.text[:200]}")
                self.model.give_back(digits)
                return
            scim_id = resources[0]["id"]
            # make sure it holds what this create said (the committed attempt sent the same body)
            answer = self.client.send("PUT", f"/Users/{scim_id}", body)
            if not self._expect(answer, f"put {user.user_name}", 200):
                return
        elif not self._expect(answer, f"create {user.user_name}", 201):
            self.model.give_back(digits)
            return
        user.scim_id, user.digits, user.active = answer.json()["id"], digits, True
        self.model.held(user, digits)
        self._count("create")

    def set_number(self, user: User, digits: str | None, op: str = "change_number") -> bool:
        """Replace the user's work number (None: remove it); the old one is the caller's to give back."""
        value = [] if digits is None else [{"type": "work", "value": self._spell(digits)}]
        body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "phoneNumbers", "value": value}]}
        answer = self.client.send("PATCH", f"/Users/{user.scim_id}", body)
        if not self._expect(answer, f"{op} {user.user_name}", 200, 204):
            return False
        user.digits = digits
        self.model.held(user, digits)
        self._count(op)
        return True

    def change_number(self, user: User) -> None:
        old = user.digits
        if self.set_number(user, self.model.take_number(self.rng)):
            self.model.give_back(old)

    def move_number(self, giver: User, taker: User) -> None:
        """The giver gets a new number first (acknowledged), then the taker gets the giver's old one."""
        moved, old = giver.digits, taker.digits
        if moved is None or not self.set_number(giver, self.model.take_number(self.rng), "move_number"):
            return
        if self.set_number(taker, moved, "move_number"):
            self.model.give_back(old)
        else:
            self.model.give_back(moved)

    def set_active(self, user: User, active: bool) -> None:
        body = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "path": "active", "value": active}]}
        answer = self.client.send("PATCH", f"/Users/{user.scim_id}", body)
        if self._expect(answer, f"active={active} {user.user_name}", 200, 204):
            user.active = active
            self._count("reactivate" if active else "deactivate")

    def delete(self, user: User) -> None:
        answer = self.client.send("DELETE", f"/Users/{user.scim_id}")
        if self._expect(answer, f"delete {user.user_name}", 204, 404):
            self.model.give_back(user.digits)
            user.scim_id, user.digits, user.active = None, None, True
            self._count("delete")

    def step(self) -> None:
        """One random write on users no other thread is writing."""
        try:
            self._step()
        except Abandoned:
            pass  # not acknowledged, and the 503 said nothing changed: the model stays as it is

    def _step(self) -> None:
        users = self.model.users
        user = users[self.rng.randrange(len(users))]
        if not user.lock.acquire(blocking=False):
            return
        try:
            if not user.exists:
                self.create(user)
                return
            roll = self.rng.random()
            if roll < 0.35:
                self.change_number(user)
            elif roll < 0.65 and user.active and user.digits is not None:
                other = users[self.rng.randrange(len(users))]
                if other is not user and other.exists and other.active and other.lock.acquire(blocking=False):
                    try:
                        self.move_number(user, other)
                    finally:
                        other.lock.release()
            elif roll < 0.8:
                self.set_active(user, not user.active)
            elif roll < 0.9 and user.digits is not None:
                old = user.digits
                if self.set_number(user, None, "remove_number"):
                    self.model.give_back(old)
            else:
                self.delete(user)
        finally:
            user.lock.release()


def read_back(model: Model, client: ScimClient) -> list[str]:
    """The acknowledged writes the connector does not have, one line per user whose SCIM resource
    differs from the model. Call it with the writers stopped."""
    lost: list[str] = []
    for user in model.users:
        answer = client.send("GET", "/Users", params={"filter": f'userName eq "{user.user_name}"'})
        resources = answer.json().get("Resources", []) if answer.status_code == 200 else []
        if not user.exists:
            if resources:
                lost.append(f"{user.user_name} was deleted (acknowledged) but exists")
            continue
        if len(resources) != 1:
            lost.append(f"{user.user_name} was created (acknowledged) but is missing")
            continue
        found = resources[0]
        numbers = [re.sub(r"\D", "", p.get("value", ""))[-10:] for p in found.get("phoneNumbers", [])
                   if p.get("type") == "work"]
        digits = numbers[0] if numbers else None
        if found.get("id") != user.scim_id or digits != user.digits or found.get("active", True) != user.active:
            lost.append(f"{user.user_name}: acknowledged id={user.scim_id} number={user.digits} "
                        f"active={user.active}; the connector has id={found.get('id')} number={digits} "
                        f"active={found.get('active')}")
    return lost
