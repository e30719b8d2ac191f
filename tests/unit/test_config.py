from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import main
from connector.config import DEFAULT_MAPPING, SIMULATOR_LOGIN, SIMULATOR_PASSWORD, ConfigError, load_config
from connector.ops.logs import SecretFilter
from connector.records import eid_problem


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_shipped_default_config_loads_with_the_simulator_as_target():
    config = load_config("config/connector.toml")
    assert config.uses_simulator
    assert config.target_url == "http://127.0.0.1:7002/provisioning"
    assert config.store.url == "sqlite:///var/connector.db"
    assert config.store.synchronous == "FULL"
    assert config.mapping_file == "mappings/default.toml"


def test_empty_config_gets_the_embedded_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.uses_simulator and config.delivery.workers == 8 and config.target.eid == "0000"


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    message = error_of(tmp_path / "nope.toml")
    assert "nope.toml" in message and "--config" in message


def test_bad_toml_names_the_file_and_line(tmp_path):
    message = error_of(write(tmp_path, "[store]\nurl = \n"))
    assert "connector.toml" in message and "line 2" in message


@pytest.mark.parametrize(
    ("text", "key", "fix"),
    [
        ("[stor]\n", "[stor]", "sections are"),
        ("[store]\npath = 'x'\n", "store.path", "keys of [store]"),
        ("[store]\nurl = 'mysql://x'\n", "store.url", "sqlite:///"),
        ("[store]\nsynchronous = 'OFF'\n", "store.synchronous", '"FULL"'),
        ("[delivery]\nworkers = 0\n", "delivery.workers", "at least 1"),
        ("[delivery]\nworkers = '4'\n", "delivery.workers", "an integer"),
        ("[simulator]\nlisten = '7002'\n", "simulator.listen", "host:port"),
        ("[target]\nurl = 'http://v:7002/provisioning'\neid = '0'\nlogin='a'\npassword_file='p'\n", "target.eid",
         "4 characters"),
        ("[target]\nlogin = 'api'\n", "target.login", "target.url"),
        ("[target]\nurl = 'http://v:7002/provisioning'\n", "target", "password_env"),
        ("[target]\nurl = 'http://v/p'\npassword_env = 'NOPE_UNSET_VAR'\nlogin = 'a'\n", "target.password_env",
         "export NOPE_UNSET_VAR"),
        ("[target]\nurl = 'http://v/p'\npassword_file = '/nonexistent/secret'\nlogin = 'a'\n", "target.password_file",
         "check the path"),
        ("[instance]\nname = 'a b'\n", "instance.name", "letters, digits"),
        ("[drift]\nschedule = 'daily'\n", "drift.schedule", "five fields"),
        ("[drift]\nconcurrency = 0\n", "drift.concurrency", "at least 1"),
        ("[drift]\nrepair = 'yes'\n", "drift.repair", "true or false"),
        ("[target]\napply_configuration = 1\n", "target.apply_configuration", "true or false"),
        ("[instance]\nheartbeat_seconds = 0\n", "instance.heartbeat_seconds", "above 0"),
        ("[store]\nurl = 'postgresql://c@db/c'\n[instance]\nliveness_seconds = 10\n", "instance.liveness_seconds",
         "at least 15 (timeout + 2 heartbeats + 1 s)"),
    ],
)
def test_each_error_names_file_key_and_fix(tmp_path, text, key, fix):
    message = error_of(write(tmp_path, text))
    assert str(tmp_path / "connector.toml") in message
    assert key in message
    assert fix in message


def test_every_problem_is_reported_at_once_each_with_file_key_and_fix(tmp_path):
    message = error_of(write(tmp_path, "[store]\nurl = 'mysql://x'\n[delivery]\nworkers = 0\n"
                                       "[ldap.corp]\nurl = 'ldap://h'\nbase = 'dc=x'\ncolour = 'red'\n"))
    lines = message.splitlines()
    assert len(lines) == 3
    for key, fix in [("store.url", "sqlite:///"), ("delivery.workers", "at least 1"),
                     ("ldap.corp.colour", "the keys of [ldap.corp]")]:
        assert [
            line for line in lines if key in line and fix in line and line.startswith(f"{tmp_path}/connector.toml: ")
        ]


