"""Shared fixtures: every cache adapter, built by its factory in ``cache_factories``.

The adapters are found by listing that package (see its docstring). A factory that needs a
server starts it or connects to it; if the server is missing the test fails (it never skips),
so CI cannot pass without the real parts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from serverless_sessions.adapters.cache.base import CacheBase
from tests.cache_factories import ADAPTERS, factory


def unique_namespace() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=ADAPTERS)
def adapter_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def cache(adapter_name: str, tmp_path: Path) -> AsyncIterator[CacheBase]:
    async with factory(adapter_name).make_cache(tmp_path, unique_namespace()) as built:
        yield built


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def raw_cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CacheBase]:
    """The adapters whose raw bytes tests tamper with: in-process, file, and the shared Redis."""
    async with factory(str(request.param)).make_cache(tmp_path, unique_namespace()) as built:
        yield built
