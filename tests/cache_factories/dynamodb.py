"""Factory for the DynamoDB adapter: a fresh table on the test process's moto server.

The server is :mod:`tests.moto_server` (one request at a time; its docstring says why moto's
threaded server would lose updates). Each test gets its own table, created by the adapter on
first use (the endpoint is loopback).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from serverless_sessions.adapters.cache import dynamodb
from tests import moto_server

SERIAL_SERVER = True
"""moto's DynamoDB server answers one request at a time (see :mod:`tests.moto_server`)."""


def unique_table(prefix: str = "ss") -> str:
    """A table name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def build(table: str, namespace: str | None = None, **overrides: object) -> dynamodb.Cache:
    """An adapter on ``table`` of the test server (not yet connected)."""
    options: dict[str, object] = {
        "table": table,
        "endpoint_url": moto_server.endpoint_url(),
        "region": moto_server.REGION,
        "access_key_id": moto_server.ACCESS_KEY_ID,
        "secret_access_key": moto_server.SECRET_ACCESS_KEY,
        "timeouts": dynamodb.DynamoDBTimeouts(connect=2.0, read=10.0, max_attempts=2),
        "namespace": namespace,
        **overrides,
    }
    return dynamodb.Cache(**options)  # type: ignore[arg-type]


@asynccontextmanager
async def make_cache(tmp_path: Path, namespace: str) -> AsyncIterator[dynamodb.Cache]:
    async with build(unique_table(), namespace) as cache:
        yield cache
