"""Redis Cluster: the whole cache contract, plus slot spreading and race hygiene, on 3 masters.

The contract tests are imported from ``tests/contract`` and run here with the ``cache`` fixture
below (a cluster-backed adapter), so the cluster passes exactly what every adapter passes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterPipeline

from serverless_sessions import ACBCacheStorage, SessionState
from serverless_sessions.adapters.cache import redis
from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.errors import SessionConflictError, StorageError, StorageUnavailableError
from serverless_sessions.listing import list_page
from tests.conftest import unique_namespace
from tests.contract import test_cache_contract as contract
from tests.redis_servers import RedisProcess, running_cluster, wait_until

# Collect every contract test in this module too; they use the ``cache`` fixture defined here.
globals().update({name: test for name, test in vars(contract).items() if name.startswith("test_")})


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


def cluster_url(nodes: list[RedisProcess]) -> str:
    return f"redis://127.0.0.1:{nodes[1].port}/0?cluster=true"


async def keys_per_node(nodes: list[RedisProcess], prefix: str) -> list[list[bytes]]:
    found = []
    for node in nodes:
        client = Redis(port=node.port)
        found.append([key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)])
        await client.aclose()
    return found


@pytest.fixture
async def cache(nodes: list[RedisProcess]) -> AsyncIterator[CacheBase]:
    namespace = unique_namespace()
    async with redis.Cache.from_url(cluster_url(nodes), namespace=namespace, key_prefix=namespace) as built:
        yield built
    for node, keys in zip(nodes, await keys_per_node(nodes, namespace), strict=True):
        if keys:
            client = Redis(port=node.port)
            for key in keys:  # one DEL per key: keys of one node still span slots
                await client.delete(key)
            await client.aclose()


async def test_sessions_spread_over_every_master(cache: redis.Cache, nodes: list[RedisProcess]) -> None:
    for i in range(60):
        await cache.compare_and_set(
            f"sess:{i}", b"v", expected_version=0, ttl=60, indexes=["user:u1", f"project:p{i % 3}"]
        )
    per_node = await keys_per_node(nodes, cache.settings.key_prefix)
    data = [[k for k in keys if b":d:" in k] for keys in per_node]
    assert all(len(keys) >= 5 for keys in data), [len(keys) for keys in data]
    assert sum(map(len, data)) == 60
    assert await cache.index_members("user:u1") == sorted(f"sess:{i}" for i in range(60))
    assert len(await cache.index_members("project:p1")) == 20
    assert len([key async for key in cache.scan_keys(batch_size=7)]) == 60
    report = await cache.health()
    assert report["available"] and report["cluster_state"] == "ok" and len(report["masters"]) == 3


async def test_racing_creators_with_different_indexes_leave_no_visible_ghost(cache: redis.Cache) -> None:
    async def create(i: int) -> bool:
        try:
            await cache.compare_and_set(
                "contested", b"%d" % i, expected_version=0, ttl=None, indexes=[f"idx{i}"]
            )
        except SessionConflictError:
            return False
        return True

    results = await asyncio.gather(*(create(i) for i in range(10)))
    assert results.count(True) == 1
    winner = results.index(True)
    for i in range(10):
        assert await cache.index_members(f"idx{i}") == (["contested"] if i == winner else [])
    assert await cache.compare_and_delete("contested")
    for i in range(10):
        assert await cache.index_members(f"idx{i}") == []


async def test_delete_and_recreate_keeps_indexes_exact(cache: redis.Cache) -> None:
    for round_ in range(5):
        await cache.compare_and_set("k", b"v", expected_version=0, ttl=60, indexes=[f"r{round_}", "all"])
        assert await cache.index_members("all") == ["k"]
        assert await cache.index_members(f"r{round_}") == ["k"]
        if round_:
            assert await cache.index_members(f"r{round_ - 1}") == []
        assert await cache.delete("k")
    assert await cache.index_members("all") == []


async def test_concurrent_updates_keep_the_key_listed(cache: redis.Cache) -> None:
    await cache.compare_and_set("hot", b"0", expected_version=0, ttl=5, indexes=["user:h"])

    async def bump(ttl: float) -> None:
        while True:
            entry = await cache.get_entry("hot")
            assert entry is not None
            try:
                await cache.compare_and_set("hot", b"x", expected_version=entry.version, ttl=ttl)
                return
            except SessionConflictError:
                continue

    await asyncio.gather(*(bump(ttl) for ttl in (1, 30, 2, 20, 0.5, 10)))
    entry = await cache.get_entry("hot")
    assert entry is not None and entry.version == 7
    assert await cache.index_members("user:h") == ["hot"]


async def test_a_cluster_keeps_no_activity_order_and_listing_sorts(cache: redis.Cache) -> None:
    """Activity zsets live on one server only: a page is read by sorting the owner's sessions."""
    storage = ACBCacheStorage(cache, cache.namespace)
    for i in range(3):
        await storage.store_session(SessionState(session_id=f"s{i}", user_id="ann", project_id="p"))
    assert await cache.recent(None, limit=5) is None
    page = await list_page(storage, user_id="ann", project_id=None, limit=2, cursor=None)
    assert [s.session_id for s in page.sessions] == ["s2", "s1"]


