"""`connector run` and `connector validate-config [--connect]`."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click

from connector.cli.ldap import schema_problems
from connector.cli.options import config_option, echo
from connector.config import Config, ConfigError, load_config
from connector.mapping import MappingError, load_mapping
from connector.ops.logs import setup_logging
from connector.passwords import one_shot_command
from connector.runtime import Connector, open_client, open_configured_store
from connector.sources.ldap.connection import DirectoryError, open_connection, read_entry
from connector.sources.ldap.connection import close as close_connection
from connector.store import POSTGRES_SCHEMES, StoreError, StoreMissing, without_password
from connector.store.queries import migrations
from connector.verba.errors import VerbaError

log = logging.getLogger("connector")


@click.command()
@config_option
def run(config_path: str) -> None:
    """Start the connector: store, delivery workers and, with no target configured, the built-in simulator.

    SIGTERM or Ctrl-C stops it once in-flight pushes finish. SIGHUP (`systemctl reload`) re-reads the SCIM
    clients' token files and sends a Verba password Verba refused again; a target.password_file is read again
    before each login anyway."""
    config = load_config(config_path)
    json_lines = {"json": True, "text": False}.get(config.logging.format)
    as_log = setup_logging(config.secrets(), json_lines=json_lines, level=getattr(logging, config.logging.level),
                           instance=config.instance.name)
    connector = Connector(config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: connector.reload())  # systemctl reload
    connector.start()
    _announce(config, as_log)
    stop.wait()
    _say("stopping; letting in-flight pushes finish", as_log)
    connector.stop()
    _say("stopped", as_log)


def _say(text: str, as_log: bool, level: int = logging.INFO) -> None:
    """One line of what `connector run` does: a log record on the logger "connector" when the logs are JSON lines
    (under systemd the journal then holds JSON alone), else "connector: <text>" on stdout, for a terminal."""
    if as_log:
        log.log(level, text)
    else:
        echo(f"connector: {'WARNING: ' if level >= logging.WARNING else ''}{text}")


def _announce(config: Config, as_log: bool) -> None:
    target = (f"{config.target_url} (built-in simulator: in memory, back to its seed at every start)"
              if config.uses_simulator else config.target_url)
    _say(f"store {without_password(config.store.url)}, instance {config.instance.name}", as_log)
    _say(f"pushing to {target} with {config.delivery.workers} workers", as_log)
    if config.uses_simulator and config.store.url.startswith(POSTGRES_SCHEMES):
        _say("every instance on this PostgreSQL store runs its own built-in simulator, so each pushes to a different "
             "Verba; for several instances, set [target] url to one shared `connector simulator` (or Verba)", as_log,
             logging.WARNING)
    clients = ", ".join(c.name for c in config.scim.clients) or "none configured: every request gets 401"
    _say(f"SCIM {config.scim.url} (clients: {clients})", as_log)
    admin = f"http://{config.admin.host}:{config.admin.port}"
    _say(f"health {admin}/livez {admin}/readyz, metrics {admin}/metrics", as_log)
    _say("running; stop with Ctrl-C or SIGTERM (in-flight pushes finish first)", as_log)


@click.command("validate-config")
@config_option
@click.option("--connect", is_flag=True, help="Also connect: each LDAP directory's bind, a base search and its "
                                             "schema's check of the attribute names, Verba's requestToken and a "
                                             "listUsers, the store and its schema version.")
@one_shot_command()
def validate_config(config_path: str, connect: bool) -> None:
    """Check the config and its mapping file; exit 1 with the file, key and fix of every problem of both.

    With --connect, also try what `connector run` will need, and print one line per check: each
    [ldap.NAME] directory's bind, a base-scope search of its base and the attribute names the section
    gives against the directory's schema, Verba's requestToken and one listUsers (read only), and that
    the store is reachable with this connector's schema version.
    Every check runs even when one fails; each failure says what to fix; exit 1 if any failed.
    """
    config = _load(config_path)
    if not connect:
        load_mapping(config.mapping_file)
        echo(f"{config_path}: OK (mapping {config.mapping_file}, target {config.target_url})")
        return
    echo(f"{config_path}: config OK; connecting")
    results = [*_check_mapping(config), *_check_store(config), *_check_target(config), *_check_ldap(config)]
    for ok, what, detail in results:
        detail = detail.replace("\n", "\n" + " " * 10)  # a problem per line (a mapping file's), under the first
        echo(f"  {'ok' if ok else 'FAILED':<6}  {what}: {detail}")
    failed = sum(1 for ok, _, _ in results if not ok)
    if failed:
        echo(f"{config_path}: {failed} of {len(results)} checks failed", err=True)
        sys.exit(1)
    echo(f"{config_path}: all {len(results)} checks passed")


def _load(config_path: str) -> Config:
    """The config; with its problems, those of the mapping file it names too (all at once), unless the mapping
    file's path is among them."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        if exc.mapping_file is None:
            raise
        try:
            load_mapping(exc.mapping_file)
        except MappingError as mapping_exc:
            raise ConfigError(f"{exc}\n{mapping_exc}", exc.mapping_file) from None
        raise


