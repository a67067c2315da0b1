"""Watching a server's connections from a test's own redis-py client, while the test runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass
class ClientCount:
    """Connections a server had on entry (``baseline``) and the most seen above it (``peak``)."""

    baseline: int
    peak: int = 0


@asynccontextmanager
async def sampling_clients(raw: Redis, interval: float = 0.002) -> AsyncIterator[ClientCount]:
    """Sample ``CLIENT LIST`` every ``interval`` seconds until the block ends."""
    count = ClientCount(len(await raw.client_list()))
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            count.peak = max(count.peak, len(await raw.client_list()) - count.baseline)
            await asyncio.sleep(interval)

    sampler = asyncio.create_task(sample())
    try:
        yield count
    finally:
        done.set()
        await sampler
