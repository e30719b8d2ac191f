"""Load and validate a mapping file; every error names the file, the key and the fix.

Keys of an array of tables are named with a 0-based index: rules[0] is the first [[rules]].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import phonenumbers

from connector.errors import ConnectorError, did_you_mean, from_here
from connector.mapping.mapper import DEPROVISION_ACTIONS, ON_CONFLICT, ON_INVALID, ExtensionSource, Mapping
from connector.mapping.normalize import NORMALIZE_MODES, SUFFIX_MODES
from connector.mapping.paths import AttributePath
from connector.mapping.rules import Condition, RecordingSettings, Rule
from connector.records import RECORDING_MODES, eid_problem, not_xml
from connector.tomlfile import not_toml

SETTINGS = {
    "recordingMode": "recording_mode",
    "voice": "voice",
    "im": "im",
    "video": "video",
    "screenCaptureEnabled": "screen_capture_enabled",
}
DEFAULT_SETTINGS = RecordingSettings("FULL", voice=True, im=False, video=False, screen_capture_enabled=False)


class MappingError(ConnectorError):
    """The mapping file is not valid."""


def load_mapping(path: str | Path) -> Mapping:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(
            f"{name}: cannot read the mapping file ({exc}{from_here(path)}); check [mapping] file in the config"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(not_toml(name, text, exc, quotes_where=", as the header of mappings/default.toml says")) \
            from None
    return dataclasses.replace(parse_mapping(data, name), digest=mapping_digest(text))


def mapping_digest(text: str) -> str:
    """What tells one mapping file's text from another (sha256, 16 hex digits): `connector run` records the one it
    loaded, so that `connector status` finds an instance started with another text than the file holds now."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def parse_mapping(data: dict[str, Any], file: str) -> Mapping:
    """Build a Mapping from parsed TOML; `file` names the source in error messages.

    Raises one MappingError whose message has a line per problem: "{file}: {key} is ...; {fix}".
    """
    top = _Table(file, "", data, [])
    top.only("environment", "user_id", "extensions", "defaults", "rules", "deprovision", "ownership")
    eid, short_name = _environment(top)
    user_id = top.table("user_id")
    user_id.only("attribute", "login_name", "create_missing")
    defaults_table = top.table("defaults")
    defaults_table.only("record", *SETTINGS)
    defaults = _settings(defaults_table, DEFAULT_SETTINGS)
    deprovision = top.table("deprovision")
    deprovision.only("action")
    ownership = top.table("ownership")
    ownership.only("on_conflict")
    sources = top.tables("extensions")
    if top.data.get("extensions", []) == []:
        top.problem(
            "extensions", 'is missing; add at least one [[extensions]] table with from = "..." and normalize = "..."'
        )
    mapping = Mapping(
        sources=tuple(_source(t) for t in sources),
        defaults=defaults,
        eid=eid,
        environment_short_name=short_name,
        record_by_default=defaults_table.boolean("record", True),
        rules=tuple(_rule(t, defaults) for t in top.tables("rules")),
        user_id_path=user_id.path("attribute", user_id.data["attribute"]) if "attribute" in user_id.data else None,
        login_name_paths=_login_name(user_id),
        create_missing_users=user_id.boolean("create_missing", False),
        deprovision_action=deprovision.choice("action", DEPROVISION_ACTIONS, "stop_recording"),
        on_conflict=ownership.choice("on_conflict", ON_CONFLICT, "hold"),
    )
    if top.problems:
        raise MappingError("\n".join(top.problems))
    return mapping