Check = tuple[bool, str, str]  # passed, what was checked, what was found (a failure: what is wrong and the fix)


def _check_mapping(config: Config) -> list[Check]:
    try:
        loaded = load_mapping(config.mapping_file)
    except MappingError as exc:
        return [(False, "mapping", str(exc))]
    return [(True, "mapping", f"{config.mapping_file}: {len(loaded.sources)} extension sources, "
                              f"{len(loaded.rules)} rules")]


def _check_store(config: Config) -> list[Check]:
    what = f"store {without_password(config.store.url)}"
    warning = "".join(f"; WARNING: {each}" for each in config.store.warnings)
    try:
        with open_configured_store(config) as store:
            store.count_by_state()
            version = len(migrations(store.dialect))
    except StoreMissing:  # a first start: `connector run` creates it
        return [(True, what, "none yet: `connector run` creates it (if one should be there, check [store] url)"
                 + warning)]
    except (StoreError, ValueError) as exc:
        return [(False, what, str(exc))]
    return [(True, what, f"reachable, schema version {version} (this connector's){warning}")]


_TARGET_FIXES = {
    "transport": "check target.url, that Verba answers from this host, and target.timeout_seconds",
    "malformed_response": "check target.url: it must be Verba's Provisioning API v2, not a proxy or another page",
    "auth": "check target.login and the password (target.password_env or target.password_file) or the token",
}


def _check_target(config: Config) -> list[Check]:
    """requestToken (with a login and password; a fixed token needs none), then one listUsers (for the API login
    name): both read only."""
    url = config.target_url
    if config.uses_simulator:
        return [(True, "verba", f"no target.url: the built-in simulator ({url}) starts with `connector run`; set "
                                "[target] url to check your Verba")]
    results: list[Check] = []
    fixed = config.target.token is not None
    try:
        with open_client(config) as client:
            checks = [("listUsers", client.probe, " (the fixed token)" if fixed else "")]
            if not fixed:
                checks.insert(0, ("requestToken", client.request_token, f" (login {config.target.login})"))
            for operation, call, what in checks:
                try:
                    call()
                except VerbaError as exc:
                    results.append((False, f"verba {operation}", _with_fix(str(exc), exc.cause)))
                    break
                results.append((True, f"verba {operation}", f"{url} answered{what}"))
    except VerbaError as exc:  # the client could not even be built (the WSDL)
        results.append((False, "verba", _with_fix(str(exc), exc.cause)))
    return results


def _with_fix(message: str, cause: str) -> str:
    fix = _TARGET_FIXES.get(cause, "check [target] in the config")
    return message if "check " in message or "fix " in message else f"{message}; {fix}"


def _check_ldap(config: Config) -> list[Check]:
    """Each directory: bind, a base-scope search of its base, then the attribute names the section gives against
    the directory's schema."""
    results: list[Check] = []
    for name, section in sorted(config.ldap.items()):
        what = f"ldap {name} ({section.url})"
        try:
            conn = open_connection(section)
        except DirectoryError as exc:
            results.append((False, what, str(exc).removeprefix(f"directory {name} ({section.url}): ")))
            continue
        try:
            found = read_entry(conn, section.base, ["1.1"])
            problems, unread = schema_problems(config, section, conn) if found is not None else ([], None)
        except DirectoryError as exc:
            results.append((False, what, f"bound, but {exc}"))
            continue
        finally:
            close_connection(conn)
        bound = f"bound as {section.bind_dn or 'anonymous'}"
        if found is None:
            results.append((False, what, f"{bound}, but base {section.base!r} does not exist or the bind account may "
                                         "not read it; check base and the account's read rights"))
        elif problems:
            results.append((False, what, "\n".join([f"{bound}, base {section.base} readable, but:", *problems])))
        else:
            warning = "".join(f"; WARNING: {each}" for each in [*section.warnings, *([unread] if unread else [])])
            results.append((True, what, f"{bound}, base {section.base} readable{warning}"))
    return results

