"""Factory for the SQLite adapter: a fresh file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from serverless_sessions.adapters.cache import sqlite


@asynccontextmanager
async def make_cache(tmp_path: Path, namespace: str) -> AsyncIterator[sqlite.Cache]:
    async with sqlite.Cache(tmp_path / "cache.db", namespace=namespace) as cache:
        yield cache


@asynccontextmanager
async def make_pair(tmp_path: Path) -> AsyncIterator[tuple[sqlite.Cache, sqlite.Cache]]:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(sqlite.Cache(tmp_path / "shared.db"))
        yield first, await stack.enter_async_context(sqlite.Cache(tmp_path / "shared.db"))


@asynccontextmanager
async def storage_url(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    yield f"sqlite://{tmp_path / 'sessions.db'}", {}