def test_cluster_setting_from_url(nodes: list[RedisProcess]) -> None:
    settings = redis.Cache.from_url(cluster_url(nodes)).settings
    assert settings.cluster and settings.mode == "cluster"


async def test_scan_as_first_call_of_a_fresh_client_sees_every_master(
    cache: redis.Cache, nodes: list[RedisProcess]
) -> None:
    for i in range(30):
        await cache.set(f"k{i}", b"v", ttl=60)
    fresh = redis.Cache.from_url(
        cluster_url(nodes), namespace=cache.namespace, key_prefix=cache.settings.key_prefix
    )
    async with fresh:
        assert sorted([key async for key in fresh.scan_keys()]) == sorted(f"k{i}" for i in range(30))


@pytest.fixture
async def admins(nodes: list[RedisProcess]) -> AsyncIterator[list[Redis]]:
    """A plain client per master, for its own statistics and connections."""
    clients = [Redis(port=node.port) for node in nodes]
    yield clients
    for client in clients:
        await client.aclose()


async def fill(cache: redis.Cache, count: int) -> dict[str, bytes]:
    values = {f"k{i}": b"value-%d" % i for i in range(count)}
    await asyncio.gather(*(cache.set(key, value, ttl=60) for key, value in values.items()))
    return values


async def keys_on(node: RedisProcess, cache: redis.Cache) -> set[str]:
    """The keys of ``cache`` whose data lives on master ``node``."""
    data = f"{cache.settings.key_prefix}:{cache.namespace}:d:".encode()
    found = (await keys_per_node([node], cache.settings.key_prefix))[0]
    return {key.removeprefix(data).decode() for key in found if key.startswith(data)}


async def reads_processed(admins: list[Redis]) -> int:
    """How many times the masters read from their clients' sockets, in all."""
    return sum([int((await admin.info("stats"))["total_reads_processed"]) for admin in admins])


async def test_concurrent_calls_leave_in_one_batch_per_master(
    cache: redis.Cache, nodes: list[RedisProcess], admins: list[Redis]
) -> None:
    values = await fill(cache, 90)
    before = await reads_processed(admins)
    got = await asyncio.gather(*(cache.get(key) for key in values))
    after = await reads_processed(admins)
    assert got == list(values.values())
    # The first call leaves at once, the other 89 in one write per master, then each master
    # answers an INFO: 7 reads (a margin for a write the kernel splits), not one per call.
    assert after - before <= 1 + 3 * len(nodes)


async def test_an_error_reply_in_a_batch_fails_only_its_caller(
    cache: redis.Cache, nodes: list[RedisProcess]
) -> None:
    await asyncio.gather(*(cache.set(f"k{i}", b"v", ttl=60) for i in range(30)))
    data_key = f"{cache.settings.key_prefix}:{cache.namespace}:d:k7"
    raw = RedisCluster(host="127.0.0.1", port=nodes[0].port)
    await raw.delete(data_key)
    await raw.set(data_key, "a string, not a hash")
    await raw.aclose()
    got = await asyncio.gather(*(cache.get(f"k{i}") for i in range(30)), return_exceptions=True)
    assert isinstance(got[7], StorageError) and "WRONGTYPE" in str(got[7]), got[7]
    assert got[:7] + got[8:] == [b"v"] * 29


