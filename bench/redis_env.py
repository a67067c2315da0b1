"""Redis for the benchmark: the shared server (this run's keys only) and private servers.

On the shared server every key a run writes contains the run's token, and :func:`unlink_token`
removes exactly those with SCAN + UNLINK; nothing here flushes a database or calls KEYS. Private
servers (for populations and server-side CPU figures nobody else may disturb) are the tests' own
(``tests/redis_servers.py``): loopback, free port, no persistence, stopped on exit.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis
from tests.redis_servers import running_redis

SHARED_URL = "redis://127.0.0.1:6379/13"


@asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py asyncio client (the baselines' client), closed on exit."""
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def private_server(directory: Path) -> AsyncIterator[str]:
    """A private ``redis-server`` (started and stopped by the tests' helper); yields its URL."""
    with running_redis(directory) as server:
        yield server.url


async def server_version(url: str) -> str:
    async with raw_client(url) as client:
        info = await client.info("server")
    return str(info.get("redis_version", "unknown"))


async def unlink_token(url: str, token: str) -> int:
    """Delete every key containing ``token`` (SCAN + UNLINK, batched); return how many."""
    removed = 0
    async with raw_client(url) as client:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"*{token}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += int(await client.unlink(*batch))
                batch = []
        if batch:
            removed += int(await client.unlink(*batch))
    return removed


async def measured_rtt_ms(client: aioredis.Redis, samples: int = 60) -> float:
    """Median PING round trip in milliseconds (after one warm-up PING)."""
    await client.ping()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await client.ping()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


async def command_stats(client: aioredis.Redis) -> dict[str, tuple[int, int]]:
    """``(calls, server CPU µs)`` so far per command (``INFO commandstats``)."""
    stats = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(row["calls"]), int(row["usec"])) for name, row in stats.items()
    }
