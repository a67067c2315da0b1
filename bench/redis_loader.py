"""Bulk loading of filler sessions into Redis: the adapter's own write script, pipelined.

Writing 10^6 sessions one ``compare_and_set`` at a time takes 5-10 minutes on this machine (each
call pays redis-py's per-command overhead and a round trip), which alone would break the suite's
10-minute budget. This loader runs the adapter's own ``WRITE`` Lua script with exactly the keys
and arguments the adapter passes for a new key, ``CHUNK`` calls per pipeline, so the stored
layout is the adapter's and nothing is re-implemented but the argument list.

It leans on the private module ``_redis_scripts``; if that calling convention changes, every
reply stops being ``ok`` and :func:`load` raises (the smoke test runs this path), and
:func:`verify` re-reads a sample through the public API. It is also a working prototype of
the batch-write API the adapter lacks (see the bulk-store case).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from harness import timed_concurrent
from serverless_sessions.adapters.cache.redis.scripts import (
    WRITE,
    KeyLayout,
    encode_indexes,
    new_generation,
)
from serverless_sessions.ttl import now

CHUNK = 500
PIPELINES_IN_FLIGHT = 2

Item = tuple[str, bytes, Sequence[str]]


async def load(client: Redis, cache: Any, namespace: str, items: Sequence[Item], ttl: float) -> float:
    """Create every ``(key, value, indexes)`` of ``items`` as new keys; return seconds taken.

    ``client`` is a plain redis-py client to the same server as ``cache`` (its pool is reused).
    """
    layout = KeyLayout(cache.settings.key_prefix)
    grace = str(round(cache.settings.index_grace * 1000))
    expiry = str(round((now() + ttl) * 1000))
    script = client.register_script(WRITE)

    async def chunk(number: int) -> None:
        pipe = client.pipeline(transaction=False)
        for key, value, indexes in items[number * CHUNK : (number + 1) * CHUNK]:
            keys = [layout.data(namespace, key), layout.expiry(namespace)]
            keys += [layout.index(namespace, name) for name in indexes]
            argv: list[Any] = ["set", key, 0, value, expiry, new_generation(), encode_indexes(indexes)]
            await script(keys, [*argv, grace, ""], client=pipe)
        replies = await pipe.execute()
        failed = [reply for reply in replies if reply[0] != b"ok"]
        if failed:
            raise RuntimeError(f"bulk load: {len(failed)} writes answered {failed[0]!r}")

    chunks = -(-len(items) // CHUNK)
    return await timed_concurrent(chunk, chunks, PIPELINES_IN_FLIGHT)
