"""The Redis adapter's message log: kept inside each session's hash, on one server and in a cluster.

The :class:`AppendableCache` contract (``tests/contract/test_log_contract.py``) is imported and
run here on a private 3-master Redis Cluster, with the ``cache`` fixture below. The other tests
show what only Redis can: the log adds no key of its own, expires and is deleted with its hash,
moves the index and expiry entries when an append changes the expiry, rides the auto-pipeline,
outgrows Lua's argument limits, and follows the master through a Sentinel failover.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from serverless_sessions.adapters.cache import redis
from serverless_sessions.adapters.cache.base import KEEP_TTL, CacheBase, LogSlice
from serverless_sessions.errors import CorruptSessionError, SessionTooLargeError
from tests.contract import test_log_contract as log_contract
from tests.redis_servers import RedisProcess, running_cluster, running_redis, running_sentinel, wait_until

# The contract's tests, run on the cluster (the capability test is per adapter: not here).
globals().update(
    {
        name: test
        for name, test in vars(log_contract).items()
        if name.startswith("test_") and name != "test_every_adapter_but_s3_is_appendable"
    }
)

HEAD = b'{"id":"head"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with running_redis(tmp_path_factory.mktemp("redis")) as process:
        yield process


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@dataclass
class Deployment:
    """A cache over a private deployment, with raw clients to look under it."""

    url: str
    cache: redis.Cache
    router: Any  # a raw client reaching any key (a RedisCluster in a cluster)
    ports: list[int]  # every master, for SCAN

    @property
    def prefix(self) -> str:
        return self.cache.settings.key_prefix

    def data_key(self, key: str) -> str:
        return f"{self.prefix}:{self.cache.namespace}:d:{key}"

    async def raw_keys(self) -> list[str]:
        """Every Redis key under this deployment's prefix, on every master."""
        found = []
        for port in self.ports:
            client = Redis(port=port)
            found += [key.decode() async for key in client.scan_iter(match=f"{self.prefix}:*")]
            await client.aclose()
        return sorted(found)

    async def fields(self, key: str) -> set[str]:
        return {field.decode() for field in await self.router.hkeys(self.data_key(key))}

    async def commands(self, name: str) -> int:
        """Calls of command ``name`` so far (one server only)."""
        stats = await self.router.info("commandstats")
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    async def stat(self, name: str) -> int:
        return int((await self.router.info("stats"))[name])


async def open_deployment(url: str, ports: list[int], *, cluster: bool) -> Deployment:
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    cache = redis.Cache.from_url(url, namespace=namespace, key_prefix=namespace)
    router = RedisCluster(host="127.0.0.1", port=ports[0]) if cluster else Redis(port=ports[0])
    return Deployment(url, cache, router, ports)


async def close_deployment(deployment: Deployment) -> None:
    await deployment.cache.close()
    for port in deployment.ports:  # one DEL per key: keys of one node still span slots
        client = Redis(port=port)
        async for key in client.scan_iter(match=f"{deployment.prefix}:*"):
            await client.delete(key)
        await client.aclose()
    await deployment.router.aclose()


def cluster_url(nodes: list[RedisProcess]) -> str:
    return f"redis://127.0.0.1:{nodes[0].port}/0?cluster=true"


@pytest.fixture
async def cache(nodes: list[RedisProcess]) -> AsyncIterator[CacheBase]:
    """The contract's cache: a cluster-backed adapter."""
    deployment = await open_deployment(cluster_url(nodes), [n.port for n in nodes], cluster=True)
    yield deployment.cache
    await close_deployment(deployment)


@pytest.fixture
async def single(server: RedisProcess) -> AsyncIterator[Deployment]:
    deployment = await open_deployment(server.url, [server.port], cluster=False)
    yield deployment
    await close_deployment(deployment)


@pytest.fixture(params=["server", "cluster"])
async def deployment(
    request: pytest.FixtureRequest, server: RedisProcess, nodes: list[RedisProcess]
) -> AsyncIterator[Deployment]:
    if request.param == "server":
        made = await open_deployment(server.url, [server.port], cluster=False)
    else:
        made = await open_deployment(cluster_url(nodes), [n.port for n in nodes], cluster=True)
    yield made
    await close_deployment(made)


async def write(
    cache: redis.Cache, key: str, items: list[bytes], *, ttl: float | None = 60, indexes: tuple[str, ...] = ()
) -> None:
    await cache.write_with_log(
        key, HEAD, log=items, value_weight=len(HEAD), log_weight=sum(map(len, items)),
        expected_version=0, ttl=ttl, indexes=indexes,
    )  # fmt: skip


async def append(cache: redis.Cache, key: str, items: list[bytes], **options: Any) -> int:
    options.setdefault("ttl", 60)
    appended = await cache.append(key, items, weight=sum(map(len, items)), touched_at=1.5, **options)
    return appended.length


