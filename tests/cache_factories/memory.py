"""Factory for the in-process adapter used by the contract suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from serverless_sessions.adapters.cache import memory


@asynccontextmanager
async def make_cache(tmp_path: Path, namespace: str) -> AsyncIterator[memory.Cache]:
    async with memory.Cache(namespace=namespace) as cache:
        yield cache


@asynccontextmanager
async def make_pair(tmp_path: Path) -> AsyncIterator[tuple[memory.Cache, memory.Cache]]:
    """One object: the store lives in the process, so two "clients" are the same cache."""
    async with memory.Cache() as cache:
        yield cache, cache
