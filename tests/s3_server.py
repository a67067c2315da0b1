"""A real S3 API server for the tests: moto on a free loopback port, one request at a time.

Started once per test process (so each pytest-xdist worker has its own), on first use, and
stopped at interpreter exit. Tests never reset it (``POST /moto-api/reset`` would wipe every
other test's buckets); each test creates a bucket of its own with :func:`new_bucket` instead.
If the server cannot start, the calling test fails with the reason — it never skips.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.moto_server import MotoServer, single_request_server

REGION = "us-east-1"
ACCESS_KEY_ID = "testing-access-key"
SECRET_ACCESS_KEY = "testing-secret-key-never-shown"

_session: Any = None


# A server of its own (not DynamoDB's): tests/moto_server.py says why one request at a time.
endpoint_url = MotoServer(single_request_server).endpoint_url


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