async def log_of(cache: redis.Cache, key: str, **window: int) -> LogSlice:
    found = await cache.get_with_log(key, **window)
    assert found is not None, f"{key!r} should be live"
    return found[1]


async def test_the_log_is_fields_of_the_session_hash_not_keys(deployment: Deployment) -> None:
    cache = deployment.cache
    await write(cache, "s", [b"a", b"b"], indexes=("user:alice",))
    await append(cache, "s", [b"c"])
    ns = cache.namespace
    zsets = [f"{deployment.prefix}:{ns}:i:user:alice", f"{deployment.prefix}:{ns}:x"]
    assert await deployment.raw_keys() == sorted([deployment.data_key("s"), *zsets])
    assert {"l:0", "l:1", "l:2", "ll", "lw"} <= await deployment.fields("s")
    assert [key async for key in cache.scan_keys()] == ["s"]
    assert await cache.index_members("user:alice") == ["s"]
    assert await cache.delete("s")
    assert await deployment.raw_keys() == []  # the log went with the hash, the zsets emptied


async def test_expiry_removes_the_log_with_its_hash(deployment: Deployment) -> None:
    cache = deployment.cache
    # A loaded machine took 356 ms between an append and the read below, and over 300 ms
    # between a write and the append after it (both on a cluster): the margins are seconds.
    await write(cache, "s", [b"a"], ttl=1.5, indexes=("user:bob",))
    await append(cache, "s", [b"b"], ttl=4.0)  # an append's ttl is the whole entry's
    assert 1500 < await deployment.router.pttl(deployment.data_key("s")) <= 4000  # set by it
    await asyncio.sleep(4.3)
    assert not await deployment.router.exists(deployment.data_key("s"))
    assert await cache.get_with_log("s") is None
    assert await cache.purge_expired() == ["s"]
    assert await deployment.raw_keys() == []


async def test_an_append_moves_the_index_and_expiry_entries_with_the_expiry(
    deployment: Deployment,
) -> None:
    # The entries are scored by expiry: left at the write's, a purge would drop a live key.
    # The write's ttl leaves a loaded machine time to append before the key expires.
    cache = deployment.cache
    await write(cache, "s", [b"a"], ttl=1.0, indexes=("user:carol",))
    await append(cache, "s", [b"b"], ttl=60)
    await asyncio.sleep(1.5)
    assert await cache.purge_expired() == []
    assert await cache.index_members("user:carol") == ["s"]
    assert (await log_of(cache, "s")).items == [b"a", b"b"]
    await append(cache, "s", [b"c"], ttl=KEEP_TTL)
    assert await cache.index_members("user:carol") == ["s"]


async def test_twenty_appenders_through_one_cache_lose_nothing(deployment: Deployment) -> None:
    cache = deployment.cache
    await write(cache, "s", [], indexes=("user:dave",))
    cluster = len(deployment.ports) > 1
    if not cluster:
        scripts = await deployment.commands("evalsha")
        connections = await deployment.stat("total_connections_received")
        reads = await deployment.stat("total_reads_processed")

    async def appender(a: int) -> None:
        for i in range(50):
            await append(cache, "s", [f"{a}:{i}".encode()])

    await asyncio.gather(*map(appender, range(20)))
    entry, log = await cache.get_with_log("s") or pytest.fail("'s' should be live")
    assert (entry.version, log.length, len(log.items)) == (1001, 1000, 1000)
    assert len(set(log.items)) == 1000
    for a in range(20):
        assert [item for item in log.items if item.startswith(f"{a}:".encode())] == [
            f"{a}:{i}".encode() for i in range(50)
        ]
    if not cluster:
        # One script call per append (the key's indexes are guessed right: a wrong guess costs
        # a second call each), sent in shared batches. The burst's first call leaves at once,
        # on the connection already open, and the batch behind it on one more. On a machine
        # loaded enough for a batch to miss its deadline, its calls are sent once more on a new
        # connection (a heavily loaded run saw one such retry); their append ids keep them from
        # applying twice. Without a retry, both counts are exact.
        retried = await deployment.commands("evalsha") - scripts - 1000
        assert 0 <= retried <= 50, retried
        new_connections = await deployment.stat("total_connections_received") - connections
        assert new_connections <= 1 + retried, (new_connections, retried)
        assert await deployment.stat("total_reads_processed") - reads < 250 + retried


async def test_a_fresh_cache_appends_after_reading_in_one_script_call(single: Deployment) -> None:
    await write(single.cache, "s", [b"a"], indexes=("user:erin", "project:p"))
    async with redis.Cache.from_url(
        single.url, namespace=single.cache.namespace, key_prefix=single.prefix
    ) as fresh:
        assert (await log_of(fresh, "s")).items == [b"a"]
        before = await single.commands("evalsha")
        assert await append(fresh, "s", [b"b"]) == 2
        assert await single.commands("evalsha") - before == 1
    async with redis.Cache.from_url(
        single.url, namespace=single.cache.namespace, key_prefix=single.prefix
    ) as blind:
        # It never saw the key: its first guess of the key's indexes is wrong, then corrected.
        assert await append(blind, "s", [b"c"]) == 3
    assert await single.cache.index_members("project:p") == ["s"]
    assert (await log_of(single.cache, "s")).items == [b"a", b"b", b"c"]