def test_a_value_of_the_wrong_type_is_one_problem_not_more(tmp_path):
    message = error_of(write(tmp_path, "[delivery]\nlease_seconds = 'long'\n[target]\nurl = 'http://v/p'\n"
                                       "login = 'a'\npassword_env = 'NOPE_UNSET_VAR'\n"))
    assert message.splitlines() == [
        f"{tmp_path}/connector.toml: delivery.lease_seconds is 'long'; it must be a number",
        f"{tmp_path}/connector.toml: target.password_env names NOPE_UNSET_VAR, which is not set; "
        "export NOPE_UNSET_VAR or use target.password_file",
    ]


def test_a_login_in_target_url_is_refused_without_showing_its_password(tmp_path, monkeypatch):
    """urllib3 sends no Authorization header for http://user:password@host/, and every transport error named the
    url, password and all: the login goes where the connector reads it."""
    monkeypatch.setenv("VERBA_PASSWORD", "s3cret-Pass-42")
    message = error_of(write(tmp_path, "[target]\nurl = 'https://proxyuser:Pr0xy-Secret-99@mr.example:443/verba/"
                                       "ws-provisioning-2'\nlogin = 'api'\npassword_env = 'VERBA_PASSWORD'\n"))
    assert message == (
        f"{tmp_path}/connector.toml: target.url holds a login before its host "
        "('https://proxyuser@mr.example:443/verba/ws-provisioning-2'), which the connector never sends (no HTTP basic "
        "auth to Verba); set target.url to 'https://mr.example:443/verba/ws-provisioning-2' and put Verba's API user "
        "in target.login with target.password_env or target.password_file (a proxy's login goes in HTTPS_PROXY or "
        "HTTP_PROXY: http://user:password@proxy:3128)")
    assert "Pr0xy-Secret-99" not in error_of(write(tmp_path, "[target]\nurl = 'ftp://u:Pr0xy-Secret-99@h/p'\n"
                                                             "login = 'api'\npassword_env = 'VERBA_PASSWORD'\n"))


def test_a_secret_variable_set_to_the_empty_string_is_said_to_be_empty_not_unset(tmp_path, monkeypatch):
    monkeypatch.setenv("EMPTY_SECRET", "")
    message = error_of(write(tmp_path, "[target]\nurl = 'http://v/p'\nlogin = 'a'\npassword_env = 'EMPTY_SECRET'\n"
                                       "[[scim.clients]]\nname = 'entra'\ntoken_env = 'EMPTY_SECRET'\n"))
    assert message.splitlines() == [
        f"{tmp_path}/connector.toml: target.password_env names EMPTY_SECRET, which is empty; put the password in "
        "it, or use target.password_file",
        f"{tmp_path}/connector.toml: scim.clients[0].token_env names EMPTY_SECRET, which is empty; put the token in "
        "it, or use scim.clients[0].token_file",
    ]


def test_secrets_come_from_env_and_files_and_are_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_VERBA_PASSWORD", "s3cret-pa55word")
    config = load_config(
        write(
            tmp_path,
            "[target]\nurl = 'http://v:7002/provisioning'\nlogin = 'api'\npassword_env = 'TEST_VERBA_PASSWORD'\n",
        )
    )
    assert config.target.password == "s3cret-pa55word"
    assert "s3cret-pa55word" not in repr(config)

    secret = tmp_path / "token"
    secret.write_text("tok-123456789\n")
    config = load_config(write(tmp_path, f"[target]\nurl = 'http://v:7002/provisioning'\ntoken_file = '{secret}'\n"))
    assert config.target.token == "tok-123456789"
    assert "tok-123456789" not in repr(config)


