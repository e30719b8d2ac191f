"""Load and validate the connector's TOML config.

Every error names the file, the key and the fix. Secrets never live in the
TOML: a `*_env` key names an environment variable and a `*_file` key names a
file that holds the secret. Relative paths are taken from the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from connector.errors import ConnectorError

DEFAULT_PATH = "config/connector.toml"
SIMULATOR_LOGIN = "connector"
SIMULATOR_PASSWORD = "connector"


class ConfigError(ConnectorError):
    """The config is not valid."""


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///var/connector.db"
    synchronous: str = "FULL"


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """Where extensions are pushed; `url` None means the built-in simulator."""

    url: str | None = None
    eid: str | None = "0000"
    environment_short_name: str | None = None
    login: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    token: str | None = dataclasses.field(default=None, repr=False)
    timeout_seconds: float = 10.0


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
    workers: int = 4
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


@dataclasses.dataclass(frozen=True)
class ScimClient:
    """One `[[scim.clients]]` entry: an identity provider and its bearer token."""

    name: str
    token: str = dataclasses.field(repr=False)


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
    mapping_file: str | None = None  # the [mapping] file, whose group rules the watcher re-reads


@dataclasses.dataclass(frozen=True)
class Config:
    path: str
    store: StoreConfig
    target: TargetConfig
    simulator: SimulatorConfig
    mapping_file: str
    delivery: DeliveryConfig
    ldap: dict[str, LdapConfig] = dataclasses.field(default_factory=dict)
    admin: AdminConfig = AdminConfig()
    scim: ScimConfig = ScimConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def uses_simulator(self) -> bool:
        return self.target.url is None

    @property
    def target_url(self) -> str:
        return self.target.url or self.simulator.url

    def secrets(self) -> list[str]:
        """Every secret the config holds, for masking in logs and output."""
        return [s for s in (self.target.password, self.target.token, *(c.token for c in self.scim.clients),
                            *(d.password for d in self.ldap.values())) if s]


# key -> (allowed types, default); the defaults are the embedded run's.
_STORE = {"url": (str, StoreConfig.url), "synchronous": (str, StoreConfig.synchronous)}
_TARGET = {
    "url": (str, None),
    "eid": (str, None),
    "environment_short_name": (str, None),
    "login": (str, None),
    "password_env": (str, None),
    "password_file": (str, None),
    "token_env": (str, None),
    "token_file": (str, None),
    "timeout_seconds": ((int, float), TargetConfig.timeout_seconds),
}
_SIMULATOR = {"listen": (str, "127.0.0.1:7002"), "seed": (str, None)}
_MAPPING = {"file": (str, "mappings/default.toml")}
_DELIVERY = {
    "workers": (int, DeliveryConfig.workers),
    "max_attempts": (int, DeliveryConfig.max_attempts),
    "backoff_base_seconds": ((int, float), DeliveryConfig.backoff_base_seconds),
    "backoff_max_seconds": ((int, float), DeliveryConfig.backoff_max_seconds),
    "lease_seconds": ((int, float), DeliveryConfig.lease_seconds),
    "idle_poll_seconds": ((int, float), DeliveryConfig.idle_poll_seconds),
    "user_cache_seconds": ((int, float), DeliveryConfig.user_cache_seconds),
    "guard_max_count": (int, DeliveryConfig.guard_max_count),
    "guard_max_share": ((int, float), DeliveryConfig.guard_max_share),
    "guard_window_seconds": ((int, float), DeliveryConfig.guard_window_seconds),
}
_ADMIN = {"listen": (str, "127.0.0.1:8081")}
_LOGGING = {"format": (str, LoggingConfig.format), "level": (str, LoggingConfig.level)}
_SECTIONS = {"store": _STORE, "target": _TARGET, "simulator": _SIMULATOR, "mapping": _MAPPING, "delivery": _DELIVERY,
             "admin": _ADMIN, "logging": _LOGGING}


def load_config(path: str | Path = DEFAULT_PATH) -> Config:
    """Read, validate and resolve the config at `path`."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass --config or set CONNECTOR_CONFIG") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: str) -> Config:
    unknown = sorted(set(data) - set(_SECTIONS) - {"ldap", "scim"})
    if unknown:
        raise ConfigError(f"{path}: unknown section [{unknown[0]}]; the sections are {', '.join(_SECTIONS)}")
    sections = {name: _section(data.get(name, {}), name, spec, path) for name, spec in _SECTIONS.items()}
    target, delivery = _target(sections["target"], path), _delivery(sections["delivery"], path)
    _check_lease(target, delivery, path)
    return Config(
        path=path,
        store=_store(sections["store"], path),
        target=target,
        simulator=_simulator(sections["simulator"], path),
        mapping_file=sections["mapping"]["file"],
        admin=AdminConfig(*_listen(sections["admin"]["listen"], "admin.listen", path)),
        scim=_scim(data.get("scim", {}), path),
        logging=_logging(sections["logging"], path),
        delivery=delivery,
        ldap=_ldap_sections(data.get("ldap", {}), path, sections["mapping"]["file"]),
    )


