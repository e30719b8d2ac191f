"""Load and validate the connector's TOML config.

Every problem is reported at once, one line each naming the file, the key and the fix. Defaults are
the dataclasses' (a key left out keeps its default). Secrets never live in the TOML: a `*_env` key
names an environment variable and a `*_file` key names a file that holds the secret. Relative paths
are taken from the working directory; a config without `[mapping] file` uses the shipped default mapping.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import socket
import ssl
import tomllib
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from connector.dn import InvalidDn, parse_dn
from connector.errors import ConnectorError, did_you_mean, from_here
from connector.records import eid_problem, not_xml
from connector.shipped import default_mapping
from connector.simulator.seed import SeedError, load_seed
from connector.simulator.state import DEMO_LOGIN, DEMO_PASSWORD
from connector.store import StoreError, without_password
from connector.store.sqlite import check_directory
from connector.tomlfile import not_toml

DEFAULT_PATH = "config/connector.toml"
DEFAULT_MAPPING = default_mapping()  # the shipped one, wherever the connector is installed
SECRETS = frozenset({"target", "scim", "ldap"})  # the sections that hold secrets
SIMULATOR_LOGIN = DEMO_LOGIN  # the built-in simulator's API user (its default seed's)
SIMULATOR_PASSWORD = DEMO_PASSWORD
MIN_SCIM_TOKEN = 16  # characters of a SCIM bearer token at least; `openssl rand -hex 32` makes 64
SHORT_TOKEN = f"a bearer token needs at least {MIN_SCIM_TOKEN}: make one with `openssl rand -hex 32`"
OWN_TOKEN = "give each client its own token, made with `openssl rand -hex 32`"


class ConfigError(ConnectorError):
    """The config is not valid; the message has one line per problem: "file: key is ...; fix"."""

    def __init__(self, message: str | None = None, mapping_file: str | None = None) -> None:
        super().__init__(message)
        self.mapping_file = mapping_file  # the mapping file the config names despite its problems; None if unknown


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///var/connector.db"
    synchronous: str = "FULL"

    @property
    def shared(self) -> bool:
        """Whether several connectors may share the store (PostgreSQL; a SQLite file has one)."""
        return self.url.startswith(("postgresql://", "postgres://"))

    @property
    def warnings(self) -> tuple[str, ...]:
        """What leaves the store open to others, a sentence with the fix, for `validate-config --connect` and the log
        of `connector run`: a PostgreSQL password written in the url, which whoever reads the config reads too."""
        if self.shared and urllib.parse.urlsplit(self.url).password is not None:
            return ("the PostgreSQL password is written in [store] url, where whoever can read the config reads it: "
                    "take it out and give it to libpq in a file of mode 0600 (~/.pgpass, or PGPASSFILE) or in "
                    "PGPASSWORD",)
        return ()


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """Where extensions are pushed; `url` None means the built-in simulator."""

    url: str | None = None
    eid: str | None = "0000"
    environment_short_name: str | None = None
    login: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)
    password_source: str | None = None  # where the password came from, for refused logins: never the password
    password_file: str | None = None  # the file it came from, read again before each login (see `read_secret_file`)
    timeout_seconds: float = 10.0
    apply_configuration: bool = False  # applyExtensionConfiguration after each batch of writes


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 7002
    seed: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/provisioning"


@dataclasses.dataclass(frozen=True)
class DeliveryConfig:
    workers: int = 8
    max_attempts: int = 12
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 600.0
    lease_seconds: float = 120.0
    idle_poll_seconds: float = 0.1
    user_cache_seconds: float = 600.0
    # The stop-recording guard: hold a source's stop-recording pushes once, within the window, they
    # would stop more than guard_max_count users and more than guard_max_share of its recorded users.
    guard_max_count: int = 10
    guard_max_share: float = 0.1
    guard_window_seconds: float = 300.0
    # The circuit breaker on the target: open once breaker_min_users users fail target-wide (transport,
    # timeouts, HTTP 5xx and 429, refused logins) within breaker_window_seconds; probe every probe_seconds.
    breaker_window_seconds: float = 30.0
    breaker_min_users: int = 2
    probe_seconds: float = 5.0


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    """This process among the connectors sharing one store: its name (stable across restarts, unique among
    them), how often it heartbeats, and after how long without a heartbeat it counts as dead."""

    name: str = dataclasses.field(default_factory=socket.gethostname)
    heartbeat_seconds: float = 2.0
    liveness_seconds: float = 15.0


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """The scheduled drift check (connector/ops/drift.py): on a crontab line ("" for none) or every
    `interval_seconds` (when above 0), reading Verba `concurrency` calls at a time; `repair` queues the fixes."""

    schedule: str = "30 4 * * *"
    interval_seconds: float = 0.0
    repair: bool = False
    concurrency: int = 2


@dataclasses.dataclass(frozen=True)
class ScimClient:
    """One `[[scim.clients]]` entry: an identity provider and the bearer tokens it may send, any of them.

    From `token_file`, the file's lines (several during a rotation), re-read while the connector runs
    (connector.sources.scim.auth); from `token_env`, one token, read at start only.
    """

    name: str
    tokens: tuple[str, ...] = dataclasses.field(repr=False)
    token_file: str | None = None


@dataclasses.dataclass(frozen=True)
class ScimConfig:
    """The SCIM 2.0 endpoint; with no clients every request but /healthz gets 401."""

    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/scim/v2"
    max_body_bytes: int = 1_048_576
    clients: tuple[ScimClient, ...] = ()
    # Attributes of a schema the endpoint does not define (a company's extension URN) are ignored, counted and
    # logged once; true refuses them with 400 invalidPath. Unknown attributes of a defined schema are always 400.
    strict_attributes: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.base_path}"


@dataclasses.dataclass(frozen=True)
class AdminConfig:
    """The admin listener: /livez, /readyz, /metrics."""

    host: str = "127.0.0.1"
    port: int = 8081


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    format: str = "auto"  # "json", "text", or "auto": text on a terminal, JSON lines otherwise
    level: str = "INFO"


@dataclasses.dataclass(frozen=True)
class LdapConfig:
    """One `[ldap.NAME]` directory; None for `filter`, `attributes` and `username_attribute` means the dialect's."""

    name: str
    url: str
    base: str
    dialect: str = "openldap"
    filter: str | None = None
    attributes: tuple[str, ...] | None = None
    username_attribute: str | None = None
    disabled_attribute: str | None = None
    bind_dn: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    ca_file: str | None = None
    tls_verify: bool = True
    starttls: bool = False
    poll_seconds: float = 30.0
    overlap_seconds: float = 300.0
    page_size: int = 500
    timeout_seconds: float = 30.0
    full_sync_cron: str = "0 3 * * *"
    guard_max_count: int = 100
    guard_max_share: float = 0.1
    guard_min_count: int = 10  # the share counts only from this many deactivations or deletes on
    id_attribute: str | None = None  # the stable id; None: the dialect's; "dn" keys users by DN (warned)
    group_base: str | None = None  # where groups are looked up; None: the naming context of `base`
    group_nesting_depth: int = 10  # levels of nested groups followed on OpenLDAP and generic directories
    clock_tolerance_seconds: float = 60.0  # how far past the connector's clock a modifyTimestamp may be trusted
    #                                        (where the server tells no time; by default at most overlap_seconds)
    scope_check_per_poll: int = 100  # known users checked still in scope each poll (about 0.4 ms each), in turn
    password_source: str | None = None  # where the password came from, for bind errors: never the password
    password_env: str | None = None  # the variable it came from (set only when the password was read)
    password_file: str | None = None  # the file it came from, read again before each bind (`read_password`)
    mapping_file: str | None = None  # the [mapping] file, whose group rules the watcher re-reads

    def read_password(self) -> str | None:
        """The bind password as its source holds it now, read again as at load (`password` is the one read then), so
        that a password rotated in the file is used without a restart; None for an anonymous bind or when the
        secrets were not loaded. ValueError saying what is wrong and the fix, never the password: the file cannot
        be read, is empty or not UTF-8, the variable is unset or blank."""
        if self.password is None or (self.password_env is None and self.password_file is None):
            return self.password
        problems: list[str] = []
        values = {key: value for key, value in (("password_env", self.password_env),
                                                ("password_file", self.password_file)) if value is not None}
        password = _secret(values, "password", f"ldap.{self.name}", problems)
        if password is None:
            raise ValueError("; ".join(problems))
        return password

    @property
    def warnings(self) -> tuple[str, ...]:
        """What leaves this directory's connection open to others, a sentence each with the fix, for
        `validate-config --connect` and the log of `connector run`: a bind password sent in clear text (ldap://
        without StartTLS), a ca_file where no TLS is used, a server not authenticated (tls_verify = false)."""
        plain = self.url.startswith("ldap://") and not self.starttls
        unused = "ca_file is set but unused: did you mean starttls = true?" if plain and self.ca_file else None
        found = []
        if plain and self.password is not None:
            found.append("the bind password crosses the network unencrypted (ldap:// without starttls): use "
                         "ldaps://host:636, or starttls = true" + (f"; {unused}" if unused else ""))
        elif unused:
            found.append(f"ldap:// without starttls: {unused}")
        if not plain and not self.tls_verify:
            found.append("tls_verify = false: the server is not authenticated, so anyone in the middle can pose as "
                         "it" + (" and read the bind password" if self.password is not None else "") + "; set "
                         "ca_file to the PEM file of the CA that issued the server's certificate and remove "
                         "tls_verify")
        return tuple(found)


