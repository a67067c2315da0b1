"""Factory for the SQLite adapter used by the contract suites: a fresh file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from serverless_sessions.adapters.cache import sqlite


@asynccontextmanager
async def make_cache(tmp_path: Path, namespace: str) -> AsyncIterator[sqlite.Cache]:
    async with sqlite.Cache(tmp_path / "cache.db", namespace=namespace) as cache:
        yield cache
