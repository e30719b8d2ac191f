"""A private PostgreSQL cluster for tests and benchmarks: initdb into a temp dir, start on a free port.

    with PostgresServer.start() as server:
        dsn = server.create_schema()   # a fresh, empty schema per call

Tests use the session fixture `postgres_server` of the plugin tests/plugins/postgres.py (registered in
tests/conftest.py). psycopg is imported only when a schema is created, so importing this module (as the
plugin does for every test run) does not need it.

The Debian server binaries (`/usr/lib/postgresql/<version>/bin`, package `postgresql`) are used,
the highest version installed. initdb refuses to run as root, so as root the cluster runs as the
`postgres` user, which the postgresql-common package creates. Host connections need the password
(scram-sha-256); `dsn()` includes it.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

from connector.simulator.process import free_port

SUPERUSER = "postgres"
PASSWORD = "connector-test-password"
BIN_GLOB = "/usr/lib/postgresql/*/bin"


class ServerUnavailable(RuntimeError):
    """This machine cannot run a private PostgreSQL cluster; the message says what to install."""


def find_bin_dir() -> pathlib.Path:
    """The bin directory of the highest installed PostgreSQL version."""
    found = [pathlib.Path(path) for path in glob.glob(BIN_GLOB) if os.access(os.path.join(path, "initdb"), os.X_OK)]
    if not found:
        raise ServerUnavailable(
            f"no PostgreSQL server binaries ({BIN_GLOB}/initdb): install them with "
            "`apt-get install postgresql` (`make test` does so from .ci/apt-packages)"
        )
    return max(found, key=lambda path: int(path.parent.name.split(".")[0]))


def _run_as() -> list[str]:
    """The command prefix that runs server programs as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise ServerUnavailable(
            "initdb refuses to run as root and there is no 'postgres' user to run it as: install the "
            "postgresql Debian package (its postgresql-common dependency creates the user) or run the "
            "tests as a non-root user"
        ) from None
    return ["runuser", "-u", SUPERUSER, "--"]


class PostgresServer:
    """One running cluster; `stop()` (or leaving the `with` block) shuts it down and deletes its files."""

    def __init__(self, bin_dir: pathlib.Path, directory: pathlib.Path, port: int, run_as: list[str]) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        self.port = port
        self._run_as = run_as
        self._schemas = itertools.count(1)

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = find_bin_dir()
        run_as = _run_as()
        directory = pathlib.Path(tempfile.mkdtemp(prefix="connector-pg-"))
        if run_as:
            shutil.chown(directory, SUPERUSER, SUPERUSER)
        server = cls(bin_dir, directory, free_port(), run_as)
        try:
            server._initdb()
            server._pg_ctl(
                "start",
                "-w",
                "-t",
                "60",
                "-l",
                str(directory / "server.log"),
                "-o",
                f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=on",
            )
        except BaseException:
            server.stop()
            raise
        return server

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def dsn(self, dbname: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def create_schema(self) -> str:
        """Create a new empty schema and return a DSN whose search_path is that schema.

        A schema costs a millisecond where CREATE DATABASE costs up to 0.4 s on a fresh cluster.
        """
        import psycopg  # only the tests that use PostgreSQL need it

        name = f"t_{next(self._schemas)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.dsn()}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if (self.directory / "data" / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-m", "fast")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _initdb(self) -> None:
        password_file = self.directory / "password"
        password_file.write_text(PASSWORD)
        if self._run_as:
            shutil.chown(password_file, SUPERUSER, SUPERUSER)
        self._run(
            "initdb",
            "-D",
            str(self.directory / "data"),
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # the server itself runs with fsync=on
            "--no-instructions",
        )

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), *args)

    def _run(self, program: str, *args: str) -> None:
        command = [*self._run_as, str(self.bin_dir / program), *args]
        result = subprocess.run(command, cwd=self.directory, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} failed with exit code {result.returncode}: {result.stderr.strip() or result.stdout.strip()}"
                + (f"\nserver log:\n{tail}" if tail else "")
            )


@contextlib.contextmanager
def server_or_skipped() -> Iterator[PostgresServer | None]:
    """A private cluster for a benchmark's PostgreSQL run, stopped afterwards; None, with "PostgreSQL: skipped (why)"
    printed, when its binaries are missing or it cannot start."""
    try:
        server = PostgresServer.start()
    except ServerUnavailable as error:
        print(f"PostgreSQL: skipped ({error})")
        yield None
        return
    with server:
        yield server
