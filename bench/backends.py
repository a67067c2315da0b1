"""Opening the adapters under test and filling a namespace with many sessions quickly.

Filler sessions are written through the adapter's own ``compare_and_set`` with the same index
names ``ACBCacheStorage`` uses, but with a small placeholder value: they are listed, counted and
purged, never decoded, so their size would only cost population time and memory (10^6 real
sessions would not fit the private Redis comfortably).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis_loader
from context import Context
from harness import timed_concurrent
from redis_env import raw_client
from serverless_sessions import ACBCacheStorage, Codec, SessionState
from serverless_sessions.adapters.cache.base import AtomicCache, CacheBase, IndexedCache
from serverless_sessions.storage.cache_storage import project_index, user_index

FILLER = b"filler-session-placeholder" * 8
POPULATE_IN_FLIGHT = 64


def adapter_module(name: str) -> Any:
    """``serverless_sessions.adapters.cache.<name>``, imported on first use."""
    return importlib.import_module(f"serverless_sessions.adapters.cache.{name}")


@asynccontextmanager
async def open_cache(kind: str, ctx: Context, label: str, url: str | None = None) -> AsyncIterator[Any]:
    """A fresh ``Cache`` of adapter ``kind`` (memory, sqlite, redis); closed on exit."""
    if kind == "memory":
        cache: CacheBase = adapter_module("memory").Cache(max_entries=10_000_000)
    elif kind == "sqlite":
        cache = adapter_module("sqlite").Cache(ctx.tmp / f"{label}.db")
    elif kind == "redis":
        cache = adapter_module("redis").Cache.from_url(url or ctx.redis_url)
    else:
        raise ValueError(f"unknown backend {kind!r}")
    async with cache:
        yield cache


def storage(cache: CacheBase, namespace: str) -> ACBCacheStorage:
    """The storage under test over ``cache`` (default codec, 1-day default TTL)."""
    return ACBCacheStorage(cache, namespace, codec=Codec(), default_ttl=86400)


async def populate(
    st: ACBCacheStorage,
    count: int,
    *,
    tag: str,
    users: int,
    ttl: float = 86400,
) -> float:
    """Write ``count`` filler sessions spread over ``users`` users; return the seconds taken.

    Keys are ``<tag>-<i>``, listed in ``user:<tag>-user-<i % users>`` and one of 97 project
    indexes. Redis goes through the pipelined loader; the others call ``compare_and_set``.
    A sample is read back through the public API.
    """
    cache = st.cache
    assert isinstance(cache, AtomicCache) and isinstance(cache, IndexedCache)

    def indexes(i: int) -> tuple[str, str]:
        return user_index(f"{tag}-user-{i % users}"), project_index(f"{tag}-p-{i % 97}")

    if cache.backend == "redis":
        items = [(f"{tag}-{i}", FILLER, indexes(i)) for i in range(count)]
        async with raw_client(cache.settings.describe()) as client:
            seconds = await redis_loader.load(client, cache, st.namespace, items, ttl)
    else:

        async def write(i: int) -> None:
            await cache.compare_and_set(
                f"{tag}-{i}",
                FILLER,
                expected_version=0,
                ttl=ttl,
                indexes=indexes(i),
                namespace=st.namespace,
            )

        seconds = await timed_concurrent(write, count, POPULATE_IN_FLIGHT)
    if count and ttl > 1:
        await _verify(cache, st.namespace, tag, count, users, indexes(0)[0])
    return seconds


async def _verify(
    cache: IndexedCache, namespace: str, tag: str, count: int, users: int, first_user: str
) -> None:
    listed = await cache.index_members(first_user, namespace=namespace)
    expected = -(-count // users)
    entry = await cache.get_entry(f"{tag}-0", namespace=namespace)
    if len(listed) != expected or entry is None or entry.version != 1:
        raise RuntimeError(
            f"population {tag!r} in {namespace!r} did not read back: {len(listed)} of "
            f"{expected} listed, entry {entry!r}"
        )


async def settle(cache: CacheBase) -> None:
    """Bring a cache to a comparable state before a timed write (SQLite: checkpoint the WAL).

    SQLite checkpoints its WAL inside whichever commit crosses 1000 pages, with two fsyncs
    (~4-12 ms here). When a repetition writes about that many pages, the checkpoint lands in
    the same timed commit every time on one side only (seen: cleanup among 10^5 at 5x the
    cost among 10^4, all of it in COMMIT). Checkpointing before the clock starts removes that
    resonance; checkpoint cost is then paid, as in real use, by the untimed writes. There is
    no public API for this, so it runs on the adapter's worker through its private ``_run``.
    """
    if cache.backend != "sqlite":
        return

    def checkpoint(store: Any) -> None:
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    await cache._run("checkpoint", None, checkpoint)  # type: ignore[attr-defined]


async def store_all(st: ACBCacheStorage, states: Sequence[SessionState]) -> None:
    """Store real sessions (these are the ones a case reads back)."""
    for state in states:
        await st.store_session(state)
