"""Verba test helpers: the simulator's seed, its /_sim/ control API (Sim), records and SOAP envelopes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from connector.records import ExtensionRecord

PASSWORD = "s3cret-Pass-42"
SEED: dict[str, Any] = {
    "environments": [{"eid": "0000", "shortName": "default"}, {"eid": "0001", "shortName": "other"}],
    "api_users": [{"loginName": "connector", "password": PASSWORD}],
    "users": [
        {"id": 3, "loginName": "alice@example.com", "eid": "0000", "displayName": "Alice"},
        {"id": 4, "loginName": "bob@example.com", "eid": "0000"},
    ],
    "extensions": [],
}


class Sim:
    """The simulator's address and its /_sim/ control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = f"{base_url}/provisioning"
        self.http = httpx.Client(base_url=base_url, timeout=5)

    def post_soap(self, envelope: str | bytes) -> httpx.Response:
        return self.http.post("/provisioning", content=envelope, headers={"Content-Type": "text/xml; charset=utf-8"})

    def calls(self, operation: str | None = None) -> list[dict[str, Any]]:
        calls = self.http.get("/_sim/calls").raise_for_status().json()
        return [c for c in calls if operation is None or c["operation"] == operation]

    def state(self) -> dict[str, Any]:
        return self.http.get("/_sim/state").raise_for_status().json()

    def extension(self, number: str, eid: str = "0000") -> dict[str, Any] | None:
        return next((e for e in self.state()["extensions"] if e["extension"] == number and e["eid"] == eid), None)

    def faults(self, *rules: dict[str, Any]) -> None:
        self.http.post("/_sim/faults", json=list(rules)).raise_for_status()

    def expire_tokens(self) -> int:
        return self.http.post("/_sim/expire-tokens").raise_for_status().json()["expired"]

    def token(self) -> str:
        response = self.post_soap(envelope("requestToken", "<eid>0000</eid><loginName>connector</loginName>"
                                           f"<password>{PASSWORD}</password>"))
        return response.text.split("<token>")[1].split("</token>")[0]

    def reset(self) -> None:
        """Back to SEED, whatever seed a test gave the simulator."""
        self.http.post("/_sim/reset", json=SEED).raise_for_status()


def record(number: str = "+15550100", user_id: int = 3, **changes: object) -> ExtensionRecord:
    fields = dict(recording_mode="FULL", voice=True, im=False, video=False, screen_capture_enabled=False, eid="0000")
    fields.update(changes)
    return ExtensionRecord(number, user_id, **fields)  # type: ignore[arg-type]


def envelope(operation: str, inner: str) -> str:
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:v2="http://v2.provisioning.ws.web.verba.com/"><soapenv:Header/><soapenv:Body>'
        f"<v2:{operation}>{inner}</v2:{operation}></soapenv:Body></soapenv:Envelope>"
    )


def in_threads(count: int, work: Callable[[int], object]) -> list[BaseException]:
    """Run `work(n)` for n in range(count), each in a thread of its own, all at once; what they raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