@dataclasses.dataclass(frozen=True)
class Config:
    path: str
    store: StoreConfig
    target: TargetConfig
    simulator: SimulatorConfig
    mapping_file: str
    delivery: DeliveryConfig
    instance: InstanceConfig = dataclasses.field(default_factory=InstanceConfig)
    drift: DriftConfig = DriftConfig()
    ldap: dict[str, LdapConfig] = dataclasses.field(default_factory=dict)
    admin: AdminConfig = AdminConfig()
    scim: ScimConfig = ScimConfig()
    logging: LoggingConfig = LoggingConfig()
    # The sections whose secrets were read (load_config's `secrets`): a section left out has none (passwords,
    # tokens and bind passwords None, SCIM clients' tokens ""), so nothing may connect with it.
    secrets_loaded: frozenset[str] = SECRETS

    @property
    def uses_simulator(self) -> bool:
        return self.target.url is None

    @property
    def target_url(self) -> str:
        return self.target.url or self.simulator.url

    def secrets(self) -> list[str]:
        """Every secret the config holds, for masking in logs and output; a target.password equal to target.login
        is none (the login is in messages: masking it would garble them and tell the password)."""
        password = None if self.target.password == self.target.login else self.target.password
        return [s for s in (password, self.target.token, *(t for c in self.scim.clients for t in c.tokens),
                            *(d.password for d in self.ldap.values())) if s]


# The keys of each table and the TOML type each takes (float: any number, read as a float; object: any value, which
# its section checks, so that a number says how to write it).
_STORE = {"url": str, "synchronous": str}
_TARGET = {"url": str, "eid": object, "environment_short_name": str, "login": str, "password_env": str,
           "password_file": str, "token_env": str, "token_file": str, "timeout_seconds": float,
           "apply_configuration": bool}
_SIMULATOR = {"listen": str, "seed": str}
_MAPPING = {"file": str}
_DELIVERY = {"workers": int, "max_attempts": int, "backoff_base_seconds": float, "backoff_max_seconds": float,
             "lease_seconds": float, "idle_poll_seconds": float, "user_cache_seconds": float,
             "guard_max_count": int, "guard_max_share": float, "guard_window_seconds": float,
             "breaker_window_seconds": float, "breaker_min_users": int, "probe_seconds": float}