async def test_dropped_connections_fail_calls_typed_and_the_cache_recovers(
    cache: redis.Cache, admins: list[Redis]
) -> None:
    values = await fill(cache, 200)
    dropped = 0

    async def drop_connections() -> None:
        nonlocal dropped
        await asyncio.sleep(0)  # the reads below are on their way
        for admin in admins:
            dropped += await admin.client_kill_filter(_type="normal", skipme=True)

    for _ in range(5):
        calls = [cache.get(key) for key in values] + [cache.set(f"w{i}", b"w", ttl=60) for i in range(50)]
        outcomes, _ = await asyncio.gather(asyncio.gather(*calls, return_exceptions=True), drop_connections())
        for outcome, expected in zip(outcomes, [*values.values(), *[None] * 50], strict=True):
            assert outcome == expected or isinstance(outcome, StorageUnavailableError), repr(outcome)
        assert await asyncio.gather(*(cache.get(key) for key in values)) == list(values.values())
    assert dropped >= 5


async def test_a_master_that_stops_answering_fails_only_the_calls_it_holds(
    cache: redis.Cache, nodes: list[RedisProcess]
) -> None:
    values = await fill(cache, 60)
    stopped = nodes[0]
    on_stopped = await keys_on(stopped, cache)
    assert 0 < len(on_stopped) < len(values)
    impatient = redis.Cache.from_url(
        cluster_url(nodes),
        namespace=cache.namespace,
        key_prefix=cache.settings.key_prefix,
        socket_timeout=0.3,
        socket_connect_timeout=0.3,
        retry_attempts=0,
    )
    async with impatient:
        # The layout is known and every master has a connection before one of them stops.
        await asyncio.gather(*(impatient.get(key) for key in values))
        assert stopped.process is not None
        stopped.process.send_signal(signal.SIGSTOP)  # well within the cluster's node timeout
        try:
            outcomes = await asyncio.gather(*(impatient.get(key) for key in values), return_exceptions=True)
        finally:
            stopped.process.send_signal(signal.SIGCONT)
            # Had a loaded machine stretched the pause past the node timeout, the cluster would
            # be failing; the tests after this one need it whole.
            wait_until(
                lambda: all(b"cluster_state:ok" in n.command("CLUSTER", "INFO") for n in nodes), "cluster"
            )
    for (key, expected), outcome in zip(values.items(), outcomes, strict=True):
        if key in on_stopped:
            assert isinstance(outcome, StorageUnavailableError), (key, outcome)
        else:
            assert outcome == expected, (key, outcome)


async def outcome_of(call: Awaitable[object]) -> object:
    """What ``call`` returned, or the exception it raised."""
    try:
        return await call
    except Exception as error:
        return error


async def test_a_master_that_dies_fails_only_the_calls_it_holds(tmp_path: Path) -> None:
    """Calls to the other masters, in the same batches, are answered (no retries to hide it)."""
    with running_cluster(tmp_path) as own_nodes:  # its own cluster: this one loses a master
        dead = own_nodes[0]
        async with redis.Cache.from_url(
            cluster_url(own_nodes), namespace="n", key_prefix="dies", retry_attempts=0
        ) as cache:
            values = await fill(cache, 60)
            on_dead = await keys_on(dead, cache)
            assert 0 < len(on_dead) < len(values)
            await asyncio.gather(*(cache.get(key) for key in values))  # a connection to each master
            dead.stop(signal.SIGKILL)
            keys = list(values)

            async def reader(start: int) -> list[tuple[str, object]]:  # 10 calls, one after another
                picked = [keys[(start + 7 * step) % len(keys)] for step in range(10)]
                return [(key, await outcome_of(cache.get(key))) for key in picked]

            readers = await asyncio.gather(*(reader(start) for start in range(50)))
    for key, outcome in (pair for calls in readers for pair in calls):
        if key in on_dead:
            assert isinstance(outcome, StorageUnavailableError), (key, outcome)
        else:
            assert outcome == values[key], (key, outcome)


async def test_a_failure_inside_redis_py_is_retried_as_a_lost_connection(
    cache: redis.Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py can fail with ``AttributeError`` on a connection another task closed under it.

    Seen with an injected client, whose own retries close every connection of the client; a
    real server cannot be made to produce it on demand, so the pipeline fails once here.
    """
    values = await fill(cache, 30)
    failures = iter([AttributeError("'NoneType' object has no attribute 'writelines'")])
    execute = ClusterPipeline.execute

    async def execute_failing_once(self: ClusterPipeline, *args: Any, **kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(ClusterPipeline, "execute", execute_failing_once)
    assert await asyncio.gather(*(cache.get(key) for key in values)) == list(values.values())
    assert next(failures, None) is None  # the failure happened, and the calls were retried
