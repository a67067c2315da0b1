"""Redis Sentinel: master discovery and failover, with a master, a replica and one sentinel.

Each test gets its own set of three processes (a failover changes them for good).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from serverless_sessions.adapters.cache import redis
from serverless_sessions.errors import StorageUnavailableError
from tests.redis_servers import SentinelSetup, running_sentinel, wait_until

CHECK_INTERVAL = 0.2


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    with running_sentinel(tmp_path) as started:
        yield started


def make(setup: SentinelSetup) -> redis.Cache:
    return redis.Cache.from_url(
        setup.url, namespace="n", sentinel_check_interval=CHECK_INTERVAL, socket_timeout=1
    )


def replicated(setup: SentinelSetup, key: str) -> None:
    """Wait until the replica holds ``key``.

    Replication is asynchronous, and WAIT sent by a client that wrote nothing returns at once,
    so it proves nothing about the adapter's writes.
    """
    wait_until(lambda: setup.replica.command("EXISTS", f"ss:n:d:{key}").startswith(b":1"), "replication")


async def stored_on(port: int, key: str) -> bytes | None:
    client = Redis(port=port)
    try:
        value = await client.hget(f"ss:n:d:{key}", "v")
        return None if value is None else bytes(value)
    finally:
        await client.aclose()


async def test_master_is_found_through_sentinel(setup: SentinelSetup) -> None:
    async with make(setup) as cache:
        await cache.compare_and_set("k", b"v", expected_version=0, ttl=60, indexes=["u"])
        assert await stored_on(setup.master.port, "k") == b"v"
        assert await cache.index_members("u") == ["k"]
        report = await cache.health()
        assert report["mode"] == "sentinel" and report["role"] == "master"
        assert report["address"] == setup.url


async def test_failover_reaches_the_new_master_without_restart(setup: SentinelSetup) -> None:
    async with make(setup) as cache:
        for i in range(20):
            await cache.set(f"before{i}", b"v", ttl=600)
        # Let the replica catch up, so the promoted one holds every acknowledged write.
        replicated(setup, "before19")
        old_port = setup.master_port()
        assert setup.sentinel.command("SENTINEL", "FAILOVER", setup.name).startswith(b"+OK")
        wait_until(lambda: setup.master_port() != old_port, "failover", timeout=20)
        new_port = setup.master_port()
        assert new_port == setup.replica.port
        await asyncio.sleep(CHECK_INTERVAL * 2)
        for i in range(20):
            await cache.set(f"after{i}", b"w", ttl=600)  # same cache object, no restart
        for i in range(20):
            assert await stored_on(new_port, f"after{i}") == b"w"
            assert await stored_on(new_port, f"before{i}") == b"v"
            assert await cache.get(f"before{i}") == b"v"
        assert (await cache.health())["role"] == "master"


async def test_killed_master_fails_fast_then_recovers(setup: SentinelSetup) -> None:
    async with make(setup) as cache:
        await cache.set("k", b"v", ttl=600)
        replicated(setup, "k")
        setup.master.stop(signal.SIGKILL)
        failures: list[tuple[float, str]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                await cache.set("after", b"w", ttl=600)
                break
            except StorageUnavailableError as exc:
                failures.append((time.monotonic() - started, str(exc)))
                await asyncio.sleep(0.1)
        else:
            pytest.fail(f"the adapter never reached the promoted replica: {failures[-3:]}")
        assert failures
        slowest = max(failures)
        assert slowest[0] < 3.0, slowest  # each call fails within its timeout
        assert setup.master_port() == setup.replica.port
        assert await cache.get("k") == b"v" and await cache.get("after") == b"w"
