"""A NUL in the directory value a recorded user's extension is read from never stops their recording, end to end
over a real slapd to the Verba simulator, on SQLite and PostgreSQL.

Before, the watcher left such a value out of the state: the user's mail (or number) read as gone, the mapping
stopped recording on it (`recording_stopped`) and the event was `done`, whatever the mapping's `on_invalid` said.
Now the state holds the value with U+FFFD for each NUL inside (connector.events.storable), which the mapping refuses
as invalid: `on_invalid = "error"` dead-letters the change naming the field, `"skip"` keeps the extension last pushed
recording. A NUL at either end is dropped, as the mapping drops any other control character there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.config import Config
from connector.store import EventState
from tests.ldap.conftest import Pipeline
from tests.ldap.helpers import slapd_section
from tests.plugins.simulator import Simulator

# (the mapping's path, its normalize, the directory attribute, the extension); slapd refuses a NUL in telephoneNumber
# (PrintableString), so the number is read from a directoryString attribute, as AD's ipPhone is one
SIP = ('emails[type eq "work"].value', "sip", "mail", "alice@example.com")
E164 = ("attributes.employeeNumber", "e164", "employeeNumber", "+14155550100")


@pytest.fixture
def seed_users() -> list[dict[str, Any]]:
    return [{"id": 71, "loginName": "alice", "displayName": "Alice", "eid": "0000"}]


@pytest.fixture
def site(slapd: Any, base: str, tmp_path: Path, make_config: Callable[..., Config], simulator: Simulator,
         store_url: str) -> Iterator[Callable[..., Pipeline]]:
    """site(path, normalize, attribute, on_invalid): the test's subtree watched into the store (directory
    `attribute` read) and pushed to the simulator, with a mapping that records the extension at `path`, normalized
    so, for every user (Verba user by uid)."""
    section = slapd_section(tmp_path, slapd.url, base, dialect="openldap", guard_max_share=1.0)
    opened: list[Pipeline] = []

    def make(path: str, normalize: str, attribute: str, on_invalid: str) -> Pipeline:
        mapping = tmp_path / "mapping.toml"
        country = 'default_country = "US"\n' if normalize == "e164" else ""
        mapping.write_text(f"""[environment]
eid = "0000"
[user_id]
login_name = ["userName"]
[[extensions]]
from = '{path}'
normalize = "{normalize}"
{country}on_invalid = "{on_invalid}"
[defaults]
recordingMode = "FULL"
voice = true
""")
        ldap = {"corp": {**section, "attributes": [attribute]}}
        opened.append(Pipeline(make_config(str(mapping), ldap=ldap, store={"url": store_url}), simulator))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def recorded(pipeline: Pipeline, extension: str) -> bool:
    held = pipeline.simulator.extensions().get(extension)
    return held is not None and held["voice"] is True and held["user_id"] == 71


@pytest.mark.parametrize(("path", "normalize", "attribute", "extension"), [SIP, E164], ids=["sip", "e164"])
def test_a_nul_inside_dead_letters_the_change_naming_the_field_and_recording_goes_on(slapd, admin, base, site, path,
                                                                                    normalize, attribute, extension):
    pipeline = site(path, normalize, attribute, "error")
    alice = slapd.add_user(admin, base, "alice", **{attribute: extension})
    pipeline.poll()
    assert recorded(pipeline, extension)

    broken = extension[:5] + "\x00" + extension[5:]
    slapd.modify(admin, alice, **{attribute: broken.encode()})
    [change] = pipeline.poll()
    [event] = pipeline.store.list_events(limit=1)
    assert event.state is EventState.DEAD
    shown = repr(extension[:5] + "\ufffd" + extension[5:])
    assert event.last_error is not None and event.last_error.startswith(
        f"{path}: {shown} holds U+FFFD REPLACEMENT CHARACTER"), event.last_error
    assert recorded(pipeline, extension), "a NUL in the directory must not stop Alice's recording"
    assert not [a for a in pipeline.store.list_audit() if a.action == "recording_stopped"]


@pytest.mark.parametrize(("path", "normalize", "attribute", "extension"), [SIP, E164], ids=["sip", "e164"])
def test_with_skip_a_nul_inside_keeps_the_extension_last_pushed_recording(slapd, admin, base, site, path, normalize,
                                                                         attribute, extension):
    pipeline = site(path, normalize, attribute, "skip")
    alice = slapd.add_user(admin, base, "alice", **{attribute: extension})
    pipeline.poll()
    assert recorded(pipeline, extension)

    slapd.modify(admin, alice, **{attribute: (extension[:5] + "\x00" + extension[5:]).encode()})
    pipeline.poll()
    [event] = pipeline.store.list_events(limit=1)
    assert event.state is EventState.DONE
    assert recorded(pipeline, extension), "a NUL in the directory must not stop Alice's recording"
    [kept] = [a for a in pipeline.store.audit_of_event(event.id) if a.action == "kept_recording"]
    assert kept.detail["extension"] == extension and "U+FFFD" in kept.reason
    assert not [a for a in pipeline.store.list_audit() if a.action == "recording_stopped"]

    slapd.modify(admin, alice, **{attribute: extension})  # corrected in the directory: nothing changes in Verba
    pipeline.poll()
    assert recorded(pipeline, extension)


@pytest.mark.parametrize("on_invalid", ["error", "skip"])
def test_a_nul_at_the_end_is_dropped_and_the_user_stays_recorded_on_the_same_address(slapd, admin, base, site,
                                                                                      on_invalid):
    path, normalize, attribute, extension = SIP
    pipeline = site(path, normalize, attribute, on_invalid)
    alice = slapd.add_user(admin, base, "alice", mail=extension)
    pipeline.poll()

    slapd.modify(admin, alice, mail=extension.encode() + b"\x00")  # a C string's terminator written along
    assert pipeline.poll() == []  # the state is as it was: nothing to push
    assert pipeline.last is not None and pipeline.last.counts["seen"] == 1
    assert recorded(pipeline, extension)
