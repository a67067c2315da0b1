"""The Redis adapter beyond the shared contract: layout, hygiene, errors, settings, pooling.

Most tests run against a private redis-server (see ``tests/redis_servers.py``) so they can read
its command statistics, kill it, or set a password without touching the shared server.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
from redis import exceptions as rx

from serverless_sessions import ACBCacheStorage, ServerlessSessionManager
from serverless_sessions.adapters.cache import redis
from serverless_sessions.adapters.cache.base import KEEP_TTL
from serverless_sessions.adapters.cache.redis import errors as _redis_errors
from serverless_sessions.adapters.cache.redis.log import RecentIndexLists
from serverless_sessions.adapters.cache.redis.scripts import new_tag
from serverless_sessions.backoff import Backoff
from serverless_sessions.errors import (
    ConfigurationError,
    CorruptSessionError,
    SessionConflictError,
    StorageError,
    StorageUnavailableError,
)
from tests.redis_servers import RedisProcess, running_redis

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with running_redis(tmp_path_factory.mktemp("redis")) as process:
        yield process


@pytest.fixture
async def raw(server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=server.port)
    yield client
    await client.aclose()


def make(server: RedisProcess, **overrides: object) -> redis.Cache:
    return redis.Cache.from_url(server.url, namespace="ns", **overrides)


async def all_keys(client: aioredis.Redis) -> list[bytes]:
    return sorted([key async for key in client.scan_iter(count=1000)])


# -- protocol hygiene -------------------------------------------------------------------------


async def test_keys_command_is_never_sent(tmp_path: Path) -> None:
    with running_redis(tmp_path) as private:
        async with redis.Cache.from_url(private.url, namespace="n") as cache:
            for i in range(20):
                await cache.compare_and_set(
                    f"k:{i}", b"v", expected_version=0, ttl=0.2 if i % 2 else 60, indexes=["u:1"]
                )
            await cache.set("plain", b"v")
            assert len([key async for key in cache.scan_keys(batch_size=3)]) == 21
            await asyncio.sleep(0.4)
            assert len(await cache.index_members("u:1")) == 10
            assert len(await cache.purge_expired()) == 10
            await cache.delete("plain")
            await cache.health()
            stats = await cache._run("stats", None, lambda c: c.info("commandstats"))
        assert "cmdstat_evalsha" in stats and "cmdstat_scan" in stats
        assert not any(name in stats for name in ("cmdstat_keys", "cmdstat_flushdb", "cmdstat_flushall"))


async def test_200_concurrent_indexed_writes_are_all_listed(server: RedisProcess) -> None:
    async with make(server, key_prefix="conc", max_connections=8) as cache:
        await asyncio.gather(
            *(
                cache.compare_and_set(f"s{i}", b"v", expected_version=0, ttl=60, indexes=["user:x"])
                for i in range(200)
            )
        )
        assert await cache.index_members("user:x") == sorted(f"s{i}" for i in range(200))


async def test_keys_and_indexes_stay_disjoint_for_any_string(
    server: RedisProcess, raw: aioredis.Redis
) -> None:
    awkward = ["i:x", "d:i:x", "x", "", "*", "a[b]?c\\", "{tag}", "ü:日本:🙂", "a:b:c"]
    async with make(server, key_prefix="disj") as cache:
        for key in awkward:
            await cache.compare_and_set(key, key.encode(), expected_version=0, ttl=60, indexes=[key])
        assert sorted([k async for k in cache.scan_keys()]) == sorted(awkward)
        for key in awkward:
            assert await cache.get(key) == key.encode()
            assert await cache.index_members(key) == [key]
        types = {k: await raw.type(k) for k in await all_keys(raw) if k.startswith(b"disj:")}
        data = [k for k, t in types.items() if t == b"hash"]
        assert len(data) == len(awkward) and all(k.startswith(b"disj:ns:d:") for k in data)


async def test_set_keeps_index_names_and_keep_ttl_keeps_expiry_and_scores(
    server: RedisProcess, raw: aioredis.Redis
) -> None:
    async with make(server, key_prefix="keep") as cache:
        first = await cache.compare_and_set("k", b"1", expected_version=0, ttl=30, indexes=["u"])
        [(member, score)] = await raw.zrange("keep:ns:i:u", 0, -1, withscores=True)
        await cache.set("k", b"2", ttl=50)  # plain set: indexes kept, expiry replaced
        assert await cache.index_members("u") == ["k"]
        kept = await cache.compare_and_set("k", b"3", expected_version=2, ttl=KEEP_TTL)
        assert kept.expires_at is not None and first.expires_at is not None
        assert kept.expires_at > first.expires_at + 15
        new_score = await raw.zscore("keep:ns:i:u", member)
        assert new_score is not None and new_score > score
        assert new_score == pytest.approx(kept.expires_at * 1000)
        assert 45_000 < await raw.pttl("keep:ns:d:k") <= 50_000


async def test_indexes_outlive_their_members_and_purge_leaves_no_orphans(
    server: RedisProcess, raw: aioredis.Redis
) -> None:
    async with make(server, key_prefix="hyg", index_grace=2) as cache:
        for i, ttl in enumerate([0.3, 5, 20]):
            await cache.compare_and_set(f"k{i}", b"v", expected_version=0, ttl=ttl, indexes=["u", f"p{i}"])
        longest = await raw.pttl("hyg:ns:d:k2")
        for index in ("hyg:ns:i:u", "hyg:ns:x"):
            assert await raw.pttl(index) >= longest
        # A member without expiry makes its index persistent; deleting it restores the bound.
        await cache.compare_and_set("forever", b"v", expected_version=0, ttl=None, indexes=["u"])
        assert await raw.pttl("hyg:ns:i:u") == -1
        await cache.delete("forever")
        assert 0 < await raw.pttl("hyg:ns:i:u") <= longest + 2000
        await asyncio.sleep(0.5)
        assert await cache.purge_expired() == ["k0"]
        keys = await all_keys(raw)
        assert b"hyg:ns:i:p0" not in keys  # emptied index deleted
        for key in keys:
            if key.startswith(b"hyg:") and await raw.type(key) == b"zset":
                assert await raw.zcard(key) > 0
                assert await raw.pttl(key) > 0
        await cache.compare_and_delete("k1")
        await cache.compare_and_delete("k2")
        assert [k for k in await all_keys(raw) if k.startswith(b"hyg:")] == []


async def test_purge_honours_limit_and_reports_each_key_once(server: RedisProcess) -> None:
    async with make(server, key_prefix="lim") as cache, make(server, key_prefix="lim") as other:
        for i in range(25):
            await cache.compare_and_set(f"k{i}", b"v", expected_version=0, ttl=0.1, indexes=["u"])
        await asyncio.sleep(0.3)
        first = await cache.purge_expired(limit=10)
        assert len(first) == 10
        rest = await asyncio.gather(cache.purge_expired(), other.purge_expired())
        assert sorted(first + rest[0] + rest[1]) == sorted(f"k{i}" for i in range(25))


# -- errors -----------------------------------------------------------------------------------


# Defined by redis-py but never raised to us: ChildDeadlockedError guards the sync client after a
# fork; IncorrectPolicyType (redis-py >= 7.1) flags a custom command-policy table, which we never
# install.
_UNREACHABLE = {"ChildDeadlockedError", "IncorrectPolicyType"}


def _instances() -> list[BaseException]:
    """One instance of every exception class redis-py defines (public modules we use)."""
    found: list[BaseException] = []
    for module in (rx, aiosentinel):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if name in _UNREACHABLE:
                continue
            if issubclass(cls, BaseException) and cls.__module__.startswith("redis"):
                args = ("1 127.0.0.1:7000",) if issubclass(cls, rx.AskError) else ("boom",)
                found.append(cls(*args))
    return found


@pytest.mark.parametrize("exc", _instances(), ids=lambda e: type(e).__name__)
def test_every_redis_exception_is_translated(exc: BaseException) -> None:
    assert isinstance(exc, _redis_errors.BACKEND_ERRORS)
    error = _redis_errors.translate(exc, backend="redis", operation="get", key="k", where="redis://h:1/0")
    transient = isinstance(exc, (rx.ConnectionError, rx.TimeoutError, rx.ClusterDownError, rx.TryAgainError))
    unavailable = transient or isinstance(exc, rx.SlotNotCoveredError)
    assert isinstance(error, StorageUnavailableError) is unavailable
    assert isinstance(error, StorageError)
    assert "redis get key 'k' at redis://h:1/0" in str(error) and type(exc).__name__ in str(error)


@pytest.mark.parametrize(
    ("error", "tries"),
    [
        (rx.ConnectionError("reset"), 4),
        (rx.TimeoutError("slow"), 4),
        (rx.BusyLoadingError("loading"), 4),
        (rx.AuthenticationError("bad password"), 1),
        (rx.ResponseError("WRONGTYPE"), 1),
    ],
)
@pytest.mark.parametrize("self_bounded", [False, True])
async def test_retry_policy_is_bounded_and_transient_only(
    error: Exception, tries: int, self_bounded: bool
) -> None:
    policy = _redis_errors.RetryPolicy(attempts=3, backoff=Backoff(base=0.001, cap=0.004))
    calls: list[str] = []

    async def attempt() -> None:
        calls.append("try")
        raise error

    async def recover(exc: BaseException) -> None:
        assert exc is error
        calls.append("recover")

    with pytest.raises(type(error)):
        await policy.run(attempt, recover, budget=60, self_bounded=self_bounded)
    assert calls.count("try") == tries and calls.count("recover") == tries - 1
    assert all(0 <= policy.backoff.delay(n) <= min(0.004, 0.001 * 2**n) for n in range(1, 8))


async def test_a_self_bounded_attempt_that_used_the_budget_is_not_retried() -> None:
    """An auto-pipelined command's batch ends at the call's deadline: nothing is left to retry."""
    policy = _redis_errors.RetryPolicy(attempts=3, backoff=Backoff(base=0.001, cap=0.004))
    calls: list[str] = []

    async def attempt() -> None:
        calls.append("try")
        await asyncio.sleep(0.06)
        raise rx.TimeoutError("no reply in time")

    async def recover(exc: BaseException) -> None:
        calls.append("recover")

    with pytest.raises(rx.TimeoutError, match=r"no answer within 0.05s \(1 attempt\(s\).*no reply in time"):
        await policy.run(attempt, recover, budget=0.05, self_bounded=True)
    assert calls == ["try"]


async def test_retries_after_a_self_bounded_attempt_share_its_budget() -> None:
    policy = _redis_errors.RetryPolicy(attempts=50, backoff=Backoff(base=0.001, cap=0.001))
    tries = 0

    async def attempt() -> None:
        nonlocal tries
        tries += 1
        await asyncio.sleep(0.02)
        raise rx.ConnectionError("reset")

    async def recover(exc: BaseException) -> None:
        return None

    started = time.monotonic()
    with pytest.raises(rx.TimeoutError, match=r"no answer within 0.3s") as caught:
        await policy.run(attempt, recover, budget=0.3, self_bounded=True)
    # 20 ms attempts: at most 15 fit in 0.3 s, and a loaded machine still fits two.
    assert 2 <= tries <= 16 and time.monotonic() - started < 0.3 + 0.5
    assert f"({tries} attempt(s)" in str(caught.value)  # the one cut short counts too


async def test_closed_port_fails_fast_with_cause() -> None:
    port = _closed_port()
    cache = redis.Cache.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5, retry_attempts=2)
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as caught:
        await cache.get("k")
    assert time.monotonic() - started < 1.5
    assert isinstance(caught.value.__cause__, rx.ConnectionError)
    assert f"127.0.0.1:{port}" in str(caught.value) and "get key 'k'" in str(caught.value)
    report = await cache.health()
    assert report["available"] is False
    await cache.close()


async def test_silent_server_times_out_within_the_configured_bound() -> None:
    with socket.socket() as silent:  # accepts TCP connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        settings = {"socket_timeout": 0.3, "socket_connect_timeout": 0.5, "retry_attempts": 1}
        async with redis.Cache.from_url(url, **settings) as cache:
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError) as caught:
                await cache.set("k", b"v")
            # The handshake never gets a reply: the call ends at its budget, the larger of the
            # two timeouts, far below the 5 s default.
            assert time.monotonic() - started < 0.5 + 1.0
            assert isinstance(caught.value.__cause__, rx.TimeoutError)


async def test_one_time_budget_covers_every_retry() -> None:
    with socket.socket() as silent:  # accepts TCP connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        timeout = 0.3
        settings = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry_attempts": 10}
        async with redis.Cache.from_url(url, **settings) as cache:
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError) as caught:
                await cache.get("k")
            elapsed = time.monotonic() - started
    # Eleven attempts of 0.3 s each would take 3.3 s; the budget stops them after one.
    assert f"no answer within {timeout:g}s (1 attempt(s)" in str(caught.value)
    assert isinstance(caught.value.__cause__, rx.TimeoutError)
    assert elapsed < 4 * timeout + 2


async def test_a_call_that_never_gets_a_connection_blames_the_pool(tmp_path: Path) -> None:
    with running_redis(tmp_path) as private:
        raw = aioredis.Redis(port=private.port)
        await raw.client_pause(3000)  # every other client's commands now wait
        settings = {"max_connections": 1, "socket_timeout": 0.3, "socket_connect_timeout": 0.3}
        async with redis.Cache.from_url(private.url, **settings) as cache:
            first = asyncio.create_task(cache.get("k0"))
            await asyncio.sleep(0.05)  # its batch holds the only connection, unanswered
            later = [cache.get(f"k{i}") for i in range(1, 5)]  # queued behind it, together
            results = await asyncio.gather(first, *later, return_exceptions=True)
        await raw.client_unpause()
        await raw.aclose()
    assert all(isinstance(result, StorageUnavailableError) for result in results), results
    messages = [str(result) for result in results]
    assert "TimeoutError" in messages[0]  # the one call that got the connection
    assert any("all 1 connections stayed busy for 0.3s" in message for message in messages[1:])


@pytest.mark.parametrize(
    ("tls", "first_contact", "hint"),
    [
        (False, True, "does the server accept only TLS? then use rediss://"),
        (True, True, "is the server plain-text? then use redis://"),
        (False, False, None),  # a server that answered before and now resets: no TLS hint
        (True, False, None),
    ],
)
def test_tls_mismatch_hint_only_before_the_first_answer(
    tls: bool, first_contact: bool, hint: str | None
) -> None:
    reset = rx.ConnectionError("Error while reading from h:1 : (104, 'Connection reset by peer')")
    reset.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    silent = rx.TimeoutError("Timeout connecting to server")
    exc = silent if tls else reset
    error = _redis_errors.translate(
        exc, backend="redis", operation="get", key="k", where="h", tls=tls, first_contact=first_contact
    )
    assert isinstance(error, StorageUnavailableError)
    if hint is None:
        assert "use redis" not in str(error)
    else:
        assert hint in str(error)


async def test_wrong_type_is_a_storage_error_and_not_retried(
    server: RedisProcess, raw: aioredis.Redis
) -> None:
    await raw.set("wt:ns:d:k", b"not a hash")
    before = (await raw.info("commandstats")).get("cmdstat_hget", {}).get("calls", 0)
    async with make(server, key_prefix="wt") as cache:
        with pytest.raises(StorageError) as caught:
            await cache.get("k")
    assert not isinstance(caught.value, StorageUnavailableError)
    assert isinstance(caught.value.__cause__, rx.ResponseError)
    assert (await raw.info("commandstats"))["cmdstat_hget"]["calls"] == before + 1
    await raw.delete("wt:ns:d:k")


async def test_a_hash_left_without_its_value_is_corrupt_on_every_read(
    server: RedisProcess, raw: aioredis.Redis
) -> None:
    # Every write sets the value with the version; a hash changed by hand may have one only.
    async with make(server, key_prefix="nv") as cache:
        await cache.compare_and_set("k", b"v", expected_version=0, ttl=60)
        await raw.hdel("nv:ns:d:k", "v")
        reads = [
            lambda: cache.get_entry("k"),
            lambda: cache.get_entries(["k"]),
            lambda: cache.get_with_log("k"),
            lambda: cache.get_with_log("k", last=1),
        ]
        for read in reads:
            with pytest.raises(CorruptSessionError, match=r"'k'.*a version but no value"):
                await read()
        assert await cache.delete("k")


async def test_a_listing_names_a_session_whose_hash_lost_its_value(
    server: RedisProcess, raw: aioredis.Redis
) -> None:
    async with make(server, key_prefix="nvl") as cache:
        manager = ServerlessSessionManager(ACBCacheStorage(cache, namespace="ns"))
        good = await manager.create_session("u", "p")
        bad = await manager.create_session("u", "p")
        await raw.hdel(f"nvl:ns:d:{bad}", "v")
        page = await manager.list_sessions(user_id="u")
        assert [summary.session_id for summary in page.sessions] == [good]
        assert page.unreadable == [bad]


async def test_conflict_is_typed(server: RedisProcess) -> None:
    async with make(server, key_prefix="cf") as cache:
        await cache.compare_and_set("k", b"v", expected_version=0, ttl=60)
        with pytest.raises(SessionConflictError) as caught:
            await cache.compare_and_delete("k", expected_version=3)
        assert caught.value.actual == 1
        assert await cache.delete("k")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- secrets ----------------------------------------------------------------------------------


async def test_password_never_shown(tmp_path: Path) -> None:
    with running_redis(tmp_path, "--requirepass", PASSWORD) as private:
        good = f"redis://:{PASSWORD}@127.0.0.1:{private.port}/0"
        bad = f"redis://:wrong-{PASSWORD}@127.0.0.1:{private.port}/0"
        async with redis.Cache.from_url(good, namespace="n") as cache:
            await cache.set("k", b"v")
            assert await cache.get("k") == b"v"
            shown = [repr(cache), str(cache.settings), repr(cache.settings), str(await cache.health())]
        async with redis.Cache.from_url(bad) as wrong:
            with pytest.raises(StorageUnavailableError) as caught:
                await wrong.get("k")
            shown += [str(caught.value), repr(caught.value), str(await wrong.health())]
    with pytest.raises(ConfigurationError) as bad_setting:
        redis.Cache.from_url(good, socket_timeout="soon", password=PASSWORD + "x")
    shown.append(str(bad_setting.value))
    assert all(PASSWORD not in text for text in shown), shown


# -- settings ---------------------------------------------------------------------------------


def test_urls_parse_into_frozen_settings() -> None:
    s = redis.RedisSettings
    parsed = redis.Cache.from_url(
        "rediss://user:pw@cache.example:6380/3?ssl_cert_reqs=none&max_connections=7"
    ).settings
    assert (parsed.host, parsed.port, parsed.db, parsed.ssl, parsed.username) == (
        "cache.example",
        6380,
        3,
        True,
        "user",
    )
    assert parsed.ssl_cert_reqs == "none" and parsed.max_connections == 7
    assert parsed.password is not None and parsed.password.get_secret_value() == "pw"
    sentinel = redis.Cache.from_url("redis+sentinel://a:1,b/mymaster/2").settings
    assert sentinel.sentinels == (("a", 1), ("b", 26379)) and sentinel.service_name == "mymaster"
    assert sentinel.db == 2 and sentinel.mode == "sentinel"
    assert redis.Cache.from_url("redis://h/0?cluster=true").settings.mode == "cluster"
    assert redis.Cache.from_url("unix:///tmp/r.sock?db=4").settings.unix_socket_path == "/tmp/r.sock"
    assert s(socket_timeout=2) == s(socket_timeout="2")  # equal settings -> one shared pool
    with pytest.raises(AttributeError):
        parsed.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis://h/0?socket_timeout=-1", "socket_timeout"),
        ("redis://h/0?socket_timeout=1e9", "socket_timeout"),
        ("redis://h/0?max_connections=0", "max_connections"),
        ("redis://h/0?cluster=maybe", "cluster"),
        ("redis://h/0?ssl_cert_reqs=sometimes", "ssl_cert_reqs"),
        ("redis://h/0?key_prefix=a:b", "key_prefix"),
        ("redis://h/0?retry_attempts=99", "retry_attempts"),
        ("redis://h/0?bogus=1", "bogus"),
        ("redis://h/0?password=x", "password"),
        ("redis://h/0?db=1", "db"),
        ("redis://h:notaport/0", "port"),
        ("redis://h/99999", "db"),
        ("redis+sentinel://h:1/", "master name"),
        ("http://h/0", "scheme"),
        ("redis://h/0?cluster=true&db=1", "db"),
    ],
)
def test_bad_settings_are_refused_by_name(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        redis.Cache.from_url(url)


def test_constructor_needs_exactly_one_source() -> None:
    with pytest.raises(ConfigurationError):
        redis.Cache()
    with pytest.raises(ConfigurationError):
        redis.Cache("redis://h/0", settings=redis.RedisSettings())
    with pytest.raises(ConfigurationError, match="unknown Redis setting"):
        redis.Cache("redis://h/0", sokcet_timeout=1)


# -- pooling and lifecycle --------------------------------------------------------------------


async def test_caches_from_equal_settings_share_one_pool(server: RedisProcess, raw: aioredis.Redis) -> None:
    baseline = len(await raw.client_list())
    settings = redis.Cache.from_url(server.url, key_prefix="pool").settings
    first = redis.Cache(settings=settings, namespace="a")
    second = redis.Cache(settings=settings, namespace="b")
    await first.set("k", b"1")
    await second.set("k", b"2")
    assert first._connected()[0] is second._connected()[0]
    assert len(await raw.client_list()) == baseline + 1
    await first.close()
    assert await second.get("k") == b"2"  # the pool lives on for the other user
    await second.delete("k")
    await second.close()
    async with redis.Cache(settings=settings, namespace="a") as third:
        await third.delete("k")
    assert len(await raw.client_list()) == baseline


async def test_unix_socket_url(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    with running_redis(tmp_path, "--unixsocket", str(socket_path)):
        async with redis.Cache.from_url(f"unix://{socket_path}?db=2", namespace="n") as cache:
            await cache.compare_and_set("k", b"v", expected_version=0, ttl=10, indexes=["u"])
            assert await cache.index_members("u") == ["k"]
            assert (await cache.health())["address"] == f"unix://{socket_path}?db=2"


def test_injected_client_must_be_a_redis_client() -> None:
    with pytest.raises(ConfigurationError, match="got a dict"):
        redis.Cache(client={"password": PASSWORD})  # type: ignore[arg-type]


async def test_injected_client_is_used_and_not_closed(server: RedisProcess) -> None:
    client = aioredis.Redis(port=server.port)
    async with redis.Cache(client=client, namespace="n", key_prefix="inj") as cache:
        await cache.set("k", b"v", ttl=5)
        assert "127.0.0.1" in repr(cache) or "localhost" in repr(cache)
    assert await client.hget("inj:n:d:k", "v") == b"v"  # still open
    await client.delete("inj:n:d:k", "inj:n:x")
    await client.aclose()


def test_generation_tags_are_sixteen_hex_digits_and_differ() -> None:
    """A key's generation tells its index entries from a deleted namesake's: tags must differ."""
    tags = {new_tag() for _ in range(20_000)}
    assert len(tags) == 20_000
    assert all(re.fullmatch(r"[0-9a-f]{16}", tag) for tag in tags)


def test_remembered_index_lists_are_bounded_and_keep_the_latest_used() -> None:
    """An append's guess of its key's indexes: memory stays bounded however many keys pass."""
    lists = RecentIndexLists(size=3)
    for key in ("a", "b", "c"):
        lists.remember("ns", key, f'["{key}"]'.encode())
    lists.remember("ns", "a", b'["a2"]')  # used again: now the newest
    lists.remember("ns", "d", b'["d"]')  # over the bound: the oldest ("b") goes
    assert [lists.get("ns", key) for key in ("a", "b", "c", "d")] == [("a2",), (), ("c",), ("d",)]
    lists.remember("ns", "c", None)  # deleted: forgotten
    assert lists.get("ns", "c") == ()
    for n in range(10_000):
        lists.remember("ns", f"k{n}", b'["x"]')
    assert lists.get("ns", "k9999") == ("x",) and lists.get("ns", "k0") == ()
    assert len(lists._lists) == 3
