"""Erasing a user (the right to be forgotten) on every built-in adapter and on a Redis Cluster.

After ``erase_user`` nothing of the user may be left in the store -- not its sessions, not an
index entry, not an expired session waiting for a purge -- and nobody else's sessions may change.
"Nothing left" is checked on the raw store, below the adapter: every key, index row, marker,
item and sorted-set member it holds, searched for the user's name and session ids.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from serverless_sessions.adapters.cache import dynamodb, memory, postgres, redis, s3, sqlite
from serverless_sessions.adapters.cache.base import CacheBase, IndexedCache
from serverless_sessions.errors import CapabilityNotSupportedError, InvalidSessionError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.base import StoredSession
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from serverless_sessions.storage.legacy import LocalFileStorage
from tests import s3_server
from tests.cache_factories import ADAPTERS, factory
from tests.cache_factories.postgres import SHARED_URL as POSTGRES_URL
from tests.cache_factories.redis import SHARED_URL as REDIS_URL
from tests.conftest import unique_namespace
from tests.redis_servers import RedisProcess, running_cluster
from tests.test_dynamodb_adapter import raw_client as dynamodb_client
from tests.test_foreign_cache import DictCache
from tests.test_legacy_contract import local_config, quietly

Dump = Callable[[], Awaitable[str]]
SHORT_TTL_HOURS = 0.3 / 3600


@pytest.fixture(scope="module")
def cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture(params=[*ADAPTERS, "redis-cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[CacheBase, Dump]]:
    """A cache of a private store, and a function dumping that store's raw names as text."""
    name = str(request.param)
    if name == "redis-cluster":
        nodes: list[RedisProcess] = request.getfixturevalue("cluster_nodes")
        prefix = f"sstest.{unique_namespace()}"
        url = f"redis://127.0.0.1:{nodes[0].port}/0?cluster=true"
        async with redis.Cache.from_url(url, key_prefix=prefix) as cache:
            clients = [Redis(port=node.port) for node in nodes]
            try:
                yield cache, lambda: _redis_dump(clients, prefix)
                await _redis_delete(clients, prefix)
            finally:
                for client in clients:
                    await client.aclose()
        return
    async with factory(name).make_cache(tmp_path, unique_namespace()) as cache:
        yield cache, lambda: raw_dump(cache)


async def raw_dump(cache: CacheBase) -> str:
    """Every name the adapter's store holds (keys, index rows, markers...), one per line."""
    if isinstance(cache, memory.Cache):
        names = [repr(key) for key in cache._records] + [repr(item) for item in cache._indexes.items()]
        return "\n".join(names)
    if isinstance(cache, sqlite.Cache):
        with sqlite3.connect(cache.path) as connection:
            rows = connection.execute("SELECT namespace, key FROM entries").fetchall()
            rows += connection.execute("SELECT namespace, index_name, key FROM index_members").fetchall()
        return "\n".join(map(repr, rows))
    if isinstance(cache, redis.Cache):
        client = Redis.from_url(REDIS_URL)
        try:
            return await _redis_dump([client], cache.settings.key_prefix)
        finally:
            await client.aclose()
    if isinstance(cache, s3.Cache):
        async with s3_server.client() as client:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=cache.settings.bucket)
            return "\n".join([item["Key"] async for page in pages for item in page.get("Contents", [])])
    if isinstance(cache, postgres.Cache):
        schema = cache.settings.schema
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            rows = await connection.fetch(f'SELECT namespace, key FROM "{schema}".entries')
            rows += await connection.fetch(f'SELECT namespace, index_name, key FROM "{schema}".index_members')
        finally:
            await connection.close()
        return "\n".join(repr(tuple(row)) for row in rows)
    if isinstance(cache, dynamodb.Cache):
        async with dynamodb_client() as client:
            pages = client.get_paginator("scan").paginate(TableName=cache.settings.table, ConsistentRead=True)
            return "\n".join([repr(item) async for page in pages for item in page["Items"]])
    raise AssertionError(f"no raw dump for {type(cache).__name__}: add one for the new adapter")


async def _redis_dump(clients: list[Redis], prefix: str) -> str:
    """Key names under ``prefix`` and the members of every sorted set there (indexes, expiry)."""
    names: list[str] = []
    for client in clients:
        async for key in client.scan_iter(match=f"{prefix}:*", count=500):
            names.append(key.decode())
            if await client.type(key) == b"zset":
                names += [member.decode() for member in await client.zrange(key, 0, -1)]
    return "\n".join(names)


async def _redis_delete(clients: list[Redis], prefix: str) -> None:
    for client in clients:
        for key in [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]:
            await client.delete(key)  # one key per DEL: a node's keys span slots