def _check_lease(target: TargetConfig, delivery: DeliveryConfig, path: str) -> None:
    """A lease renewed every third of it must always leave room for a whole call and its margin."""
    from connector.delivery.lease import LEASE_MARGIN_SECONDS

    least = 1.5 * (target.timeout_seconds + LEASE_MARGIN_SECONDS)
    if delivery.lease_seconds < least:
        raise ConfigError(
            f"{path}: delivery.lease_seconds is {delivery.lease_seconds:g}; with target.timeout_seconds = "
            f"{target.timeout_seconds:g} it must be at least {least:g} (1.5 x (timeout + {LEASE_MARGIN_SECONDS:g} s)), "
            "so that a call always fits in the lease: raise it or lower the timeout"
        )


def _section(raw: Any, name: str, spec: dict[str, tuple[Any, Any]], path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: '{name}' must be a table: write [{name}] followed by its keys")
    values = {}
    for key, value in raw.items():
        if key not in spec:
            raise ConfigError(f"{path}: unknown key {name}.{key}; the keys of [{name}] are {', '.join(spec)}")
        types, _ = spec[key]
        if (isinstance(value, bool) and types is not bool) or not isinstance(value, types):
            wanted = "a number" if types == (int, float) else {
                str: "a string", int: "an integer", bool: "true or false"}[types]
            raise ConfigError(f"{path}: {name}.{key} is {value!r}; it must be {wanted}")
        values[key] = value
    return {key: values.get(key, default) for key, (_, default) in spec.items()}


def _store(values: dict[str, Any], path: str) -> StoreConfig:
    if not values["url"].startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(f"{path}: store.url is {values['url']!r}; use sqlite:///path/to/connector.db "
                          "or postgresql://user@host/dbname (put the password in ~/.pgpass or PGPASSWORD)")
    if values["synchronous"] not in ("FULL", "NORMAL"):
        raise ConfigError(
            f"{path}: store.synchronous is {values['synchronous']!r}; use \"FULL\" (survives power loss) "
            "or \"NORMAL\" (survives crashes, may lose the last commits on power loss)"
        )
    return StoreConfig(**values)


def _target(values: dict[str, Any], path: str) -> TargetConfig:
    if values["url"] is None:
        extra = [k for k in _TARGET if k not in ("url", "eid", "timeout_seconds") and values[k] is not None]
        if extra:
            raise ConfigError(f"{path}: target.{extra[0]} is set but target.url is not; set target.url to your Verba "
                              "service (e.g. http://verba-mr:7002/provisioning) or remove the key")
        return TargetConfig(eid="0000", login=SIMULATOR_LOGIN, password=SIMULATOR_PASSWORD,
                            timeout_seconds=values["timeout_seconds"])
    if not values["url"].startswith(("http://", "https://")):
        raise ConfigError(f"{path}: target.url is {values['url']!r}; use http(s)://host:7002/provisioning")
    eid, short_name = values["eid"], values["environment_short_name"]
    if eid is not None and short_name is not None:
        raise ConfigError(f"{path}: target.eid and target.environment_short_name are both set; Verba takes one, keep one")
    if eid is None and short_name is None:
        eid = "0000"
    if eid is not None and len(eid) != 4:
        raise ConfigError(f"{path}: target.eid is {eid!r}; an eid has 4 characters, such as \"0000\" (quote it)")
    password = _secret(values, "password", path)
    token = _secret(values, "token", path)
    if token is None and (password is None or values["login"] is None):
        raise ConfigError(f"{path}: target needs login plus password_env or password_file, or token_env or token_file")
    if token is not None and password is not None:
        raise ConfigError(f"{path}: target has both a password and a token; keep one of them")
    return TargetConfig(url=values["url"], eid=eid, environment_short_name=short_name, login=values["login"],
                        password=password, token=token, timeout_seconds=values["timeout_seconds"])


def _secret(values: dict[str, Any], name: str, path: str) -> str | None:
    env, file = values[f"{name}_env"], values[f"{name}_file"]
    if env is not None and file is not None:
        raise ConfigError(f"{path}: target.{name}_env and target.{name}_file are both set; keep one")
    if env is not None:
        secret = os.environ.get(env)
        if not secret:
            raise ConfigError(f"{path}: target.{name}_env names {env}, which is not set; export {env} or use target.{name}_file")
        return secret
    if file is not None:
        return read_secret_file(file, f"target.{name}_file", path, name)
    return None


def read_secret_file(file: str, key: str, path: str, what: str) -> str:
    """The secret in `file` exactly as written: UTF-8, with only one trailing newline ("\n" or "\r\n") dropped.

    Spaces and every other character are part of the secret: a password may end with a space.
    """
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: {key} {file!r} cannot be read ({exc.strerror}); check the path and permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {key} {file!r} is not UTF-8 text; save the {what} in it as UTF-8") from None
    secret = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not secret:
        raise ConfigError(f"{path}: {key} {file!r} is empty; put the {what} in it")
    return secret


_SCIM = {
    "listen": (str, "127.0.0.1:8080"),
    "base_path": (str, ScimConfig.base_path),
    "max_body_bytes": (int, ScimConfig.max_body_bytes),
    "strict_attributes": (bool, ScimConfig.strict_attributes),
}
_SCIM_CLIENT = {"name": (str, None), "token_env": (str, None), "token_file": (str, None)}


def _scim(raw: Any, path: str) -> ScimConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: 'scim' must be a table: write [scim] followed by its keys")
    clients = raw.get("clients", [])
    values = _section({k: v for k, v in raw.items() if k != "clients"}, "scim", _SCIM, path)
    host, port = _listen(values["listen"], "scim.listen", path)
    base_path = "/" + values["base_path"].strip("/")
    if values["max_body_bytes"] < 1024:
        raise ConfigError(f"{path}: scim.max_body_bytes is {values['max_body_bytes']}; allow at least 1024")
    if not isinstance(clients, list) or not all(isinstance(c, dict) for c in clients):
        raise ConfigError(f"{path}: scim.clients must be tables: write [[scim.clients]] with name and token_env")
    parsed = [_scim_client(entry, f"scim.clients[{i}]", path) for i, entry in enumerate(clients)]
    names = [client.name for client in parsed]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two [[scim.clients]] are named {next(n for n in names if names.count(n) > 1)!r}; "
                          "name each identity provider once")
    return ScimConfig(host, port, base_path, values["max_body_bytes"], tuple(parsed), values["strict_attributes"])