_INSTANCE = {"name": str, "heartbeat_seconds": float, "liveness_seconds": float}
_DRIFT = {"schedule": str, "interval_seconds": float, "repair": bool, "concurrency": int}
_ADMIN = {"listen": str}
_LOGGING = {"format": str, "level": str}
_SCIM = {"listen": str, "base_path": str, "max_body_bytes": int, "strict_attributes": bool, "clients": list}
_SCIM_CLIENT = {"name": str, "token_env": str, "token_file": str}
_LDAP = {"url": str, "base": str, "dialect": str, "filter": str, "attributes": list, "username_attribute": str,
         "disabled_attribute": str, "bind_dn": str, "password_env": str, "password_file": str, "ca_file": str,
         "tls_verify": bool, "starttls": bool, "poll_seconds": float, "overlap_seconds": float, "page_size": int,
         "timeout_seconds": float, "full_sync_cron": str, "guard_max_count": int, "guard_max_share": float,
         "guard_min_count": int, "id_attribute": str, "group_base": str, "group_nesting_depth": int,
         "clock_tolerance_seconds": float, "scope_check_per_poll": int}
_TABLES: dict[str, Mapping[str, type]] = {
    "store": _STORE, "target": _TARGET, "simulator": _SIMULATOR, "mapping": _MAPPING, "delivery": _DELIVERY,
    "instance": _INSTANCE, "drift": _DRIFT, "admin": _ADMIN, "logging": _LOGGING,
}
_WANTED = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
_LIMITS: dict[str, Callable[[float], bool]] = {
    "be above 0": lambda value: value > 0,
    "be at least 1": lambda value: value >= 1,
    "not be negative, use 0 or more": lambda value: value >= 0,
}
INSTANCE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
LDAP_DIALECTS = ("openldap", "ad", "generic")
AD_MAX_PAGE_SIZE = 1000  # Active Directory's MaxPageSize LDAP policy
# The stable id of each dialect; `id_attribute` names another (an employee number) or "dn".
LDAP_ID_ATTRIBUTES = {"openldap": "entryUUID", "ad": "objectGUID", "generic": "entryUUID, nsUniqueId or ipaUniqueID"}


def load_config(path: str | Path = DEFAULT_PATH, *, secrets: Collection[str] = SECRETS) -> Config:
    """Read, validate and resolve the config at `path`; raises ConfigError listing every problem.

    `secrets` names the sections whose secrets are read ("target", "scim", "ldap" or one "ldap.NAME"; all by
    default, as
    `connector run` needs): each command reads only those it uses, so that discarding an event needs no
    identity provider's token. In a section left out, an unset `*_env` variable or an unreadable `*_file` is
    no problem and the secrets are None (a SCIM client's token ""); `secrets_loaded` names the sections read.
    Every other check stands, the shape of the secret keys included (one of env or file, login with a password).
    """
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass --config or set CONNECTOR_CONFIG, or write a starter "
                          "config with `connector init DIR`") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(not_toml(path, text, exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc}); pass --config with a readable "
                          "file, or set CONNECTOR_CONFIG") from None
    return parse_config(data, path, secrets=secrets)


def parse_config(data: dict[str, Any], path: str, *, secrets: Collection[str] = SECRETS) -> Config:
    """The Config in `data`, the parsed TOML of `path`; only the secrets of the sections `secrets` names are read
    (see load_config).

    Raises one ConfigError whose message has a line per problem: "{path}: {key} is ...; {fix}".
    """
    problems: list[str] = []
    sections = [*_TABLES, "scim", "ldap"]
    for name in sorted(data.keys() - {*sections}):
        problems.append(f"unknown section [{name}]; {did_you_mean(name, sections)}the sections are "
                        f"{', '.join(sections)}")
    tables = {name: _table(data.get(name, {}), name, keys, problems) for name, keys in _TABLES.items()}
    mapping_file = tables["mapping"].get("file", DEFAULT_MAPPING)
    target = _target(tables["target"], "target" in secrets, problems)
    _limit("target", target, ("timeout_seconds",), "be at least 1", problems)
    config = Config(
        path=path,
        store=_store(tables["store"], problems),
        target=target,
        simulator=_simulator(tables["simulator"], target.url is None, problems),
        mapping_file=mapping_file,
        delivery=_delivery(tables["delivery"], problems),
        instance=_instance(tables["instance"], problems),
        drift=_drift(tables["drift"], problems),
        admin=AdminConfig(**_listen(tables["admin"], "admin", problems, AdminConfig.port)),
        scim=_scim(data.get("scim", {}), "scim" in secrets, problems),
        logging=_logging(tables["logging"], problems),
        ldap=_ldap_sections(data.get("ldap", {}), mapping_file, secrets, problems),
        secrets_loaded=frozenset(secrets),
    )
    _check_lease(config.target, config.delivery, problems)
    _check_liveness(config, problems)
    _check_listeners(config, data, problems)
    if problems:
        raise ConfigError("\n".join(f"{path}: {problem}" for problem in problems), _mapping_file(data))
    return config


def _mapping_file(data: dict[str, Any]) -> str | None:
    """The mapping file the parsed TOML names (the shipped one if none); None when [mapping] file is itself wrong."""
    table = data.get("mapping", {})
    file = table.get("file", DEFAULT_MAPPING) if isinstance(table, dict) else None
    return file if isinstance(file, str) else None


def _table(raw: Any, name: str, keys: Mapping[str, type], problems: list[str]) -> dict[str, Any]:
    """The keys of table `name` that are set, each of its type (a float key takes an integer too, as a float).

    An unknown key or a value of the wrong type is a problem and is left out, so that its default stands in.
    """
    if not isinstance(raw, dict):
        problems.append(f"'{name}' must be a table: write [{name}] followed by its keys")
        return {}
    values = {}
    for key, value in raw.items():
        kind = keys.get(key)
        if kind is None:
            problems.append(f"unknown key {name}.{key}; {did_you_mean(key, keys)}the keys of [{name}] are "
                            f"{', '.join(keys)}")
        elif not _fits(value, kind):
            problems.append(f"{name}.{key} is {value!r}; it must be {_WANTED[kind]}")
        elif kind is float and not math.isfinite(value):  # TOML has inf and nan
            problems.append(f"{name}.{key} is {value!r}; it must be a finite number")
        else:
            values[key] = float(value) if kind is float else value
    return values


