"""Opening the adapters and storages under test, all with the same settings."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from context import Context
from serverless_sessions import ACBCacheStorage, Codec
from serverless_sessions.adapters.cache.base import CacheBase

TTL = 86400


@asynccontextmanager
async def open_cache(kind: str, ctx: Context, label: str, url: str | None = None) -> AsyncIterator[Any]:
    """A fresh ``Cache`` of adapter ``kind`` (memory, sqlite, redis); closed on exit."""
    module: Any = importlib.import_module(f"serverless_sessions.adapters.cache.{kind}")
    if kind == "memory":
        cache: CacheBase = module.Cache(max_entries=10_000_000)
    elif kind == "sqlite":
        cache = module.Cache(ctx.tmp / f"{label}.db")
    elif kind == "redis":
        cache = module.Cache.from_url(url or ctx.redis_url)
    else:
        raise ValueError(f"unknown backend {kind!r}")
    async with cache:
        yield cache


def storage(cache: Any, namespace: str) -> ACBCacheStorage:
    """The storage under test over ``cache`` (default codec, 1-day default TTL)."""
    return ACBCacheStorage(cache, namespace, codec=Codec(), default_ttl=TTL)
