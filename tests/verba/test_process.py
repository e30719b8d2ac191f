"""The simulator as a child process, the way benchmarks and end-to-end tests start it."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import httpx
import pytest

from connector.runtime import listen
from connector.simulator.process import free_port, start_simulator_process, wait_until_listening

pytestmark = pytest.mark.slow


def test_start_with_a_seed_and_stop(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"users": [{"id": 7, "loginName": "gina@example.com"}]}))
    port = free_port()
    process = start_simulator_process(port, str(seed))
    try:
        wait_until_listening(port, process=process)
        state = httpx.get(f"http://127.0.0.1:{port}/_sim/state").json()
        assert [u["loginName"] for u in state["users"]] == ["gina@example.com"]
        wsdl = httpx.get(f"http://127.0.0.1:{port}/provisioning?wsdl").text
        assert f'location="http://127.0.0.1:{port}/provisioning"' in wsdl
    finally:
        process.terminate()
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after shutdown


def test_a_bad_seed_fails_fast(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('{"users": [{"id": 7}]}')
    process = start_simulator_process(free_port(), str(seed))
    with pytest.raises(RuntimeError, match="exited with status 1"):
        wait_until_listening(free_port(), process=process, timeout=10)


def test_start_with_a_missing_extension_shape() -> None:
    port = free_port()
    process = start_simulator_process(port, missing_extension="error_general")
    try:
        wait_until_listening(port, process=process)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/_sim/behaviour").json()["missing_extension"] == "error_general"
        httpx.post(f"{base}/_sim/reset").raise_for_status()
        assert httpx.get(f"{base}/_sim/behaviour").json()["missing_extension"] == "error_general"
    finally:
        process.terminate()
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)


def test_an_unknown_missing_extension_shape_fails_fast() -> None:
    process = start_simulator_process(free_port(), missing_extension="sometimes")
    with pytest.raises(RuntimeError, match="exited with status 2"):
        wait_until_listening(free_port(), process=process, timeout=10)


def test_free_ports_picked_before_anything_binds_them_differ() -> None:
    """A harness picks the simulator's port and the connector's SCIM port before starting either: one port
    given twice made every SCIM write of a chaos campaign land on the simulator (404)."""
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_what_connector_listens_on_sends_at_once() -> None:
    """Without TCP_NODELAY each small answer waited for the client's delayed ACK: the simulator served 90 calls/s
    instead of 1,800, and every listener of `connector run` is made the same way."""
    with listen("127.0.0.1", 0) as listener, socket.create_connection(listener.getsockname()):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_free_ports_are_below_the_ephemeral_range_where_outgoing_connections_take_theirs() -> None:
    """Between the pick and the server's bind, an outgoing connection (of another test worker) could take a port
    of the kernel's ephemeral range: `connector run` then failed to bind its SCIM port."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        first_ephemeral = int(f.read().split()[0])
    ports = [free_port() for _ in range(20)]
    assert all(10000 <= port < first_ephemeral for port in ports), ports
