"""A loaded mapping: user state -> the extension records to upsert and to deprovision."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Sequence
from typing import Any

from connector.errors import ConnectorError
from connector.events import REPLACEMENT_CHARACTER, UserChange
from connector.mapping.normalize import normalize_extension
from connector.mapping.paths import AttributePath, blank
from connector.mapping.rules import RecordingSettings, Rule, first_match
from connector.records import ExtensionRecord

DEPROVISION_ACTIONS: tuple[str, ...] = ("stop_recording", "ignore")
ON_CONFLICT: tuple[str, ...] = ("hold", "take_over")
ON_INVALID: tuple[str, ...] = ("error", "skip")
MISTYPED_RATIO = 0.8  # how alike the digits of a bad value and a number must be for one to stand for the other
IGNORED_SHOWN = 3  # the values a source's [filter] passes over that `ExtensionSource.ignored` names


class MappingFailure(ValueError):
    """This user state cannot be mapped; the message says which attribute and value, and what to fix."""


class UnresolvedUser(ConnectorError):
    """The Verba user id of this user cannot be found."""


@dataclasses.dataclass(frozen=True)
class MappedUser:
    """What a push of one user writes: `upserts` to record (with those `kept`), `deprovisions` to stop.

    `active`: the change leaves the user active (an upsert without active = false), so a stop is no leaver's;
    `skipped`: the values an `on_invalid = "skip"` source left out, "PATH: why"; `kept`: extensions last
    pushed recording that such a value may stand for (a number mistyped at the source, a value holding a character
    the source lost: `mistyped`), in `upserts` as last pushed instead of stopped. Two are equal when they write the
    same records (the other fields say why).
    """

    upserts: list[ExtensionRecord]
    deprovisions: list[ExtensionRecord]
    active: bool = dataclasses.field(default=False, compare=False)
    skipped: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    kept: tuple[str, ...] = dataclasses.field(default=(), compare=False)


@dataclasses.dataclass(frozen=True)
class ExtensionSource:
    path: AttributePath
    normalize: str
    default_country: str | None = None
    on_invalid: str = "error"
    suffix: str = "keep"

    def extensions(self, state: dict[str, Any], *, strict: bool) -> tuple[list[str], list[tuple[str, str]]]:
        """The normalized extensions in the state, and the bad values left out as (value, "PATH: why"): with
        `on_invalid = "skip"`, or `strict` False whatever `on_invalid` says; MappingFailure for one otherwise."""
        extensions, skipped = [], []
        for value in self.path.values(state):
            if blank(value):
                continue
            try:
                extensions.append(normalize_extension(value, self.normalize, self.default_country, self.suffix))
            except ValueError as exc:
                if strict and self.on_invalid == "error":
                    raise MappingFailure(
                        f"{self.path}: {exc}; fix the value at the source, "
                        f'or set on_invalid = "skip" for this [[extensions]] source'
                    ) from None
                skipped.append((str(value), f"{self.path}: {exc}"))
        return extensions, skipped

    def ignored(self, state: dict[str, Any], read: Sequence[Any]) -> str:
        """The values of the state that `from`'s [filter] passes over and no source reads (`read`: the values every
        source's `from` reaches), and why, e.g. "reads only entries whose type is "work", and ignores '+14155559999'"
        for phoneNumbers[type eq "work"].value and a number without a type (the first IGNORED_SHOWN, then how many
        more); "" when none."""
        if self.path.where is None:
            return ""
        ignored = [value for value in dataclasses.replace(self.path, where=None).values(state)
                   if not blank(value) and value not in read]
        if not ignored:
            return ""
        key, want = self.path.where
        named = ", ".join(repr(value) for value in ignored[:IGNORED_SHOWN])
        more = f" and {len(ignored) - IGNORED_SHOWN} more" if len(ignored) > IGNORED_SHOWN else ""
        return f"reads only entries whose {key} is {json.dumps(want, ensure_ascii=False)}, and ignores {named}{more}"


def mistyped(value: str, extension: str) -> bool:
    """Whether a value left out as invalid may be `extension` mistyped at the source: their digits match but for a
    slip or two (a letter O for a 0, a digit dropped, doubled, changed or two swapped), e.g. "+1 917 555 04O2" and
    "+19175550402". A value with too few digits to tell ("ask reception") is not. A value holding U+FFFD (for a
    character the source held that no store can: an LDAP value's NUL, connector.events.storable) is read without
    it, the value as meant: "ali\ufffdce@example.com" may be alice@example.com and "41\ufffd00" 4100, but not
    another extension of the user, which may have moved to someone else."""
    if REPLACEMENT_CHARACTER in value:
        value = value.replace(REPLACEMENT_CHARACTER, "")
        if _bare(value) == _bare(extension):
            return True
    typed, known = re.sub(r"\D", "", value), re.sub(r"\D", "", extension)
    if len(typed) < 6 or len(known) < 6:
        return False
    # A value typed without its country code matches the number's last digits ("555-0100" for +14155550100).
    return any(difflib.SequenceMatcher(None, typed, digits, autojunk=False).ratio() >= MISTYPED_RATIO
               for digits in (known, known[-len(typed) - 1:]))


def _bare(text: str) -> str:
    """`text` as two spellings of one extension compare: without a "sip:" prefix and spaces, in any case."""
    return re.sub(r"^sip:|\s", "", text.strip().casefold())


@dataclasses.dataclass(frozen=True)
class Mapping:
    sources: tuple[ExtensionSource, ...]
    defaults: RecordingSettings
    eid: str | None = None
    environment_short_name: str | None = None
    record_by_default: bool = True
    rules: tuple[Rule, ...] = ()
    user_id_path: AttributePath | None = None
    login_name_paths: tuple[AttributePath, ...] = (AttributePath.parse("userName"),)
    create_missing_users: bool = False
    deprovision_action: str = "stop_recording"
    on_conflict: str = "hold"  # an extension held by a Verba user the connector does not manage
    digest: str = ""  # of the file's text it was loaded from (loader.py `mapping_digest`); "" when not from a file

    @property
    def user_id_attribute(self) -> str | None:
        return None if self.user_id_path is None else self.user_id_path.text

    def login_name(self, state: dict[str, Any]) -> str | None:
        """The first non-empty value of the login name paths, for a listUsers lookup."""
        for path in self.login_name_paths:
            for value in path.values(state):
                if isinstance(value, str) and value.strip():
                    return value.strip()
        return None

    def user_id_from_state(self, state: dict[str, Any]) -> int | None:
        """The Verba user id held in `user_id_attribute`; None when there is no such attribute or value (a blank
        string is none, as everywhere in a mapping)."""
        if self.user_id_path is None:
            return None
        values = [v for v in self.user_id_path.values(state) if not blank(v)]
        if not values:
            return None
        value = values[0]
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise MappingFailure(
                f"{self.user_id_path} is {values[0]!r}; it must hold the user's Verba user id, a positive integer: "
                "fix the value at the source, or remove [user_id] attribute to look users up by login name"
            )
        return value

    def user_id_or_login(self, change: UserChange, known: int | None) -> int | str:
        """The user's Verba id, or the login name to look it up by (listUsers) at push time.

        With [user_id] attribute: the id in the state, else `known` (the id last pushed for this user).
        Without: the login name, except that a user going away (not an upsert) keeps `known`.
        Raises MappingFailure when the attribute holds no valid id, UnresolvedUser when there is neither.
        """
        if self.user_id_path is not None:
            user_id = self.user_id_from_state(change.state) or known
            if user_id is None:
                raise UnresolvedUser(f"the state has no Verba user id in {self.user_id_attribute!r}; "
                                     "fill that attribute at the source, then replay the event")
            return user_id
        if known is not None and change.kind != "upsert":
            return known
        login = self.login_name(change.state)
        if login is None:
            raise UnresolvedUser("the state has no login name to look the Verba user up by; "
                                 "check [user_id].login_name in the mapping")
        return login

    def map_user(self, change: UserChange, user_id: int, previous: Sequence[ExtensionRecord] = ()) -> MappedUser:
        """The records to push for this change; `previous` are the records last pushed for this user.

        Every record carries `user_id`. Deprovisioned records stay linked to the user with
        recording off, because an update without a user id would unlink them. An extension last pushed
        recording that a value left out as invalid may stand for (`mistyped`) is kept as it was instead of
        stopped (MappedUser.kept).
        """
        if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
            raise ValueError(f"map_user needs a positive integer Verba user id, got {user_id!r}")
        settings = self._settings(change)
        active = change.kind == "upsert" and change.state.get("active") is not False
        # A user going away is stopped even when a value is bad: a bad value was never pushed.
        wanted, skipped = self._extensions(change.state, strict=settings is not None)
        upserts = [] if settings is None else [self._record(x, user_id, settings) for x in wanted]
        if settings is not None and self.deprovision_action != "ignore":  # else nothing is stopped anyway
            kept_records = {r.extension: r for r in previous if r.recording and r.extension not in wanted
                            and any(mistyped(value, r.extension) for value, _ in skipped)}
            upserts += [dataclasses.replace(record, user_id=user_id) for record in kept_records.values()]
        kept = tuple(record.extension for record in upserts[len(wanted):])
        left_out = tuple(why for _, why in skipped) if settings is not None else ()
        if self.deprovision_action == "ignore":
            return MappedUser(upserts, [], active, left_out, kept)
        written = {record.extension for record in upserts}
        stopped: dict[str, ExtensionRecord] = {}
        for record in previous:
            if record.extension not in written and record.extension not in stopped:
                stopped[record.extension] = dataclasses.replace(record, user_id=user_id).stopped()
        if settings is None:
            for extension in wanted:
                if extension not in stopped:
                    stopped[extension] = self._record(extension, user_id, self.defaults).stopped()
        return MappedUser(upserts, list(stopped.values()), active, left_out, kept)

    def needs_nothing(self, change: UserChange, previous: Sequence[ExtensionRecord]) -> bool:
        """Whether a push of `change` has nothing to write or stop: its state maps to no extension and nothing was
        pushed for the user before (`previous`), so no Verba user is needed (a service account without a number).
        Raises MappingFailure for a bad value, as map_user does. The caller checks that the user claims no extension
        either (a conflict it waits in is released by a push)."""
        return not previous and not self._extensions(change.state, strict=self._settings(change) is not None)[0]

    def left_out(self, change: UserChange) -> tuple[str, ...]:
        """The bad values map_user would leave out of this change of a user it records ("PATH: why"; none for a
        user it does not record, whose values are not used); MappingFailure for one it would refuse, as map_user."""
        if self._settings(change) is None:
            return ()
        return tuple(why for _, why in self._extensions(change.state, strict=True)[1])

    def ignored(self, change: UserChange) -> tuple[str, ...]:
        """The values of a change of a user it records that a source's [filter] passes over, by source, e.g.
        "extensions[0].from 'phoneNumbers[type eq "work"].value' reads only entries whose type is "work", and ignores
        '+14155559999'" (ExtensionSource.ignored); none for a user it does not record, whose values are not used."""
        if self._settings(change) is None:
            return ()
        read = self._read(change.state)
        return tuple(f"extensions[{n}].from {str(source.path)!r} {ignored}" for n, source in enumerate(self.sources)
                     if (ignored := source.ignored(change.state, read)))

    def sources_found(self, state: dict[str, Any]) -> str:
        """What the state holds at each source's `from`, to say why it maps to no extension: "extensions[0].from
        'phoneNumbers[type eq "work"].value': none: it reads only entries whose type is "work", and ignores
        '+14155559999'; extensions[1].from 'attributes.mobile': absent (misspelled in the mapping, or not sent by the
        source?); extensions[2].from 'phoneNumbers.value': 1 value, not valid"."""
        found, read = [], self._read(state)
        for n, source in enumerate(self.sources):
            valid, invalid = source.extensions(state, strict=False)
            values = len(valid) + len(invalid)  # its non-blank values
            ignored = source.ignored(state, read)
            held = (f"{values} value{'s' if values > 1 else ''}, not valid" if values
                    else f"none: it {ignored}" if ignored
                    else "absent (misspelled in the mapping, or not sent by the source?)")
            found.append(f"extensions[{n}].from {str(source.path)!r}: {held}")
        return "; ".join(found)

    def records_anything(self, change: UserChange) -> bool:
        """Whether the change wants the user recorded on at least one extension (an active upsert that a rule or
        [defaults] records, with a number); MappingFailure for a bad value, as map_user."""
        return self._settings(change) is not None and bool(self._extensions(change.state, strict=True)[0])

    def decision(self, change: UserChange) -> str:
        """What decided how the user is recorded, for `mapping test`: its kind or `active`, the first rule whose
        `when` holds (as the file numbers it: rules[0] first), or [defaults]."""
        if change.kind != "upsert":
            return f"a {change.kind}: not recorded"
        if change.state.get("active") is False:
            return "inactive (active = false): not recorded"
        for number, rule in enumerate(self.rules):
            if rule.when.holds(change.state):
                verdict = "not recorded (record = false)" if rule.settings is None else "recorded with its settings"
                return f"rules[{number}] (when {{ {rule.when.describe()} }}) matched first: {verdict}"
        return ("no rule matched: recorded with [defaults]" if self.record_by_default else
                "no rule matched: not recorded ([defaults] record = false)")

    def _settings(self, change: UserChange) -> RecordingSettings | None:
        """How this user is recorded; None when not at all."""
        if change.kind != "upsert" or change.state.get("active") is False:
            return None
        rule = first_match(self.rules, change.state)
        if rule is not None:
            return rule.settings
        return self.defaults if self.record_by_default else None

    def _extensions(self, state: dict[str, Any], *, strict: bool) -> tuple[list[str], list[tuple[str, str]]]:
        """Every source's extensions in order, each once (the first occurrence wins), and the bad values they left
        out (see ExtensionSource.extensions)."""
        read = [source.extensions(state, strict=strict) for source in self.sources]
        return (list(dict.fromkeys(x for extensions, _ in read for x in extensions)),
                [value for _, skipped in read for value in skipped])

    def _read(self, state: dict[str, Any]) -> list[Any]:
        """Every value the sources' `from` reach in the state (valid or not)."""
        return [value for source in self.sources for value in source.path.values(state)]

    def _record(self, extension: str, user_id: int, settings: RecordingSettings) -> ExtensionRecord:
        return ExtensionRecord(
            extension=extension,
            user_id=user_id,
            recording_mode=settings.recording_mode,
            voice=settings.voice,
            im=settings.im,
            video=settings.video,
            screen_capture_enabled=settings.screen_capture_enabled,
            eid=self.eid,
            environment_short_name=self.environment_short_name,
        )
