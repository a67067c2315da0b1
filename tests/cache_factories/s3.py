"""Factory for the S3 adapter: a fresh bucket on the test process's moto server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

from serverless_sessions.adapters.cache import s3
from serverless_sessions.adapters.cache.s3 import S3Timeouts
from tests import s3_server

SLOW_UNDER_CONTENTION = True
"""The moto server answers one request at a time: 1,000 contended writes take minutes there."""


def build(bucket: str, namespace: str | None = None, **overrides: object) -> s3.Cache:
    """An adapter on ``bucket`` of the test server (not yet connected)."""
    options: dict[str, object] = {
        "bucket": bucket,
        "prefix": "cache",
        "endpoint_url": s3_server.endpoint_url(),
        "region": s3_server.REGION,
        "access_key_id": s3_server.ACCESS_KEY_ID,
        "secret_access_key": s3_server.SECRET_ACCESS_KEY,
        "timeouts": S3Timeouts(connect=2.0, read=10.0, max_attempts=2),
        "namespace": namespace,
        **overrides,
    }
    return s3.Cache(**options)  # type: ignore[arg-type]


@asynccontextmanager
async def make_cache(tmp_path: Path, namespace: str) -> AsyncIterator[s3.Cache]:
    async with build(await s3_server.new_bucket(), namespace) as cache:
        yield cache


@asynccontextmanager
async def make_pair(tmp_path: Path) -> AsyncIterator[tuple[s3.Cache, s3.Cache]]:
    bucket = await s3_server.new_bucket("pair")
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(build(bucket))
        yield first, await stack.enter_async_context(build(bucket))


@asynccontextmanager
async def storage_url(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    bucket = await s3_server.new_bucket("url")
    query = urlencode({"endpoint_url": s3_server.endpoint_url(), "region": s3_server.REGION}, safe="/:")
    credentials = {
        "AWS_ACCESS_KEY_ID": s3_server.ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": s3_server.SECRET_ACCESS_KEY,
    }
    yield f"s3://{bucket}/cache?{query}", credentials
