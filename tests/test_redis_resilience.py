"""Reconnection after a server restart, bounded pooling without leaks, and health reports."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from redis.asyncio import Redis

from serverless_sessions.adapters.cache import redis
from serverless_sessions.errors import SessionConflictError, StorageUnavailableError
from tests.redis_clients import sampling_clients
from tests.redis_servers import running_redis

OUTAGE = 1.0


async def test_restart_under_load_fails_fast_then_recovers_without_losing_acked_writes(
    tmp_path: Path,
) -> None:
    with running_redis(tmp_path, "--appendonly", "yes", "--appendfsync", "always") as server:
        cache = redis.Cache.from_url(
            server.url, namespace="n", socket_timeout=1, socket_connect_timeout=0.5, retry_attempts=2
        )
        acked: dict[str, bytes] = {}
        failures: list[float] = []  # durations of failed calls
        successes_after_restart: set[int] = set()
        restarted_at = float("inf")
        stop = asyncio.Event()

        async def worker(task: int) -> None:
            number = 0
            while not stop.is_set():
                key, value = f"t{task}:{number}", b"%d" % number
                number += 1
                started = time.monotonic()
                try:
                    await cache.compare_and_set(key, value, expected_version=0, ttl=600, indexes=[f"w{task}"])
                    acked[key] = value
                    assert await cache.get(key) == value
                    if started > restarted_at:
                        successes_after_restart.add(task)
                except StorageUnavailableError as exc:
                    assert exc.__cause__ is not None
                    failures.append(time.monotonic() - started)
                    await asyncio.sleep(0.05)
                except SessionConflictError:
                    pass  # a write retried after its lost reply: it did land, unacknowledged

        async with cache:
            workers = [asyncio.create_task(worker(task)) for task in range(20)]
            await asyncio.sleep(0.5)
            server.stop(signal.SIGKILL)
            await asyncio.sleep(OUTAGE)
            acked_before_restart = len(acked)
            await asyncio.to_thread(server.start)
            restarted_at = time.monotonic()
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*workers)

            assert failures and max(failures) < 2.5, (len(failures), max(failures, default=0))
            assert successes_after_restart == set(range(20))
            assert len(acked) > acked_before_restart > 0
            stored = await _stored_values(server.port, list(acked))
            assert stored == acked  # every acknowledged write survived the SIGKILL
            for task in range(20):
                listed = set(await cache.index_members(f"w{task}"))
                assert {key for key in acked if key.startswith(f"t{task}:")} <= listed


async def _stored_values(port: int, keys: list[str]) -> dict[str, bytes]:
    client = Redis(port=port)
    try:
        values = [await client.hget(f"ss:n:d:{key}", "v") for key in keys]
    finally:
        await client.aclose()
    return {key: bytes(value) for key, value in zip(keys, values, strict=True) if value is not None}


async def test_pool_is_bounded_shared_and_leak_free(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        raw = Redis(port=server.port)
        settings = redis.RedisSettings(port=server.port, host="127.0.0.1", max_connections=5)
        caches = [redis.Cache(settings=settings, namespace=f"n{i}") for i in range(4)]

        async def work(task: int) -> int:
            cache = caches[task % len(caches)]
            for i in range(50):  # 4 operations per round: 50 tasks x 50 rounds x 4 = 10,000
                key = f"k{task}:{i}"
                await cache.compare_and_set(key, b"v", expected_version=0, ttl=30, indexes=["u"])
                assert await cache.get(key) == b"v"
                await cache.set(key, b"w", ttl=30)
                assert await cache.delete(key)
            return 200

        async with sampling_clients(raw, interval=0.005) as clients:
            total = sum(await asyncio.gather(*(work(task) for task in range(50))))
        assert total == 10_000
        assert 1 <= clients.peak <= 5, clients.peak
        assert len({id(cache._connected()[0]) for cache in caches}) == 1  # one shared pool
        for cache in caches:
            await cache.close()
        assert len(await raw.client_list()) == clients.baseline
        await raw.aclose()


async def test_health_report(tmp_path: Path) -> None:
    with running_redis(tmp_path, "--requirepass", "hunter2") as server:
        url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
        async with redis.Cache.from_url(url, namespace="n") as cache:
            report = await cache.health()
            assert report["available"] is True and report["backend"] == "redis"
            assert report["role"] == "master" and report["version"].startswith("7.")
            assert report["used_memory"] > 0 and 0 <= report["latency_ms"] < 1000
            assert (
                report["mode"] == "standalone" and report["address"] == f"redis://127.0.0.1:{server.port}/0"
            )
            assert "hunter2" not in json.dumps(report)  # JSON-safe, and no secret
        server.stop()
        async with redis.Cache.from_url(url, socket_connect_timeout=0.5, retry_attempts=0) as cache:
            down = await cache.health()
        assert down["available"] is False and "hunter2" not in json.dumps(down)
