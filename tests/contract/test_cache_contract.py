"""The cache-adapter contract, proven on every built-in adapter.

A new adapter proves itself by adding a factory to ``tests/cache_factories`` and passing this.
"""

from __future__ import annotations

import asyncio

import pytest

from serverless_sessions.adapters.cache.base import (
    KEEP_TTL,
    AtomicCache,
    CacheBase,
    IndexedCache,
    PingableCache,
    ScannableCache,
)
from serverless_sessions.errors import ClosedError, InvalidSessionIdError, SessionConflictError


async def test_set_get_delete_exists_round_trip(cache: CacheBase) -> None:
    assert await cache.get("k1") is None
    assert await cache.get("k1", default=b"d") == b"d"
    assert not await cache.exists("k1")
    await cache.set("k1", b"\x00value\xff")
    assert await cache.get("k1") == b"\x00value\xff"
    assert await cache.exists("k1")
    assert await cache.delete("k1") is True
    assert await cache.delete("k1") is False
    assert await cache.get("k1") is None


async def test_keys_with_colons_and_unicode(cache: CacheBase) -> None:
    await cache.set("a:b:c", b"1")
    await cache.set("ü-ñ-日本", b"2")
    assert await cache.get("a:b:c") == b"1"
    assert await cache.get("ü-ñ-日本") == b"2"


async def test_ttl_expires_and_is_invisible(cache: CacheBase) -> None:
    await cache.set("short", b"x", ttl=0.5)
    await cache.set("long", b"y", ttl=60)
    assert await cache.exists("short")
    await asyncio.sleep(1.2)
    assert await cache.get("short") is None
    assert not await cache.exists("short")
    assert await cache.get("long") == b"y"


async def test_namespaces_are_isolated(cache: CacheBase) -> None:
    await cache.set("same", b"a", namespace="ns-one")
    await cache.set("same", b"b", namespace="ns-two")
    assert await cache.get("same", namespace="ns-one") == b"a"
    assert await cache.get("same", namespace="ns-two") == b"b"
    assert await cache.delete("same", namespace="ns-one")
    assert await cache.get("same", namespace="ns-two") == b"b"


async def test_bad_namespace_is_a_typed_error(cache: CacheBase) -> None:
    with pytest.raises(InvalidSessionIdError, match="a:b"):
        await cache.set("k", b"v", namespace="a:b")


async def test_compare_and_set_versions_and_conflicts(cache: CacheBase) -> None:
    assert isinstance(cache, AtomicCache)
    first = await cache.compare_and_set("cas", b"v1", expected_version=0, ttl=60)
    assert first.version == 1 and first.value == b"v1"
    assert first.expires_at is not None
    with pytest.raises(SessionConflictError):
        await cache.compare_and_set("cas", b"again", expected_version=0, ttl=60)
    second = await cache.compare_and_set("cas", b"v2", expected_version=1, ttl=KEEP_TTL)
    assert second.version == 2
    assert second.expires_at == pytest.approx(first.expires_at, abs=1.0)
    with pytest.raises(SessionConflictError):
        await cache.compare_and_set("cas", b"stale", expected_version=1, ttl=60)
    entry = await cache.get_entry("cas")
    assert entry is not None and entry.value == b"v2" and entry.version == 2
    entries = await cache.get_entries(["cas", "missing"])
    assert entries[0] is not None and entries[0].value == b"v2"
    assert entries[1] is None


async def test_compare_and_set_without_expiry(cache: CacheBase) -> None:
    assert isinstance(cache, AtomicCache)
    entry = await cache.compare_and_set("forever", b"v", expected_version=0, ttl=None)
    assert entry.expires_at is None
    kept = await cache.compare_and_set("forever", b"w", expected_version=1, ttl=KEEP_TTL)
    assert kept.expires_at is None


async def test_compare_and_set_race_has_exactly_one_winner(cache: CacheBase) -> None:
    assert isinstance(cache, AtomicCache)

    async def attempt(i: int) -> bool:
        try:
            await cache.compare_and_set("race", str(i).encode(), expected_version=0, ttl=60)
        except SessionConflictError:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert results.count(True) == 1


async def test_compare_and_delete(cache: CacheBase) -> None:
    assert isinstance(cache, AtomicCache)
    await cache.compare_and_set("del", b"v", expected_version=0, ttl=60, indexes=["user:u"])
    with pytest.raises(SessionConflictError):
        await cache.compare_and_delete("del", expected_version=7)
    assert await cache.compare_and_delete("del", expected_version=1)
    assert not await cache.compare_and_delete("del")
    assert await cache.get_entry("del") is None
    assert isinstance(cache, IndexedCache)
    assert await cache.index_members("user:u") == []


