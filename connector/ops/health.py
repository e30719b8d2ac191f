"""The admin listener: /livez (the process answers), /readyz (can it do its job?), /metrics; and the target's
health as the running connector sees it.

Readiness follows Kubernetes probe semantics: unready (503) only when the store cannot be written, since then
nothing can be accepted, or when another start took this instance's name (it must be stopped); a Verba outage makes
it "degraded" (200), because intake still works and delivery catches up when Verba is back (reference/delivery.md,
5.2).

The target is checked with a real, cheap authenticated call (`VerbaClient.probe`: one listUsers, after a
requestToken when the client holds no token), never with `GET ?wsdl`, which any web server answers: a Verba
that answers HTTP 503 to every SOAP call, or refuses the login, is "unreachable". A probe is reused for
PROBE_MAX_AGE seconds, so that a load balancer asking /readyz every second does not call Verba every second,
and only one runs at a time. /readyz never waits for a slow Verba: when its probe is stale it starts a new one
in the background and waits for it PROBE_WAIT seconds at most, then answers from the last finished probe and
says how old that is (a load balancer's 2 s health check must not drop the instance, and SCIM intake with it,
because Verba is slow). The running connector also probes every PROBE_INTERVAL seconds whether /readyz is
asked or not, and records each probe in the store with when it was taken: `connector status` shows the last
one with its age instead of calling Verba itself (it needs no secrets). While the circuit breaker is open,
delivery's own probes (every probe_seconds) are recorded the same way (`probe_target`), so the last probe
`status` shows is never older than the breaker's closing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connector.errors import ConnectorError
from connector.ops.bounded import BoundedCall
from connector.ops.report import age, breaker_state, when
from connector.store import Attempt, EventLog, EventState, OpenBreaker, Store, TargetProbe
from connector.verba.errors import LeaseEnding, VerbaError, VerbaMisconfigured

log = logging.getLogger(__name__)

PROBE_MAX_AGE = 5.0  # seconds a probe is reused by /readyz, from when it ended
PROBE_WAIT = 1.0  # seconds /readyz waits for a probe before answering with the last finished one
PROBE_INTERVAL = 30.0  # seconds between the running connector's own probes, for `connector status`
REACHABLE = "reachable"


def probe_state(probe: TargetProbe) -> str:
    """"reachable" when Verba answered the probe; "MISCONFIGURED: <what failed>" when it answered, but not as
    Provisioning API v2 at target.url (cause target_misconfigured: fix target.url); else "unreachable: <cause>: <what
    failed>"."""
    if probe.answered:
        return REACHABLE
    if probe.cause == VerbaMisconfigured.cause:
        return f"MISCONFIGURED: {probe.error}"
    return f"unreachable: {probe.cause}: {probe.error}"


def target_state(probe: TargetProbe | None, breakers: Sequence[OpenBreaker] = (), now: float | None = None) -> str:
    """The target's state for /readyz: "DOWN: ..." while a circuit breaker on Verba is open (`breakers`, from the
    store: what delivery saw), else what the probe found (see `probe_state`)."""
    now = time.time() if now is None else now
    if breakers:
        return breaker_state(breakers[0], now)
    if probe is None:
        return "unknown: the first probe of Verba has not ended yet"
    return probe_state(probe)


def recorded_target_state(probes: Sequence[TargetProbe], breakers: Sequence[OpenBreaker], live: Collection[str],
                          now: float, answered_at: float | None = None) -> str:
    """The target's state from what the running instances recorded in the store, for `connector status`: an open
    circuit breaker, else the newest probe with its age and the instance that took it (`live`: the names of the
    instances alive now), else that no instance recorded one. `answered_at`: when Verba last answered a push that
    ended after that probe, if it failed (see `answered_since`): newer evidence than the probe, so "reachable"."""
    if breakers:
        return breaker_state(breakers[0], now)
    if not probes:
        return ("unknown: no running connector has recorded a probe of Verba yet (`connector run` probes it at "
                f"start and every {PROBE_INTERVAL:g} s)")
    probe = probes[0]
    gone = "" if probe.instance in live else f"; instance {probe.instance} is not running now"
    probed = (f"probed {age(max(0.0, now - probe.probed_at))} ago, at {when(probe.probed_at)}, by instance "
              f"{probe.instance}{gone}")
    if not probe.answered and answered_at is not None:
        return (f"{REACHABLE} (Verba answered a push {age(max(0.0, now - answered_at))} ago, at {when(answered_at)}, "
                f"after the last probe failed: {probe.cause}: {probe.error}; {probed})")
    return f"{probe_state(probe)} ({probed})"


def answered_since(probes: Sequence[TargetProbe], pushes: Callable[[float], Sequence[Attempt]]) -> float | None:
    """When Verba answered a push after the newest probe in `probes` ended, if that probe failed: a claim's attempt
    that ended "done" after sending SOAP calls (`pushes(t)`: the attempts recorded at or after Unix time t, e.g.
    `attempts_since` over the store). None when the probe answered, none was taken, or no push was answered since:
    then the failed probe is the newest word on Verba, and `status --check` fails for it."""
    if not probes or probes[0].answered:
        return None
    ended = probes[0].probed_at + probes[0].seconds
    times = [a.at for a in pushes(ended) if a.at >= ended and a.outcome == "done" and any(
        call.get("status") for call in a.sent)]
    return max(times, default=None)