async def test_plain_writes_touch_no_log_field(single: Deployment) -> None:
    # compare_and_set and set cost what they cost before logs existed; what they leave is
    # also what entries written before logs existed look like.
    cache = single.cache
    await cache.compare_and_set("s", b"12345", expected_version=0, ttl=60)
    assert await single.fields("s") == {"v", "n", "g", "i", "e"}
    assert await log_of(cache, "s") == LogSlice([], 0, 0, 0)
    with pytest.raises(SessionTooLargeError) as refused:
        await append(cache, "s", [b"xy"], limit=6)
    assert refused.value.size == 7  # the value weighs its 5 bytes
    await append(cache, "s", [b"xy"], limit=7)
    with_log = await single.fields("s")
    await cache.compare_and_set("s", b"123", expected_version=2, ttl=60)
    await cache.set("s", b"1234", ttl=60)
    assert await single.fields("s") == with_log
    entry, log = await cache.get_with_log("s") or pytest.fail("'s' should be live")
    assert (entry.value, entry.touched_at, log) == (b"1234", None, LogSlice([b"xy"], 0, 1, 2))
    assert (await append(cache, "s", [b"z"], limit=7)) == 2  # 4 + 2 + 1


async def test_logs_longer_than_luas_argument_limits(single: Deployment) -> None:
    # Lua's unpack() stops at a few thousand values: long logs are written and read in batches.
    cache = single.cache
    items = [b"%d" % i for i in range(12_000)]
    await write(cache, "s", items)
    assert (await log_of(cache, "s")).items == items
    assert await append(cache, "s", items[:9_000]) == 21_000
    assert (await log_of(cache, "s", last=3)).items == [b"8997", b"8998", b"8999"]
    await cache.write_with_log(
        "s", HEAD, log=[b"x", b"y"], value_weight=1, log_weight=2, expected_version=2, ttl=60
    )
    assert sorted(f for f in await single.fields("s") if f.startswith("l:")) == ["l:0", "l:1"]
    assert await log_of(cache, "s") == LogSlice([b"x", b"y"], 0, 2, 2)


async def test_a_missing_item_is_reported_not_skipped(single: Deployment) -> None:
    await write(single.cache, "s", [b"a", b"b", b"c"])
    await single.router.hdel(single.data_key("s"), "l:1")  # only a hand edit can do this
    with pytest.raises(CorruptSessionError, match=r"'s'.* position 1$"):
        await single.cache.get_with_log("s")
    assert (await log_of(single.cache, "s", last=1)).items == [b"c"]


async def test_the_log_follows_the_master_through_a_sentinel_failover(tmp_path: Path) -> None:
    with running_sentinel(tmp_path) as setup:
        settings = {"sentinel_check_interval": 0.2, "socket_timeout": 1}
        async with redis.Cache.from_url(setup.url, namespace="n", **settings) as cache:
            await write(cache, "s", [b"a"], indexes=("user:f",))
            await append(cache, "s", [b"b"])
            wait_until(
                lambda: setup.replica.command("HGET", "ss:n:d:s", "ll") == b"$1\r\n2\r\n", "replication"
            )
            old_port = setup.master_port()
            assert setup.sentinel.command("SENTINEL", "FAILOVER", setup.name).startswith(b"+OK")
            wait_until(lambda: setup.master_port() != old_port, "failover", timeout=20)
            await asyncio.sleep(0.5)
            assert await append(cache, "s", [b"c"]) == 3  # the new master, its script cache empty
            assert (await log_of(cache, "s")).items == [b"a", b"b", b"c"]
            assert await cache.index_members("user:f") == ["s"]


BUSY = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start > 600000
"""


async def test_an_append_retried_after_a_lost_reply_lands_once(single: Deployment) -> None:
    # The server is busy past the call's socket timeout: the first attempt's append is queued
    # there and runs later, while the client, having heard nothing, retries on a new connection.
    await write(single.cache, "s", [b"a"])
    async with redis.Cache.from_url(
        single.url, namespace=single.cache.namespace, key_prefix=single.prefix, socket_timeout=0.2
    ) as impatient:
        assert (await log_of(impatient, "s")).length == 1
        busy = asyncio.create_task(single.router.eval(BUSY, 0))
        await asyncio.sleep(0.1)
        assert await append(impatient, "s", [b"b"]) == 2
        await busy
    entry, log = await single.cache.get_with_log("s") or pytest.fail("'s' should be live")
    assert (entry.version, log.items) == (2, [b"a", b"b"])
