"""Text the connector cannot carry given to a command (a byte that is not UTF-8, typed in a Latin-1 terminal on a
UTF-8 server, which Python turns into an unpaired surrogate; a control character): every command refuses it up front
with exit 2, naming the option and the fix, changing nothing, never with a traceback. An operator's action and its
audit entry are stored together or not at all, on both stores. Text from sources reaches the terminal with its
control characters escaped."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.events import UserChange
from connector.ops.replay import discard, requeue
from connector.store import Audit, EventState, Store, StoreError
from tests.ops.helpers import change, dead_letters, delivered, run
from tests.plugins.stores import Opener

LATIN1_MUELLER = b"M\xfcller"  # "Müller" typed in a Latin-1 terminal
MUELLER = LATIN1_MUELLER.decode("utf-8", "surrogateescape")  # as Python hands it to the command: "M\udcfcller"
NOT_UTF8 = "holds the byte 0xFC, which is not UTF-8"


def text_parameters(command: click.Command = main, words: tuple[str, ...] = ()) -> Iterator[Any]:
    """A pytest.param of the words that give every option and argument of every command taking text or a path the
    bad text (that text last): ("events", "list", "--user"), ("ldap", "sync") for its argument NAME; and whether the
    file it names must exist."""
    for param in command.params:
        if isinstance(param.type, (click.types.StringParamType, click.Path)) and not getattr(param, "is_flag", False):
            given = (*words, param.opts[0]) if isinstance(param, click.Option) else words
            exists = isinstance(param.type, click.Path) and param.type.exists
            yield pytest.param(given, exists,
                               id=" ".join(given if given != words else (*words, str(param.name).upper())))
    for name, subcommand in getattr(command, "commands", {}).items():
        yield from text_parameters(subcommand, (*words, name))


@pytest.mark.parametrize("words, exists", list(text_parameters()))
def test_every_command_refuses_a_byte_that_is_not_utf8_in_any_option_or_argument(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, words: tuple[str, ...], exists: bool) -> None:
    monkeypatch.chdir(tmp_path)
    if exists:  # a file of that name, made in a Latin-1 locale, so that the check of the name is what refuses it
        (tmp_path / MUELLER).write_text("")
    result = CliRunner().invoke(main, [*words, MUELLER], env={"CONNECTOR_CONFIG": "/nonexistent/connector.toml"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert "Invalid value for " in result.output and NOT_UTF8 in result.output, result.output
    assert "export LANG=C.UTF-8" in result.output and "nothing was done" in result.output


def connector(*args: bytes) -> subprocess.CompletedProcess[bytes]:
    """`connector ARGS` as a subprocess given these very bytes, as a terminal hands them over."""
    return subprocess.run([sys.executable.encode(), b"-m", b"connector.cli", *args], capture_output=True, timeout=120)


@pytest.mark.parametrize("args, option", [
    ([b"events", b"replay", b"{id}", b"--reason", b"r", b"--operator", LATIN1_MUELLER], "--operator"),
    ([b"events", b"approve", b"{id}", b"--reason", b"R\xfcckruf"], "--reason"),
    ([b"events", b"discard", b"{id}", b"--reason", b"R\xfcckruf"], "--reason"),
    ([b"events", b"discard", b"{id}", b"--reason", b"r", b"--operator", LATIN1_MUELLER], "--operator"),
    ([b"events", b"replay", b"--cause", b"mapp\xfcng", b"--reason", b"r"], "--cause"),
    ([b"events", b"list", b"--user", LATIN1_MUELLER], "--user"),
    ([b"events", b"list", b"--cause", b"mapp\xfcng"], "--cause"),
    ([b"events", b"list", b"--source", b"h\xfcr"], "--source"),
    ([b"instances", b"forget", b"a", b"--reason", b"R\xfcckruf"], "--reason"),
    ([b"drift", b"--repair", b"--reason", b"R\xfcckruf"], "--reason"),
])
def test_an_on_call_command_given_latin1_bytes_exits_2_naming_the_option_and_changes_nothing(
        config: Path, store: Store, args: list[bytes], option: str) -> None:
    [event_id] = dead_letters(store, "mapping", "u1")
    given = [str(event_id).encode() if arg == b"{id}" else arg for arg in args]
    result = connector(*given, b"--config", str(config).encode())
    error = result.stderr.decode()
    assert result.returncode == 2, error
    assert f"Invalid value for '{option}': {NOT_UTF8}" in error and "Traceback" not in error, error
    assert store.get_event(event_id).state is EventState.DEAD
    assert store.list_audit() == []


@pytest.mark.parametrize("reason, says", [
    ("stop \x1b[2J", "holds U+001B (a control character), which XML 1.0 cannot carry"),
    ("\uffff", "holds U+FFFF (a noncharacter), which XML 1.0 cannot carry"),
])
def test_a_character_xml_cannot_carry_is_refused_as_a_bad_byte_is(config: Path, store: Store, reason: str,
                                                                   says: str) -> None:
    [event_id] = dead_letters(store, "mapping", "u1")
    result = run(config, "events", "discard", str(event_id), "--reason", reason)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--reason': {says}, so neither the store nor Verba may be given it" in result.output
    assert store.get_event(event_id).state is EventState.DEAD and store.list_audit() == []


@pytest.fixture
def opened(store_opener: Opener) -> Store:
    return store_opener()


@pytest.mark.parametrize("act", ["replay", "discard"])
def test_an_action_whose_audit_text_no_store_holds_changes_nothing_on_either_store(opened: Store, act: str) -> None:
    """The review's case below the CLI: the action committed, then its audit failed, leaving no audit entry."""
    events = [opened.get_event(i) for i in dead_letters(opened, "mapping", "u1", "u2")]
    with pytest.raises(ValueError, match=r"the audit's actor 'M\\udcfcller' holds an unpaired surrogate"):
        if act == "replay":
            requeue(opened, events, actor=MUELLER, action="replay", reason="r", rate=None, detail={})
        else:
            discard(opened, events, actor=MUELLER, reason="r")
    assert [e.state for e in opened.list_events()] == [EventState.DEAD, EventState.DEAD]
    assert opened.list_audit() == []