ANSWERED_EVENTS = 20  # events done since a failed probe whose attempts `attempts_since` reads, newest first


def attempts_since(store: EventLog, since: float) -> list[Attempt]:
    """The attempts of the (at most ANSWERED_EVENTS newest) events done at or after Unix time `since`, read-only:
    the evidence `answered_since` weighs against a failed probe. Raises StoreError if the store cannot be read."""
    events = store.list_events(state=EventState.DONE, since=since, limit=ANSWERED_EVENTS)
    return [attempt for event in events for attempt in store.attempts(event.id) if attempt.at >= since]


def probe_target(probe: Callable[[], None], store: EventLog, instance: str, url: str,
                 clock: Callable[[], float] = time.time) -> TargetProbe:
    """Call `probe` (one cheap authenticated call that raises VerbaError when Verba does not answer it) and record
    what it found in `store` as `instance`'s last probe of `url`, for `connector status` and `status --check`.
    Never raises: a failure is what the probe found, and a store that cannot record it is logged. A probe not sent
    because the caller's push's lease ends first (LeaseEnding) found nothing of Verba: returned, not recorded. Both
    `TargetHealth` and the circuit breaker's probes (connector/delivery/worker.py) take their probes with it."""
    started, clock_started = clock(), time.perf_counter()
    cause = error = None
    try:
        probe()
    except VerbaError as exc:  # its message is one line and holds no secret (VerbaClient scrubs it)
        cause, error = exc.cause, str(exc)
    except Exception as exc:  # noqa: BLE001 - a probe must say what failed, never take the caller down
        cause, error = "unexpected", f"{type(exc).__name__}: {exc}"
    taken = TargetProbe(instance, url, started, time.perf_counter() - clock_started, cause, error)
    if cause == LeaseEnding.cause:
        return taken
    try:
        store.note_target_probe(taken)
    except ConnectorError as exc:  # the store's own health is /readyz's store check
        log.warning("could not record the Verba health probe in the store: %s", exc)
    return taken


class TargetHealth:
    """The target's health as this instance sees it: `probe` (one cheap authenticated call that raises VerbaError
    when Verba does not answer it) taken at most once at a time, reused while it is younger than asked, and each
    recorded in `store` as this `instance`'s last probe of `url`.

    A caller never waits long for Verba: `check` starts a probe when the last one is stale and waits for it until
    it is `wait` seconds old (PROBE_WAIT for /readyz), then answers with the newest finished probe, however old,
    while the running probe finishes in the background. Only one probe runs at a time: a caller that finds one
    running never starts a second, and one that finds it older than `wait` answers at once."""

    def __init__(self, probe: Callable[[], None], store: EventLog, instance: str, url: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._probe = probe
        self.store = store
        self.instance = instance
        self.url = url
        self.clock = clock
        self.last: TargetProbe | None = None  # the newest finished probe
        self.probing_since: float | None = None  # when the running probe started (time.monotonic), if one runs
        self._changed = threading.Condition()  # guards `last` and `probing_since`; notified when a probe ends
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, max_age: float = PROBE_MAX_AGE, wait: float | None = PROBE_WAIT) -> TargetProbe | None:
        """The newest finished probe if it ended less than `max_age` seconds ago; else a new probe (started unless
        one runs), waited for until it is `wait` seconds old (None: until it ends). Returns the newest finished
        probe then: the new one if it ended in time, else the stale one (None if no probe ever finished). Never
        raises."""
        with self._changed:
            last = self.last
            if last is not None and self._fresh(last, max_age):
                return last
            start = self.probing_since is None
            running_since = time.monotonic() if self.probing_since is None else self.probing_since
            self.probing_since = running_since
        if start:
            threading.Thread(target=self._run, name="target-probe", daemon=True).start()
        timeout = None if wait is None else max(0.0, running_since + wait - time.monotonic())
        with self._changed:  # until the probe ends (or ended: `last` changed), or is `wait` seconds old
            self._changed.wait_for(lambda: self.last is not last or self.probing_since is None, timeout=timeout)
            return self.last

    def _fresh(self, probe: TargetProbe, max_age: float) -> bool:
        """Whether `probe` ended less than `max_age` seconds ago (a probe Verba took 10 s to fail is not stale
        the moment it ends)."""
        return self.clock() - (probe.probed_at + probe.seconds) < max_age

    def _run(self) -> None:
        """Take one probe (in its own thread) and publish it as `last` to the callers waiting for it."""
        probe = None
        try:
            probe = self._take()
        finally:
            with self._changed:
                if probe is not None:
                    self.last = probe
                self.probing_since = None
                self._changed.notify_all()

    def _take(self) -> TargetProbe:
        probe = probe_target(self._probe, self.store, self.instance, self.url, self.clock)
        if probe.answered != (self.last is None or self.last.answered):
            log.log(logging.INFO if probe.answered else logging.WARNING, "Verba health probe: %s", probe_state(probe),
                    extra={"target": self.url})
        return probe

    def start(self, interval: float = PROBE_INTERVAL) -> None:
        """Probe now and then every `interval` seconds (reusing a younger probe /readyz took), in a thread."""
        def loop() -> None:
            while True:
                self.check(max_age=interval, wait=None)
                if self._stop.wait(interval):
                    return

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="target-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None