def _scim_client(raw: dict[str, Any], key: str, path: str) -> ScimClient:
    values = _section(raw, key, _SCIM_CLIENT, path)
    name = values["name"]
    if not name or not name.strip():
        raise ConfigError(f"{path}: {key}.name is missing; name the identity provider, e.g. name = \"entra\"")
    env, file = values["token_env"], values["token_file"]
    if (env is None) == (file is None):
        raise ConfigError(f"{path}: {key} ({name}) needs exactly one of token_env or token_file holding its bearer token")
    if env is not None:
        token = os.environ.get(env, "").strip()
        if not token:
            raise ConfigError(f"{path}: {key}.token_env names {env}, which is not set; export {env} or use token_file")
    else:
        token = read_secret_file(file, f"{key}.token_file", path, "bearer token")
    return ScimClient(name.strip(), token)


def _logging(values: dict[str, Any], path: str) -> LoggingConfig:
    if values["format"] not in ("auto", "json", "text"):
        raise ConfigError(f"{path}: logging.format is {values['format']!r}; use \"auto\", \"json\" or \"text\"")
    level = values["level"].upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{path}: logging.level is {values['level']!r}; use DEBUG, INFO, WARNING or ERROR")
    return LoggingConfig(format=values["format"], level=level)


def _simulator(values: dict[str, Any], path: str) -> SimulatorConfig:
    host, port = _listen(values["listen"], "simulator.listen", path)
    if values["seed"] is not None and not Path(values["seed"]).is_file():
        raise ConfigError(f"{path}: simulator.seed {values['seed']!r} is not a file; fix the path or remove the key")
    return SimulatorConfig(host=host, port=port, seed=values["seed"])


