"""Listing in activity order from an index (SQLite, PostgreSQL, Redis): O(page), equal to the sort.

The cache contract of :class:`RecentCache` on each adapter that has it, then listings through
the storage's activity order compared page by page with the listing that reads every owner's
session and sorts (the fallback every other storage uses).
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from serverless_sessions import ACBCacheStorage, ServerlessSessionManager, SessionState
from serverless_sessions.adapters.cache import postgres, redis, sqlite
from serverless_sessions.adapters.cache.base import RecentCache
from serverless_sessions.adapters.cache.postgres.schema import MIGRATIONS
from serverless_sessions.adapters.cache.postgres.statements import Statements
from serverless_sessions.adapters.cache.redis.scripts import RECENT_BUDGET
from serverless_sessions.adapters.cache.sqlite import statements
from serverless_sessions.errors import InvalidSessionIdError
from serverless_sessions.listing import list_page
from serverless_sessions.storage.base import StoredSession
from tests.cache_factories import redis as redis_factory
from tests.cache_factories.postgres import SHARED_URL, drop_schema, unique_schema
from tests.redis_servers import RedisProcess, running_redis
from tests.test_sqlite_log import raw, version_1_file

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


Ordered = sqlite.Cache | postgres.Cache | redis.Cache


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def cache(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ordered]:
    if request.param == "sqlite":
        async with sqlite.Cache(tmp_path / "recent.db", namespace="t") as built:
            yield built
        return
    if request.param == "redis":
        async with redis_factory.make_cache(tmp_path, f"t{uuid.uuid4().hex[:12]}") as ordered:
            yield ordered
        return
    schema = unique_schema()
    try:
        async with postgres.Cache.from_url(SHARED_URL, namespace="t", schema=schema) as made:
            yield made
    finally:
        await drop_schema(schema)


async def put(
    cache: Ordered, key: str, activity: float | None, *, ttl: float = 60, index: str = "user:a"
) -> None:
    await cache.compare_and_set(key, b"v", expected_version=0, ttl=ttl, indexes=[index], activity=activity)


async def test_keys_come_newest_first_ties_by_key_and_strictly_below_the_cursor(cache: Ordered) -> None:
    assert isinstance(cache, RecentCache)
    for key, activity in [("a", 10.0), ("b", 30.0), ("c", 20.0), ("d", 20.0), ("e", 5.0)]:
        await put(cache, key, activity, index="user:x" if key == "e" else "user:a")
    everything = [("b", 30.0), ("d", 20.0), ("c", 20.0), ("a", 10.0), ("e", 5.0)]
    assert await cache.recent(None, limit=10) == everything
    assert await cache.recent(None, limit=2) == everything[:2]
    assert await cache.recent(None, limit=10, before=(20.0, "d")) == everything[2:]
    assert await cache.recent(None, limit=10, before=(20.0, "c")) == everything[3:]
    assert await cache.recent("user:a", limit=10) == everything[:4]
    assert await cache.recent("user:nobody", limit=10) == []
    assert await cache.recent(None, limit=10, namespace="other") == []


async def test_ties_follow_the_keys_code_points_from_any_cursor(cache: Ordered) -> None:
    keys = ["a", "B", "ab", "a:b", "a.b", "é", "Z9", "日本"]  # case, prefixes, punctuation, unicode
    for key in keys:
        await put(cache, key, 5.0)
    await put(cache, "newer", 6.0)
    await put(cache, "older", 4.0)
    tied = [(key, 5.0) for key in sorted(keys, reverse=True)]
    assert await cache.recent(None, limit=20) == [("newer", 6.0), *tied, ("older", 4.0)]
    for position, (key, _) in enumerate(tied):
        below = await cache.recent("user:a", limit=3, before=(5.0, key))
        assert below == [*tied[position + 1 :], ("older", 4.0)][:3], key


async def test_a_write_moves_its_key_and_an_append_raises_it_never_lowers_it(cache: Ordered) -> None:
    await put(cache, "a", 10.0)
    await put(cache, "b", 20.0)
    await cache.compare_and_set("a", b"w", expected_version=1, ttl=60, activity=30.0)
    assert await cache.recent("user:a", limit=5) == [("a", 30.0), ("b", 20.0)]
    await cache.append("b", [b"m"], weight=1, ttl=60, touched_at=40.0)
    assert await cache.recent("user:a", limit=5) == [("b", 40.0), ("a", 30.0)]
    # An append stamped before the write (another instance's clock) leaves the write's activity.
    await cache.append("a", [b"m"], weight=1, ttl=60, touched_at=1.0)
    assert await cache.recent(None, limit=5) == [("b", 40.0), ("a", 30.0)]
    # A whole write drops the appends' activity: what a reader sees is the write's.
    await cache.write_with_log("b", b"x", log=[], value_weight=1, expected_version=2, ttl=60, activity=25.0)
    assert await cache.recent("user:a", limit=5) == [("a", 30.0), ("b", 25.0)]


async def test_expired_and_deleted_keys_are_skipped(cache: Ordered) -> None:
    await put(cache, "short", 50.0, ttl=0.2)
    await put(cache, "gone", 40.0)
    await put(cache, "kept", 30.0)
    assert await cache.compare_and_delete("gone")
    await asyncio.sleep(0.4)
    assert await cache.recent("user:a", limit=5) == [("kept", 30.0)]
    assert await cache.recent(None, limit=1) == [("kept", 30.0)]


async def test_a_key_written_without_activity_makes_its_scope_unordered_until_rewritten(
    cache: Ordered,
) -> None:
    await put(cache, "a", 10.0)
    await put(cache, "plain", None, index="user:b")
    assert await cache.recent("user:a", limit=5) == [("a", 10.0)]
    assert await cache.recent("user:b", limit=5) is None
    assert await cache.recent(None, limit=5) is None
    await cache.set("a", b"raw", ttl=60)  # the plain cache API knows no activity
    assert await cache.recent("user:a", limit=5) is None
    await cache.compare_and_set("a", b"v", expected_version=2, ttl=60, activity=11.0)
    await cache.compare_and_set("plain", b"v", expected_version=1, ttl=60, activity=12.0)
    assert await cache.recent(None, limit=5) == [("plain", 12.0), ("a", 11.0)]


async def test_an_upgraded_old_file_lists_by_sorting_until_its_sessions_are_rewritten(tmp_path: Path) -> None:
    path = version_1_file(tmp_path / "old.db", [("t", "old", b"v", 1, None)])
    raw(path, "INSERT INTO index_members VALUES ('t', 'user:a', 'old')")
    async with sqlite.Cache(path, namespace="t") as cache:
        assert await cache.recent("user:a", limit=5) is None
        # An append has no write's activity to raise: the row stays without an order.
        await cache.append("old", [b"m"], weight=1, ttl=60, touched_at=9.0)
        assert await cache.recent("user:a", limit=5) is None
        await cache.compare_and_set("old", b"w", expected_version=2, ttl=60, activity=7.0)
        assert await cache.recent("user:a", limit=5) == [("old", 7.0)]
    assert raw(path, "SELECT recent FROM index_members") == [(7.0,)]


# -- listings ----------------------------------------------------------------------------------


class SortingStorage(ACBCacheStorage):
    """The same storage listing as a storage without an activity order does."""

    async def recent_sessions(self, **_: object) -> None:
        return None


class CountingStorage(ACBCacheStorage):
    """Counts the sessions whose heads a listing loads."""

    loaded = 0

    async def load_heads(self, session_ids: Sequence[str]) -> list[StoredSession | None]:
        self.loaded += len(session_ids)
        return await super().load_heads(session_ids)


async def walk(
    storage: ACBCacheStorage, limit: int, *, user_id: str | None = None, project_id: str | None = None
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    for _ in range(1000):
        page = await list_page(storage, user_id=user_id, project_id=project_id, limit=limit, cursor=cursor)
        pages.append([summary.session_id for summary in page.sessions])
        if (cursor := page.next_cursor) is None:
            return pages
    raise AssertionError("the listing never ended")


async def test_every_page_equals_the_sorted_listing(cache: Ordered) -> None:
    rng = random.Random(20261126)
    ordered = ACBCacheStorage(cache, "p")
    manager = ServerlessSessionManager(ordered)
    for i in range(120):
        state = SessionState(
            session_id=f"s{i:03d}",
            user_id=rng.choice(["ann", "bob", "cy"]),
            project_id=rng.choice(["p1", "p2"]),
            # Ties on purpose: a third of the sessions share one of a few instants.
            last_activity=EPOCH
            + timedelta(seconds=rng.choice([1, 2, 3]) if i % 3 == 0 else rng.random() * 1e5),
        )
        # Every 17th expires before the listings; the appends go to the others.
        await ordered.store_session(state, ttl_seconds=0.3 if i % 17 == 0 else 600)
    for i in rng.sample([i for i in range(120) if i % 17], 15):
        await manager.append_messages(f"s{i:03d}", [{"role": "user", "content": "later"}])
    await asyncio.sleep(0.5)  # the short-lived ones are gone, still in the tables
    for user_id, project_id in [(None, None), ("ann", None), (None, "p2")]:  # read in order
        assert await ordered.recent_sessions(user_id=user_id, project_id=project_id, limit=1)
    sorting = SortingStorage(cache, "p")
    owners = [(None, None), ("ann", None), (None, "p2"), ("bob", "p1")]
    for user_id, project_id in owners:
        for limit in (1, 7, 50):
            pages = await walk(ordered, limit, user_id=user_id, project_id=project_id)
            expected = await walk(sorting, limit, user_id=user_id, project_id=project_id)
            assert pages == expected, (user_id, project_id, limit)
            assert sum(len(page) for page in pages) > 0


async def test_a_page_loads_the_page_not_the_owner(cache: Ordered) -> None:
    storage = CountingStorage(cache, "big")
    states = [
        SessionState(
            session_id=f"s{i:04d}",
            user_id="owner",
            project_id=f"p{i % 7}",
            last_activity=EPOCH + timedelta(seconds=i),
        )
        for i in range(2000)
    ]
    await storage.store_sessions(states)
    page = await list_page(storage, user_id="owner", project_id=None, limit=20, cursor=None)
    assert [s.session_id for s in page.sessions] == [f"s{i:04d}" for i in range(1999, 1979, -1)]
    following = await list_page(storage, user_id=None, project_id=None, limit=20, cursor=page.next_cursor)
    assert following.sessions[0].session_id == "s1979"
    assert storage.loaded == 42  # two pages of 20, each with the one past it


async def test_a_version_2_postgres_schema_lists_by_sorting_until_its_sessions_are_rewritten(
    tmp_path: Path,
) -> None:
    schema = unique_schema()
    sql = Statements(schema)
    raw_pg = await asyncpg.connect(SHARED_URL)
    try:
        await raw_pg.execute(sql.create_schema)
        await raw_pg.execute(sql.create_migrations)
        for migration in MIGRATIONS[:2]:
            for statement in sql.migration(migration):
                await raw_pg.execute(statement)
            await raw_pg.execute(sql.record_migration, migration.version, migration.description)
        # A row as the version-2 library wrote it: through its write function.
        write = f'SELECT outcome FROM "{schema}".write_entry($1, $2, $3, 0, 60, false, $4, 1, NULL, 0, NULL)'
        assert await raw_pg.fetchval(write, "t", "old", b"v", ["user:a"]) == "ok"
        async with postgres.Cache.from_url(SHARED_URL, namespace="t", schema=schema) as cache:
            assert await cache.recent("user:a", limit=5) is None
            assert await cache.recent(None, limit=5) is None
            await cache.append("old", [b"m"], weight=1, ttl=60, touched_at=9.0)
            assert await cache.recent(None, limit=5) is None
            await cache.compare_and_set("old", b"w", expected_version=2, ttl=60, activity=7.0)
            assert await cache.recent("user:a", limit=5) == [("old", 7.0)]
            assert await cache.recent(None, limit=5) == [("old", 7.0)]
        # The version-2 function is gone: a process of that version fails its writes loudly.
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await raw_pg.fetchval(write, "t", "late", b"v", [])
    finally:
        await raw_pg.close()
        await drop_schema(schema)


@pytest.mark.parametrize("name", ["RECENT_MEMBERS", "RECENT_ENTRIES"])
async def test_sqlite_reads_a_page_as_a_range_of_the_activity_index(tmp_path: Path, name: str) -> None:
    # Bounded on both sides: a page deep in the order does not read the newer rows first.
    statement = getattr(statements, name)
    async with sqlite.Cache(tmp_path / "plan.db") as cache:
        await put(cache, "k", 1.0)
    plan = raw(tmp_path / "plan.db", f"EXPLAIN QUERY PLAN {statement}", *["x"] * statement.count("?"))
    steps = [row[3] for row in plan]
    assert "_by_recent" in steps[0] and "(recent,key)<(?,?)" in steps[0], steps
    assert all(step.startswith("SEARCH") for step in steps), steps


async def test_postgres_reads_a_page_as_a_range_of_the_activity_index() -> None:
    schema = unique_schema()
    try:
        async with postgres.Cache.from_url(SHARED_URL, namespace="t", schema=schema) as cache:
            await put(cache, "k", 1.0)
        sql = Statements(schema)
        connection = await asyncpg.connect(SHARED_URL)
        try:
            # Whatever the planner prefers for a table this small, the index must be able to serve.
            await connection.execute("SET enable_seqscan = off")
            await connection.execute("SET enable_sort = off")
            members = await connection.fetch(f"EXPLAIN {sql.recent_members}", "t", "user:a", 5.0, "k", 50)
            entries = await connection.fetch(f"EXPLAIN {sql.recent_entries}", "t", 5.0, "k", 50)
        finally:
            await connection.close()
        for plan, index in ((members, "index_members_by_recent"), (entries, "entries_by_recent")):
            text = "\n".join(row[0] for row in plan)
            assert (
                f"Index Only Scan Backward using {index}" in text
                or f"Index Scan Backward using {index}" in text
            ), text
            assert "ROW(" in text and "Sort" not in text, text
    finally:
        await drop_schema(schema)


async def test_a_bad_owner_id_is_refused_even_when_the_order_read_is_the_other_owners(
    cache: Ordered,
) -> None:
    storage = ACBCacheStorage(cache, "bad")
    await storage.store_session(SessionState(session_id="s", user_id="ann", project_id="p"))
    for user_id, project_id in [("ann", "bad\x00id"), ("\x07", "p"), (None, " ")]:
        with pytest.raises(InvalidSessionIdError, match="id"):
            await list_page(storage, user_id=user_id, project_id=project_id, limit=5, cursor=None)


# -- Redis: activity zsets mirror the expiry and index zsets -----------------------------------


async def redis_zsets(cache: redis.Cache, *names: str) -> dict[str, tuple[int, int]]:
    """Each named zset's cardinality and expiry time (ms; -1 none, -2 no key)."""
    client = Redis.from_url(redis_factory.SHARED_URL)
    try:
        prefix = f"{cache.settings.key_prefix}:{cache.namespace}:"
        return {
            name: (await client.zcard(prefix + name), await client.pexpiretime(prefix + name))
            for name in names
        }
    finally:
        await client.aclose()