def test_password_in_the_toml_itself_is_refused(tmp_path):
    message = error_of(write(tmp_path, "[target]\nurl = 'http://v/p'\nlogin = 'a'\npassword = 'plain'\n"))
    assert "target.password" in message and "plain" not in message


def test_target_settings_the_client_would_refuse_are_config_errors(tmp_path):
    (tmp_path / "secret").write_text("s")
    secret = str(tmp_path / "secret")
    both = error_of(write(tmp_path, f"[target]\nurl = 'http://v/p'\nlogin = 'a'\ntoken_file = '{secret}'\n"))
    assert "target has a login and a fixed token" in both and "remove target.login" in both
    short = error_of(write(tmp_path, "[target]\nurl = 'http://v/p'\nenvironment_short_name = 'prod'\nlogin = 'a'\n"
                                     f"password_file = '{secret}'\n"))
    assert "requestToken needs target.eid" in short


@pytest.mark.parametrize("target", ["", "url = 'http://v/p'\nlogin = 'a'\npassword_env = 'VERBA_PASSWORD'\n"])
@pytest.mark.parametrize(("written", "eid"), [("1234", 1234), ("12", 12), ("true", True)])
def test_an_eid_that_is_no_string_gets_the_fix_of_every_eid(tmp_path, monkeypatch, target, written, eid):
    monkeypatch.setenv("VERBA_PASSWORD", "s3cret")
    path = write(tmp_path, f"[target]\n{target}eid = {written}\n")
    assert error_of(path).splitlines() == [f"{path}: target.eid {eid_problem(eid)}"]
    assert "quote it" in error_of(path)


@pytest.mark.parametrize(("written", "secret"), [
    (b"s3cret-0123456789\n", "s3cret-0123456789"),  # echo "$SECRET" > file
    (b"s3cret-0123456789\r\n", "s3cret-0123456789"),  # saved on Windows
    (b"s3cret-0123456789", "s3cret-0123456789"),
    (b" s3cret-0123456789 \n", " s3cret-0123456789 "),  # spaces are part of the secret
    (b"s3cret-0123456789\n\n", "s3cret-0123456789\n"),  # only one trailing newline is dropped
    (b"s3cret-0123456789\t", "s3cret-0123456789\t"),
    ("Pa55\u00a0w\u2168rd-0123456789\n".encode(), "Pa55\u00a0w\u2168rd-0123456789"),  # no Unicode normalization either
])
def test_every_file_secret_is_read_exactly_as_written(tmp_path, written, secret):
    (tmp_path / "secret").write_bytes(written)
    file = str(tmp_path / "secret")
    target = load_config(write(tmp_path, f"[target]\nurl = 'http://v/p'\nlogin = 'api'\npassword_file = '{file}'\n"))
    assert target.target.password == secret
    token = load_config(write(tmp_path, f"[target]\nurl = 'http://v/p'\ntoken_file = '{file}'\n"))
    assert token.target.token == secret
    scim = load_config(write(tmp_path, f"[scim]\n[[scim.clients]]\nname = 'idp'\ntoken_file = '{file}'\n"))
    # A SCIM client's token_file holds tokens one a line (several during a rotation): each line is trimmed.
    assert scim.scim.clients[0].tokens == (secret.strip(),)
    ldap = load_config(write(tmp_path, f"[ldap.corp]\nurl = 'ldap://h'\nbase = 'dc=x'\nbind_dn = 'cn=svc'\n"
                                       f"password_file = '{file}'\n"))
    assert ldap.ldap["corp"].password == secret
    assert ldap.ldap["corp"].password_source == f"file {file} (ldap.corp.password_file; a trailing newline is not sent)"