def someone(name: str) -> str:
    """A user id no other test uses, so finding it in a raw dump means it is really this one's."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def snapshot(manager: ServerlessSessionManager, ids: list[str]) -> list[StoredSession | None]:
    return [await manager.load_session(session_id) for session_id in ids]


async def test_erase_leaves_nothing_of_the_user_and_touches_nobody_else(
    store: tuple[CacheBase, Dump],
) -> None:
    cache, dump = store
    victim, other, neighbour = someone("victim"), someone("other"), someone("neighbour")
    async with ACBCacheStorage(cache, namespace=unique_namespace()) as storage:
        manager = ServerlessSessionManager(storage)
        doomed = [
            await manager.create_session(victim, project, {"secret": "forget me"}, ttl_hours=1)
            for project in ("shared", "shared", "own")
        ]
        expired = await manager.create_session(victim, "shared", ttl_hours=SHORT_TTL_HOURS)
        kept = [
            await manager.create_session(other, "shared", {"mine": True}, ttl_hours=1),
            await manager.create_session(neighbour, "own", fields={"permissions": ["read"]}, ttl_hours=None),
        ]
        await manager.touch(kept[0])  # a revision above 1 must survive too
        before = await snapshot(manager, kept)
        await asyncio.sleep(1.2)  # ``expired`` is now invisible but not purged

        rehearsal = await manager.erase_user(victim, dry_run=True)
        assert (rehearsal.dry_run, rehearsal.count, rehearsal.session_ids) == (True, 3, sorted(doomed))
        assert await manager.list_user_sessions(victim) == sorted(doomed)

        erased = await manager.erase_user(victim)
        assert (erased.dry_run, erased.count, erased.session_ids) == (False, 3, sorted(doomed))

        assert await manager.list_user_sessions(victim) == []
        assert isinstance(cache, IndexedCache)
        assert await cache.index_members(f"user:{victim}", namespace=storage.namespace) == []
        assert await manager.list_project_sessions("shared") == [kept[0]]
        assert await manager.list_project_sessions("own") == [kept[1]]
        raw = await dump()
        for trace in (victim, *doomed, expired):
            assert trace not in raw, f"{trace!r} is still in the store"
        for trace in (other, neighbour, *kept):
            assert trace in raw  # the dump sees what is there: its silence above means something
        assert await snapshot(manager, kept) == before

        again = await manager.erase_user(victim)
        assert (again.count, again.session_ids) == (0, [])


class _RacingStorage(ACBCacheStorage):
    """A storage on which the user creates one more session during the erase's first round."""

    manager: ServerlessSessionManager
    user: str
    late: list[str]

    async def delete_session(self, session_id: str) -> bool:
        if not self.late:
            self.late.append(await self.manager.create_session(self.user, "p", ttl_hours=1))
        return await super().delete_session(session_id)


async def test_a_session_created_during_the_erase_is_erased_by_a_later_round(tmp_path: Path) -> None:
    async with sqlite.Cache(tmp_path / "race.db") as cache, _RacingStorage(cache) as storage:
        manager = ServerlessSessionManager(storage)
        storage.manager, storage.user, storage.late = manager, "racer", []
        first = await manager.create_session("racer", "p", ttl_hours=1)
        erased = await manager.erase_user("racer")
        assert erased.session_ids == sorted([first, *storage.late]) and erased.count == 2
        assert await manager.list_user_sessions("racer") == []


async def test_a_legacy_storage_is_erased_too(tmp_path: Path) -> None:
    async with quietly(LocalFileStorage, local_config(tmp_path)) as storage:
        manager = ServerlessSessionManager(storage)
        gone = [await manager.create_session("ann", "p", ttl_hours=1) for _ in range(2)]
        stays = await manager.create_session("ben", "p", ttl_hours=1)
        assert (await manager.erase_user("ann")).session_ids == sorted(gone)
        assert await manager.list_user_sessions("ann") == []
        assert await manager.list_project_sessions("p") == [stays]


async def test_a_store_that_cannot_list_by_user_refuses_before_deleting_anything() -> None:
    foreign = DictCache()
    async with ACBCacheStorage(foreign) as storage:
        manager = ServerlessSessionManager(storage)
        kept = await manager.create_session("ann", "p", ttl_hours=1)
        with pytest.raises(CapabilityNotSupportedError, match="list_sessions"):
            await manager.erase_user("ann")
        assert await manager.get_session(kept) is not None


async def test_a_bad_user_id_is_refused_by_name(tmp_path: Path) -> None:
    async with sqlite.Cache(tmp_path / "bad.db") as cache, ACBCacheStorage(cache) as storage:
        with pytest.raises(InvalidSessionError, match="user id"):
            await ServerlessSessionManager(storage).erase_user("")