def _listen(value: str, key: str, path: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{path}: {key} is {value!r}; write host:port, such as \"127.0.0.1:7002\"")
    return host, int(port)


def _delivery(values: dict[str, Any], path: str) -> DeliveryConfig:
    for key in ("workers", "max_attempts"):
        if values[key] < 1:
            raise ConfigError(f"{path}: delivery.{key} is {values[key]}; it must be at least 1")
    if values["guard_max_count"] < 0:
        raise ConfigError(f"{path}: delivery.guard_max_count is {values['guard_max_count']}; it must be 0 or more")
    if not 0 <= values["guard_max_share"] <= 1:
        raise ConfigError(f"{path}: delivery.guard_max_share is {values['guard_max_share']}; "
                          "write a share between 0 and 1, such as 0.1 for 10 %")
    for key in ("backoff_base_seconds", "backoff_max_seconds", "lease_seconds", "idle_poll_seconds",
                "guard_window_seconds"):
        if values[key] <= 0:
            raise ConfigError(f"{path}: delivery.{key} is {values[key]}; it must be above 0")
    if values["backoff_max_seconds"] < values["backoff_base_seconds"]:
        raise ConfigError(f"{path}: delivery.backoff_max_seconds is below delivery.backoff_base_seconds; raise it")
    integers = ("workers", "max_attempts", "guard_max_count")
    return DeliveryConfig(**{k: v if k in integers else float(v) for k, v in values.items()})


# [ldap.NAME] key -> (allowed types, default)
_LDAP: dict[str, tuple[tuple[type, ...], Any]] = {
    "url": ((str,), None),
    "base": ((str,), None),
    "dialect": ((str,), LdapConfig.dialect),
    "filter": ((str,), None),
    "attributes": ((list,), None),
    "username_attribute": ((str,), None),
    "disabled_attribute": ((str,), None),
    "bind_dn": ((str,), None),
    "password_env": ((str,), None),
    "password_file": ((str,), None),
    "ca_file": ((str,), None),
    "tls_verify": ((bool,), LdapConfig.tls_verify),
    "starttls": ((bool,), LdapConfig.starttls),
    "poll_seconds": ((int, float), LdapConfig.poll_seconds),
    "overlap_seconds": ((int, float), LdapConfig.overlap_seconds),
    "page_size": ((int,), LdapConfig.page_size),
    "timeout_seconds": ((int, float), LdapConfig.timeout_seconds),
    "full_sync_cron": ((str,), LdapConfig.full_sync_cron),
    "guard_max_count": ((int,), LdapConfig.guard_max_count),
    "guard_max_share": ((int, float), LdapConfig.guard_max_share),
    "guard_min_count": ((int,), LdapConfig.guard_min_count),
    "id_attribute": ((str,), None),
    "group_base": ((str,), None),
    "group_nesting_depth": ((int,), LdapConfig.group_nesting_depth),
    "clock_tolerance_seconds": ((int, float), None),
    "scope_check_per_poll": ((int,), LdapConfig.scope_check_per_poll),
}
LDAP_DIALECTS = ("openldap", "ad", "generic")
AD_MAX_PAGE_SIZE = 1000  # Active Directory's MaxPageSize LDAP policy