@pytest.mark.parametrize(("written", "fix"), [(b"\n", "is empty"), (b"", "is empty"), (b"\xff\xfe", "not UTF-8")])
def test_an_empty_or_binary_secret_file_names_the_key_and_the_fix(tmp_path, written, fix):
    (tmp_path / "secret").write_bytes(written)
    message = error_of(
        write(tmp_path, f"[target]\nurl = 'http://v/p'\nlogin = 'a'\npassword_file = '{tmp_path / 'secret'}'\n")
    )
    assert "target.password_file" in message and fix in message


def test_instances_default_to_the_host_name_and_a_liveness_a_call_fits_in(tmp_path):
    import socket

    shared = load_config(write(tmp_path, "[store]\nurl = 'postgresql://c@db/c'\n"))
    assert (shared.instance.name, shared.instance.heartbeat_seconds, shared.instance.liveness_seconds) == (
        socket.gethostname(), 2.0, 15.0)
    assert shared.store.shared
    (tmp_path / "pw").write_text("pw")
    quick = load_config(write(tmp_path, f"[store]\nurl = 'postgresql://c@db/c'\n[target]\nurl = 'http://v/p'\n"
                                        f"login = 'a'\npassword_file = '{tmp_path / 'pw'}'\ntimeout_seconds = 2\n"
                                        "[instance]\nname = 'b-2'\nheartbeat_seconds = 1\nliveness_seconds = 5\n"))
    assert quick.instance.name == "b-2" and quick.instance.liveness_seconds == 5
    own = load_config(write(tmp_path, "[instance]\nliveness_seconds = 3\n"))  # SQLite: nobody takes over, no fence
    assert own.instance.liveness_seconds == 3 and not own.store.shared


def test_without_secrets_missing_env_vars_and_files_are_no_problem_and_nothing_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_UNSET_TOKEN", raising=False)
    monkeypatch.setenv("SET_TOKEN", "a-real-token-1234")
    path = write(tmp_path, f"""
[target]
url = "http://verba:7002/provisioning"
login = "api"
password_file = "{tmp_path / 'missing-password'}"
[[scim.clients]]
name = "entra"
token_env = "NOPE_UNSET_TOKEN"
[[scim.clients]]
name = "okta"
token_env = "SET_TOKEN"
[[scim.clients]]
name = "other"
token_file = "{tmp_path / 'missing-scim-tokens'}"
[ldap.corp]
url = "ldaps://dc1:636"
base = "dc=corp"
bind_dn = "cn=reader"
password_env = "NOPE_UNSET_TOKEN"
""")
    message = error_of(path)  # a command that connects still needs every secret
    assert "NOPE_UNSET_TOKEN" in message and "missing-password" in message and "missing-scim-tokens" in message
    config = load_config(path, secrets=())
    assert config.secrets_loaded == frozenset() and config.secrets() == []
    assert config.target.password is None and config.target.login == "api"
    assert [(c.name, c.tokens) for c in config.scim.clients] == [("entra", ()), ("okta", ()), ("other", ())]
    assert config.ldap["corp"].password is None and config.ldap["corp"].bind_dn == "cn=reader"
    assert load_config(write(tmp_path, ""), secrets=()).target.password == SIMULATOR_PASSWORD
    assert load_config(write(tmp_path, "")).secrets() == [SIMULATOR_PASSWORD]


def test_the_demo_password_make_run_logs_in_with_is_no_word_and_not_the_login():
    """With login and password both "connector", make run's log read `Run one *** per SQLite file` and
    `requestToken for login '***'`, which garbled messages and told the password."""
    seed = json.loads((Path(__file__).parents[2] / "config" / "simulator-seed.json").read_text())
    assert seed["api_users"] == [{"loginName": SIMULATOR_LOGIN, "password": SIMULATOR_PASSWORD}]
    assert SIMULATOR_PASSWORD != SIMULATOR_LOGIN
    line = f"Run one connector per SQLite file; requestToken for login '{SIMULATOR_LOGIN}' refused"
    assert SecretFilter([SIMULATOR_PASSWORD]).mask(line) == line