async def test_redis_activity_zsets_follow_their_partners_through_delete_and_purge(tmp_path: Path) -> None:
    names = ("x", "r", "i:user:a", "r:user:a")
    async with redis_factory.make_cache(tmp_path, f"t{uuid.uuid4().hex[:12]}") as cache:
        await put(cache, "short", 3.0, ttl=0.2)
        await put(cache, "gone", 2.0)
        await put(cache, "kept", 1.0, ttl=120)
        zsets = await redis_zsets(cache, *names)
        assert {name: count for name, (count, _) in zsets.items()} == dict.fromkeys(names, 3)
        assert zsets["x"][1] == zsets["r"][1] > 0 and zsets["i:user:a"][1] == zsets["r:user:a"][1] > 0
        assert await cache.compare_and_delete("gone")
        await asyncio.sleep(0.4)
        assert await cache.recent(None, limit=5) == [("kept", 1.0)]  # expired, not yet purged
        assert await cache.purge_expired() == ["short"]
        zsets = await redis_zsets(cache, *names)
        assert {name: count for name, (count, _) in zsets.items()} == dict.fromkeys(names, 1)
        assert zsets["x"][1] == zsets["r"][1] and zsets["i:user:a"][1] == zsets["r:user:a"][1]
        assert await cache.recent("user:a", limit=5) == [("kept", 1.0)]
        assert await cache.compare_and_delete("kept")
        zsets = await redis_zsets(cache, *names)
        assert zsets == dict.fromkeys(names, (0, -2))  # nothing left behind


