"""RedisStorage against the shared Redis (db 10, a private key prefix per test, never flushed)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from serverless_sessions.errors import CorruptSessionError, StorageUnavailableError
from serverless_sessions.storage.legacy import RedisStorage
from tests.test_legacy_contract import (
    REDIS_DB,
    new_state,
    original_document,
    original_payload,
    quietly,
    redis_config,
    redis_prefix,
)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with redis_prefix() as value:
        yield value


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    await client.ping()  # no Redis: the test fails here, it does not skip
    yield client
    await client.aclose()


@pytest.fixture
async def storage(prefix: str) -> AsyncIterator[RedisStorage]:
    async with quietly(RedisStorage, redis_config(prefix)) as built:
        yield built


async def write_original(raw: aioredis.Redis, prefix: str, session_id: str, ttl: int, **owners: str) -> None:
    """What the original ``store_session`` did: SET EX plus both index SETs with the same TTL."""
    document = original_document(session_id, **owners)
    await raw.set(f"{prefix}session:{session_id}", original_payload(document), ex=ttl)
    for index in (f"index:user:{document['user_id']}", f"index:project:{document['project_id']}"):
        await raw.sadd(f"{prefix}{index}", session_id)
        await raw.expire(f"{prefix}{index}", ttl)


async def test_reads_the_original_layout(storage: RedisStorage, raw: aioredis.Redis, prefix: str) -> None:
    await write_original(raw, prefix, "0123456789abcdef", 600)
    await write_original(raw, prefix, "with:colons:id", 600, user_id="bob", project_id="proj-2")
    stored = await storage.load_session("0123456789abcdef")
    assert stored is not None and stored.state.revision == 1
    assert stored.expires_at is not None
    assert stored.state.last_activity.isoformat() == "2025-10-28T09:30:00.123456+00:00"
    assert sorted(await storage.list_sessions()) == ["0123456789abcdef", "with:colons:id"]
    assert await storage.list_sessions(user_id="bob") == ["with:colons:id"]
    assert await storage.list_sessions(project_id="proj-1") == ["0123456789abcdef"]
    assert await storage.delete_session("with:colons:id") is True
    assert await raw.smembers(f"{prefix}index:user:bob") == set()


async def test_writes_the_original_layout(storage: RedisStorage, raw: aioredis.Redis, prefix: str) -> None:
    state = new_state("layout-1", user_id="ü", project_id="p")
    await storage.store_session(state, ttl_seconds=300)
    data = await raw.get(f"{prefix}session:layout-1")
    assert json.loads(gzip.decompress(data)) == {**state.to_dict(), "revision": 1}
    assert 299_000 < await raw.pttl(f"{prefix}session:layout-1") <= 300_000
    assert await raw.smembers(f"{prefix}index:user:ü") == {b"layout-1"}
    assert await raw.smembers(f"{prefix}index:project:p") == {b"layout-1"}
    keys = sorted([key async for key in raw.scan_iter(match=f"{prefix}*")])
    assert keys == sorted(
        f"{prefix}{name}".encode() for name in ("session:layout-1", "index:user:ü", "index:project:p")
    )


async def test_index_sets_never_expire_before_their_members(
    storage: RedisStorage, raw: aioredis.Redis, prefix: str
) -> None:
    index = f"{prefix}index:user:alice"
    await storage.store_session(new_state(), ttl_seconds=600)
    await storage.store_session(new_state(), ttl_seconds=30)  # the original shortened the index here
    assert await raw.pttl(index) > 590_000
    keep = new_state()
    await storage.store_session(keep, ttl_seconds=10)
    keep.metadata = {"n": 2}
    await storage.store_session(keep)  # keeps its TTL; the index keeps its longer one
    assert await raw.pttl(index) > 590_000
    await storage.store_session(new_state(), ttl_seconds=None)  # default TTL: a day
    assert await raw.pttl(index) > 86_000_000
    forever = quietly(RedisStorage, redis_config(prefix, default_ttl_seconds=None))
    async with forever:
        await forever.store_session(new_state())
    assert await raw.pttl(index) == -1
    await storage.store_session(new_state(), ttl_seconds=5)
    assert await raw.pttl(index) == -1


async def test_update_keeps_the_exact_ttl(storage: RedisStorage, raw: aioredis.Redis, prefix: str) -> None:
    state = new_state()
    await storage.store_session(state, ttl_seconds=100)
    await asyncio.sleep(0.3)
    state.metadata = {"n": 2}
    await storage.store_session(state)
    assert 98_000 < await raw.pttl(f"{prefix}session:{state.session_id}") < 99_800


async def test_cleanup_prunes_index_entries_of_vanished_sessions(
    storage: RedisStorage, raw: aioredis.Redis, prefix: str
) -> None:
    await write_original(raw, prefix, "a1", 600)
    await raw.sadd(f"{prefix}index:user:alice", "ghost-1", "ghost-2")
    await raw.sadd(f"{prefix}index:project:proj-1", "ghost-1")
    assert await storage.list_sessions(user_id="alice") == ["a1"]
    assert await storage.cleanup_expired_sessions() == 2
    assert await raw.smembers(f"{prefix}index:user:alice") == {b"a1"}
    assert await raw.smembers(f"{prefix}index:project:proj-1") == {b"a1"}


async def test_listing_never_uses_keys(storage: RedisStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("KEYS blocks the server")

    monkeypatch.setattr(aioredis.Redis, "keys", forbidden)
    await storage.store_session(new_state(), ttl_seconds=60)
    assert len(await storage.list_sessions()) == 1
    assert await storage.cleanup_expired_sessions() == 0


async def test_glob_characters_in_the_prefix_are_literal(raw: aioredis.Redis, prefix: str) -> None:
    globby = f"{prefix}a*[x]?:"
    await raw.set(f"{prefix}a-other-xy:session:theirs", b"x", ex=60)  # the unescaped glob matches it
    async with quietly(RedisStorage, redis_config(globby)) as storage:
        await storage.store_session(new_state("mine"), ttl_seconds=60)
        assert await storage.list_sessions() == ["mine"]


async def test_corrupt_payload_names_the_key(storage: RedisStorage, raw: aioredis.Redis, prefix: str) -> None:
    await raw.set(f"{prefix}session:bad", b"not gzip", ex=60)
    with pytest.raises(CorruptSessionError, match="session:bad"):
        await storage.retrieve_session("bad")
    assert await storage.delete_session("bad") is True


async def test_unreachable_redis_is_unavailable_and_hides_the_password() -> None:
    secret = "hunter2-never-shown"
    config = {"host": "127.0.0.1", "port": 1, "password": secret, "socket_timeout": 0.5}
    async with quietly(RedisStorage, config) as storage:
        with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1:1/0") as caught:
            await storage.retrieve_session("abc")
        assert secret not in str(caught.value)
        assert caught.value.__cause__ is not None
        assert await storage.is_available() is False
        assert storage.describe()["password_set"] is True
        assert secret not in repr(storage.describe()) and secret not in repr(storage)
