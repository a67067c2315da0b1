"""Factory for the Redis adapter: the shared server at 127.0.0.1:6379, database 9.

Each test gets its own key prefix (derived from its unique namespace), so every key it writes,
in any namespace it names, lies under that prefix; the keys are removed afterwards by SCAN over
the prefix (never FLUSHDB, never KEYS). An unreachable server fails the test: it never skips.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from serverless_sessions.adapters.cache import redis

SHARED_URL = "redis://127.0.0.1:6379/9"


async def delete_prefix(prefix: str, url: str = SHARED_URL) -> None:
    """Delete every key under ``prefix:`` (this test's keys only)."""
    client = Redis.from_url(url)
    try:
        batch = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


@asynccontextmanager
async def make_cache(tmp_path: Path, namespace: str) -> AsyncIterator[redis.Cache]:
    prefix = f"sstest.{namespace}"
    cache = redis.Cache.from_url(SHARED_URL, namespace=namespace, key_prefix=prefix)
    try:
        await cache.ping()  # unreachable -> StorageUnavailableError: the test fails
        async with cache:
            yield cache
    finally:
        await cache.close()
        await delete_prefix(prefix)


@asynccontextmanager
async def make_pair(tmp_path: Path) -> AsyncIterator[tuple[redis.Cache, redis.Cache]]:
    prefix = f"sstest.pair-{uuid.uuid4().hex[:12]}"
    async with AsyncExitStack() as stack:
        stack.push_async_callback(delete_prefix, prefix)
        first = redis.Cache.from_url(SHARED_URL, key_prefix=prefix)
        await first.ping()  # unreachable -> StorageUnavailableError: the test fails
        await stack.enter_async_context(first)
        second = redis.Cache.from_url(SHARED_URL, key_prefix=prefix)
        yield first, await stack.enter_async_context(second)


@asynccontextmanager
async def storage_url(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    prefix = f"sstest.url-{uuid.uuid4().hex[:12]}"
    try:
        yield f"{SHARED_URL}?key_prefix={prefix}", {}
    finally:
        await delete_prefix(prefix)