async def test_redis_keys_written_before_activity_zsets_list_by_sorting(tmp_path: Path) -> None:
    """What an older version left: expiry and index zsets without activity zsets beside them."""
    async with redis_factory.make_cache(tmp_path, f"t{uuid.uuid4().hex[:12]}") as cache:
        storage = ACBCacheStorage(cache, cache.namespace)
        for i in range(3):
            await storage.store_session(
                SessionState(session_id=f"s{i}", user_id="ann", project_id="p", last_activity=EPOCH)
            )
        client = Redis.from_url(redis_factory.SHARED_URL)
        prefix = f"{cache.settings.key_prefix}:{cache.namespace}:"
        await client.delete(prefix + "r", prefix + "r:user:ann", prefix + "r:project:p")
        await client.aclose()
        assert await storage.recent_sessions(user_id="ann", project_id=None, limit=5) is None
        page = await list_page(storage, user_id="ann", project_id=None, limit=2, cursor=None)
        assert [s.session_id for s in page.sessions] == ["s2", "s1"]  # sorted, all there
        for i in range(3):  # rewritten by this version: ordered again
            state = await storage.retrieve_session(f"s{i}")
            assert state is not None
            await storage.store_session(state)
        assert await storage.recent_sessions(user_id="ann", project_id=None, limit=5) == [
            (f"s{i}", EPOCH.timestamp()) for i in (2, 1, 0)
        ]


