"""A real S3 API server for the tests: moto's standalone server on a free loopback port.

Started once per test process (so each pytest-xdist worker has its own), on first use, and
stopped at interpreter exit. Tests never reset it (``POST /moto-api/reset`` would wipe every
other test's buckets); each test creates a bucket of its own with :func:`new_bucket` instead.
If the server cannot start, the calling test fails with the reason — it never skips.
"""

from __future__ import annotations

import atexit
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key-never-shown"
_START_TIMEOUT = 20.0

_lock = threading.Lock()
_process: subprocess.Popen[bytes] | None = None
_endpoint: str | None = None
_session: Any = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_server_executable() -> str:
    candidate = Path(sys.executable).with_name("moto_server")
    if not candidate.exists():
        raise RuntimeError(f"moto_server not found next to {sys.executable}; install moto[server]")
    return str(candidate)


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode} at start")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1.0):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError(f"moto_server did not answer on {url} within {_START_TIMEOUT} s")


def _stop() -> None:
    if _process is not None and _process.poll() is None:
        _process.terminate()
        try:
            _process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _process.kill()
            _process.wait(timeout=5)


def endpoint_url() -> str:
    """The server's URL, starting the server on first call."""
    global _process, _endpoint
    with _lock:
        if _endpoint is None:
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            _process = subprocess.Popen(
                [_moto_server_executable(), "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            atexit.register(_stop)
            _wait_until_up(_process, url)
            _endpoint = url
        return _endpoint


def client_kwargs() -> dict[str, Any]:
    """Keyword arguments for an aiobotocore S3 client talking to the server."""
    return {
        "endpoint_url": endpoint_url(),
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
    }


def unique_bucket_name(prefix: str = "t") -> str:
    """A fresh, valid bucket name (lowercase, 3-63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


async def new_bucket(prefix: str = "t") -> str:
    """Create a bucket that only the calling test uses and return its name."""
    name = unique_bucket_name(prefix)
    async with client() as s3:
        await s3.create_bucket(Bucket=name)
    return name


def client() -> Any:
    """An aiobotocore S3 client context for the server (for fixtures written by hand)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    global _session
    if _session is None:
        _session = AioSession()
    # Fixture writes need no payload checksums; skipping them makes bulk fixtures faster.
    config = AioConfig(max_pool_connections=64, request_checksum_calculation="when_required")
    return _session.create_client("s3", config=config, **client_kwargs())