def _ldap_sections(raw: Any, path: str, mapping_file: str | None = None) -> dict[str, LdapConfig]:
    if not isinstance(raw, dict) or not all(isinstance(table, dict) for table in raw.values()):
        raise ConfigError(f"{path}: write each directory as its own table, [ldap.NAME], followed by its keys")
    return {name: _ldap(name, table, path, mapping_file) for name, table in raw.items()}


def _ldap(name: str, raw: dict[str, Any], path: str, mapping_file: str | None = None) -> LdapConfig:
    key = f"ldap.{name}"
    values = {}
    for item, value in raw.items():
        if item not in _LDAP:
            raise ConfigError(f"{path}: unknown key {key}.{item}; the keys of [{key}] are {', '.join(_LDAP)}")
        types = _LDAP[item][0]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            wanted = {str: "a string", bool: "true or false", int: "an integer", list: "a list of strings"}[types[0]]
            raise ConfigError(f"{path}: {key}.{item} is {value!r}; it must be {'a number' if float in types else wanted}")
        values[item] = value
    values = {item: values.get(item, default) for item, (_, default) in _LDAP.items()}
    for item in ("url", "base"):
        if not values[item]:
            raise ConfigError(f"{path}: [{key}] needs {item}, e.g. url = \"ldaps://dc1.corp.example:636\", "
                              "base = \"OU=Staff,DC=corp,DC=example\"")
    if not values["url"].startswith(("ldap://", "ldaps://")):
        raise ConfigError(f"{path}: {key}.url is {values['url']!r}; use ldaps://host:636, or ldap://host:389 "
                          "with starttls = true")
    if values["starttls"] and values["url"].startswith("ldaps://"):
        raise ConfigError(f"{path}: {key} has starttls = true with an ldaps:// url; keep one of them")
    if values["dialect"] not in LDAP_DIALECTS:
        raise ConfigError(f"{path}: {key}.dialect is {values['dialect']!r}; use one of {', '.join(LDAP_DIALECTS)}")
    if values["attributes"] is not None and not all(isinstance(a, str) and a for a in values["attributes"]):
        raise ConfigError(f"{path}: {key}.attributes must be a list of attribute names, e.g. [\"telephoneNumber\"]")
    if values["ca_file"] is not None and not Path(values["ca_file"]).is_file():
        raise ConfigError(f"{path}: {key}.ca_file {values['ca_file']!r} is not a file; fix the path")
    for item in ("poll_seconds", "timeout_seconds", "page_size"):
        if values[item] <= 0:
            raise ConfigError(f"{path}: {key}.{item} is {values[item]}; it must be above 0")
    if values["dialect"] == "ad" and values["page_size"] > AD_MAX_PAGE_SIZE:
        raise ConfigError(f"{path}: {key}.page_size is {values['page_size']}; Active Directory pages at most "
                          f"{AD_MAX_PAGE_SIZE} entries, use {AD_MAX_PAGE_SIZE} or less")
    for item in ("overlap_seconds", "guard_max_count", "guard_min_count", "group_nesting_depth",
                 "clock_tolerance_seconds", "scope_check_per_poll"):
        if values[item] is not None and values[item] < 0:
            raise ConfigError(f"{path}: {key}.{item} is {values[item]}; it must not be negative, use 0 or more")
    if not 0 <= values["guard_max_share"] <= 1:
        raise ConfigError(f"{path}: {key}.guard_max_share is {values['guard_max_share']}; give a share "
                          "between 0 and 1, e.g. 0.1 for 10 % of the known users (it applies once "
                          f"{key}.guard_min_count users or more would be deactivated or deleted)")
    if values["full_sync_cron"]:
        try:
            CronTrigger.from_crontab(values["full_sync_cron"])
        except ValueError as exc:
            raise ConfigError(f"{path}: {key}.full_sync_cron {values['full_sync_cron']!r} is not a crontab line "
                              f"({exc}); write five fields, e.g. \"0 3 * * *\", or \"\" for none") from None
    _check_identity(values, key, path)
    _check_tolerance(values, key, path)
    password, source = _ldap_password(values.pop("password_env"), values.pop("password_file"), key, path)
    if (values["bind_dn"] is None) != (password is None):
        raise ConfigError(f"{path}: [{key}] needs both bind_dn and password_env (or password_file), or neither "
                          "for an anonymous bind")
    attributes = values.pop("attributes")
    return LdapConfig(name=name, password=password, password_source=source, mapping_file=mapping_file,
                      attributes=None if attributes is None else tuple(attributes),
                      **{k: float(v) if k.endswith("_seconds") else v for k, v in values.items()})


