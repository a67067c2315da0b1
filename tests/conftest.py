"""Shared fixtures: every built-in cache adapter, built by its factory in ``cache_factories``.

A factory that needs a server starts it or connects to it; if the server is missing the test
fails (it never skips), so CI cannot pass without the real parts.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from serverless_sessions.adapters.cache.base import CacheBase

BUILTIN_ADAPTERS = ["memory", "sqlite", "redis", "s3", "postgres"]
# Developers of a new adapter run the adapter-parametrised suites on it alone with
# SS_TEST_ADAPTERS=name before it joins the list; CI never sets it.
if os.environ.get("SS_TEST_ADAPTERS"):
    BUILTIN_ADAPTERS = os.environ["SS_TEST_ADAPTERS"].split(",")


def unique_namespace() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BUILTIN_ADAPTERS)
def adapter_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def cache(adapter_name: str, tmp_path: Path) -> AsyncIterator[CacheBase]:
    factory = importlib.import_module(f"tests.cache_factories.{adapter_name}")
    async with factory.make_cache(tmp_path, unique_namespace()) as built:
        yield built


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def raw_cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CacheBase]:
    """The adapters whose raw bytes tests tamper with: in-process, file, and the shared Redis."""
    factory = importlib.import_module(f"tests.cache_factories.{request.param}")
    async with factory.make_cache(tmp_path, unique_namespace()) as built:
        yield built
