"""A request holding a character XML 1.0 cannot carry (a control character, U+FFFF) is never sent: the error names the
field it is in, the character and what to do, and whose value it is decides how it is classified: one person's fails
that person's push (cause mapping, a dead letter to replay once the source is fixed), the connector's own (login,
password, token, environment) fails every call alike, like a refused login (target-wide, retried). A Verba answer
holding such a character (Verba's own data written raw) says which character, where, and to fix it in Verba.
Against the simulator over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connector.verba import VerbaClient
from connector.verba.errors import UnsendableSetting, UnsendableValue, VerbaAuthError, VerbaMalformedResponse
from tests.verba.helpers import PASSWORD, Sim, record
from tests.verba.test_field_answers import answer, assert_readable

PASSWORD_FILE = "file /etc/connector/verba-password (target.password_file; a trailing newline is not sent)"

# A person's value in each operation the push path calls: (call, field path, character as named).
PERSONS_VALUES: list[tuple[Callable[[VerbaClient], Any], str, str]] = [
    (lambda c: c.find_user_id("al\x01ice@example.com"), "filter.loginName 'al\\x01ice@example.com'", "U+0001"),
    (lambda c: c.listed_user("al\x1bice@example.com"), "filter.loginName 'al\\x1bice@example.com'", "U+001B"),
    (lambda c: c.create_user("car\uffffol@example.com"), "user.loginName 'car\\uffffol@example.com'", "U+FFFF"),
    (lambda c: c.create_user("carol@example.com", email="carol\x00@example.com"), "user.email", "U+0000"),
    (lambda c: c.create_extension(record("+1555\ufffe0100")), "extension.extension '+1555\\ufffe0100'", "U+FFFE"),
    (lambda c: c.update_extension(record("+1555\x0c0100")), "extension.extension '+1555\\x0c0100'", "U+000C"),
    (lambda c: c.get_extension("+1555\x7f\x010100"), "extension '+1555\\x7f\\x010100'", "U+0001"),
]


@pytest.mark.parametrize(("call", "field", "character"), PERSONS_VALUES)
def test_a_persons_value_xml_cannot_carry_is_named_and_fails_only_that_persons_push(
        sim: Sim, client: VerbaClient, call: Callable[[VerbaClient], Any], field: str, character: str) -> None:
    client.request_token()
    sim.http.delete("/_sim/calls")
    with pytest.raises(UnsendableValue) as caught:
        call(client)
    assert (caught.value.cause, caught.value.retryable, caught.value.target_wide) == ("mapping", False, False)
    assert_readable(caught.value, "was not sent", field, f"holds {character}", "XML 1.0 cannot carry",
                    "fix the value at the source, then replay")
    assert sim.calls() == [], "nothing went over the wire"


def test_a_password_file_rotated_to_one_xml_cannot_carry_fails_every_call_as_a_refused_login_would(
        sim: Sim) -> None:
    written = [f"{PASSWORD}\x1a"]  # what the password file holds now: a DOS end-of-file mark written along
    with VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD, timeout=2.0,
                     password_source=PASSWORD_FILE, read_password=lambda: written[0]) as client:
        for _ in range(2):  # not withheld as a refused password is: nothing was sent, so each login reads it again
            with pytest.raises(VerbaAuthError) as caught:
                client.probe()
            assert (caught.value.cause, caught.value.retryable, caught.value.target_wide) == ("auth", True, True)
            assert_readable(caught.value, "requestToken was not sent", f"the password ({PASSWORD_FILE})",
                            "holds U+001A", "write the password without it", secrets=(written[0],))
        assert sim.calls() == []

        written[0] = PASSWORD  # fixed in the file: the next call logs in
        assert client.find_user_id("alice@example.com") == 3


@pytest.mark.parametrize(("settings", "setting", "character", "kind"), [
    ({"login": "connector\x00", "password": PASSWORD}, "target.login", "U+0000", VerbaAuthError),
    ({"login": "connector", "password": "pass\x08word-42"}, "the password (target.password_env or "
     "target.password_file)", "U+0008", VerbaAuthError),
    ({"token": "fixed-token\x01-42"}, "the fixed token (target.token_env or target.token_file)", "U+0001",
     UnsendableSetting),
    ({"token": "fixed-token-42", "environment_short_name": "default\x1f", "eid": None},
     "target.environment_short_name", "U+001F", UnsendableSetting),
])
def test_a_setting_xml_cannot_carry_is_named_without_its_value_and_fails_every_call_alike(
        sim: Sim, settings: dict[str, Any], setting: str, character: str, kind: type[Exception]) -> None:
    secrets = tuple(value for key, value in settings.items() if key in ("password", "token"))
    with VerbaClient(sim.url, **{"eid": "0000", **settings, "timeout": 2.0}) as client:
        with pytest.raises(kind) as caught:
            client.probe()
    assert caught.value.retryable and caught.value.target_wide, "like a refused login: the breaker pauses delivery"
    assert_readable(caught.value, "was not sent", setting, f"holds {character}", "so Verba cannot be called",
                    secrets=secrets)
    assert sim.calls() == []


def test_the_mappings_environment_xml_cannot_carry_fails_every_write_alike(sim: Sim, client: VerbaClient) -> None:
    with pytest.raises(UnsendableSetting) as caught:
        client.create_extension(record(eid=None, environment_short_name="default\x02"))
    assert (caught.value.cause, caught.value.retryable, caught.value.target_wide) == ("target_misconfigured", True,
                                                                                       True)
    assert_readable(caught.value, "createExtension was not sent", "the mapping's [environment] short_name",
                    "holds U+0002", "fix it in the mapping file")


def test_a_verba_user_whose_data_holds_a_control_character_is_named_where_listusers_fails_to_parse(
        sim: Sim, client: VerbaClient) -> None:
    # Verba (JAXB) may write a control character of its data raw: the answer is not well-formed XML.
    sim.http.post("/_sim/users", json={"loginName": "dave@example.com", "displayName": "Da\x01ve"}).raise_for_status()
    for call in (lambda: client.find_user_id("dave@example.com"), lambda: client.every_user(extensions=False)):
        with pytest.raises(VerbaMalformedResponse) as caught:
            call()
        assert_readable(caught.value, "listUsers answered XML that does not parse (line 1, column",
                        "PCDATA invalid Char value 1", "U+0001 (a control character)", "in <displayName> after 'Da'",
                        "fix that value in Verba")
    assert client.find_user_id("alice@example.com") == 3, "the other users are read as ever"


def test_a_character_reference_xml_cannot_carry_is_named_too(sim: Sim, client: VerbaClient) -> None:
    users = "<status><statusCode>OK</statusCode></status><users><id>5</id><loginName>e&#27;ve</loginName></users>"
    sim.faults({"operation": "listUsers", "body": answer("listUsers", users), "times": 1})
    with pytest.raises(VerbaMalformedResponse) as caught:
        client.find_user_id("eve@example.com")
    assert_readable(caught.value, "invalid xmlChar value 27", "U+001B", "in <loginName> after 'e&#27;'",
                    "fix that value in Verba")