# The stable id of each dialect; `id_attribute` names another (an employee number) or "dn".
LDAP_ID_ATTRIBUTES = {"openldap": "entryUUID", "ad": "objectGUID", "generic": "entryUUID, nsUniqueId or ipaUniqueID"}


def _check_tolerance(values: dict[str, Any], key: str, path: str) -> None:
    """A modifyTimestamp cursor may run clock_tolerance_seconds ahead; the overlap window must reach back past it."""
    tolerance, overlap = values["clock_tolerance_seconds"], values["overlap_seconds"]
    if tolerance is None:
        values["clock_tolerance_seconds"] = min(LdapConfig.clock_tolerance_seconds, overlap)
    elif tolerance > overlap and values["dialect"] != "ad":
        raise ConfigError(f"{path}: {key}.clock_tolerance_seconds ({tolerance:g}) is above {key}.overlap_seconds "
                          f"({overlap:g}): a cursor that far ahead of the connector's clock would skip the changes "
                          "made in between; lower it, or raise overlap_seconds")


def _check_identity(values: dict[str, Any], key: str, path: str) -> None:
    chosen = values["id_attribute"]
    if chosen is None:
        return
    if not chosen.strip() or any(c in chosen for c in " ,()=*"):
        raise ConfigError(f"{path}: {key}.id_attribute is {chosen!r}; name one attribute that never changes for a "
                          "user, e.g. \"entryUUID\", \"nsUniqueId\", \"ipaUniqueID\", \"objectGUID\" or \"employeeNumber\"")
    if chosen.lower() == "dn" and values["dialect"] == "ad":
        raise ConfigError(f"{path}: {key}.id_attribute = \"dn\" is not offered for Active Directory; every AD object "
                          "has an objectGUID, which survives renames and moves: remove the key")


def _ldap_password(env: str | None, file: str | None, key: str, path: str) -> tuple[str | None, str | None]:
    """The bind password exactly as given, and where it came from (for bind errors, which never show it)."""
    if env is not None and file is not None:
        raise ConfigError(f"{path}: {key}.password_env and {key}.password_file are both set; keep one")
    if env is not None:
        if not os.environ.get(env):
            raise ConfigError(f"{path}: {key}.password_env names {env}, which is not set; export {env} "
                              f"or use {key}.password_file")
        return os.environ[env], f"environment variable {env} (password_env)"
    if file is not None:
        secret = read_secret_file(file, f"{key}.password_file", path, "password")
        return secret, f"file {file} (password_file; a trailing newline is not sent)"
    return None, None
