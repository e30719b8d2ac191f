"""A full run with known secrets: none of them shows in logs, CLI output, metrics or the store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from tests.ops.helpers import cli, wait_for
from tests.plugins.simulator import free_port

PASSWORD = "Verba-pa55word-8c1f2e"
TOKEN = "FixedVerbaToken0123456789abcdefZ"
SCIM_TOKEN = "scim-bearer-7d41c0ffee9b2a"


@pytest.fixture
def seed_users():
    return [{"id": 3, "loginName": "alice@example.com"}, {"id": 4, "loginName": "bob@example.com"}]


def test_no_secret_appears_anywhere(tmp_path, seed_users):
    from connector.simulator.process import start_simulator_process, wait_until_listening

    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"api_users": [{"loginName": "connector", "password": PASSWORD}],
                                "users": seed_users, "tokens": [TOKEN]}))
    sim_port = free_port()
    simulator = start_simulator_process(sim_port, str(seed))
    outputs: list[str] = []
    try:
        wait_until_listening(sim_port)
        target = f"http://127.0.0.1:{sim_port}/provisioning"
        (tmp_path / "pw").write_text(PASSWORD)
        (tmp_path / "token").write_text(TOKEN)
        (tmp_path / "scim-token").write_text(SCIM_TOKEN)
        scim = free_port()
        common = (f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"\n[logging]\nformat = "json"\nlevel = "DEBUG"\n'
                  f'[scim]\nlisten = "127.0.0.1:{scim}"\n'
                  f'[[scim.clients]]\nname = "entra"\ntoken_file = "{tmp_path / "scim-token"}"\n')
        by_password = tmp_path / "password.toml"
        by_password.write_text(
            common + f'[target]\nurl = "{target}"\nlogin = "connector"\npassword_file = "{tmp_path / "pw"}"\n'
            f'[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
        )
        admin = free_port()
        by_token = tmp_path / "token.toml"
        by_token.write_text(common + f'[target]\nurl = "{target}"\ntoken_file = "{tmp_path / "token"}"\n'
                            f'[admin]\nlisten = "127.0.0.1:{admin}"\n')
        for n, (config, user) in enumerate([(by_password, "alice"), (by_token, "bob")]):
            events = tmp_path / f"e{n}.jsonl"
            events.write_text(json.dumps({"source": "hr", "external_id": user, "state": {
                "userName": f"{user}@example.com",
                "phoneNumbers": [{"type": "work", "value": f"+1415555010{n}"}]}}) + "\n"
                + json.dumps({"source": "hr", "external_id": "nobody", "state": {"userName": "nobody@example.com",
                              "phoneNumbers": [{"type": "work", "value": f"+1415555020{n}"}]}}))
            outputs.append(cli("events", "ingest", "--config", str(config), str(events)).stdout)
            process = subprocess.Popen([sys.executable, "-m", "connector.cli", "run", "--config", str(config)],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                # wait_for calls the lambdas before the loop moves on: B023's late binding cannot bite.
                wait_for(lambda: '"pending": 0' in cli("status", "--config", str(config), "--json").stdout,  # noqa: B023
                         what="the events to be delivered")
                if config == by_token:
                    users = f"http://127.0.0.1:{scim}/scim/v2/Users"
                    created = httpx.post(users, headers={"Authorization": f"Bearer {SCIM_TOKEN}"}, json={
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@example.com",
                        "password": "Okta-sends-a-password-1",
                        "phoneNumbers": [{"type": "work", "value": "+14155550999"}]})
                    assert created.status_code == 201, created.text
                    outputs.append(created.text)
                    outputs.append(httpx.get(users, headers={"Authorization": f"Bearer {SCIM_TOKEN}x"}).text)
                    wait_for(lambda: '"pending": 0' in cli("status", "--config", str(config), "--json").stdout,  # noqa: B023
                             what="the SCIM event to be delivered")
                    outputs.append(httpx.get(f"http://127.0.0.1:{admin}/metrics").text)
                    outputs.append(httpx.get(f"http://127.0.0.1:{admin}/readyz").text)
            finally:
                process.send_signal(signal.SIGTERM)
                outputs.append(process.communicate(timeout=30)[0])
            for args in (["events", "list"], ["events", "list", "--json"], ["status"], ["audit"], ["validate-config"]):
                result = cli(*args, "--config", str(config))
                outputs += [result.stdout, result.stderr]
            for event_id in range(1, 5):
                shown = cli("events", "show", "--config", str(config), str(event_id), "--json")
                outputs += [shown.stdout, shown.stderr]
    finally:
        simulator.terminate()
        simulator.wait(10)

    everything = "\n".join(outputs)
    assert "requestToken" in everything and "createExtension" in everything, "the run did not exercise the target"
    assert '"level": "info"' in everything, "the connector did not log JSON lines"
    for secret in (PASSWORD, TOKEN, SCIM_TOKEN, "Okta-sends-a-password-1"):
        assert secret not in everything
        for path in tmp_path.glob("c.db*"):
            assert secret.encode() not in path.read_bytes(), f"{secret!r} is stored in {path.name}"