def test_a_target_password_equal_to_the_login_is_not_masked_in_the_log(tmp_path, monkeypatch):
    """The login is in messages: masking the password there would tell it, and garble every other use of the word."""
    monkeypatch.setenv("VERBA_PW", "connector")
    config = load_config(write(tmp_path, '[target]\nurl = "http://v:7002/provisioning"\nlogin = "connector"\n'
                                         'password_env = "VERBA_PW"\n'))
    assert config.secrets() == []
    monkeypatch.setenv("VERBA_PW", "An0ther-Secret")
    config = load_config(write(tmp_path, '[target]\nurl = "http://v:7002/provisioning"\nlogin = "connector"\n'
                                         'password_env = "VERBA_PW"\n'))
    assert config.secrets() == ["An0ther-Secret"]


def test_only_the_sections_a_command_names_have_their_secrets_read(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_UNSET_TOKEN", raising=False)
    monkeypatch.setenv("VERBA_PASSWORD", "verba-secret-99")
    path = write(tmp_path, """
[target]
url = "http://verba:7002/provisioning"
login = "api"
password_env = "VERBA_PASSWORD"
[[scim.clients]]
name = "entra"
token_env = "NOPE_UNSET_TOKEN"
""")
    config = load_config(path, secrets={"target"})  # drift, replay: Verba's password, no identity provider token
    assert config.target.password == "verba-secret-99" and config.scim.clients[0].tokens == ()
    assert config.secrets_loaded == {"target"} and config.secrets() == ["verba-secret-99"]
    with pytest.raises(ConfigError, match="NOPE_UNSET_TOKEN"):  # `connector run` reads every section's
        load_config(path)
    monkeypatch.delenv("VERBA_PASSWORD")
    with pytest.raises(ConfigError, match="VERBA_PASSWORD"):
        load_config(path, secrets={"target"})

    monkeypatch.setenv("CORP_PASSWORD", "corp-bind-secret")
    directories = write(tmp_path, "".join(
        f'[ldap.{name}]\nurl = "ldap://dc:389"\nbase = "dc=x"\nbind_dn = "cn=r"\n'
        f'password_env = "{name.upper()}_PASSWORD"\n'
        for name in ("corp", "lab")))
    corp = load_config(directories, secrets={"ldap.corp"})  # `ldap sync corp`: lab's password is not its business
    assert corp.ldap["corp"].password == "corp-bind-secret" and corp.ldap["lab"].password is None
    with pytest.raises(ConfigError, match="LAB_PASSWORD"):
        load_config(directories, secrets={"ldap"})


def test_without_secrets_every_other_check_stands(tmp_path):
    for text, expected in [
        ("[delivery]\nworkers = 0\n", "delivery.workers"),
        ("[target]\nurl = 'http://v:7002/provisioning'\n", "password_env"),  # no way to authenticate
        ("[target]\nurl = 'http://v/p'\nlogin = 'a'\npassword_env = 'X'\npassword_file = 'f'\n", "keep one"),
        ("[[scim.clients]]\nname = 'entra'\n", "exactly one of token_env or token_file"),
        ("[[scim.clients]]\ntoken_env = 'X'\n", "scim.clients[0].name is missing"),
        ("[store]\nsurl = 'x'\n", "unknown key store.surl"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, text), secrets=())
        assert expected in str(info.value), text


def test_a_config_without_secrets_cannot_open_a_client(tmp_path):
    from connector.runtime import open_client

    config = load_config(write(tmp_path, ""), secrets=())
    with pytest.raises(ConfigError, match=r"loaded without the \[target\] secrets"):
        open_client(config)


def test_a_postgresql_store_without_its_driver_is_a_config_error_saying_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    path = tmp_path / "c.toml"
    path.write_text('[store]\nurl = "postgresql://connector@db1/connector"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, secrets=())
    assert str(error.value) == (f"{path}: store.url names a PostgreSQL store, and its driver, psycopg, is not "
                                "installed: install the connector with its postgres extra (its wheel's file name "
                                "followed by [postgres]), or pip install 'psycopg[binary]>=3.1' into the connector's "
                                "environment")
    path.write_text('[store]\nurl = "sqlite:///var/c.db"\n')
    assert load_config(path, secrets=()).store.url == "sqlite:///var/c.db"  # SQLite needs no driver


def test_numbers_out_of_their_range_are_problems_naming_the_key_and_the_least(tmp_path):
    """A timeout of 0 or less, a negative cache time or a lease too short for one call fail every call at run time."""
    path = write(tmp_path, "[target]\ntimeout_seconds = -1\n[delivery]\nuser_cache_seconds = -1\nlease_seconds = 2\n")
    assert error_of(path).splitlines() == [
        f"{path}: target.timeout_seconds is -1; it must be at least 1",
        f"{path}: delivery.user_cache_seconds is -1; it must not be negative, use 0 or more",
        f"{path}: delivery.lease_seconds is 2; with target.timeout_seconds at its least, 1, it must be at least 3 "
        "(1.5 x (timeout + 1 s)), so that a call always fits in the lease: raise it or lower the timeout",
    ]
    (tmp_path / "token").write_text("verba-token")
    for text in ("[target]\ntimeout_seconds = 0\n", "[target]\ntimeout_seconds = 0.5\nurl = 'http://v/p'\n"
                                                    f"token_file = '{tmp_path / 'token'}'\n"):
        message = error_of(write(tmp_path, text))
        assert "target.timeout_seconds is 0" in message and "it must be at least 1" in message
    assert load_config(write(tmp_path, "[target]\ntimeout_seconds = 1\n[delivery]\nuser_cache_seconds = 0\n"
                                       "lease_seconds = 3\n")).delivery.lease_seconds == 3


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_a_number_that_is_not_finite_is_a_problem(tmp_path, value):
    path = write(tmp_path, f"[delivery]\nlease_seconds = {value}\n")
    assert error_of(path).splitlines() == [f"{path}: delivery.lease_seconds is {value}; it must be a finite number"]


@pytest.mark.parametrize(("text", "problem"), [
    ("[scim]\nlisten = '127.0.0.1:7002'\n", "scim.listen (127.0.0.1:7002) and simulator.listen (127.0.0.1:7002, the "
                                            "default)"),
    ("[simulator]\nlisten = '127.0.0.1:8080'\n", "scim.listen (127.0.0.1:8080, the default) and simulator.listen "
                                                 "(127.0.0.1:8080)"),
    ("[scim]\nlisten = '0.0.0.0:9000'\n[admin]\nlisten = '127.0.0.1:9000'\n",
     "scim.listen (0.0.0.0:9000) and admin.listen (127.0.0.1:9000)"),
    ("[admin]\nlisten = '127.0.0.1:7002'\n", "admin.listen (127.0.0.1:7002) and simulator.listen (127.0.0.1:7002, "
                                             "the default)"),
])
def test_two_listeners_on_one_port_are_a_problem_naming_both_keys(tmp_path, text, problem):
    path = write(tmp_path, text)
    assert error_of(path).splitlines() == [
        f"{path}: {problem} take the same port on the same address: `connector run` could not listen on both; "
        "give one of them another port"]


def test_listeners_that_cannot_meet_are_no_problem(tmp_path):
    (tmp_path / "token").write_text("verba-token")
    for text in ("[scim]\nlisten = '127.0.0.1:7002'\n[target]\nurl = 'http://v/p'\n"  # no simulator runs
                 f"token_file = '{tmp_path / 'token'}'\n",
                 "[scim]\nlisten = ':::8081'\n",  # IPv6 only: 127.0.0.1:8081 (admin) is another address
                 "[scim]\nlisten = '127.0.0.2:8081'\n"):
        load_config(write(tmp_path, text))


def test_a_config_error_names_the_mapping_file_whenever_the_config_says_which(tmp_path):
    for text, named in [("[delivery]\nworkers = 0\n[mapping]\nfile = 'm.toml'\n", "m.toml"),
                        ("[delivery]\nworkers = 0\n", DEFAULT_MAPPING),
                        ("[delivery]\nworkers = 0\n[mapping]\nfile = 3\n", None),  # the problem is the path
                        ("mapping = 'm.toml'\n", None),
                        ("[delivery]\nworkers = \n", None)]:  # no TOML: nothing is known
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, text))
        assert info.value.mapping_file == named, text