async def test_indexes_list_live_members_only(cache: CacheBase) -> None:
    assert isinstance(cache, IndexedCache)
    for i in range(5):
        await cache.compare_and_set(
            f"s:{i}", b"v", expected_version=0, ttl=60, indexes=["user:ü", f"project:p{i % 2}"]
        )
    await cache.compare_and_set("s:short", b"v", expected_version=0, ttl=0.5, indexes=["user:ü"])
    assert sorted(await cache.index_members("user:ü")) == sorted([f"s:{i}" for i in range(5)] + ["s:short"])
    assert sorted(await cache.index_members("project:p0")) == ["s:0", "s:2", "s:4"]
    await cache.compare_and_delete("s:0")
    await asyncio.sleep(1.2)
    assert sorted(await cache.index_members("user:ü")) == ["s:1", "s:2", "s:3", "s:4"]
    assert await cache.index_members("user:nobody") == []


async def test_a_key_written_without_indexes_gains_them_on_a_later_write(cache: CacheBase) -> None:
    # A session saved before it had an owner is listed under the owner once one is recorded.
    assert isinstance(cache, IndexedCache)
    await cache.compare_and_set("late", b"v1", expected_version=0, ttl=60)
    await cache.compare_and_set("late", b"v2", expected_version=1, ttl=KEEP_TTL, indexes=["user:late"])
    assert await cache.index_members("user:late") == ["late"]
    await cache.compare_and_set("late", b"v3", expected_version=2, ttl=KEEP_TTL)
    assert await cache.index_members("user:late") == ["late"]
    with pytest.raises(SessionConflictError, match="other indexes"):
        await cache.compare_and_set("late", b"x", expected_version=3, ttl=60, indexes=["user:other"])
    entry = await cache.get_entry("late")
    assert entry is not None and (entry.value, entry.version) == (b"v3", 3)
    assert await cache.index_members("user:other") == []
    assert await cache.compare_and_delete("late", expected_version=3)
    assert await cache.index_members("user:late") == []


async def test_purge_expired_removes_keys_and_index_entries(cache: CacheBase) -> None:
    assert isinstance(cache, IndexedCache)
    await cache.compare_and_set("gone", b"v", expected_version=0, ttl=0.5, indexes=["user:a"])
    await cache.compare_and_set("kept", b"v", expected_version=0, ttl=60, indexes=["user:a"])
    await asyncio.sleep(1.2)
    purged = await cache.purge_expired()
    assert purged == ["gone"]
    assert await cache.index_members("user:a") == ["kept"]
    assert await cache.purge_expired() == []


async def test_purge_is_scoped_to_its_namespace(cache: CacheBase) -> None:
    assert isinstance(cache, IndexedCache)
    await cache.compare_and_set("x", b"v", expected_version=0, ttl=0.5, namespace="ns-a")
    await cache.compare_and_set("x", b"v", expected_version=0, ttl=0.5, namespace="ns-b")
    await asyncio.sleep(1.2)
    assert await cache.purge_expired(namespace="ns-a") == ["x"]
    assert await cache.purge_expired(namespace="ns-b") == ["x"]


async def test_concurrent_indexed_writes_are_all_listed(cache: CacheBase) -> None:
    assert isinstance(cache, IndexedCache)
    await asyncio.gather(
        *(
            cache.compare_and_set(f"c{i}", b"v", expected_version=0, ttl=60, indexes=["user:z"])
            for i in range(100)
        )
    )
    assert len(await cache.index_members("user:z")) == 100


async def test_scan_yields_every_live_key_once(cache: CacheBase) -> None:
    assert isinstance(cache, ScannableCache)
    for i in range(30):
        await cache.set(f"scan:{i}", b"v", ttl=60)
    await cache.set("scan:short", b"v", ttl=0.5)
    await asyncio.sleep(1.2)
    seen = [key async for key in cache.scan_keys(batch_size=7)]
    assert sorted(seen) == sorted(f"scan:{i}" for i in range(30))


async def test_ping_and_health(cache: CacheBase) -> None:
    assert isinstance(cache, PingableCache)
    assert await cache.ping() >= 0.0
    report = await cache.health()
    assert report["backend"] == cache.backend
    assert report["available"] is True


async def test_closed_cache_refuses_use(cache: CacheBase) -> None:
    await cache.close()
    await cache.close()
    with pytest.raises(ClosedError):
        await cache.get("k")
