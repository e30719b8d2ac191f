"""Run the simulator in a child process (its own GIL), for benchmarks and end-to-end tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time


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


_handed_out: set[int] = set()
_handing_out = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, and never one this process was given before: the kernel may
    give a port it just closed again at once, so two ports picked before either server binds could be one."""
    with _handing_out:
        while True:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