def test_validate_config_reports_the_mapping_files_problems_with_the_configs(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text('[environment]\neid = "12"\n[[extensions]]\nfrom = "userName"\nnormalize = "E.164"\n')
    for file, problems in [(mapping, [f"{mapping}: environment.eid is '12'", f"{mapping}: extensions[0].normalize"]),
                           (tmp_path / "gone.toml", [f"{tmp_path / 'gone.toml'}: cannot read the mapping file"])]:
        config = write(tmp_path, f"[delivery]\nworkers = 0\n[mapping]\nfile = '{file}'\n")
        for connect in ([], ["--connect"]):
            result = CliRunner().invoke(main, ["validate-config", "--config", str(config), *connect])
            lines = result.output.splitlines()
            assert result.exit_code == 1 and len(lines) == 1 + len(problems), result.output
            assert lines[0] == f"Error: {config}: delivery.workers is 0; it must be at least 1"
            assert all(line.startswith(problem) for line, problem in zip(lines[1:], problems, strict=True)), lines


def test_validate_config_names_a_wrong_mapping_path_once(tmp_path):
    config = write(tmp_path, "[mapping]\nfile = 3\n")
    result = CliRunner().invoke(main, ["validate-config", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"Error: {config}: mapping.file is 3; it must be a string"]


def test_a_config_that_is_not_toml_gets_the_mappings_fixes_and_its_line(tmp_path):
    path = write(tmp_path, "[target]\neid = 0000\n")
    first, shown = error_of(path).splitlines()
    assert first.startswith(f"{path}: not valid TOML: ") and "(at line 2, column 8)" in first
    assert first.endswith('0000 is a number with a leading zero, which TOML refuses; quote it: eid = "0000"')
    assert shown == f"{path}: line 2: eid = 0000"
    path = write(tmp_path, '[scim]\nlisten = "127.0.0.1:8080"x\n')
    assert error_of(path).splitlines()[0].endswith("fix the syntax there")


def test_a_sqlite_store_path_no_command_could_create_is_a_config_error_naming_file_and_key(tmp_path):
    """validate-config printed `c.toml: OK` for a path `connector run` refuses; db upgrade, run and status said so
    without naming the config file or the key."""
    store = tmp_path / "no" / "such" / "x.db"
    config = write(tmp_path, f'[store]\nurl = "sqlite:///{store}"\n')
    for command in (["validate-config"], ["status"], ["db", "upgrade"], ["run"]):
        result = CliRunner().invoke(main, [*command, "--config", str(config)])
        assert result.exit_code == 1, (command, result.output)
        assert result.output.splitlines() == [
            f"Error: {config}: store.url is 'sqlite:///{store}', but the directory {store.parent} for the store "
            f"{store} does not exist, nor does {store.parent.parent}: check [store] url for a typo, or create the "
            f"directory (mkdir -p {store.parent}) writable by the user that runs the connector"], command
    assert list(tmp_path.iterdir()) == [config]
    var = write(tmp_path, f'[store]\nurl = "sqlite:///{tmp_path / "var" / "x.db"}"\n')  # a first start makes var/
    assert CliRunner().invoke(main, ["validate-config", "--config", str(var)]).exit_code == 0
