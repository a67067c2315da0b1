"""A real AWS API server for the tests: moto, serving ONE request at a time, on loopback.

Why not moto's own threaded ``moto_server``: moto is not safe under concurrent requests. Its
S3 ``PutObject`` puts the new object in the bucket before it sets the object's metadata, so a
``GetObject`` in another thread can read the body without its metadata (a test saw "S3 object
metadata is not ours" about once in a heavily loaded run); real S3 replaces an object
atomically. Its DynamoDB ``TransactWriteItems`` deep-copies the table first and, when any
condition fails, puts that copy back — erasing every write other threads committed in between
— and no request checks a condition and writes under a lock. Under the threaded server, 20
concurrent compare-and-set calls lost updates that every caller saw succeed. S3 and DynamoDB
make each request atomic; a server handling one request at a time is the faithful emulation
(moto's handlers hold the GIL anyway, so it costs little throughput).

Started once per test process (each pytest-xdist worker has its own) on first use, on a free
port, and stopped at interpreter exit. Tests never reset it: each uses a table or bucket of its
own. If the
server cannot start, the calling test fails with the reason — it never skips.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

REGION = "us-east-1"
ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key-never-shown"
_START_TIMEOUT = 20.0
_SERVE = """
import signal, sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app,
)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
run_simple(
    "127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app),
    threaded=False, request_handler=MotoRequestHandler,
)
"""


def free_port() -> int:
    """A loopback TCP port nobody listens on (closed again before returning)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """One moto server per test process: started on first use, stopped at interpreter exit.

    ``command(port)`` is the process to run; ``inherit_env`` names a variable through which a
    parent test process hands its server's URL to worker subprocesses.
    """

    def __init__(self, command: Callable[[int], list[str]], inherit_env: str | None = None) -> None:
        self._command = command
        self._inherit_env = inherit_env
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._endpoint: str | None = None

    def endpoint_url(self) -> str:
        """The server's URL, starting the server on first call."""
        with self._lock:
            if self._endpoint is None:
                inherited = os.environ.get(self._inherit_env) if self._inherit_env else None
                if inherited:
                    self._endpoint = inherited
                    return inherited
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                self._process = subprocess.Popen(
                    self._command(port),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={**os.environ, "MOTO_PORT": str(port)},
                )
                atexit.register(self._stop)
                self._wait_until_up(url)
                self._endpoint = url
            return self._endpoint

    def _wait_until_up(self, url: str) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode} at start")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1.0):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        self._process.terminate()
        raise RuntimeError(f"moto server did not answer on {url} within {_START_TIMEOUT} s")

    def _stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)


def single_request_server(port: int) -> list[str]:
    """The command of a moto server on ``port`` handling one request at a time (see above)."""
    return [sys.executable, "-c", _SERVE, str(port)]


_DYNAMODB = MotoServer(single_request_server, "SS_TEST_MOTO_ENDPOINT")
endpoint_url = _DYNAMODB.endpoint_url
"""The single-request server's URL (or the one a parent test process names in
``SS_TEST_MOTO_ENDPOINT``, so worker subprocesses share its tables)."""
