"""VerbaClient against the simulator over real HTTP."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import parse_config
from connector.ops.logs import SecretFilter
from connector.runtime import open_client
from connector.verba import VerbaAuthError, VerbaClient, VerbaHTTPError, VerbaStatusError
from connector.verba.errors import ExtensionAbsent
from tests.verba.helpers import PASSWORD, Sim, in_threads, record


def test_create_then_update_sends_the_full_record(sim: Sim, client: VerbaClient) -> None:
    assert client.create_extension(record()) is True
    changed = record(recording_mode="ON_DEMAND", voice=False, im=True, video=True, screen_capture_enabled=True)
    assert client.create_extension(changed) is False
    client.update_extension(changed)

    writes = [(c["operation"], c["status"]) for c in sim.calls() if c["operation"] != "requestToken"]
    assert writes == [
        ("createExtension", "OK"),
        ("createExtension", "ERROR_ALREADY_EXISTS"),
        ("updateExtension", "OK"),
    ]
    update = sim.calls("updateExtension")[0]
    assert (update["user_id"], update["recordingMode"], update["voice"], update["im"]) == (3, "ON_DEMAND", False, True)
    assert update["video"] is True and update["screenCaptureEnabled"] is True and update["eid"] == "0000"
    stored = sim.extension("+15550100")
    assert stored is not None
    assert stored["user_id"] == 3
    settings = (stored["recordingMode"], stored["voice"], stored["im"], stored["video"], stored["screenCaptureEnabled"])
    assert settings == ("ON_DEMAND", False, True, True, True)


def test_get_extension_reads_back_what_was_pushed(client: VerbaClient) -> None:
    client.create_extension(record("100", user_id=4, recording_mode="CONTROLLED"))
    found = client.get_extension("100")
    assert found is not None
    assert found["user_id"] == 4 and found["user_login_name"] == "bob@example.com"
    assert (found["recording_mode"], found["voice"], found["im"], found["eid"]) == ("CONTROLLED", True, False, "0000")
    assert isinstance(found["id"], int)
    assert client.get_extension("does-not-exist") is None


def test_an_unclear_get_extension_answers_the_holders_recording_flags_from_list_users(
        sim: Sim, client: VerbaClient) -> None:
    """listUsers was asked with skipExtensions true, so the holder came back with every flag None: the caller could
    not tell whether the extension it hands over was recording."""
    client.create_extension(record("110", user_id=4, recording_mode="ON_DEMAND", voice=True, im=True))
    client.create_extension(record("111", user_id=4, voice=False))
    sim.faults({"operation": "getExtension", "status": "ERROR_GENERAL", "message": "java.lang.NullPointerException"})
    with client.capture() as sent:
        found = client.get_extension("110")
    assert found is not None
    assert (found["extension"], found["user_id"], found["user_login_name"]) == ("110", 4, "bob@example.com")
    assert (found["recording_mode"], found["voice"], found["im"], found["video"], found["screen_capture_enabled"]) == (
        "ON_DEMAND", True, True, False, False)
    assert [s["operation"] for s in sent] == ["getExtension", "listUsers"]


def test_expired_token_is_renewed_once_and_the_call_succeeds(sim: Sim, client: VerbaClient) -> None:
    assert client.create_extension(record("200")) is True
    assert sim.expire_tokens() == 1
    assert client.create_extension(record("201")) is True
    calls = [(c["operation"], c["status"], c["token_valid"]) for c in sim.calls()]
    assert calls == [
        ("requestToken", "OK", None),
        ("createExtension", "OK", True),
        ("createExtension", "ERROR_UNAUTHORIZED", False),
        ("requestToken", "OK", None),
        ("createExtension", "OK", True),
    ]


def test_threads_sharing_a_client_renew_the_token_once(sim: Sim, client: VerbaClient) -> None:
    client.request_token()
    sim.expire_tokens()

    def push(n: int) -> None:
        assert client.create_extension(record(f"30{n}")) is True

    assert in_threads(8, push) == []
    assert len(sim.calls("requestToken")) == 2
    assert len(sim.state()["extensions"]) == 8


def test_threads_waiting_for_a_token_that_cannot_be_had_share_its_failure(sim: Sim, client: VerbaClient) -> None:
    """Verba fails: the threads that waited for the one requestToken get its error instead of each asking in turn
    (eight dry-run threads waited a timeout each, one after the other). A later call asks again."""
    sim.faults({"operation": "requestToken", "http_status": 503, "latency_ms": 500, "times": 8})
    errors = in_threads(8, lambda n: client.get_extension(f"30{n}"))
    assert len(errors) == 8 and all("HTTP 503" in str(error) for error in errors), errors
    assert len(sim.calls("requestToken")) == 1
    with pytest.raises(VerbaHTTPError, match="HTTP 503"):  # not the old failure: a new request
        client.get_extension("300")
    assert len(sim.calls("requestToken")) == 2


def test_unauthorized_again_after_renewal_is_raised(sim: Sim, client: VerbaClient) -> None:
    sim.faults({"operation": "createExtension", "status": "ERROR_UNAUTHORIZED", "times": 2})
    with pytest.raises(VerbaStatusError) as caught:
        client.create_extension(record("250"))
    assert caught.value.cause == "error_unauthorized" and caught.value.retryable
    assert len(sim.calls("requestToken")) == 2


def test_fixed_token_that_expired_raises_unauthorized(sim: Sim) -> None:
    token = sim.token()
    with VerbaClient(sim.url, eid="0000", token=token) as client:
        client.create_extension(record("400"))
        sim.expire_tokens()
        with pytest.raises(VerbaStatusError) as caught:
            client.create_extension(record("401"))
    assert caught.value.cause == "error_unauthorized"
    assert caught.value.retryable
    assert "This token is expired or never got authenticated." in str(caught.value)
    assert "fixed token" in str(caught.value)
    assert token not in str(caught.value)
    assert len(sim.calls("requestToken")) == 1  # only the test's own
    assert sim.calls("releaseToken") == []  # a fixed token is the operator's


def test_wrong_password_raises_auth_error_without_the_password(sim: Sim) -> None:
    secret = "Wr0ng-and-Secret-77"
    with VerbaClient(sim.url, eid="0000", login="connector", password=secret) as client:
        with pytest.raises(VerbaAuthError) as caught:
            client.create_extension(record("500"))
    text = f"{caught.value} {caught.value!r}"
    assert secret not in text
    assert "com.verba.web.user.UserNotFoundException" in text
    assert "target.login" in text and "password" in text
    assert caught.value.cause == "auth" and caught.value.retryable
    assert sim.calls("createExtension") == []


def test_a_password_equal_to_the_login_is_not_masked_where_the_login_is_named(
        sim: Sim, caplog: pytest.LogCaptureFixture) -> None:
    """Masked, it turned "requestToken for login 'connector'" into "login '***'" (telling the password) and every
    "connector" in the log into "***"; a warning says to change it instead."""
    with VerbaClient(sim.url, eid="0000", login="connector", password="connector") as client:
        with pytest.raises(VerbaAuthError) as caught:
            client.probe()
    assert str(caught.value).startswith("requestToken for login 'connector' in environment 0000 answered ")
    assert "is the login itself" in caplog.text and "give the API user another password" in caplog.text
    assert SecretFilter([]).mask("Run one connector per SQLite file") == "Run one connector per SQLite file"


def test_a_refused_password_is_not_sent_again_until_it_changes(sim: Sim, caplog: pytest.LogCaptureFixture) -> None:
    """Probing Verba every few seconds with a password it refused could lock the API account out. The password
    file is read again before each login: fixing it is enough, no restart (and SIGHUP sends the same one again)."""
    held = {"password": "Wr0ng-and-Secret-77"}
    with VerbaClient(sim.url, eid="0000", login="connector", password=held["password"],
                     read_password=lambda: held["password"]) as client:
        messages = []
        for _ in range(3):
            with pytest.raises(VerbaAuthError) as caught:
                client.probe()
            messages.append(str(caught.value))
        assert len(sim.calls("requestToken")) == 1  # the refusal answers the later calls at once
        refusal = messages[0]
        assert refusal.startswith("requestToken for login 'connector' in environment 0000 answered ")
        assert "is read again before each login" in refusal
        assert "(this password is not sent again for 15 min unless it changes, or until SIGHUP)" in refusal
        for withheld in messages[1:]:  # says that nothing was sent, since when, and still how to fix it
            said = re.fullmatch(r"requestToken not sent: the password was refused at \d\d:\d\d:\d\d UTC and unchanged "
                                r"since: not sent again before \d\d:\d\d:\d\d UTC unless it changes\. (.*)", withheld)
            assert said is not None and said[1] == refusal, withheld
        client.forget_refused_password()
        with pytest.raises(VerbaAuthError):
            client.probe()
        assert len(sim.calls("requestToken")) == 2

        held["password"] = PASSWORD  # rotated in the file: used at the next login
        client.probe()
        assert [c["status"] for c in sim.calls("requestToken")] == ["ERROR_GENERAL", "ERROR_GENERAL", "OK"]

        def unreadable() -> str:
            raise OSError("Permission denied")

        client._read_password = unreadable  # the file cannot be read now: the last password read is sent
        sim.expire_tokens()
        client.probe()
    assert "cannot read the Verba password again (Permission denied); sending the last one read" in caplog.text


def test_a_login_verba_fails_for_another_reason_is_tried_again_at_the_next_call(sim: Sim) -> None:
    """A database error while Verba restarts is not a refused password: it was withheld for 15 minutes after Verba
    recovered, with a message that said to check the password. It stops delivery as an outage does (target-wide)."""
    sim.faults({"operation": "requestToken", "status": "ERROR_GENERAL", "times": 1,
                "message": "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available"})
    with VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD) as client:
        with pytest.raises(VerbaAuthError) as caught:
            client.create_extension(record("560"))
        assert client.create_extension(record("561")) is True
    assert str(caught.value) == (
        "requestToken for login 'connector' in environment 0000 answered ERROR_GENERAL: "
        "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available; Verba failed, it did "
        "not refuse the password: the login is tried again at the next call")
    assert caught.value.target_wide and caught.value.retryable and caught.value.cause == "auth"
    assert [c["status"] for c in sim.calls("requestToken")] == ["ERROR_GENERAL", "OK"]


@pytest.mark.parametrize(("code", "message"), [
    ("ERROR_UNAUTHORIZED", None), ("ERROR_UNAUTHORIZED", "bad permissions"),
    ("ERROR_GENERAL", "com.verba.web.user.UserNotFoundException"),
    # refusals worded otherwise: sent again at every probe, they could lock the account out
    ("ERROR_GENERAL", "Account is locked"), ("ERROR_GENERAL", "LDAP: error code 49 - Invalid Credentials"),
    ("ERROR_GENERAL", None), ("ERROR_ACCESS_DENIED", "Access denied"),
    ("ERROR_GENERAL", "Login failed: database says the password expired"),  # about the login, whatever else
])
def test_a_login_verba_refuses_withholds_the_password(sim: Sim, code: str, message: str | None) -> None:
    sim.faults({"operation": "requestToken", "status": code, "message": message, "times": 1})
    with VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD) as client:
        for _ in range(2):
            with pytest.raises(VerbaAuthError, match="check target.login and the password"):
                client.probe()
    assert len(sim.calls("requestToken")) == 1


def test_unknown_user_id_is_an_illegal_argument_with_the_vendor_message(client: VerbaClient) -> None:
    with pytest.raises(VerbaStatusError) as caught:
        client.create_extension(record("600", user_id=999))
    assert caught.value.cause == "error_illegal_argument"
    assert not caught.value.retryable
    assert caught.value.vendor_message == "No user with id 999"
    assert "No user with id 999" in str(caught.value)


def test_update_of_a_missing_extension_is_absence_not_an_outage(client: VerbaClient) -> None:
    with pytest.raises(ExtensionAbsent) as caught:
        client.update_extension(record("700"))
    assert caught.value.cause == "extension_absent" and not caught.value.retryable
    assert "The extension does not exist in the database: 0000:700" in str(caught.value)


def test_create_of_an_existing_extension_answers_false(sim: Sim, client: VerbaClient) -> None:
    assert client.create_extension(record("800")) is True
    assert client.create_extension(record("800", user_id=4)) is False
    assert sim.extension("800")["user_id"] == 3  # type: ignore[index]


def test_environment_short_name_client(sim: Sim) -> None:
    with VerbaClient(sim.url, environment_short_name="other", token=sim.token()) as client:
        assert client.find_user_id("alice@example.com") is None  # alice lives in 0000
        user_id = client.create_user("carol@example.com")
        assert client.create_extension(record("900", user_id=user_id, eid=None, environment_short_name="other")) is True
        assert client.get_extension("900")["user_id"] == user_id  # type: ignore[index]
    assert sim.extension("900", eid="0001")["user_id"] == user_id  # type: ignore[index]


def test_find_user_id_and_create_user(sim: Sim, client: VerbaClient) -> None:
    assert client.find_user_id("alice@example.com") == 3
    assert client.find_user_id("alice") is None  # exact match only
    assert client.find_user_id("nobody@example.com") is None
    new_id = client.create_user("dave@example.com", display_name="Dave", email="dave@example.com", external_id="e-1")
    assert new_id not in (3, 4)
    assert client.find_user_id("dave@example.com") == new_id
    stored = next(u for u in sim.state()["users"] if u["id"] == new_id)
    assert (stored["displayName"], stored["email"], stored["externalId"], stored["eid"]) == (
        "Dave",
        "dave@example.com",
        "e-1",
        "0000",
    )
    with pytest.raises(VerbaStatusError) as caught:
        client.create_user("dave@example.com")
    assert caught.value.cause == "error_already_exists"
    listed = sim.calls("listUsers")[0]
    assert listed["status"] == "OK"


def test_release_token_reads_the_flat_status_and_close_releases(sim: Sim) -> None:
    client = VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD)
    client.request_token()
    assert sim.state()["active_tokens"] == 1
    client.close()
    assert [c["status"] for c in sim.calls("releaseToken")] == ["OK"]
    assert sim.state()["active_tokens"] == 0


@pytest.mark.parametrize(
    "settings",
    [
        dict(eid="0000"),
        dict(eid="0000", login="connector", password=PASSWORD, token="t"),
        dict(eid="000", token="t"),
        dict(eid="0000", environment_short_name="default", token="t"),
        dict(environment_short_name="default", login="connector", password=PASSWORD),
        dict(eid="0000", login="connector", password=""),
    ],
)
def test_bad_settings_are_refused_without_echoing_secrets(settings: dict) -> None:
    with pytest.raises(ValueError) as caught:
        VerbaClient("http://127.0.0.1:9/provisioning", **settings)
    assert PASSWORD not in str(caught.value)
    assert "target." in str(caught.value) or "token" in str(caught.value)


def test_debug_logs_never_hold_the_password_or_the_token(sim: Sim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with VerbaClient(sim.url, eid="0000", login="connector", password=PASSWORD) as client:
        assert client.create_extension(record("1000")) is True
        token = client._token
        sim.expire_tokens()
        assert client.create_extension(record("1000")) is False
        client.update_extension(record("1000"))
        renewed = client._token
    with VerbaClient(sim.url, eid="0000", login="connector", password="An0ther-Secret") as client:
        with pytest.raises(VerbaAuthError):
            client.get_extension("1000")
    assert token and renewed and token != renewed
    assert caplog.records, "debug logging was on"
    for secret in (PASSWORD, "An0ther-Secret", token, renewed):
        assert secret not in caplog.text


def test_connector_run_reads_a_rotated_password_file_at_the_next_login(sim: Sim, tmp_path: Path) -> None:
    """The operator rotates the API password in Verba and in target.password_file: no restart is needed."""
    password_file = tmp_path / "verba-password"
    password_file.write_text("Old-pa55word-9d2e\n")
    config = parse_config({"target": {"url": sim.url, "login": "connector", "password_file": str(password_file)}},
                          str(tmp_path / "c.toml"))
    with open_client(config) as client:
        with pytest.raises(VerbaAuthError, match=f"in file {password_file} .*it is read again before each login"):
            client.probe()
        password_file.write_text(f"{PASSWORD}\n")
        client.probe()
    assert [c["status"] for c in sim.calls("requestToken")] == ["ERROR_GENERAL", "OK"]


def test_validate_config_connect_checks_a_fixed_token_with_listusers_alone(sim: Sim, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(sim.token())
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n'
                      f'[target]\nurl = "{sim.url}"\ntoken_file = "{tmp_path / "token"}"\n')
    result = CliRunner().invoke(main, ["validate-config", "--connect", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "requestToken" not in result.output and "login None" not in result.output
    assert f"  ok      verba listUsers: {sim.url} answered (the fixed token)" in result.output.splitlines()
