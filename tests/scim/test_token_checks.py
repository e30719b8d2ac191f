"""The SCIM clients' bearer tokens as the config and the running connector check them: no token shared by two
clients, none shorter than 16 characters, comment lines in a token_file, and a token_file that breaks while the
connector runs shown in /readyz and /metrics (connector_scim_token_file_ok)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from connector.config import ConfigError, ScimClient, load_config
from connector.ops.health import create_admin_app, scim_state
from connector.sources.scim import ScimTokens
from tests.scim.live import serve

ENTRA = "entra-scim-token-5c1e0f9a2b"
OKTA = "okta-scim-token-7b3d2e8f41"
URL = "http://127.0.0.1:8080/scim/v2"


def config(tmp_path: Path, clients: str) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(clients)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).splitlines()


def settled(path: Path) -> None:
    """Make the file look changed a minute ago, so that the next check reads it at once."""
    past = time.time() - 60
    os.utime(path, (past, past))


def test_two_clients_with_the_same_token_are_refused_naming_both_keys_never_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIM_TOKEN_ENTRA", ENTRA)
    tokens = tmp_path / "okta.tokens"
    tokens.write_text(f"{OKTA}\n{ENTRA}\n")
    path = config(tmp_path, '[[scim.clients]]\nname = "entra"\ntoken_env = "SCIM_TOKEN_ENTRA"\n'
                            f'[[scim.clients]]\nname = "okta"\ntoken_file = "{tokens}"\n')
    assert problems(path) == [
        f"{path}: scim.clients[0].token_env (entra) and scim.clients[1].token_file (okta) hold the same token: the "
        "requests of one would be taken for the other's; give each client its own token, made with "
        "`openssl rand -hex 32`"]
    assert load_config(path, secrets=()).scim.clients  # without the tokens read, nothing to compare
    tokens.write_text(OKTA)
    assert [c.name for c in load_config(path).scim.clients] == ["entra", "okta"]


def test_a_token_file_rewritten_with_another_clients_token_is_refused_and_the_last_good_tokens_stay(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="connector.scim")
    tokens = tmp_path / "okta.tokens"
    tokens.write_text(OKTA)
    clients = ScimTokens([ScimClient("entra", (ENTRA,)), ScimClient("okta", (OKTA,), token_file=str(tokens))])
    tokens.write_text(f"{OKTA}\n{ENTRA}\n")
    clients.reload()
    assert clients.client_for(ENTRA.encode()) == "entra" and clients.client_for(OKTA.encode()) == "okta"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"SCIM client okta: token_file {str(tokens)!r} holds a token SCIM client entra also accepts: "
                      "requests with it could not be told apart; give each client its own token, made with `openssl "
                      "rand -hex 32`; its last good tokens (1) stay valid until it is fixed"]
    assert not any(ENTRA in r.getMessage() or OKTA in r.getMessage() for r in caplog.records)


def test_comment_lines_of_a_token_file_are_no_tokens(tmp_path):
    tokens = tmp_path / "entra.tokens"
    tokens.write_text(f"# entra token, rotated 2026-11-30\n{ENTRA}\n  # the next one goes below\n")
    path = config(tmp_path, f'[[scim.clients]]\nname = "entra"\ntoken_file = "{tokens}"\n')
    assert load_config(path).scim.clients[0].tokens == (ENTRA,)
    tokens.write_text("# entra token, rotated 2026-11-30\n")
    assert problems(path) == [
        f"{tmp_path}/connector.toml: scim.clients[0].token_file {str(tokens)!r} holds no token; put the client's "
        "bearer token in it, one a line"]


def test_a_token_shorter_than_16_characters_is_refused_saying_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIM_TOKEN_ENTRA", "abc")
    path = config(tmp_path, '[[scim.clients]]\nname = "entra"\ntoken_env = "SCIM_TOKEN_ENTRA"\n')
    assert problems(path) == [
        f"{path}: scim.clients[0].token_env names SCIM_TOKEN_ENTRA, whose token has 3 characters; a bearer token "
        "needs at least 16: make one with `openssl rand -hex 32`"]
    monkeypatch.setenv("SCIM_TOKEN_ENTRA", "0123456789abcdef")  # 16 will do
    assert load_config(path).scim.clients[0].tokens == ("0123456789abcdef",)

    tokens = tmp_path / "entra.tokens"
    tokens.write_text(f"{ENTRA}\n\nx\n")
    path = config(tmp_path, f'[[scim.clients]]\nname = "entra"\ntoken_file = "{tokens}"\n')
    assert problems(path) == [
        f"{path}: scim.clients[0].token_file {str(tokens)!r} holds a token of 1 character on line 3; a bearer token "
        "needs at least 16: make one with `openssl rand -hex 32` (lines starting with # are comments)"]


def test_a_short_token_written_into_the_file_while_running_is_refused(tmp_path, caplog):
    tokens = tmp_path / "entra.tokens"
    tokens.write_text(ENTRA)
    clients = ScimTokens([ScimClient("entra", (ENTRA,), token_file=str(tokens))])
    tokens.write_text("x\n")
    clients.reload()
    assert clients.client_for(b"x") is None and clients.client_for(ENTRA.encode()) == "entra"
    assert "holds a token of 1 character on line 1" in caplog.text


def metrics(clients: ScimTokens) -> str:
    """/metrics of an admin listener (it reads no store) whose SCIM source has `clients`."""
    sources = {"scim": lambda: scim_state(URL, [c.name for c in clients.clients], True, clients.problems())}
    with serve(create_admin_app(None, lambda: None, sources)) as url:  # type: ignore[arg-type]
        return httpx.get(f"{url}/metrics", timeout=10).text


def gauge(client: str) -> float | None:
    return REGISTRY.get_sample_value("connector_scim_token_file_ok", {"client": client})


def test_a_token_file_that_breaks_while_running_makes_readyz_degraded_and_the_metric_0(tmp_path):
    tokens = tmp_path / "idp-a.tokens"
    tokens.write_text(ENTRA)
    clients = ScimTokens([ScimClient("idp-a", (ENTRA,), token_file=str(tokens)), ScimClient("idp-b", (OKTA,))])
    assert scim_state(URL, ["idp-a", "idp-b"], True, clients.problems()) == (
        f"ok: listening on {URL}; clients idp-a, idp-b")
    assert gauge("idp-a") == 1 and gauge("idp-b") is None  # a token_env token cannot break while running

    tokens.unlink()  # no request comes in: /readyz looks at the file itself (at most once a second)
    time.sleep(1.1)
    assert scim_state(URL, ["idp-a", "idp-b"], True, clients.problems()) == (
        f"degraded: SCIM client idp-a: token_file {str(tokens)!r} cannot be read (No such file or directory); check "
        "the path and permissions (its last good tokens stay valid until then; a restart would refuse the file); "
        f"listening on {URL}; clients idp-a, idp-b")
    assert gauge("idp-a") == 0 and clients.client_for(ENTRA.encode()) == "idp-a"

    tokens.write_text(ENTRA)
    settled(tokens)
    time.sleep(1.1)
    assert 'connector_scim_token_file_ok{client="idp-a"} 1.0' in metrics(clients)
    assert scim_state(URL, ["idp-a", "idp-b"], True, clients.problems()).startswith("ok: ")


def test_the_metric_follows_the_file_when_prometheus_alone_looks(tmp_path):
    tokens = tmp_path / "idp-c.tokens"
    tokens.write_text(ENTRA)
    clients = ScimTokens([ScimClient("idp-c", (ENTRA,), token_file=str(tokens))])
    tokens.write_text("")
    settled(tokens)
    time.sleep(1.1)
    assert 'connector_scim_token_file_ok{client="idp-c"} 0.0' in metrics(clients)
    assert clients.client_for(ENTRA.encode()) == "idp-c"


def test_a_token_shared_with_another_file_is_taken_once_that_file_gives_it_up(tmp_path):
    entra, okta = tmp_path / "idp-d.tokens", tmp_path / "idp-e.tokens"
    entra.write_text(ENTRA)
    okta.write_text(OKTA)
    clients = ScimTokens([ScimClient("idp-d", (ENTRA,), token_file=str(entra)),
                          ScimClient("idp-e", (OKTA,), token_file=str(okta))])
    okta.write_text(f"{OKTA}\n{ENTRA}\n")
    settled(okta)
    time.sleep(1.1)
    assert list(clients.problems()) == ["idp-e"]
    entra.write_text("entra-scim-token-rotated-0d9c")  # the other file is the one fixed
    settled(entra)
    time.sleep(1.1)
    assert clients.problems() == {} and clients.client_for(ENTRA.encode()) == "idp-e"