def _fits(value: Any, kind: type) -> bool:
    """Whether a TOML value is of `kind`: a float key takes an integer too, an integer key no boolean, an object
    key anything."""
    if kind is object:
        return True
    return isinstance(value, bool) == (kind is bool) and isinstance(value, (int, float) if kind is float else kind)


def _limit(name: str, section: Any, keys: tuple[str, ...], limit: str, problems: list[str]) -> None:
    """A problem for each of `keys` of the parsed `section` whose value breaks `limit`, a key of _LIMITS."""
    for key in keys:
        value = getattr(section, key)
        if not _LIMITS[limit](value):
            problems.append(f"{name}.{key} is {value:g}; it must {limit}")


def _secret(values: dict[str, Any], name: str, key: str, problems: list[str], *, read: bool = True) -> str | None:
    """The secret of `{name}_env` (an environment variable) or `{name}_file` (a file) in table `key`, or None.

    None too when either is wrong, which is a problem: both set, the variable unset or blank, the file unreadable.
    With `read` False, None after checking only that both are not set.
    """
    env, file = values.get(f"{name}_env"), values.get(f"{name}_file")
    if env is not None and file is not None:
        problems.append(f"{key}.{name}_env and {key}.{name}_file are both set; keep one")
    elif not read:
        return None
    elif env is not None and env not in os.environ:
        problems.append(f"{key}.{name}_env names {env}, which is not set; export {env} or use {key}.{name}_file")
    elif env is not None and not os.environ[env].strip():
        blank = "empty" if not os.environ[env] else "set to white space only"
        problems.append(f"{key}.{name}_env names {env}, which is {blank}; put the {name} in it, or use "
                        f"{key}.{name}_file")
    elif env is not None:
        return os.environ[env]
    elif file is not None:
        return _read_secret_file(file, f"{key}.{name}_file", name, problems)
    return None


def read_secret_file(file: str, key: str, what: str) -> str:
    """The secret in `file`, read as the config reads it (key `key` of the config names the file, `what` the secret:
    "password"); ValueError saying what is wrong with the file. A secret holding a character XML cannot carry, which
    the config refuses at load, is returned as it is: the Verba client, which reads its password again before each
    login, sends no such password and fails every call target-wide, as for a refused one (connector/verba/client.py)."""
    problems: list[str] = []
    secret = _read_secret_file(file, key, what, problems)
    if secret is None:
        raise ValueError("; ".join(problems))
    return secret


def _sendable(secret: str | None, source: str, what: str, problems: list[str]) -> str | None:
    """`secret`, unless it holds a character XML 1.0 cannot carry (`not_xml`: a control character, such as the ^Z an
    editor left at the end of the file), so that no request can send it: then None and a problem naming `source`
    ("target.password_file '/etc/connector/verba.pw'") and the character, never the secret."""
    if secret is not None and (problem := not_xml(secret)):
        problems.append(f"{source}: the {what} {problem}, so no request can send it; remove that character (only one "
                        "trailing newline is dropped)")
        return None
    return secret


def _secret_source(values: dict[str, Any], name: str, key: str) -> str:
    """Where the secret `name` of table `key` is read from, as problems name it: "target.password_file '/etc/pw'",
    "target.password_env VERBA_PASSWORD"."""
    file = values.get(f"{name}_file")
    return f"{key}.{name}_file {file!r}" if file is not None else f"{key}.{name}_env {values.get(f'{name}_env')}"


def _read_secret_file(file: str, key: str, what: str, problems: list[str]) -> str | None:
    """The secret in `file` exactly as written: UTF-8, with only one trailing newline ("\n" or "\r\n") dropped.

    Spaces and every other character are part of the secret: a password may end with a space.
    """
    try:
        text = Path(file).read_bytes().decode("utf-8")
    except OSError as exc:
        problems.append(f"{key} {file!r} cannot be read ({exc.strerror}{from_here(file)}); check the path and "
                        "permissions")
        return None
    except UnicodeDecodeError:
        problems.append(f"{key} {file!r} is not UTF-8 text; save the {what} in it as UTF-8")
        return None
    secret = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    if not secret:
        problems.append(f"{key} {file!r} is empty; put the {what} in it")
    return secret or None


def _listen(values: dict[str, Any], name: str, problems: list[str], default_port: int) -> dict[str, Any]:
    """host and port from `name`.listen ("127.0.0.1:8080"); none (the defaults) when it is not set or not valid."""
    if "listen" not in values:
        return {}
    host, _, port = values["listen"].rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536:
        return {"host": host, "port": int(port)}
    if host and port.isdigit():
        problems.append(f"{name}.listen is {values['listen']!r}: port {port} is out of range; use 1 to 65535, such as "
                        f"\"{host}:{default_port}\"")
        return {}
    problems.append(f"{name}.listen is {values['listen']!r}; write host:port, such as \"127.0.0.1:{default_port}\"")
    return {}


def _check_listeners(config: Config, data: dict[str, Any], problems: list[str]) -> None:
    """A problem for two listeners of `connector run` on one port of one address (`data`: the parsed TOML, to tell
    a default): it could not listen on the second. The simulator listens only when it is the target."""
    listeners = [("scim", config.scim.host, config.scim.port), ("admin", config.admin.host, config.admin.port)]
    if config.uses_simulator:
        listeners.append(("simulator", config.simulator.host, config.simulator.port))
    for i, (name, host, port) in enumerate(listeners):
        for other, other_host, other_port in listeners[i + 1:]:
            if port == other_port and _same_address(host, other_host):
                first, second = (f"{key}.listen ({address}:{port}{_default_listen(data, key)})"
                                 for key, address in ((name, host), (other, other_host)))
                problems.append(f"{first} and {second} take the same port on the same address: `connector run` "
                                "could not listen on both; give one of them another port")


