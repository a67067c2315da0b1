"""Private PostgreSQL servers for tests: ``initdb`` + ``pg_ctl`` on a free loopback port.

A private server is one a test may stop, start and break without touching the shared server at
127.0.0.1:5432. Everything here is synchronous (subprocesses with timeouts), so it works in
fixtures of any scope; every wait is bounded; :func:`private_server` stops and removes what it
started, even when the body fails. Missing binaries fail the test.

``initdb`` refuses to run as root: as root, the server's commands run as the ``postgres`` user
(``runuser``) in a temporary directory that user owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.redis_servers import free_port

PG_BIN = Path(os.environ.get("SS_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
TIMEOUT = 60  # seconds for initdb, and for pg_ctl to see the server up or down


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    """One private cluster: superuser ``postgres`` with ``password``, database ``postgres``."""

    port: int
    directory: Path
    password: str

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://postgres:{secret}@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(TIMEOUT), *args]
        subprocess.run(_as_server_user(command), check=True, capture_output=True, timeout=TIMEOUT + 10)

    def initdb(self) -> None:
        password_file = self.directory / "password"
        password_file.write_text(self.password)
        shutil.chown(password_file, user=SERVER_USER)
        command = [
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={password_file}", "--no-sync", "--no-instructions",
        ]  # fmt: skip
        subprocess.run(_as_server_user(command), check=True, capture_output=True, timeout=TIMEOUT)
        password_file.unlink()

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c max_connections=40"
        )
        self._pg_ctl("-l", str(self.directory / "server.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session, ``immediate`` is a crash."""
        self._pg_ctl("-m", mode, "stop")

    def running(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0


@contextmanager
def private_server(password: str = "private-secret") -> Iterator[PostgresServer]:
    """A started private server, stopped and deleted on exit."""
    directory = Path(tempfile.mkdtemp(prefix="ss-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SERVER_USER)
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(free_port(), directory, password)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
