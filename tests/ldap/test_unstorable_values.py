"""A directory value no store can hold, on a private slapd and both stores (SQLite and PostgreSQL alike).

slapd lets a directoryString (displayName, cn, employeeNumber), an IA5String (mail) and an octet string (audio,
jpegPhoto) hold a NUL character, which PostgreSQL cannot store (SQLite can): such a value is in the user's state with
U+FFFD for each NUL inside and those at either end dropped, with one warning naming the entry, the attribute and the
fix, and every user syncs (what a mapping does with such a value: tests/ldap/test_broken_extension_values.py). The id
and the login name are not replaced (the user would become another one): such an entry stops the run as one without
them does, naming it. A value that is not UTF-8 (only an octet string can hold one) is read as latin-1 text, which
every store holds.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from connector.sources.ldap.connection import DirectoryError
from connector.sources.ldap.watcher import Watcher
from tests.ldap.helpers import events_of

NUL = "holds a NUL character (\\u0000), which the store cannot hold; the source must drop it"
UNTIL = "until it is corrected in the directory"
REFUSED = "(a mapping refuses U+FFFD in an extension as invalid)"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)  # binary: not UTF-8, so read as latin-1; long, so shown in part
PNG_SHOWN = "'\\x89PNG\\r\\n\\x1a\\n" + "\\x00" * 52 + "'... (108 characters)"


def by_name(store: Any, since: int = 0) -> dict[str, Any]:
    return {e.change.state["userName"]: e.change for e in events_of(store, since)}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return sorted(r.getMessage() for r in caplog.records
                  if r.levelno == logging.WARNING and r.name.startswith("connector.ldap"))


def test_a_value_no_store_can_hold_is_kept_replaced_with_one_warning_and_every_user_syncs(slapd, admin, base,
                                                                                         ldap_config, store_opener,
                                                                                         caplog):
    """Before, each such value was left out: a mail or number that held one read as gone, and its recording
    stopped."""
    store = store_opener()
    alice = slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100", displayName=b"Al\x00ice",
                           mail=[b"alice\x00@example.test", "alice@example.test"], audio=PNG)
    slapd.add_user(admin, base, "bob", telephoneNumber="+14155550101", audio=b"caf\xe9")  # latin-1, not UTF-8
    watcher = Watcher(store, ldap_config(attributes=["audio"]))
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        result = watcher.run()
    assert result.counts["upsert"] == 2
    assert store.ldap_watermark("corp").last_error is None
    stored = by_name(store)
    assert stored["alice"].state["displayName"] == "Al\ufffdice"
    assert stored["alice"].state["emails"] == [{"value": "alice\ufffd@example.test", "type": "work", "primary": True},
                                               {"value": "alice@example.test", "type": "work", "primary": False}]
    assert stored["alice"].state["phoneNumbers"] == [{"value": "+14155550100", "type": "work"}]
    assert stored["alice"].state["attributes"]["audio"] == "\x89PNG\r\n\x1a\n"  # the NULs at its end dropped
    assert stored["bob"].state["attributes"]["audio"] == "café"
    assert store.ldap_entries("corp")[stored["alice"].external_id].state == stored["alice"].state
    assert warnings(caplog) == [
        f"ldap corp: {alice}: audio {PNG_SHOWN} {NUL}: the user syncs with '\\x89PNG\\r\\n\\x1a\\n' instead "
        f"{UNTIL}, or, if it holds binary data, which is no text, take audio out of attributes in [ldap.corp]",
        f"ldap corp: {alice}: displayName 'Al\\x00ice' {NUL}: the user syncs with 'Al\\ufffdice' instead {REFUSED} "
        f"{UNTIL}",
        f"ldap corp: {alice}: mail 'alice\\x00@example.test' {NUL}: the user syncs with 'alice\\ufffd@example.test' "
        f"instead {REFUSED} {UNTIL}",
    ]

    # Read again: nothing changed, and nothing is said twice.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="connector.ldap"):
        again = watcher.run(full=True)
    assert again.counts["seen"] == 2 and again.counts["upsert"] == 0 and warnings(caplog) == []

    # Corrected in the directory: the value is synced.
    mark = events_of(store)[-1].id
    slapd.modify(admin, alice, displayName="Alice Liddell")
    watcher.run()
    assert by_name(store, mark)["alice"].state["displayName"] == "Alice Liddell"
    watcher.close()


def test_a_login_name_no_store_can_hold_is_none_and_stops_the_run_as_a_missing_one_does(slapd, admin, base,
                                                                                         ldap_config, store_opener):
    store = store_opener()
    slapd.add_user(admin, base, "bob", telephoneNumber="+14155550101")
    dan = f"cn=Dan,ou=people,{base}"  # uid is no part of the DN, so it may hold a NUL
    slapd.check(admin, admin.add(dan, ["inetOrgPerson"], {"cn": "Dan", "sn": "Dan", "uid": b"dan\x00",
                                                          "mail": "dan@example.test"}))
    watcher = Watcher(store, ldap_config())
    with pytest.raises(DirectoryError) as raised:
        watcher.run()
    # Not read from mail instead: Verba would be asked for another user.
    error = (f"the uid of {dan} ('dan\\x00') {NUL}, so it has no login name (userName) for Verba, and the run stops "
             "at it (the first such entry: `connector ldap sync corp --dry-run` lists them all): correct the value in "
             "the directory")
    assert str(raised.value) == error
    assert store.ldap_watermark("corp").last_error == error
    assert events_of(store) == []
    preview = watcher.preview()
    assert list(preview.without_login.values()) == [
        f"the uid of {dan} ('dan\\x00') {NUL}: correct the value in the directory"]

    slapd.modify(admin, dan, uid="dan")
    assert watcher.run().counts["upsert"] == 2
    assert set(by_name(store)) == {"bob", "dan"}
    watcher.close()


def test_an_id_no_store_can_hold_stops_the_run_and_one_outside_the_base_is_passed_by(slapd, admin, base, ldap_config,
                                                                                     store_opener):
    store = store_opener()
    people = f"ou=people,{base}"
    slapd.add_user(admin, base, "alice", telephoneNumber="+14155550100", employeeNumber="1001")
    watcher = Watcher(store, ldap_config(base=people, id_attribute="employeeNumber"))
    watcher.run()
    assert set(store.ldap_entries("corp")) == {"1001"}

    # Outside the base (a person under ou=groups): a changed entry the run looks at for users who left the base.
    outsider = f"uid=olga,ou=groups,{base}"
    slapd.check(admin, admin.add(outsider, ["inetOrgPerson"], {"cn": "Olga", "sn": "Olga", "uid": "olga",
                                                               "employeeNumber": b"7\x00"}))
    assert watcher.run().counts["delete"] == 0
    assert store.ldap_watermark("corp").last_error is None

    erin = slapd.add_user(admin, base, "erin", telephoneNumber="+14155550104", employeeNumber=b"1002\x00")
    with pytest.raises(DirectoryError) as raised:
        watcher.run()
    error = (f"the employeeNumber of {erin} ('1002\\x00') {NUL}, so it has no stable id the store can hold, and the "
             "run stops at it: correct the value in the directory")
    assert str(raised.value) == error
    assert store.ldap_watermark("corp").last_error == error

    slapd.modify(admin, erin, employeeNumber="1002")
    watcher.run()
    assert set(store.ldap_entries("corp")) == {"1001", "1002"}
    watcher.close()
