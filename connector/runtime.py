"""Assemble and run the connector: store, mapping, Verba client, delivery workers, built-in simulator."""

from __future__ import annotations

import logging
import threading

import uvicorn

from connector.config import Config, ConfigError
from connector.delivery.worker import Deliverer, WorkerPool
from connector.mapping import Mapping, load_mapping
from connector.sources.ldap.scheduler import LdapScheduler
from connector.simulator.app import create_app, load_seed
from connector.store import Store, open_store
from connector.target.verba.client import VerbaClient

log = logging.getLogger("connector")


def open_client(config: Config) -> VerbaClient:
    target = config.target
    return VerbaClient(
        config.target_url,
        eid=target.eid,
        environment_short_name=target.environment_short_name,
        login=target.login,
        password=target.password,
        token=target.token,
        timeout=target.timeout_seconds,
        pool_size=config.delivery.workers,
    )


def open_migrated_store(config: Config) -> Store:
    store = open_store(config.store.url, synchronous=config.store.synchronous)
    store.migrate()
    return store


class Connector:
    """One running connector process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.mapping: Mapping = load_mapping(config.mapping_file)
        self.store = open_migrated_store(config)
        self.simulator: uvicorn.Server | None = None
        self.client = open_client(config)
        deliverer = Deliverer(self.store, self.client, self.mapping, config.delivery)
        self.pool = WorkerPool(deliverer, config.delivery.workers, config.delivery.idle_poll_seconds)
        self.ldap = LdapScheduler(self.store, config.ldap)

    def start(self) -> None:
        if self.config.uses_simulator:
            self._start_simulator()
        if self.config.store.url.startswith("sqlite:"):
            # SQLite is single-instance: whatever is in flight was this process's before a crash.
            # A shared PostgreSQL store leaves other instances' leases to expire instead.
            released = self.store.release_leases()
            if released:
                log.info("returned %d in-flight events from the last run to the queue", released)
        self.pool.start()
        self.ldap.start()

    def stop(self) -> None:
        """Let in-flight pushes finish, then close everything; nothing pending is lost."""
        self.ldap.stop()  # a running poll commits or leaves nothing
        self.pool.stop()
        self.client.close()
        if self.simulator is not None:
            self.simulator.should_exit = True
        self.store.close()

    def _start_simulator(self) -> None:
        sim = self.config.simulator
        try:
            app = create_app(load_seed(sim.seed) if sim.seed else None)
        except ValueError as exc:
            raise ConfigError(f"{self.config.path}: simulator.seed: {exc}; fix the seed file or remove the key") from None
        self.simulator = uvicorn.Server(uvicorn.Config(app, host=sim.host, port=sim.port, log_level="warning"))
        thread = threading.Thread(target=self.simulator.run, name="simulator", daemon=True)
        thread.start()
        while not self.simulator.started:
            if not thread.is_alive():
                raise OSError(f"the built-in simulator could not listen on {sim.host}:{sim.port}; "
                              "free the port or set [simulator] listen to another one")
            threading.Event().wait(0.05)
