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

from context import Context
from harness import timed_concurrent
from serverless_sessions import ACBCacheStorage, Codec, SessionState
from serverless_sessions.adapters.cache.base import AtomicCache, CacheBase
from serverless_sessions.storage.cache_storage import project_index, user_index

FILLER = b"filler-session-placeholder" * 8
POPULATE_IN_FLIGHT = 64


def adapter_module(name: str) -> Any:
    """``serverless_sessions.adapters.cache.<name>``, imported on first use."""
    return importlib.import_module(f"serverless_sessions.adapters.cache.{name}")


@asynccontextmanager
async def open_cache(kind: str, ctx: Context, label: str, url: str | None = None) -> AsyncIterator[CacheBase]:
    """A fresh cache of ``kind`` (memory, sqlite, redis); closed on exit."""
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
    """Write ``count`` filler sessions spread over ``users`` users; return the seconds taken."""
    cache = st.cache
    assert isinstance(cache, AtomicCache)

    async def write(i: int) -> None:
        await cache.compare_and_set(
            f"{tag}-{i}",
            FILLER,
            expected_version=0,
            ttl=ttl,
            indexes=(user_index(f"{tag}-user-{i % users}"), project_index(f"{tag}-p-{i % 97}")),
            namespace=st.namespace,
        )

    return await timed_concurrent(write, count, POPULATE_IN_FLIGHT)


async def store_all(st: ACBCacheStorage, states: Sequence[SessionState]) -> None:
    """Store real sessions (these are the ones a case reads back)."""
    for state in states:
        await st.store_session(state)