async def test_redis_skips_many_expired_members_in_short_scripts(tmp_path: Path) -> None:
    """Expired keys not purged yet are skipped, never listed, a bounded number per script."""
    with running_redis(tmp_path) as server:
        async with redis.Cache.from_url(server.url, namespace="t") as cache:
            for i in range(3):
                await put(cache, f"live{i}", float(i))
            dead = RECENT_BUDGET + 500
            await asyncio.gather(*(put(cache, f"dead{i:05d}", 100.0 + i, ttl=0.3) for i in range(dead)))
            await asyncio.sleep(0.6)
            assert await cache.recent(None, limit=1) == [("live2", 2.0)]  # the script is loaded
            server.command("CONFIG", "RESETSTAT")
            assert await cache.recent(None, limit=2) == [("live2", 2.0), ("live1", 1.0)]
            assert scripts_run(server) == 2  # the budget, then the rest
            assert await cache.recent("user:a", limit=5, before=(1.0, "live1")) == [("live0", 0.0)]
            assert len(await cache.purge_expired()) == dead
            server.command("CONFIG", "RESETSTAT")
            assert await cache.recent(None, limit=5) == [("live2", 2.0), ("live1", 1.0), ("live0", 0.0)]
            assert scripts_run(server) == 1


def scripts_run(server: RedisProcess) -> int:
    """``EVALSHA`` calls that ran since the last ``CONFIG RESETSTAT``."""
    stats = server.command("INFO", "commandstats").decode()
    found = re.search(r"cmdstat_evalsha:calls=(\d+),.*failed_calls=(\d+)", stats)
    assert found is not None, stats
    return int(found[1]) - int(found[2])
