"""Run the simulator in a child process (its own GIL), for benchmarks and end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator


def start_simulator_process(
    port: int, seed_path: str | None = None, *, host: str = "127.0.0.1", missing_extension: str | None = None
) -> subprocess.Popen[bytes]:
    """Start `connector simulator` in a child process; call wait_until_listening before using it.

    `missing_extension` is one of operations.MISSING_EXTENSION_SHAPES; None keeps the simulator's default.
    """
    command = [sys.executable, "-m", "connector.cli", "simulator", "--host", host, "--port", str(port)]
    if seed_path:
        command += ["--seed", seed_path]
    if missing_extension is not None:
        command += ["--missing-extension", missing_extension]
    return subprocess.Popen(command)


def wait_until_listening(
    port: int, host: str = "127.0.0.1", *, timeout: float = 10.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until host:port accepts connections; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the simulator exited with status {process.returncode} before listening on {host}:{port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s; is the port taken?") from None
            time.sleep(0.05)


EPHEMERAL = "/proc/sys/net/ipv4/ip_local_port_range"
LOWEST_PORT = 10000

_handed_out: set[int] = set()
_handing_out = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, and never one this process was given before.

    The port is below the kernel's ephemeral range (`EPHEMERAL`, 32768 and up by default), where outgoing
    connections take theirs, so none can take it before the server binds it; each process walks the ports up
    from its own place (by its pid), so that processes picking at the same time (test workers, benchmarks) do
    not pick the same one. Where the range cannot be read, the kernel picks one (bind to port 0).
    """
    with _handing_out:
        for port in _candidates():
            if port in _handed_out:
                continue
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no use
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
        raise RuntimeError(f"no free TCP port on {host}")


def _candidates() -> Iterator[int]:
    """The ports to try in turn: below the ephemeral range from this process's place, then any (0) for ever."""
    try:
        with open(EPHEMERAL) as f:
            first_ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = LOWEST_PORT
    size = first_ephemeral - LOWEST_PORT
    if size > 0:
        start = os.getpid() * 997 % size
        yield from (LOWEST_PORT + (start + i) % size for i in range(size))
    while True:
        yield 0
