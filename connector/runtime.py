"""Assemble and run the connector: store, mapping, Verba client, delivery workers, built-in simulator.

The composition root: only `connector.cli` imports it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from connector.config import Config, ConfigError, TargetConfig, read_secret_file
from connector.delivery.recorders import RecorderApply
from connector.delivery.worker import Deliverer, WorkerPool
from connector.errors import bind_fix
from connector.liveness import Liveness
from connector.mapping import Mapping, load_mapping
from connector.ops.drift import DriftCheck, DriftSchedule
from connector.ops.health import TargetHealth, create_admin_app, scim_state
from connector.ops.metrics import register_store, unregister_store
from connector.simulator.app import create_app
from connector.simulator.seed import load_seed
from connector.sources.ldap.scheduler import LdapScheduler
from connector.sources.scim import ScimTokens, create_scim_app
from connector.store import Store, StoreMissing, open_store, without_password
from connector.verba.client import UNREACHABLE_HINT, VerbaClient

log = logging.getLogger("connector")
# Besides the delivery workers and a drift check, callers that may hold a Verba connection at once: the health
# probe, the recorders' applyExtensionConfiguration and a user look-up (the pool warned "full" and dropped one).
BACKGROUND_CALLERS = 3



def open_client(config: Config) -> VerbaClient:
    """The Verba client of the config; ConfigError if its [target] settings do not fit together."""
    if "target" not in config.secrets_loaded:  # a command that does not call Verba read no [target] secret
        raise ConfigError(f"{config.path}: loaded without the [target] secrets (load_config(secrets=...)); "
                          "load it with them to call Verba")
    target = config.target
    try:
        return _client(config, target)
    except ValueError as exc:
        raise ConfigError(f"{config.path}: {exc}") from None


def _client(config: Config, target: TargetConfig) -> VerbaClient:
    return VerbaClient(
        config.target_url,
        eid=target.eid,
        environment_short_name=target.environment_short_name,
        login=target.login,
        password=target.password,
        token=target.token,
        timeout=target.timeout_seconds,
        pool_size=config.delivery.workers + config.drift.concurrency + BACKGROUND_CALLERS,
        agent=f"verba-connector (instance {config.instance.name})",
        unreachable_hint=(f"no [target] url is set, so this is the built-in Verba simulator, which runs inside "
                          f"`connector run`: start it (`connector run --config {config.path}`), or set [target] url "
                          "to your Verba") if config.uses_simulator else UNREACHABLE_HINT,
        password_source=target.password_source,
        read_password=None if target.password_file is None else functools.partial(
            read_secret_file, target.password_file, "target.password_file", "password"),
    )


def open_configured_store(config: Config, *, create: bool = False) -> Store:
    """The configured store, ready for this connector: the one way every command opens it.

    Only with `create` (`connector run`, `ldap sync`) is a store created, or
    an empty one given its schema; other commands raise StoreMissing, so that a mistyped [store] url never reads
    as a healthy, empty store. An older or newer schema raises StoreError saying what to do (`connector db
    upgrade`). Close it with `with open_configured_store(config) as store: ...`.
    """
    store = open_store(config.store.url, synchronous=config.store.synchronous, create=create)
    try:
        store.prepare(create=create)
    except BaseException:
        store.close()
        raise
    return store


@contextlib.contextmanager
def preview_store(config: Config) -> Iterator[Store]:
    """The configured store for a preview before going live (`ldap sync --dry-run`, `mapping test --ldap`); when
    there is none yet, an empty one in a temporary directory, removed afterwards: a preview creates nothing."""
    try:
        store = open_configured_store(config)
    except StoreMissing:
        with tempfile.TemporaryDirectory(prefix="connector-preview-") as directory:
            with open_store(f"sqlite:///{directory}/preview.db") as empty:
                empty.prepare()
                yield empty
        return
    with store:
        yield store


class Connector:
    """One running connector process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.mapping: Mapping = load_mapping(config.mapping_file)
        self.store = open_configured_store(config, create=True)
        self.servers: dict[str, tuple[uvicorn.Server, threading.Thread]] = {}  # by config key
        self.client = open_client(config)
        self.liveness = Liveness(self.store, config.instance, shared=config.store.shared,
                                 mapping_digest=self.mapping.digest)
        self.recorders = RecorderApply(self.client, self.store, config.instance.name) \
            if config.target.apply_configuration else None
        deliverer = Deliverer(self.store, self.client, self.mapping, config.delivery, instance=config.instance.name,
                              calls_until=self.liveness.calls_until, generation=lambda: self.liveness.generation,
                              on_written=None if self.recorders is None else self.recorders.written)
        self.pool = WorkerPool(deliverer, config.delivery.workers, config.delivery.idle_poll_seconds,
                               self.liveness.owner_prefix)
        self.liveness.on_release = self.pool.wake.set  # a dead instance's users are claimed at once
        check = DriftCheck(self.store, self.client, self.mapping, config.drift.concurrency)
        self.drift = DriftSchedule(check, config.drift, self.liveness.leads)
        self.ldap = LdapScheduler(self.store, config.ldap, leads=lambda name: self.liveness.leads(f"ldap.{name}"))
        self.scim_tokens = ScimTokens(config.scim.clients)
        # /readyz and `connector status` (through the store) see the target through its probes
        self.target_health = TargetHealth(self.client.probe, self.store, config.instance.name, config.target_url)

    def start(self) -> None:
        # SQLite: refuses a second connector on the file. Then this instance's last start gives back its claims.
        released = self.store.start_instance() + self.liveness.start()
        try:
            self._start(released)
        except BaseException:  # a start that failed (a port taken) leaves no claim and no live-looking instance
            self.target_health.stop()
            self.pool.stop()
            if self.recorders is not None:
                self.recorders.stop()
            self.liveness.stop()
            raise

    def _start(self, released: int) -> None:
        for warning in self.config.store.warnings:
            log.warning("store %s: %s", without_password(self.config.store.url), warning)
        if released:
            log.info("returned %d in-flight events from the last run to the queue", released)
        if self.config.uses_simulator:
            self._start_simulator()
        register_store(self.store)
        self.target_health.start()
        admin = self.config.admin
        sources = {"scim": self._scim_state, **self.ldap.probes()}
        self.serve(create_admin_app(self.store, self.target_health.check, sources, self.liveness.unready), admin.host,
                   admin.port, "admin.listen")
        if self.recorders is not None:
            self.recorders.start()
        self.pool.start()
        self.ldap.start()
        self.drift.start()
        self._start_scim()

    def stop(self) -> None:
        """Stop intake, let in-flight pushes finish, then close everything; nothing accepted is lost."""
        self._stop_servers("scim.listen")  # requests in progress finish and commit first
        self.ldap.stop()  # a running poll commits or leaves nothing
        self.drift.stop()
        self.pool.stop()
        if self.recorders is not None:
            self.recorders.stop()
        self.liveness.stop()  # the other instances take its tasks at once
        self.target_health.stop()
        self.client.close()
        self._stop_servers("admin.listen", "simulator.listen")
        unregister_store(self.store)
        self.store.close()

    def _stop_servers(self, *keys: str) -> None:
        for key in keys:
            if key in self.servers:
                server, thread = self.servers.pop(key)
                server.should_exit = True
                thread.join(10)

    def serve(self, app: Any, host: str, port: int, key: str) -> None:
        """Serve `app` with uvicorn in a thread; return once it listens. `key` names its config key."""
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
        try:  # bound here, not by uvicorn, which would log its own ERROR line before ours
            listener = listen(host, port)
        except OSError as exc:
            raise ConfigError(f"{self.config.path}: cannot listen on {host}:{port} ({key}: {why_not(exc)}); "
                              f"{bind_fix(exc, key)}") from None
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=key, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise ConfigError(f"{self.config.path}: cannot listen on {host}:{port} ({key}); "
                                  f"free the port or set {key} to another host:port")
            time.sleep(0.02)
        self.servers[key] = (server, thread)

    def _start_scim(self) -> None:
        """Serve SCIM once the workers run: every write it accepts is already a committed event."""
        scim = self.config.scim
        if not scim.clients:
            log.warning("SCIM on %s answers 401 to everything: no [[scim.clients]] are configured", scim.url)
        self.serve(create_scim_app(self.store, scim, self.scim_tokens), scim.host, scim.port, "scim.listen")

    def reload(self) -> None:
        """SIGHUP: re-read the SCIM clients' token files now (they are also re-read a few seconds after a change), and
        send the passwords Verba and the directories last refused again (the account may have been fixed or unlocked
        on their side; a password_file is read again before each login or bind anyway). Logs one line saying what
        it did, or that nothing needed it, so that `systemctl reload` can be seen to have taken effect."""
        scim = self.scim_tokens.reload()
        verba = self.client.forget_refused_password()
        ldap = self.ldap.reload()
        log.info("reload (SIGHUP): %s", reloaded(scim, verba, ldap))

    def _scim_state(self) -> str:
        """SCIM's line in /readyz: whether it listens, and its clients."""
        scim = self.config.scim
        entry = self.servers.get("scim.listen")
        listening = entry is not None and entry[0].started and not entry[0].should_exit and entry[1].is_alive()
        return scim_state(scim.url, [client.name for client in scim.clients], listening, self.scim_tokens.problems())

    def _start_simulator(self) -> None:
        sim = self.config.simulator
        app = create_app(load_seed(sim.seed) if sim.seed else None)  # a bad seed: SeedError, one line per problem
        self.serve(app, sim.host, sim.port, "simulator.listen")


