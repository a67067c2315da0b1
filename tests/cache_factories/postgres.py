"""Factory for the PostgreSQL adapter: the shared server at 127.0.0.1:5432, database ``test``.

Each test gets a schema of its own (derived from its unique namespace), created by the adapter
on first use and dropped with everything in it afterwards. An unreachable server fails the test:
it never skips.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg

from serverless_sessions.adapters.cache import postgres

SHARED_URL = "postgresql://postgres@127.0.0.1:5432/test"


def unique_schema() -> str:
    return f"ss_test_{uuid.uuid4().hex[:12]}"


async def drop_schema(schema: str, url: str = SHARED_URL) -> None:
    """Drop ``schema`` and everything in it (this test's tables only)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@asynccontextmanager
async def make_cache(tmp_path: Path, namespace: str) -> AsyncIterator[postgres.Cache]:
    schema = unique_schema()
    cache = postgres.Cache.from_url(SHARED_URL, namespace=namespace, schema=schema)
    try:
        await cache.ping()  # unreachable -> StorageUnavailableError: the test fails
        async with cache:
            yield cache
    finally:
        await cache.close()
        await drop_schema(schema)


@asynccontextmanager
async def make_pair(tmp_path: Path) -> AsyncIterator[tuple[postgres.Cache, postgres.Cache]]:
    schema = unique_schema()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(drop_schema, schema)
        first = postgres.Cache.from_url(SHARED_URL, schema=schema)
        await first.ping()  # unreachable -> StorageUnavailableError: the test fails
        await stack.enter_async_context(first)
        second = postgres.Cache.from_url(SHARED_URL, schema=schema)
        yield first, await stack.enter_async_context(second)


@asynccontextmanager
async def storage_url(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    schema = unique_schema()
    try:
        yield f"{SHARED_URL}?schema={schema}", {}
    finally:
        await drop_schema(schema)
