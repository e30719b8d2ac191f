"""`connector mapping test`: the extension records a user state maps to, from a file or a live user."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import click

from connector.cli.ldap import directory_config, login_attribute_fix
from connector.cli.options import config_option, echo, json_option
from connector.config import Config, load_config
from connector.errors import ConnectorError
from connector.events import KINDS, UserChange, parse_user_change, read_json
from connector.mapping import Mapping, MappingFailure, UnresolvedUser, load_mapping
from connector.ops.drift import LazyVerbaLogins
from connector.ops.preview import login_read_from
from connector.ops.report import to_json
from connector.passwords import one_shot_command
from connector.records import ExtensionRecord
from connector.runtime import open_client, preview_store
from connector.sources.ldap.dialects import Dialect
from connector.sources.ldap.snapshot import NoLoginName, login_name
from connector.sources.ldap.watcher import Watcher
from connector.sources.scim.index import user_state
from connector.sources.scim.schema import USERS
from connector.store import Store
from connector.store.scim import Match, ScimResource
from connector.verba.errors import VerbaError

FLAGS = ("voice", "im", "video", "screen_capture_enabled")


@dataclasses.dataclass
class _Subject:
    """The user to map: its change, how to name it, and what the connector knows of it."""

    change: UserChange
    name: str  # "FILE" or "source/external_id (login)"
    where: str  # where the state came from
    previous: list[ExtensionRecord] = dataclasses.field(default_factory=list)  # as last pushed
    known_id: int | None = None  # the Verba user id last pushed for it
    live: bool = False
    directory: Dialect | None = None  # of the directory it was read from (--ldap)
    login_attribute: str | None = None  # the directory's attribute its login name (userName) was read from: "uid"


@click.group()
def mapping() -> None:
    """Work with mapping files."""


@mapping.command("test")
@config_option
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False),
              help="The mapping file  [default: the config's mapping.file]")
@click.option("--user", "user", metavar="FILE.json | ID",
              help="A JSON user state (or a whole event with a 'state'); with --ldap, the user's DN, stable id or "
                   "login name in that directory.")
@click.option("--ldap", "directory", metavar="NAME", help="Read the user from the directory [ldap.NAME] now.")
@click.option("--scim-user", metavar="ID",
              help="The SCIM user the connector stores: its id, CLIENT/ID, or its userName.")
@click.option("--user-id", type=int, help="The Verba user id to use instead of looking it up.")
@click.option("--kind", type=click.Choice(KINDS),
              help="Map it as this change  [default: upsert for a file; for a live user, deactivate when inactive]")
@json_option
@one_shot_command()
def mapping_test(config_path: str, mapping_file: str | None, user: str | None, directory: str | None,
                 scim_user: str | None, user_id: int | None, kind: str | None, as_json: bool) -> None:
    """Print the extension records that a user state maps to, as a table (JSON with --json). Nothing is pushed.

    \b
    The user comes from one of:
      --user FILE.json               a user state in a file
      --ldap NAME --user ID          the directory's entry now: its DN, stable id (entryUUID, objectGUID
                                     or id_attribute) or login name (uid, userPrincipalName, ...)
      --scim-user ID                 the SCIM user the connector stores (its id, CLIENT/ID or userName)

    The Verba user id is --user-id, else the mapping's [user_id] attribute; for a live user the
    connector looks the login name up in Verba (listUsers, read only), for a file's user it is shown as
    looked up at push time. A live user's records last
    pushed are shown as stopped when the state no longer maps to them.
    """
    live = directory is not None or scim_user is not None
    if (directory is not None and scim_user is not None) or (scim_user is not None and user is not None) or (
            user is None and scim_user is None):
        raise click.UsageError("give one user: --user FILE.json, --ldap NAME --user ID, or --scim-user ID")
    # a live user is read from its directory (or the store) and looked up in Verba; a file needs no secret
    secrets = {"target", f"ldap.{directory}"} if directory is not None else {"target"} if live else set()
    config = load_config(config_path, secrets=secrets) if live or mapping_file is None else None
    mapping_path = mapping_file or config.mapping_file  # type: ignore[union-attr]  # loaded when not given
    loaded = load_mapping(mapping_path)
    if config is not None and live:
        subject = _live(config, directory, user, scim_user, kind)
    else:
        subject = _from_file(Path(str(user)), kind or "upsert")
    resolved, how = _user_id(config if subject.live else None, loaded, subject, user_id)
    try:  # a user id looked up at push time does not change the records: 1 only stands in for it
        mapped = loaded.map_user(subject.change, 1 if resolved is None else resolved, subject.previous)
    except MappingFailure as exc:
        raise ConnectorError(f"{subject.name}: the mapping {mapping_path} cannot map this state: {exc}") from None
    absent = [{"rule": n, "attribute": str(rule.when.attribute)} for n, rule in enumerate(loaded.rules)
              if rule.when.attribute is not None and not rule.when.attribute.values(subject.change.state)]
    if as_json:
        echo(to_json({"config": config.path if config else None, "mapping": mapping_path,
                      "user": subject.name, "from": subject.where, "kind": subject.change.kind,
                      "user_id": resolved, "user_id_from": how, "decided_by": loaded.decision(subject.change),
                      "absent_attributes": absent,
                      "upserts": [_as_dict(r, resolved) for r in mapped.upserts],
                      "deprovisions": [_as_dict(r, resolved) for r in mapped.deprovisions],
                      "left_out": list(mapped.skipped), "kept": list(mapped.kept)}))
        return
    echo(_using(config, mapping_path, given=mapping_file is not None))
    echo(f"{subject.name} ({subject.change.kind}), from {subject.where}")
    echo(f"Verba user {'looked up at push time' if resolved is None else resolved} ({how})")
    echo(f"decided by {loaded.decision(subject.change)}")
    if absent:
        echo("not in this state (misspelled in the mapping, or not sent by the source?): " + ", ".join(
            f"rules[{a['rule']}].when.attribute {a['attribute']!r}" for a in absent))
    if mapped.skipped:
        echo("left out as invalid (fix at the source): " + "; ".join(mapped.skipped))
    rows = ([("keep" if r.extension in mapped.kept else "record", r) for r in mapped.upserts]
            + [("stop", r) for r in mapped.deprovisions])
    if not rows:
        echo("maps to no extension: the state has no valid value in the mapping's [[extensions]] sources"
             + ("" if subject.change.kind == "upsert" else ", and nothing was pushed for it before")
             + f" ({loaded.sources_found(subject.change.state)})")
        return
    for line in table(rows, at_push_time=resolved is None):
        echo(line)
    if mapped.kept:
        echo("keep: last pushed recording, and not stopped while a value is left out as invalid: it may be that "
             "number mistyped (audited kept_recording)")
    if mapped.deprovisions:  # as delivery decides (connector/delivery/ownership.py)
        linked = "the Verba user of its login name" if resolved is None else f"user {resolved}"
        echo(f"stop: recording stops (the extension stays linked to {linked}) if Verba still links it to "
             "this user and no other source of the user claims it; else it is left alone (audited left_alone)")


def _using(config: Config | None, mapping_path: str, given: bool) -> str:
    """The first line: the config read, if any (and whether $CONNECTOR_CONFIG named it), and the mapping used."""
    if config is None:
        return f"using mapping {mapping_path} (--mapping); no config read"
    source = click.get_current_context().get_parameter_source("config_path")
    named = " (from CONNECTOR_CONFIG)" if source is click.core.ParameterSource.ENVIRONMENT else ""
    mapping = f"mapping {mapping_path} (--mapping)" if given else f"its [mapping] file {mapping_path}"
    return f"using config {config.path}{named} and {mapping}"


def table(rows: Sequence[tuple[str, ExtensionRecord]], *, at_push_time: bool = False) -> list[str]:
    """Records as aligned columns: extension, user id (`at_push_time`: not known until a push looks it up), action,
    recording mode and each recorded modality."""
    head = ("EXTENSION", "USER ID", "ACTION", "RECORDING MODE", "VOICE", "IM", "VIDEO", "SCREEN")
    body = [(r.extension, "at push time" if at_push_time else str(r.user_id), action, r.recording_mode,
             *("yes" if getattr(r, flag) else "no" for flag in FLAGS)) for action, r in rows]
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (head, *body)]


# where the user comes from

def _from_file(user_file: Path, kind: str) -> _Subject:
    """The `kind` change of the user state (or whole event) in `user_file`; ConnectorError if it is malformed."""
    try:
        data = read_json(user_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConnectorError(f"{user_file}: no such file; --user takes a JSON user state (with --ldap NAME, "
                             "a user of that directory)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectorError(f"{user_file}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConnectorError(f"{user_file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # a number out of range (read_json)
        raise ConnectorError(f"{user_file}: {exc}") from None
    event = data if isinstance(data, dict) and "state" in data else {
        "source": "test", "external_id": "test", "state": data}
    try:
        change = parse_user_change({**event, "kind": kind})
    except ValueError as exc:
        raise ConnectorError(f"{user_file}: {exc}") from None
    return _Subject(change, str(user_file), "the file")


def _live(config: Config, directory: str | None, wanted: str | None, scim_user: str | None,
          kind: str | None) -> _Subject:
    """The live user: read from the directory or the store, with what the connector last pushed for it."""
    with preview_store(config) as store:  # before going live, there may be no store yet
        dialect = None
        if directory is not None:
            assert wanted is not None  # checked with the other options
            change, where, dialect = _from_directory(config, store, directory, wanted)
        else:
            assert scim_user is not None
            change, where = _from_scim(config, store, scim_user)
        if kind is not None:
            change = dataclasses.replace(change, kind=kind)  # type: ignore[arg-type]
        login = change.state.get("userName")
        name = f"{change.source}/{change.external_id}" + (f" ({login})" if login else "")
        return _Subject(change, name, where, store.pushed_extensions(change.source, change.external_id),
                        store.verba_user_id(change.source, change.external_id), live=True, directory=dialect,
                        login_attribute=None if dialect is None else _login_attribute(dialect, change))


def _from_directory(config: Config, store: Store, name: str, wanted: str) -> tuple[UserChange, str, Dialect]:
    section = directory_config(config, name)
    with closing(Watcher(store, section)) as watcher:
        change = watcher.read_user(wanted)
    if change is None:
        raise ConnectorError(f"directory {name} has no user {wanted!r} in scope (under {section.base}, matching the "
                             "filter); give its DN, its stable id or its login name")
    return change, f"directory {name}: {change.state.get('attributes', {}).get('dn', '')}", watcher.dialect


def _login_attribute(dialect: Dialect, change: UserChange) -> str | None:
    """The attribute the directory user's login name was read from, as a sync reads it (`login_name`, from the
    attributes the state keeps: every one a login name may be read from); None when it has none."""
    attributes = change.state.get("attributes", {})
    texts = {key.lower(): value if isinstance(value, list) else [value] for key, value in attributes.items()}
    try:
        return login_name(dialect, str(attributes.get("dn", "")), texts)[1]
    except NoLoginName:
        return None


def _from_scim(config: Config, store: Store, wanted: str) -> tuple[UserChange, str]:
    """The SCIM user with this id (or CLIENT/ID, or userName), as the SCIM source would hand it to the mapping."""
    client, slash, resource_id = wanted.partition("/")
    if slash:
        clients, ids = [client], [resource_id]
    else:
        clients = list(dict.fromkeys([*(c.name for c in config.scim.clients),
                                      *(source for source, _ in store.user_keys())]))
        ids = [wanted]
    found: list[ScimResource] = [r for c in clients for i in ids if (r := store.scim_get(c, "User", i)) is not None]
    if not found and not slash:
        for c in clients:
            found.extend(store.scim_search(c, "User", Match("userName", "eq", wanted), 0, 2)[1])
    if not found:
        raise ConnectorError(f"the store holds no SCIM user {wanted!r} (an id, CLIENT/ID or userName); it was "
                             "deleted, never provisioned, or provisioned into another store")
    if len(found) > 1:
        names = ", ".join(f"{r.client}/{r.id}" for r in found)
        raise ConnectorError(f"{len(found)} SCIM users match {wanted!r} ({names}); give CLIENT/ID")
    resource = found[0]
    groups = store.scim_groups_of(resource.client, [resource.id]).get(resource.id, [])
    state = user_state(USERS, resource.body, [display for _, display in groups])
    kind: Any = "deactivate" if state.get("active") is False else "upsert"
    return UserChange(resource.client, resource.id, kind, state), f"SCIM client {resource.client}"


# the Verba user id

def _as_dict(record: ExtensionRecord, user_id: int | None) -> dict[str, Any]:
    """The record as --json prints it: its user_id null while it is looked up at push time."""
    return {**record.to_dict(), **({"user_id": None} if user_id is None else {})}


def _user_id(config: Config | None, loaded: Mapping, subject: _Subject,
             given: int | None) -> tuple[int | None, str]:
    """The Verba user id to map with, and where it came from. A live user's is looked up in Verba (listUsers, read
    only) as a push would; a file's user (a state no source sent: there is no one to look up yet) gets None when the
    mapping looks it up by login name at push time, unless --user-id gives one."""
    if given is not None:
        return given, "--user-id"
    try:
        found = loaded.user_id_or_login(subject.change, subject.known_id)
    except (MappingFailure, UnresolvedUser) as exc:
        raise ConnectorError(f"{subject.name}: {exc}") from None
    if isinstance(found, int):
        how = (f"from {loaded.user_id_attribute}" if loaded.user_id_from_state(subject.change.state) == found
               else "as last pushed")
        return found, how
    if config is None:
        return None, f"listUsers loginName {found!r} when it is pushed; --user-id N maps with one now"
    anyway = "pass --user-id N to see the records anyway"
    origin = login_read_from(loaded, subject.change, subject.login_attribute)
    read_from = "" if origin == "userName" else origin
    try:
        with open_client(config) as client:
            user_id = client.find_user_id(found)
            # as a push decides: never a second Verba user for a person Verba holds under another login name
            elsewhere = None if user_id is not None else LazyVerbaLogins(client, None, "mapping test").get(
            ).held_elsewhere(found, subject.known_id, read_from)
    except VerbaError as exc:
        raise ConnectorError(f"cannot look the Verba user up by loginName {found!r} at {config.target_url}: {exc}; "
                             "pass --user-id N to see the records without asking Verba") from None
    if elsewhere is not None:
        raise ConnectorError(f"{subject.name}: {elsewhere}; a push would be a dead letter (unresolved_user), "
                             f"creating no one; {anyway}")
    named = f"loginName {found!r}" + (f" (from {read_from})" if read_from else "")
    if user_id is None and loaded.create_missing_users and subject.change.kind == "upsert":
        return None, f"no Verba user has {named}: a push creates one ([user_id] create_missing = true)"
    if user_id is None:
        dialect = subject.directory
        elsewhere_read = (login_attribute_fix(config, dialect.config, dialect, origin) if dialect is not None else
                          "if Verba's login names are another attribute of the user, read them from it with [user_id] "
                          "login_name in the mapping")
        raise ConnectorError(f"{subject.name}: no Verba user has {named}, so a push would be a dead letter "
                             "(unresolved_user): create the user in Verba (or set [user_id] create_missing = true in "
                             f"the mapping), or, {elsewhere_read}; {anyway}")
    return user_id, f"listUsers loginName {found!r}"