def audit_fails(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make writing an audit entry fail as a store that fails there does (a full disk, a dropped connection)."""

    def fail(*args: object, **kwargs: object) -> int:
        raise StoreError("the store could not be written (a test's failure)")

    monkeypatch.setattr(store, "_audit", fail)


@pytest.mark.parametrize("action", ["requeue", "discard", "queue_current"])
def test_an_action_whose_audit_entry_fails_to_be_written_is_not_stored_either(
        opened: Store, monkeypatch: pytest.MonkeyPatch, action: str) -> None:
    ids = dead_letters(opened, "mapping", "u1", "u2")
    opened.enqueue([change("u3")])
    delivered(opened)
    before = {e.id: e.state for e in opened.list_events()}
    audit = Audit("alice", action, "r", {})
    audit_fails(opened, monkeypatch)
    with pytest.raises(StoreError, match="a test's failure"):
        if action == "requeue":
            opened.requeue(ids, time.time(), audit=audit)
        elif action == "discard":
            opened.discard(ids, "r", audit=audit)
        else:
            opened.queue_current([("hr", "u3")], "drift_repair", audit=audit)
    assert {e.id: e.state for e in opened.list_events()} == before
    monkeypatch.undo()
    assert opened.list_audit() == []


@pytest.mark.parametrize("action", ["requeue", "discard", "queue_current"])
def test_an_action_and_its_audit_entry_are_stored_together(opened: Store, action: str) -> None:
    ids = dead_letters(opened, "mapping", "u1", "u2")
    opened.enqueue([change("u3")])
    delivered(opened)
    audit = Audit("alice", action, "because", {"asked": "by bob"})
    if action == "requeue":
        named, done = ids, opened.requeue(ids, time.time(), audit=audit)
    elif action == "discard":
        named, done = ids, opened.discard(ids, "because", audit=audit)
    else:
        named = opened.queue_current([("hr", "u3")], "drift_repair", audit=audit)
        done = len(named)
    [entry] = opened.list_audit()
    counted = {"requeue": "requeued", "discard": "discarded", "queue_current": "users"}[action]
    assert (entry.actor, entry.action, entry.reason, list(entry.event_ids)) == ("alice", action, "because", named)
    assert entry.detail == {"asked": "by bob", counted: done} and done == len(named) > 0


ESC = "\x1b[31m"  # an escape sequence a source sent: red text from here on


def test_on_call_outputs_show_control_characters_from_sources_escaped(config: Path, store: Store) -> None:
    store.enqueue([UserChange("hr", f"u1{ESC}", "upsert", {"userName": f"alice{ESC}@example.com"})])
    while (claim := store.claim("test", time.time() + 60, 60)) is not None:
        store.dead_letter(claim, "mapping", f"Verba said {ESC}no\r")
    store.add_audit("connector", "supersede", [1], f"superseded {ESC}", {})
    outputs = {args: run(config, *args) for args in (("events", "list"), ("events", "show", "1"), ("status",),
                                                     ("audit",), ("events", "replay", "1", "--dry-run"))}
    for args, result in outputs.items():
        assert "\x1b" not in result.output and "\r" not in result.output, (args, result.output)
    assert "u1\\x1b[31m" in outputs[("events", "list")].output
    assert "alice\\x1b[31m@example.com" in outputs[("events", "show", "1")].output
    assert "Verba said \\x1b[31mno\\r" in outputs[("events", "show", "1")].output
    assert "Verba said \\x1b[31mno\\r" in outputs[("status",)].output
    assert "superseded \\x1b[31m" in outputs[("audit",)].output
