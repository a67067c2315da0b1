"""Many new keys written through the adapter's public compare-and-set, ``CHUNK`` in flight.

It stands in for a batch write where the storage has none (``cases_bulk``'s prototype row):
concurrent calls on one Redis ``Cache`` share its connections and pipeline, so ``CHUNK`` in
flight approaches ``CHUNK`` writes per round trip. Only public adapter calls are used, so the
stored layout can never drift from the adapter's own (the adapter's scripts change).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from harness import timed_concurrent

CHUNK = 500

Item = tuple[str, bytes, Sequence[str]]


async def load(client: Redis, cache: Any, namespace: str, items: Sequence[Item], ttl: float) -> float:
    """Create every ``(key, value, indexes)`` of ``items`` as a new key; return seconds taken.

    ``client`` is not used: the signature is the one ``cases_bulk`` calls.
    """

    async def write(i: int) -> None:
        key, value, indexes = items[i]
        await cache.compare_and_set(
            key, value, expected_version=0, ttl=ttl, indexes=tuple(indexes), namespace=namespace
        )

    return await timed_concurrent(write, len(items), CHUNK)
