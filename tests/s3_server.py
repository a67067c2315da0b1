"""A real S3 API server for the tests: moto's standalone server on a free loopback port.

Started once per test process (so each pytest-xdist worker has its own), on first use, and
stopped at interpreter exit. Tests never reset it (``POST /moto-api/reset`` would wipe every
other test's buckets); each test creates a bucket of its own with :func:`new_bucket` instead.
If the server cannot start, the calling test fails with the reason — it never skips.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from tests.moto_server import MotoServer

REGION = "us-east-1"
ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key-never-shown"

_session: Any = None


def _moto_server_command(port: int) -> list[str]:
    candidate = Path(sys.executable).with_name("moto_server")
    if not candidate.exists():
        raise RuntimeError(f"moto_server not found next to {sys.executable}; install moto[server]")
    return [str(candidate), "-H", "127.0.0.1", "-p", str(port)]


# moto's threaded server: S3's conditional writes are safe under it (see tests/moto_server.py
# for why DynamoDB needs the single-request one).
endpoint_url = MotoServer(_moto_server_command).endpoint_url


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