def scim_state(url: str, clients: Sequence[str], listening: bool, broken: Mapping[str, str]) -> str:
    """SCIM's line in /readyz: "ok: ..." while it listens (with or without clients), "degraded: ..." while the
    token_file of one of `clients` is broken (`broken`: what is wrong with it, by client, as ScimTokens.problems
    says; its last good tokens stay valid), else why it does not listen."""
    if not listening:
        return f"not listening on {url}"
    who = f"clients {', '.join(clients)}" if clients else "no clients configured (every request gets 401)"
    problems = [f"SCIM client {name}: {problem} (its last good tokens stay valid until then; a restart would refuse "
                "the file)" for name, problem in broken.items() if name in clients]
    if problems:
        return f"degraded: {'; '.join(problems)}; listening on {url}; {who}"
    return f"ok: listening on {url}; {who}"


class StoreCheck(NamedTuple):
    """What /readyz says of the store."""

    state: str  # "writable", or "unwritable: why" / "unreadable: why"
    breakers: list[OpenBreaker]  # the instances whose circuit breaker on the target is open
    leaders: dict[str, str]  # the instance that runs each task ("ldap.NAME", "drift")


def check_store(store: Store) -> StoreCheck:
    """Whether the store takes a tiny write (`Store.ping`), and what /readyz shows of it then ("unreadable: ..." when
    those reads fail)."""
    try:
        store.ping()
    except ConnectorError as exc:
        return StoreCheck(f"unwritable: {exc}", [], {})
    try:
        return StoreCheck("writable", store.open_breakers(), store.leaders())
    except ConnectorError as exc:
        return StoreCheck(f"unreadable: {exc}", [], {})


def readiness(store: Callable[[], StoreCheck], target: Callable[[], TargetProbe | None],
              sources: dict[str, Callable[[], str]],
              unready: Callable[[], str | None] = lambda: None) -> tuple[int, dict[str, object]]:
    """(HTTP status, body) of /readyz. `store` checks the store (`check_store`); `target` gives the newest finished
    probe of the target without waiting for a slow Verba (TargetHealth.check: None before the first ends), asked only
    while no circuit breaker on Verba is open; the body says when it started ("target_probed_at", Unix time) and how
    old it is ("target_probe_age_seconds"); `sources` maps each source's name to a function that says "ok"
    (or "ok: ...") or what is wrong with it; `unready` says why this instance must get no traffic at all, if it must
    not (Liveness.unready: another start took its name), under "instance"."""
    store_state, breakers, leaders = store()
    probe = None if breakers else target()  # while a breaker is open, delivery probes Verba itself
    state = target_state(probe, breakers)
    source_states = {name: source() for name, source in sources.items()}
    instance = unready()
    if store_state != "writable" or instance is not None:
        status, code = "unready", 503
    elif state != REACHABLE or any(not s.startswith("ok") for s in source_states.values()):
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    body: dict[str, object] = {"status": status, "store": store_state, "target": state}
    if probe is not None:  # the answer may be older than PROBE_MAX_AGE while a slow probe runs: say how old
        body["target_probed_at"] = probe.probed_at
        body["target_probe_age_seconds"] = round(max(0.0, time.time() - probe.probed_at), 1)
    if instance is not None:
        body["instance"] = instance
    return code, {**body, "sources": source_states, "leaders": leaders}


def create_admin_app(store: Store, target: Callable[[], TargetProbe | None],
                     sources: dict[str, Callable[[], str]] | None = None,
                     unready: Callable[[], str | None] = lambda: None) -> Starlette:
    """`target` gives a recent probe of the target (TargetHealth.check); `sources` maps each source's name to a
    function that says "ok" (or "ok: ...") or what is wrong with it; `unready` why this instance must get no traffic,
    if it must not (see `readiness`)."""
    sources = sources if sources is not None else {}
    checking = BoundedCall(lambda: check_store(store), "readyz-store")

    def check() -> StoreCheck:
        try:
            return checking()
        except TimeoutError:
            return StoreCheck(f"unwritable: the store did not answer within {checking.seconds:g} s", [], {})

    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        code, body = await run_in_threadpool(readiness, check, target, sources, unready)
        return JSONResponse(body, status_code=code)

    def exposition() -> bytes:
        for state in sources.values():  # each source looks at what it watches first (a SCIM token_file, if due),
            state()  # so that its gauges are current when nothing else asks
        return generate_latest(REGISTRY)

    async def metrics(request: Request) -> Response:
        return Response(await run_in_threadpool(exposition), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/livez", livez), Route("/readyz", readyz), Route("/metrics", metrics)])