def reloaded(scim: list[str], verba: bool, ldap: list[str]) -> str:
    """What a SIGHUP did, for its log line: the SCIM clients whose token_file it re-read, whether a Verba password
    refused was withheld and is sent again, the directories whose refused bind password is; e.g. "re-read the
    token_file of SCIM clients entra, okta; ... other config changes take a restart"."""
    done = [f"re-read the token_file of SCIM clients {', '.join(scim)}"] if scim else []
    if verba:
        done.append("the Verba password refused last is sent again at the next login")
    if ldap:
        done.append(f"the bind password refused by directories {', '.join(ldap)} is sent again at the next bind")
    if not done:
        return ("nothing to reload: no SCIM client has a token_file and no password was refused; other config "
                "changes take a restart (systemctl restart)")
    return "; ".join(done) + "; other config changes take a restart (systemctl restart)"


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port (an IPv6 address if `host` has a colon), for uvicorn's `sockets`;
    OSError if it cannot be (see `why_not`). Bound before uvicorn starts, which would log its own ERROR line.

    Its connections send at once (TCP_NODELAY, which they inherit): asyncio sets it only on sockets made with
    proto IPPROTO_TCP, which create_server's are not, and without it each small answer waited for the client's
    delayed ACK (about 40 ms: a simulator answered 90 calls/s instead of 1,800)."""
    listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def why_not(error: OSError) -> str:
    """Why `listen` failed, as the system says it: "Address already in use"."""
    return os.strerror(error.errno) if error.errno else str(error)