def _same_address(host: str, other: str) -> bool:
    """Whether two listen hosts take one address: the same, or a wildcard of the same family (IPv4 0.0.0.0, IPv6
    ::, which listens on IPv6 only) and any host of it."""
    return host == other or (":" in host) == (":" in other) and bool({host, other} & {"0.0.0.0", "::"})


def _default_listen(data: dict[str, Any], name: str) -> str:
    table = data.get(name)
    return "" if isinstance(table, dict) and "listen" in table else ", the default"


def _store(values: dict[str, Any], problems: list[str]) -> StoreConfig:
    store = StoreConfig(**values)
    if not store.url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        problems.append(f"store.url is {store.url!r}; use sqlite:///path/to/connector.db "
                        "or postgresql://user@host/dbname (put the password in ~/.pgpass or PGPASSWORD)")
    if store.url.startswith("sqlite:///"):
        try:
            check_directory(store.url.removeprefix("sqlite:///"))
        except StoreError as exc:
            problems.append(f"store.url is {store.url!r}, but {exc}")
    if store.shared and importlib.util.find_spec("psycopg") is None:
        problems.append("store.url names a PostgreSQL store, and its driver, psycopg, is not installed: install the "
                        "connector with its postgres extra (its wheel's file name followed by [postgres]), or "
                        "pip install 'psycopg[binary]>=3.1' into the connector's environment")
    if store.synchronous not in ("FULL", "NORMAL"):
        problems.append(f"store.synchronous is {store.synchronous!r}; use \"FULL\" (survives power loss) "
                        "or \"NORMAL\" (survives crashes, may lose the last commits on power loss)")
    return store


def _target(values: dict[str, Any], read: bool, problems: list[str]) -> TargetConfig:
    timeout = values.get("timeout_seconds", TargetConfig.timeout_seconds)
    apply = values.get("apply_configuration", TargetConfig.apply_configuration)
    short_name = values.get("environment_short_name")
    eid = values.get("eid", None if short_name else TargetConfig.eid)
    if eid is not None and (problem := eid_problem(eid)):
        problems.append(f"target.eid {problem}")
    for key in ("login", "environment_short_name"):
        if key in values and (problem := not_xml(values[key])):
            problems.append(f"target.{key} {problem}, so no request to Verba can send it; write it without that "
                            "character")
    if "url" not in values:
        for key in [key for key in values if key not in ("eid", "timeout_seconds", "apply_configuration")]:
            problems.append(f"target.{key} is set but target.url is not; set target.url to your Verba service "
                            "(e.g. http://verba-mr:7002/provisioning) or remove the key")
        return TargetConfig(login=SIMULATOR_LOGIN, password=SIMULATOR_PASSWORD, timeout_seconds=timeout,
                            apply_configuration=apply)
    if not values["url"].startswith(("http://", "https://")):
        problems.append(f"target.url is {without_password(values['url'])!r}; use http(s)://host:7002/provisioning")
    _check_userinfo(values["url"], problems)
    if eid is not None and short_name is not None:
        problems.append("target.eid and target.environment_short_name are both set; Verba takes one, keep one")
    has_password, has_token = (f"{name}_env" in values or f"{name}_file" in values for name in ("password", "token"))
    if not has_token and not (has_password and "login" in values):
        problems.append("target needs login plus password_env or password_file, or token_env or token_file")
    if has_token and has_password:
        problems.append("target has both a password and a token; keep one of them")
    elif has_token and "login" in values:
        problems.append("target has a login and a fixed token; a token needs no login: remove target.login, or "
                        "use password_env or password_file instead of the token")
    if has_password and "login" in values and eid is None:
        problems.append("target.environment_short_name cannot log in: requestToken needs target.eid; set "
                        "target.eid instead, or use a fixed token (token_env or token_file)")
    password = _sendable(_secret(values, "password", "target", problems, read=read),
                         _secret_source(values, "password", "target"), "password", problems)
    token = _sendable(_secret(values, "token", "target", problems, read=read),
                      _secret_source(values, "token", "target"), "token", problems)
    return TargetConfig(url=values["url"], eid=eid, environment_short_name=short_name, login=values.get("login"),
                        password=password, password_source=_password_source("target", values, password),
                        password_file=values.get("password_file") if password is not None else None,
                        token=token, timeout_seconds=timeout, apply_configuration=apply)


