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


@dataclasses.dataclass(frozen=True)
class Config:
    path: str
    store: StoreConfig
    target: TargetConfig
    simulator: SimulatorConfig
    mapping_file: str
    delivery: DeliveryConfig

    @property
    def uses_simulator(self) -> bool:
        return self.target.url is None

    @property
    def target_url(self) -> str:
        return self.target.url or self.simulator.url


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
}
_SECTIONS = {"store": _STORE, "target": _TARGET, "simulator": _SIMULATOR, "mapping": _MAPPING, "delivery": _DELIVERY}


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
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section [{unknown[0]}]; the sections are {', '.join(_SECTIONS)}")
    sections = {name: _section(data.get(name, {}), name, spec, path) for name, spec in _SECTIONS.items()}
    return Config(
        path=path,
        store=_store(sections["store"], path),
        target=_target(sections["target"], path),
        simulator=_simulator(sections["simulator"], path),
        mapping_file=sections["mapping"]["file"],
        delivery=_delivery(sections["delivery"], path),
    )


def _section(raw: Any, name: str, spec: dict[str, tuple[Any, Any]], path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: '{name}' must be a table: write [{name}] followed by its keys")
    values = {}
    for key, value in raw.items():
        if key not in spec:
            raise ConfigError(f"{path}: unknown key {name}.{key}; the keys of [{name}] are {', '.join(spec)}")
        types, _ = spec[key]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = "a number" if types == (int, float) else {str: "a string", int: "an integer"}[types]
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
        try:
            secret = Path(file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{path}: target.{name}_file {file!r} cannot be read ({exc.strerror}); check the path and permissions") from None
        if not secret:
            raise ConfigError(f"{path}: target.{name}_file {file!r} is empty; put the {name} in it")
        return secret
    return None


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
    for key in ("backoff_base_seconds", "backoff_max_seconds", "lease_seconds", "idle_poll_seconds"):
        if values[key] <= 0:
            raise ConfigError(f"{path}: delivery.{key} is {values[key]}; it must be above 0")
    if values["backoff_max_seconds"] < values["backoff_base_seconds"]:
        raise ConfigError(f"{path}: delivery.backoff_max_seconds is below delivery.backoff_base_seconds; raise it")
    return DeliveryConfig(**{k: v if k in ("workers", "max_attempts") else float(v) for k, v in values.items()})
