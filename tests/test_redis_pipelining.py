"""Auto-pipelining of the Redis adapter, observed from a real server (a private redis-server).

Concurrent calls on one cache must share a connection and a write; each caller must get its
own reply or its own error, whatever happens to the others in the same batch.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from serverless_sessions.adapters.cache import redis
from serverless_sessions.errors import StorageError, StorageUnavailableError
from tests.redis_clients import sampling_clients
from tests.redis_servers import RedisProcess, running_redis


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with running_redis(tmp_path_factory.mktemp("redis")) as process:
        yield process


@pytest.fixture
async def raw(server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=server.port)
    yield client
    await client.aclose()


@pytest.fixture
async def cache(server: RedisProcess) -> AsyncIterator[redis.Cache]:
    prefix = f"p{uuid.uuid4().hex[:12]}"
    async with redis.Cache.from_url(server.url, namespace="ns", key_prefix=prefix, retry_attempts=0) as made:
        yield made


async def fill(cache: redis.Cache, count: int) -> dict[str, bytes]:
    values = {f"k{i}": f"value-{i}".encode() for i in range(count)}
    await asyncio.gather(*(cache.set(key, value, ttl=60) for key, value in values.items()))
    return values


async def counter(raw: aioredis.Redis, field: str) -> int:
    return int((await raw.info("stats"))[field])


async def test_concurrent_calls_share_one_connection_and_write(
    cache: redis.Cache, raw: aioredis.Redis
) -> None:
    values = await fill(cache, 50)
    connections = await counter(raw, "total_connections_received")
    reads = await counter(raw, "total_reads_processed")
    got = await asyncio.gather(*(cache.get(key) for key in values))
    assert got == list(values.values())
    assert await counter(raw, "total_connections_received") == connections  # no new connection
    # 50 commands (and the INFO in between) reached the server in a handful of socket reads.
    assert await counter(raw, "total_reads_processed") - reads <= 5


async def test_a_failing_command_fails_only_its_caller(cache: redis.Cache, raw: aioredis.Redis) -> None:
    values = await fill(cache, 20)
    await raw.set(f"{cache.settings.key_prefix}:ns:d:wrong", b"a string, not a hash")
    keys = [*values, "wrong", *values]
    results: list[Any] = await asyncio.gather(*(cache.get(key) for key in keys), return_exceptions=True)
    error = results.pop(len(values))
    assert isinstance(error, StorageError) and "WRONGTYPE" in str(error) and "'wrong'" in str(error)
    assert results == [*values.values(), *values.values()]


async def test_a_caller_giving_up_does_not_shift_the_replies_of_others(
    cache: redis.Cache, raw: aioredis.Redis
) -> None:
    values = await fill(cache, 30)
    await raw.client_pause(200)  # replies wait, so the cancellations land while in flight
    tasks = {key: asyncio.create_task(cache.get(key)) for key in values}
    await asyncio.sleep(0.05)
    for key in list(values)[::3]:
        tasks.pop(key).cancel()
    got = await asyncio.gather(*tasks.values())
    assert got == [values[key] for key in tasks]
    # The connection the cancelled callers used is still in step with its replies.
    assert await asyncio.gather(*(cache.get(key) for key in values)) == list(values.values())


async def test_a_lost_connection_fails_its_batch_then_calls_recover(
    cache: redis.Cache, raw: aioredis.Redis
) -> None:
    values = await fill(cache, 10)
    await raw.client_pause(300)
    tasks = [asyncio.create_task(cache.get(key)) for key in values]
    await asyncio.sleep(0.05)
    await raw.client_kill_filter(_type="normal", skipme=True)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, StorageUnavailableError) for result in results), results
    await raw.client_unpause()
    assert await asyncio.gather(*(cache.get(key) for key in values)) == list(values.values())


async def test_writes_survive_a_flushed_script_cache(cache: redis.Cache, raw: aioredis.Redis) -> None:
    await cache.compare_and_set("k", b"1", expected_version=0, ttl=60, indexes=["u"])
    await raw.script_flush()  # as after a restart or a failover: the server forgot the scripts
    entries = await asyncio.gather(
        *(cache.compare_and_set(f"n{i}", b"v", expected_version=0, ttl=60, indexes=["u"]) for i in range(5))
    )
    assert [entry.version for entry in entries] == [1] * 5
    assert await cache.index_members("u") == ["k", "n0", "n1", "n2", "n3", "n4"]


async def test_a_cancelled_lone_call_leaves_the_link_in_step_and_no_error_unread(
    cache: redis.Cache, raw: aioredis.Redis
) -> None:
    values = await fill(cache, 3)
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        await raw.client_pause(300)
        lone = asyncio.create_task(cache.get("k0"))
        await asyncio.sleep(0.05)
        # A lone call is sent by its caller's own task: cancelling it interrupts the exchange.
        clients = await raw.client_list()
        assert any(client["cmd"] == "hget" for client in clients), clients
        lone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lone
        await raw.client_unpause()
        assert await asyncio.gather(*(cache.get(key) for key in values)) == list(values.values())
        assert await cache.get("k1") == values["k1"]
        gc.collect()  # a future holding an error nobody read would be reported here
        assert unhandled == []
    finally:
        loop.set_exception_handler(None)


async def test_a_kept_connection_the_server_closed_is_replaced_before_use(
    cache: redis.Cache, raw: aioredis.Redis
) -> None:
    values = await fill(cache, 3)
    assert await cache.get("k0") == values["k0"]  # its connection is kept for the next call
    connected = await counter(raw, "total_connections_received")
    await raw.client_kill_filter(_type="normal", skipme=True)  # as a server timeout would
    await asyncio.sleep(0.05)  # the loop sees the connection end
    # No retries in this cache: the dead connection must be noticed before anything is sent.
    assert await cache.get("k1") == values["k1"]
    assert await counter(raw, "total_connections_received") == connected + 1
    assert await cache.get("k2") == values["k2"]
    assert await counter(raw, "total_connections_received") == connected + 1  # kept again


async def test_the_kept_connection_counts_within_max_connections(
    server: RedisProcess, raw: aioredis.Redis
) -> None:
    async with (
        sampling_clients(raw) as clients,
        redis.Cache.from_url(
            server.url,
            namespace="ns",
            key_prefix=f"p{uuid.uuid4().hex[:12]}",
            max_connections=2,
            retry_attempts=0,
        ) as cache,
    ):
        values = await fill(cache, 20)
        keys = list(values)

        async def mixed(i: int) -> Any:
            # Single commands go through the pipeline (which keeps a connection); batches of
            # reads and pings take theirs from the pool.
            if i % 3 == 0:
                return [entry and entry.value for entry in await cache.get_entries(keys[:2])]
            if i % 3 == 1:
                await cache.ping()
                return None
            return await cache.get(keys[i % 20])

        for _ in range(5):
            got = await asyncio.gather(*(mixed(i) for i in range(60)))
            assert got[0] == [values["k0"], values["k1"]]
            assert got[2] == values[keys[2]]
            await asyncio.sleep(0)
    assert 1 <= clients.peak <= 2, clients.peak
    assert len(await raw.client_list()) == clients.baseline  # closing gave the kept one back too