def _check_userinfo(url: str, problems: list[str]) -> None:
    """A problem when target.url holds a login (http://user:password@host/...): nothing sends it to Verba, and a
    password there would be shown wherever the url is."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    problems.append(f"target.url holds a login before its host ({without_password(url)!r}), which the connector "
                    f"never sends (no HTTP basic auth to Verba); set target.url to {bare!r} and put Verba's API user "
                    "in target.login with target.password_env or target.password_file (a proxy's login goes in "
                    "HTTPS_PROXY or HTTP_PROXY: http://user:password@proxy:3128)")


def _check_lease(target: TargetConfig, delivery: DeliveryConfig, problems: list[str]) -> None:
    """A lease renewed every quarter of it must always leave room for a whole call and its margin."""
    from connector.delivery.lease import LEASE_MARGIN_SECONDS

    timeout = max(target.timeout_seconds, 1.0)  # below 1 it is a problem of its own: the least valid one counts
    given = f"= {timeout:g}" if timeout == target.timeout_seconds else f"at its least, {timeout:g},"
    least = 1.5 * (timeout + LEASE_MARGIN_SECONDS)
    if 0 < delivery.lease_seconds < least:
        problems.append(
            f"delivery.lease_seconds is {delivery.lease_seconds:g}; with target.timeout_seconds {given} it must be at "
            f"least {least:g} (1.5 x (timeout + {LEASE_MARGIN_SECONDS:g} s)), so that a call always fits in the lease: "
            "raise it or lower the timeout"
        )


def _instance(values: dict[str, Any], problems: list[str]) -> InstanceConfig:
    instance = InstanceConfig(**values)
    if not INSTANCE_NAME.fullmatch(instance.name):
        problems.append(f"instance.name is {instance.name!r}; use 1 to 64 letters, digits, '.', '_' or '-', "
                        "different for each connector sharing the store")
    _limit("instance", instance, ("heartbeat_seconds", "liveness_seconds"), "be above 0", problems)
    return instance


def _drift(values: dict[str, Any], problems: list[str]) -> DriftConfig:
    drift = DriftConfig(**values)
    _limit("drift", drift, ("concurrency",), "be at least 1", problems)
    _limit("drift", drift, ("interval_seconds",), "not be negative, use 0 or more", problems)
    _check_cron(drift.schedule, "drift.schedule", problems)
    return drift


def _check_liveness(config: Config, problems: list[str]) -> None:
    """On a shared store, an instance cut off from it stops starting calls once its last heartbeat is older
    than the liveness timeout minus a call: a whole call and two heartbeats must fit in the timeout."""
    from connector.delivery.lease import LEASE_MARGIN_SECONDS

    instance = config.instance
    least = config.target.timeout_seconds + 2 * instance.heartbeat_seconds + LEASE_MARGIN_SECONDS
    if config.store.shared and 0 < instance.liveness_seconds < least:
        problems.append(
            f"instance.liveness_seconds is {instance.liveness_seconds:g}; with target.timeout_seconds = "
            f"{config.target.timeout_seconds:g} and instance.heartbeat_seconds = {instance.heartbeat_seconds:g} it "
            f"must be at least {least:g} (timeout + 2 heartbeats + {LEASE_MARGIN_SECONDS:g} s), so that a call "
            "always ends before the other instances count this one dead: raise it or lower the timeout")


def _scim(raw: Any, read: bool, problems: list[str]) -> ScimConfig:
    values = _table(raw, "scim", _SCIM, problems)
    clients = values.pop("clients", [])
    if not all(isinstance(client, dict) for client in clients):
        problems.append("scim.clients must be tables: write [[scim.clients]] with name and token_env")
        clients = []
    parsed = [_scim_client(client, f"scim.clients[{i}]", read, problems) for i, client in enumerate(clients)]
    names = [client.name for client in parsed if client is not None]
    for name in sorted({name for name in names if names.count(name) > 1}):
        problems.append(f"two [[scim.clients]] are named {name!r}; name each identity provider once")
    _check_shared_tokens(clients, parsed, problems)
    settings: dict[str, Any] = {key: values[key] for key in ("max_body_bytes", "strict_attributes") if key in values}
    if "base_path" in values:
        settings["base_path"] = "/" + values["base_path"].strip("/")
    scim = ScimConfig(**_listen(values, "scim", problems, ScimConfig.port), **settings,
                      clients=tuple(client for client in parsed if client is not None))
    if scim.max_body_bytes < 1024:
        problems.append(f"scim.max_body_bytes is {scim.max_body_bytes}; allow at least 1024")
    return scim


def _check_shared_tokens(tables: list[dict[str, Any]], clients: list[ScimClient | None], problems: list[str]) -> None:
    """A problem for each two `clients` (parsed from `tables`, named by the key their tokens come from) that accept
    one token: its requests would all be taken for one of them, which would see and change the other's users. Never
    names the token."""
    keyed = [(f"scim.clients[{i}].{'token_file' if 'token_file' in table else 'token_env'}", client)
             for i, (table, client) in enumerate(zip(tables, clients, strict=True)) if client is not None]
    for i, (key, client) in enumerate(keyed):
        for other_key, other in keyed[i + 1:]:
            if set(client.tokens) & set(other.tokens):
                problems.append(f"{key} ({client.name}) and {other_key} ({other.name}) hold the same token: the "
                                f"requests of one would be taken for the other's; {OWN_TOKEN}")


def _scim_client(raw: dict[str, Any], key: str, read: bool, problems: list[str]) -> ScimClient | None:
    values = _table(raw, key, _SCIM_CLIENT, problems)
    name = values.get("name", "").strip()
    if not name:
        problems.append(f"{key}.name is missing; name the identity provider, e.g. name = \"entra\"")
    elif problem := not_xml(name):
        problems.append(f"{key}.name {name!a} {problem}, and every event of the client is stored under it; name the "
                        "identity provider without that character")
        name = ""
    if ("token_env" in values) == ("token_file" in values):
        problems.append(f"{key} ({name}) needs exactly one of token_env or token_file holding its bearer token")
        return None
    if not read:  # named, for `connector status`; no token read, never served
        return ScimClient(name, (), token_file=values.get("token_file")) if name else None
    if "token_file" in values:
        try:
            tokens = read_tokens(values["token_file"])
        except ValueError as exc:
            problems.append(f"{key}.token_file {values['token_file']!r} {exc}")
            return None
        return ScimClient(name, tokens, token_file=values["token_file"]) if name else None
    token = _sendable(_secret(values, "token", key, problems), _secret_source(values, "token", key), "token", problems)
    if token is not None and len(token.strip()) < MIN_SCIM_TOKEN:
        problems.append(f"{key}.token_env names {values['token_env']}, whose token has {_characters(token.strip())}; "
                        f"{SHORT_TOKEN}")
        return None
    if token is None or not name:
        return None
    return ScimClient(name, (token.strip(),))


def _characters(token: str) -> str:
    return f"{len(token)} character{'' if len(token) == 1 else 's'}"


def read_tokens(file: str) -> tuple[str, ...]:
    """The bearer tokens in a SCIM client's token_file: one a line; blank lines, lines starting with # (comments) and
    surrounding whitespace ignored.

    Raises ValueError saying what is wrong and the fix, never a token: the file cannot be read, is not UTF-8,
    holds no token, a token shorter than MIN_SCIM_TOKEN characters, or one holding a character XML 1.0 cannot carry
    (`not_xml`), which no HTTP request can carry either.
    """
    try:
        text = Path(file).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror}{from_here(file)}); check the path and permissions") from None
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text; save the tokens in it as UTF-8, one a line") from None
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]
    tokens = [(number, line) for number, line in lines if line and not line.startswith("#")]
    for number, token in tokens:
        if len(token) < MIN_SCIM_TOKEN:
            raise ValueError(f"holds a token of {_characters(token)} on line {number}; {SHORT_TOKEN} (lines starting "
                             "with # are comments)")
        if problem := not_xml(token):
            raise ValueError(f"line {number}: the token {problem}, so no request can send it; remove that character")
    if not tokens:
        raise ValueError("holds no token; put the client's bearer token in it, one a line")
    return tuple(dict.fromkeys(token for _, token in tokens))


def _logging(values: dict[str, Any], problems: list[str]) -> LoggingConfig:
    logging = LoggingConfig(**values)
    if logging.format not in ("auto", "json", "text"):
        problems.append(f"logging.format is {logging.format!r}; use \"auto\", \"json\" or \"text\"")
    if logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(f"logging.level is {logging.level!r}; use DEBUG, INFO, WARNING or ERROR")
    return dataclasses.replace(logging, level=logging.level.upper())


def _simulator(values: dict[str, Any], used: bool, problems: list[str]) -> SimulatorConfig:
    """[simulator]; its seed file is checked when the simulator is `used` (Config.uses_simulator), not otherwise."""
    seed = values.get("seed")
    if seed is not None and used and not Path(seed).is_file():
        problems.append(f"simulator.seed {seed!r} is not a file{from_here(seed)}; fix the path (without the key the "
                        "simulator starts empty)")
    elif seed is not None and used:
        try:
            load_seed(seed)
        except SeedError as exc:
            problems += [f"simulator.seed {problem}" for problem in exc.problems]
    return SimulatorConfig(**_listen(values, "simulator", problems, SimulatorConfig.port), seed=seed)


def _delivery(values: dict[str, Any], problems: list[str]) -> DeliveryConfig:
    delivery = DeliveryConfig(**values)
    _limit("delivery", delivery, ("workers", "max_attempts"), "be at least 1", problems)
    _limit("delivery", delivery, ("guard_max_count", "user_cache_seconds"), "not be negative, use 0 or more", problems)
    _limit("delivery", delivery, ("backoff_base_seconds", "backoff_max_seconds", "lease_seconds", "idle_poll_seconds",
                                  "guard_window_seconds", "breaker_window_seconds", "probe_seconds"), "be above 0",
           problems)
    if delivery.breaker_min_users < 2:
        problems.append(f"delivery.breaker_min_users is {delivery.breaker_min_users}; write 2 or more: one user's "
                        "failures are that user's, and take the per-event backoff")
    if not 0 <= delivery.guard_max_share <= 1:
        problems.append(f"delivery.guard_max_share is {delivery.guard_max_share:g}; "
                        "write a share between 0 and 1, such as 0.1 for 10 %")
    if delivery.backoff_max_seconds < delivery.backoff_base_seconds:
        problems.append("delivery.backoff_max_seconds is below delivery.backoff_base_seconds; raise it")
    return delivery


def _ldap_sections(raw: Any, mapping_file: str, secrets: Collection[str], problems: list[str]) -> dict[str, LdapConfig]:
    """Each [ldap.NAME]; its bind password read if `secrets` names "ldap" (every directory) or "ldap.NAME"."""
    if not isinstance(raw, dict) or not all(isinstance(table, dict) for table in raw.values()):
        problems.append("write each directory as its own table, [ldap.NAME], followed by its keys")
        return {}
    parsed = {name: _ldap(name, table, mapping_file, "ldap" in secrets or f"ldap.{name}" in secrets, problems)
              for name, table in raw.items()}
    return {name: config for name, config in parsed.items() if config is not None}


def _ldap(name: str, raw: dict[str, Any], mapping_file: str, read: bool,
          problems: list[str]) -> LdapConfig | None:
    key = f"ldap.{name}"
    if problem := not_xml(name):
        problems.append(f"the name of [ldap.{name!a}] {problem}, and every event of the directory is stored under it; "
                        "name the directory without that character")
        return None
    values = _table(raw, key, _LDAP, problems)
    missing = [item for item in ("url", "base") if not values.get(item)]
    if missing:
        problems.append(f"[{key}] needs {' and '.join(missing)}, e.g. url = \"ldaps://dc1.corp.example:636\", "
                        "base = \"OU=Staff,DC=corp,DC=example\"")
        return None
    if any(not isinstance(a, str) or not a for a in values.get("attributes", ())):
        problems.append(f"{key}.attributes must be a list of attribute names, e.g. [\"telephoneNumber\"]")
    settings = {item: value for item, value in values.items() if item not in ("password_env", "password_file")}
    if "attributes" in settings:
        settings["attributes"] = tuple(settings["attributes"])
    password = _secret(values, "password", key, problems, read=read)
    config = LdapConfig(name=name, password=password, password_source=_password_source(key, values, password),
                        password_env=values.get("password_env") if password is not None else None,
                        password_file=values.get("password_file") if password is not None else None,
                        mapping_file=mapping_file, **settings)
    if "clock_tolerance_seconds" not in values:  # by default at most the overlap
        config = dataclasses.replace(config, clock_tolerance_seconds=min(config.clock_tolerance_seconds,
                                                                         config.overlap_seconds))
    if ("bind_dn" in values) != ("password_env" in values or "password_file" in values):
        problems.append(f"[{key}] needs both bind_dn and password_env (or password_file), or neither "
                        "for an anonymous bind")
    for check in (_check_connection, _check_search, _check_reading, _check_guard, _check_identity, _check_tolerance):
        check(config, key, problems)
    return config


def _password_source(key: str, values: dict[str, Any], password: str | None) -> str | None:
    """Where the password of table `key` came from, for refused logins and binds, which never show the password."""
    if password is None:
        return None
    if "password_env" in values:
        return f"environment variable {values['password_env']} ({key}.password_env)"
    return f"file {values['password_file']} ({key}.password_file; a trailing newline is not sent)"


def _check_connection(config: LdapConfig, key: str, problems: list[str]) -> None:
    if not config.url.startswith(("ldap://", "ldaps://")):
        problems.append(f"{key}.url is {config.url!r}; use ldaps://host:636, or ldap://host:389 with starttls = true")
    if config.starttls and config.url.startswith("ldaps://"):
        problems.append(f"{key} has starttls = true with an ldaps:// url; keep one of them")
    if config.ca_file is not None and not Path(config.ca_file).is_file():
        problems.append(f"{key}.ca_file {config.ca_file!r} is not a file{from_here(config.ca_file)}; fix the path")
    elif config.ca_file is not None:
        _check_ca_file(config.ca_file, f"{key}.ca_file", problems)


def _check_ca_file(file: str, key: str, problems: list[str]) -> None:
    """A problem unless `file` holds PEM certificates, loaded as the TLS connection loads them."""
    try:
        ssl.create_default_context(cafile=file)
    except ssl.SSLError as exc:
        der = ", it is DER (binary)" if Path(file).read_bytes().startswith(b"\x30") else ""  # an ASN.1 SEQUENCE
        problems.append(f"{key} {file!r} holds no certificate OpenSSL reads as PEM ({exc.reason}{der}); it must be "
                        "PEM text (-----BEGIN CERTIFICATE-----): convert a DER file, such as a Windows .cer "
                        "export, with `openssl x509 -inform DER -in ca.cer -out ca.pem`")
    except OSError as exc:
        problems.append(f"{key} {file!r} cannot be read ({exc.strerror}{from_here(file)}); check the path and "
                        "permissions")


def _check_search(config: LdapConfig, key: str, problems: list[str]) -> None:
    """The DNs and the filter the searches send, parsed as the watcher (connector.dn) and ldap3 parse them before
    sending. bind_dn may be no DN: Active Directory also binds as svc@corp.example (a UPN) or CORP\\svc."""
    for item, dn in (("base", config.base), ("group_base", config.group_base)):
        if dn is None:
            continue
        try:
            parse_dn(dn)
        except InvalidDn as exc:
            problems.append(f"{key}.{item} {exc}; write it as attribute=value pairs joined by single commas, "
                            "e.g. \"OU=Staff,DC=corp,DC=example\"")
    if config.filter is not None:
        from ldap3.core.exceptions import LDAPException  # ldap3 takes 40 ms to import: only for a filter
        from ldap3.operation.search import parse_filter

        try:  # as a search parses it: no schema, values auto-escaped and encoded, names not checked
            parse_filter(config.filter, None, True, True, None, False)  # type: ignore[no-untyped-call]
        except LDAPException as exc:
            problems.append(f"{key}.filter {config.filter!r} is not an LDAP filter ({exc}); write one filter in "
                            "parentheses, with every ( closed and several joined by & or |, e.g. "
                            "\"(&(objectClass=person)(mail=*))\"")


def _check_reading(config: LdapConfig, key: str, problems: list[str]) -> None:
    if config.dialect not in LDAP_DIALECTS:
        problems.append(f"{key}.dialect is {config.dialect!r}; use one of {', '.join(LDAP_DIALECTS)}")
    _limit(key, config, ("poll_seconds", "timeout_seconds", "page_size"), "be above 0", problems)
    _limit(key, config, ("overlap_seconds", "group_nesting_depth", "clock_tolerance_seconds", "scope_check_per_poll"),
           "not be negative, use 0 or more", problems)
    if config.dialect == "ad" and config.page_size > AD_MAX_PAGE_SIZE:
        problems.append(f"{key}.page_size is {config.page_size}; Active Directory pages at most "
                        f"{AD_MAX_PAGE_SIZE} entries, use {AD_MAX_PAGE_SIZE} or less")
    _check_cron(config.full_sync_cron, f"{key}.full_sync_cron", problems)


def _check_cron(line: str, key: str, problems: list[str]) -> None:
    """A problem unless `line` is a crontab line or "" (none)."""
    if line:
        try:
            CronTrigger.from_crontab(line)
        except ValueError as exc:
            problems.append(f"{key} {line!r} is not a crontab line ({exc}); write five fields, e.g. \"0 3 * * *\", "
                            "or \"\" for none")


def _check_guard(config: LdapConfig, key: str, problems: list[str]) -> None:
    _limit(key, config, ("guard_max_count", "guard_min_count"), "not be negative, use 0 or more", problems)
    if not 0 <= config.guard_max_share <= 1:
        problems.append(f"{key}.guard_max_share is {config.guard_max_share:g}; give a share "
                        "between 0 and 1, e.g. 0.1 for 10 % of the known users (it applies once "
                        f"{key}.guard_min_count users or more would be deactivated or deleted)")


def _check_identity(config: LdapConfig, key: str, problems: list[str]) -> None:
    chosen = config.id_attribute
    if chosen is None:
        return
    if not chosen.strip() or any(c in chosen for c in " ,()=*"):
        problems.append(f"{key}.id_attribute is {chosen!r}; name one attribute that never changes for a user, e.g. "
                        "\"entryUUID\", \"nsUniqueId\", \"ipaUniqueID\", \"objectGUID\" or \"employeeNumber\"")
    elif chosen.lower() == "dn" and config.dialect == "ad":
        problems.append(f"{key}.id_attribute = \"dn\" is not offered for Active Directory; every AD object "
                        "has an objectGUID, which survives renames and moves: remove the key")


def _check_tolerance(config: LdapConfig, key: str, problems: list[str]) -> None:
    """A modifyTimestamp cursor may run clock_tolerance_seconds ahead; the overlap window must reach back past it."""
    tolerance, overlap = config.clock_tolerance_seconds, config.overlap_seconds
    if tolerance > overlap and config.dialect != "ad":
        problems.append(f"{key}.clock_tolerance_seconds ({tolerance:g}) is above {key}.overlap_seconds "
                        f"({overlap:g}): a cursor that far ahead of the connector's clock would skip the changes "
                        "made in between; lower it, or raise overlap_seconds")