@dataclasses.dataclass
class _Table:
    """One table of the file, named `key` in messages ("" for the top level). A value that breaks a rule is
    recorded in `problems` (shared by every table of the file) and read as a stand-in, so that parsing goes on
    and every problem is reported at once; the Mapping built from stand-ins is never returned."""

    file: str
    key: str
    data: dict[str, Any]
    problems: list[str]

    def at(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def problem(self, name: str, text: str) -> None:
        self.problems.append(f"{self.file}: {self.at(name)} {text}")

    def sub(self, key: str, data: dict[str, Any]) -> _Table:
        return _Table(self.file, key, data, self.problems)

    def only(self, *allowed: str, elsewhere: tuple[str, ...] = ()) -> None:
        """A problem for each key not `allowed`; the keys `elsewhere` are no keys of this table, reported apart."""
        for name in self.data:
            if name not in allowed and name not in elsewhere:
                hint = did_you_mean(name, allowed)
                where = f"[{self.key}]" if self.key else "the top level"
                self.problem(name, f"is not a known key; {hint}the keys of {where} are {', '.join(allowed)}")

    def table(self, name: str, required: bool = False) -> _Table:
        """The sub-table `name`; an empty one when it is absent (a problem if `required`) or not a table."""
        value = self.data.get(name, {})
        if required and name not in self.data:
            self.problem(name, f"is missing; add {self._header(name)}")
        elif not isinstance(value, dict):
            self.problem(name, f"is {value!r}; write it as {self._header(name)}")
            value = {}
        return self.sub(self.at(name), value)

    def _header(self, name: str) -> str:
        """How to write the sub-table `name`: a [header], or inside an array of tables (rules[0], which no
        [header] can name) an inline table."""
        return f"an inline table: {name} = {{ ... }}" if "[" in self.key else f"a [{self.at(name)}] table"

    def tables(self, name: str) -> list[_Table]:
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.problem(name, f"must be an array of tables; write each one as [[{self.at(name)}]]")
            return []
        return [self.sub(f"{self.at(name)}[{n}]", item) for n, item in enumerate(value)]

    def string(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            self.problem(name, f"is {value!r}; use a non-empty quoted string")
            return None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            self.problem(name, f"is {value!r}; use true or false (unquoted)")
            return default
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str | None) -> str:
        """The value, one of `choices`; `default` when absent (required if None). The stand-in is `choices[0]`."""
        value = self.data.get(name, default)
        if value is None:
            self.problem(name, f"is missing; use one of {', '.join(choices)}")
        elif not isinstance(value, str) or value not in choices:
            self.problem(name, f"is {value!r}; use one of {', '.join(choices)}")
        else:
            return value
        return default or choices[0]

    def path(self, name: str, text: Any) -> AttributePath:
        """The attribute path `text`; the stand-in is userName."""
        try:
            return AttributePath.parse(text)
        except ValueError as exc:
            self.problem(name, f"is not a valid path: {exc}")
            return AttributePath.parse("userName")


def _environment(top: _Table) -> tuple[str | None, str | None]:
    table = top.table("environment", required=True)
    table.only("eid", "short_name")
    if isinstance(top.data.get("environment"), dict) and ("eid" in table.data) == ("short_name" in table.data):
        table.problems.append(f'{table.file}: environment needs exactly one of eid = "0000" or short_name = "tenant"; '
                              "Verba takes one, not both")
    eid = table.data.get("eid")
    if isinstance(eid, int) and not isinstance(eid, bool) and 0 <= eid <= 9999:
        table.problem("eid", str(eid_problem(eid)))
        return f"{eid:04d}", None
    eid = table.string("eid")
    short_name = table.string("short_name")
    if eid is not None and (problem := eid_problem(eid)):
        table.problem("eid", problem)
    if short_name is not None and len(short_name) > 64:
        table.problem("short_name", "is longer than 64 characters; use the environment's short name from Verba")
    elif short_name is not None and (problem := not_xml(short_name)):  # every push would fail to be built
        table.problem("short_name", f"{problem}; use the environment's short name from Verba")
    return eid, short_name


def _login_name(table: _Table) -> tuple[AttributePath, ...]:
    paths = table.data.get("login_name", ["userName"])
    if not isinstance(paths, list) or not paths:
        table.problem("login_name", f'is {paths!r}; use a list of paths tried in order, such as ["userName"]')
        return ()
    return tuple(table.path(f"login_name[{n}]", value) for n, value in enumerate(paths))


def _source(table: _Table) -> ExtensionSource:
    table.only("from", "normalize", "default_country", "suffix", "on_invalid")
    if "from" not in table.data:
        table.problem(
            "from", 'is missing; say where the numbers come from, e.g. from = \'phoneNumbers[type eq "work"].value\''
        )
    how = table.choice("normalize", NORMALIZE_MODES, None)
    country = table.string("default_country")
    if country is not None:
        if how != "e164":
            table.problem("default_country", f'only applies to normalize = "e164", not {how!r}; remove it')
        elif country.upper() not in phonenumbers.SUPPORTED_REGIONS:
            table.problem("default_country", f"is {country!r}; use a two-letter region code such as US, GB or DE")
        country = country.upper()
    if "suffix" in table.data and how not in ("e164", "digits"):
        table.problem("suffix", f'only applies to normalize = "e164" or "digits", not {how!r}; remove it')
    return ExtensionSource(
        table.path("from", table.data.get("from", "userName")), how, country,
        on_invalid=table.choice("on_invalid", ON_INVALID, "error"),
        suffix=table.choice("suffix", SUFFIX_MODES, "keep"),
    )


def _settings(table: _Table, base: RecordingSettings) -> RecordingSettings:
    changes: dict[str, Any] = {}
    for key, field in SETTINGS.items():
        if key in table.data:
            changes[field] = (
                table.choice(key, RECORDING_MODES, None) if key == "recordingMode" else table.boolean(key, False)
            )
    return dataclasses.replace(base, **changes)


def _rule(table: _Table, defaults: RecordingSettings) -> Rule:
    table.only("when", "set", "record")
    condition = _when(table)
    record = table.boolean("record", True)
    if "set" in table.data and not record:
        table.problem("set", "cannot be used with record = false; remove one of them")
    overrides = table.table("set")
    if "record" in overrides.data:
        overrides.problem("record", "belongs to the rule, not to its settings; write record = false next to when")
    overrides.only(*SETTINGS, elsewhere=("record",))
    return Rule(condition, _settings(overrides, defaults) if record else None)


def _when(rule: _Table) -> Condition:
    """The rule's `when`; the stand-in (a problem recorded) is a condition every user meets."""
    if "when" not in rule.data:
        rule.problem("when", 'is missing; every rule says which users it applies to, e.g. when = { group = "Traders" } '
                             "(how to record everyone else goes in [defaults])")
        return Condition()
    value = rule.data["when"]
    if not isinstance(value, dict):
        group = json.dumps(value if isinstance(value, str) and value.strip() else "Traders", ensure_ascii=False)
        rule.problem("when", f"is {value!r}; write the conditions as an inline table: when = {{ group = {group} }}, "
                             'or when = { attribute = "PATH", equals = "VALUE" }')
        return Condition()
    return _condition(rule.sub(rule.at("when"), value))


def _condition(table: _Table) -> Condition:
    table.only("group", "attribute", "equals", "matches", "present")
    if not table.data:
        table.problems.append(
            f'{table.file}: {table.key} is empty; give group = "..." and/or attribute = "..." with a test'
        )
    tests = [name for name in ("equals", "matches", "present") if name in table.data]
    if "attribute" in table.data and len(tests) != 1:
        table.problem("attribute", "needs exactly one of equals, matches or present")
    if tests and "attribute" not in table.data:
        table.problem(tests[0], 'tests an attribute; add attribute = "..." to say which')
    equals = table.data.get("equals")
    if equals is not None and not isinstance(equals, (str, bool)):
        table.problem("equals", f'is {equals!r}; use a quoted string (e.g. "{equals}") or true/false')
    elif isinstance(equals, str) and not equals.strip():
        table.problem("equals", f"is {equals!r}, which never matches: an empty value counts as no value; "
                                "for users without one write present = false")
    return Condition(
        group=table.string("group"),
        attribute=table.path("attribute", table.data["attribute"]) if "attribute" in table.data else None,
        equals=equals,
        pattern=_pattern(table) if "matches" in table.data else None,
        present=table.boolean("present", True) if "present" in table.data else None,
    )


def _pattern(table: _Table) -> re.Pattern[str] | None:
    """The `matches` pattern, case-insensitive and in Unicode NFKC, the form paths.matches reads a value in (an
    "é" typed as e and a combining accent is the one character)."""
    text = unicodedata.normalize("NFKC", table.string("matches") or "")
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        table.problem("matches", f"is not a valid regular expression ({exc}); fix or escape it")
        return None
