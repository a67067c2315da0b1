"""The :class:`AppendableCache` contract (a session's message log), proven on every adapter.

Every built-in adapter keeps a log except S3, whose storage falls back to read-modify-write:
the first test pins that split, so an adapter that loses (or never gains) the capability fails
here instead of quietly taking the slow path. The other tests run on the appendable adapters.
"""

from __future__ import annotations

import asyncio

import pytest

from serverless_sessions.adapters.cache.base import (
    KEEP_TTL,
    AppendableCache,
    Appended,
    CacheBase,
    Entry,
    IndexedCache,
    LogSlice,
    ScannableCache,
    TTLArg,
)
from serverless_sessions.errors import SessionConflictError, SessionNotFoundError, SessionTooLargeError
from serverless_sessions.ttl import now
from tests.cache_factories import ADAPTERS, few_contended_writes

NOT_APPENDABLE = frozenset({"s3"})
"""Adapters without a log: S3 has no atomic append, so the storage rewrites the whole object."""

APPENDABLE = [name for name in ADAPTERS if name not in NOT_APPENDABLE]

ITEMS = [f"message-{i}".encode() for i in range(10)]
HEAD = b'{"id":"head"}'
SHORT_TTL = 0.5
PAST_SHORT_TTL = 1.2
TOUCHED_AT = 1_700_000_000.5
"""An append's activity time: the caller's clock, deliberately not the adapter's."""


@pytest.fixture(params=APPENDABLE)
def adapter_name(request: pytest.FixtureRequest) -> str:
    """Only the appendable adapters: the capability test below names all of them itself."""
    return str(request.param)


def weight_of(items: list[bytes]) -> int:
    return sum(len(item) for item in items)


async def write(
    cache: AppendableCache,
    key: str,
    items: list[bytes] | None = None,
    *,
    value: bytes = HEAD,
    expected_version: int = 0,
    ttl: float | None = 60,
) -> Entry:
    """Write ``value`` with ``items`` as its whole log, each item weighing its length."""
    log = ITEMS if items is None else items
    return await cache.write_with_log(
        key,
        value,
        log=log,
        value_weight=len(value),
        log_weight=weight_of(log),
        expected_version=expected_version,
        ttl=ttl,
    )


async def append(
    cache: AppendableCache,
    key: str,
    items: list[bytes],
    *,
    weight: int | None = None,
    limit: int | None = None,
    expected_length: int | None = None,
    ttl: TTLArg = 60,
    touched_at: float = TOUCHED_AT,
    namespace: str | None = None,
) -> Appended:
    """Append ``items``, weighing their length unless ``weight`` says otherwise."""
    return await cache.append(
        key,
        items,
        weight=weight_of(items) if weight is None else weight,
        limit=limit,
        expected_length=expected_length,
        ttl=ttl,
        touched_at=touched_at,
        namespace=namespace,
    )


async def read(
    cache: AppendableCache, key: str, *, last: int | None = None, before: int | None = None
) -> tuple[Entry, LogSlice]:
    """The live entry and log slice at ``key`` (failing the test when it is missing)."""
    found = await cache.get_with_log(key, last=last, before=before)
    assert found is not None, f"{key!r} should be live"
    return found


@pytest.mark.parametrize("adapter_name", ADAPTERS)
async def test_every_adapter_but_s3_is_appendable(cache: CacheBase, adapter_name: str) -> None:
    # A missing implementation must fail loudly: the storage would silently fall back to
    # rewriting the whole session on every turn.
    assert isinstance(cache, AppendableCache) is (adapter_name not in NOT_APPENDABLE)


@pytest.mark.parametrize(
    ("last", "before", "start", "end"),
    [
        (None, None, 0, 10),
        (3, None, 7, 10),
        (20, None, 0, 10),
        (None, 4, 0, 4),
        (2, 4, 2, 4),
        (None, 50, 0, 10),
        (3, 50, 7, 10),
        (None, 0, 0, 0),
        (0, None, 10, 10),
    ],
    ids=[
        "all",
        "last",
        "last-past-start",
        "before",
        "last-before",
        "before-past-end",
        "last-before-past-end",
        "before-start",
        "last-zero",
    ],
)
async def test_get_with_log_returns_the_asked_window(
    cache: CacheBase, last: int | None, before: int | None, start: int, end: int
) -> None:
    assert isinstance(cache, AppendableCache)
    written = await write(cache, "s")
    assert (written.value, written.version) == (HEAD, 1)
    assert written.expires_at == pytest.approx(now() + 60, abs=2)
    entry, log = await read(cache, "s", last=last, before=before)
    assert entry == written
    assert log == LogSlice(ITEMS[start:end], start, len(ITEMS), weight_of(ITEMS))
    assert await cache.get_with_log("missing", last=last, before=before) is None


async def test_append_adds_items_in_order_and_bumps_the_version(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s", ITEMS[:2])
    first = await append(cache, "s", [b"a", b"bb"])
    assert (first.version, first.length) == (2, 4)
    second = await append(cache, "s", [b"ccc"])
    assert (second.version, second.length) == (3, 5)
    entry, log = await read(cache, "s")
    assert (entry.value, entry.version) == (HEAD, 3)
    assert log == LogSlice([*ITEMS[:2], b"a", b"bb", b"ccc"], 0, 5, weight_of(ITEMS[:2]) + 6)
    assert await cache.get_entry("s") == entry


async def test_every_read_of_the_entry_tells_what_its_log_weighs(cache: CacheBase) -> None:
    # A listing reads heads only; this is how it learns the size of the messages beside them.
    assert isinstance(cache, AppendableCache)
    await write(cache, "s", ITEMS[:2])
    await append(cache, "s", [b"a", b"bb"])
    weight = weight_of(ITEMS[:2]) + 3
    entry, log = await read(cache, "s")
    assert entry.log_weight == log.weight == weight
    single, (many, missing) = await cache.get_entry("s"), await cache.get_entries(["s", "none"])
    assert single is not None and many is not None and missing is None
    assert single.log_weight == many.log_weight == weight
    await cache.compare_and_set("s", b"v", expected_version=2, ttl=60)  # keeps the log
    kept = await cache.get_entry("s")
    assert kept is not None and kept.log_weight == weight
    await write(cache, "s", [], expected_version=3)
    emptied = await cache.get_entry("s")
    assert emptied is not None and emptied.log_weight == 0


async def test_compare_and_set_keeps_the_log(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    await append(cache, "s", [b"late"])
    rewritten = await cache.compare_and_set("s", b"new head", expected_version=2, ttl=60)
    assert rewritten.version == 3
    entry, log = await read(cache, "s")
    assert entry == rewritten
    assert log == LogSlice([*ITEMS, b"late"], 0, 11, weight_of(ITEMS) + 4)


async def test_write_with_no_log_keeps_the_log_and_its_weight(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    rewritten = await cache.write_with_log(
        "s", b"new head", log=None, value_weight=8, log_weight=999, expected_version=1, ttl=60
    )
    assert (rewritten.value, rewritten.version) == (b"new head", 2)
    _, log = await read(cache, "s")
    assert log == LogSlice(ITEMS, 0, 10, weight_of(ITEMS))


async def test_write_with_an_empty_log_empties_it(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    await write(cache, "s", [], expected_version=1)
    entry, log = await read(cache, "s")
    assert entry.version == 2
    assert log == LogSlice([], 0, 0, 0)
    appended = await append(cache, "s", [b"first again"])
    assert appended.length == 1
    assert (await read(cache, "s"))[1] == LogSlice([b"first again"], 0, 1, 11)


async def test_positions_restart_at_zero_after_a_replace(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    await write(cache, "s", [b"p", b"q"], expected_version=1)
    assert (await read(cache, "s"))[1] == LogSlice([b"p", b"q"], 0, 2, 2)
    assert (await read(cache, "s", before=1))[1] == LogSlice([b"p"], 0, 2, 2)
    assert (await read(cache, "s", last=1))[1] == LogSlice([b"q"], 1, 2, 2)


async def test_set_keeps_the_log(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    await cache.set("s", b"plain")
    entry, log = await read(cache, "s")
    assert entry.value == b"plain"
    assert log == LogSlice(ITEMS, 0, 10, weight_of(ITEMS))


async def test_append_records_its_activity_time_until_the_value_is_written(cache: CacheBase) -> None:
    # An append leaves the value alone: touched_at is how a reader (sliding expiry, listings)
    # learns the session was active.
    assert isinstance(cache, AppendableCache)
    assert (await write(cache, "s")).touched_at is None
    assert (await read(cache, "s"))[0].touched_at is None
    await append(cache, "s", [b"x"], touched_at=TOUCHED_AT)
    await append(cache, "s", [b"y"], touched_at=TOUCHED_AT + 7.25)
    latest = pytest.approx(TOUCHED_AT + 7.25, abs=0.001)
    assert (await read(cache, "s"))[0].touched_at == latest
    entry = await cache.get_entry("s")
    assert entry is not None and entry.touched_at == latest
    entries = await cache.get_entries(["s"])
    assert entries[0] is not None and entries[0].touched_at == latest
    rewritten = await cache.write_with_log(
        "s", HEAD, log=None, value_weight=len(HEAD), expected_version=3, ttl=60
    )
    assert rewritten.touched_at is None
    assert (await read(cache, "s"))[0].touched_at is None
    await append(cache, "s", [b"z"])
    assert (await cache.compare_and_set("s", HEAD, expected_version=5, ttl=60)).touched_at is None
    assert (await read(cache, "s"))[0].touched_at is None
    await append(cache, "s", [b"z"])
    await cache.set("s", HEAD, ttl=60)
    assert (await read(cache, "s"))[0].touched_at is None


async def test_append_to_a_missing_key_creates_nothing(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    with pytest.raises(SessionNotFoundError, match="ghost"):
        await append(cache, "ghost", [b"x"])
    assert await cache.get_with_log("ghost") is None
    assert not await cache.exists("ghost")
    created = await cache.compare_and_set("ghost", HEAD, expected_version=0, ttl=60)
    assert created.version == 1
    assert (await read(cache, "ghost"))[1] == LogSlice([], 0, 0, 0)


async def test_append_to_an_expired_key_is_not_found(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s", ttl=SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    with pytest.raises(SessionNotFoundError, match="'s'"):
        await append(cache, "s", [b"x"])
    assert await cache.get_with_log("s") is None


async def test_expected_length_guards_the_append(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    written = await write(cache, "s")
    for stale in (9, 11):
        with pytest.raises(SessionConflictError):
            await append(cache, "s", [b"x"], expected_length=stale)
    assert await read(cache, "s") == (written, LogSlice(ITEMS, 0, 10, weight_of(ITEMS)))
    appended = await append(cache, "s", [b"x"], expected_length=10)
    assert (appended.version, appended.length) == (2, 11)


async def test_append_past_the_limit_writes_nothing(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    written = await write(cache, "s")
    total = len(HEAD) + weight_of(ITEMS)
    with pytest.raises(SessionTooLargeError) as refused:
        await append(cache, "s", [b"big"], weight=5, limit=total + 4, ttl=3600)
    assert (refused.value.size, refused.value.limit) == (total + 5, total + 4)
    assert await read(cache, "s") == (written, LogSlice(ITEMS, 0, 10, weight_of(ITEMS)))


async def test_append_exactly_at_the_limit_is_accepted(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    total = len(HEAD) + weight_of(ITEMS) + 5
    appended = await append(cache, "s", [b"fits"], weight=5, limit=total)
    assert appended.length == 11
    with pytest.raises(SessionTooLargeError):
        await append(cache, "s", [b"x"], limit=total)
    assert (await read(cache, "s"))[1].length == 11


async def test_write_with_log_past_the_limit_writes_nothing(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    total = len(HEAD) + weight_of(ITEMS)

    async def write_limited(key: str, limit: int, expected_version: int) -> Entry:
        return await cache.write_with_log(
            key,
            HEAD,
            log=ITEMS,
            value_weight=len(HEAD),
            log_weight=weight_of(ITEMS),
            limit=limit,
            expected_version=expected_version,
            ttl=3600,
        )

    with pytest.raises(SessionTooLargeError) as refused:
        await write_limited("new", total - 1, 0)
    assert (refused.value.size, refused.value.limit) == (total, total - 1)
    assert await cache.get_with_log("new") is None
    assert not await cache.exists("new")
    written = await write(cache, "old", [b"kept"])
    with pytest.raises(SessionTooLargeError):
        await write_limited("old", total - 1, 1)
    assert await read(cache, "old") == (written, LogSlice([b"kept"], 0, 1, 4))
    assert (await write_limited("old", total, 1)).version == 2
    assert (await read(cache, "old"))[1] == LogSlice(ITEMS, 0, 10, weight_of(ITEMS))


async def test_the_limit_counts_the_value_and_the_whole_log(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await cache.write_with_log(
        "s", HEAD, log=[b"a"], value_weight=100, log_weight=50, expected_version=0, ttl=60
    )
    await append(cache, "s", [b"b"], weight=30, limit=180)
    assert (await read(cache, "s"))[1].weight == 80
    with pytest.raises(SessionTooLargeError) as refused:
        await append(cache, "s", [b"c"], limit=180)
    assert refused.value.size == 181
    # A value rewritten without its log still counts the log it keeps...
    with pytest.raises(SessionTooLargeError) as refused:
        await cache.write_with_log("s", HEAD, log=None, value_weight=10, limit=89, expected_version=2, ttl=60)
    assert refused.value.size == 90
    await cache.write_with_log("s", HEAD, log=None, value_weight=10, limit=90, expected_version=2, ttl=60)
    # ...and compare_and_set weighs the value by its length in bytes.
    await cache.compare_and_set("s", b"12345", expected_version=3, ttl=60)
    with pytest.raises(SessionTooLargeError) as refused:
        await append(cache, "s", [b"d"], limit=85)
    assert refused.value.size == 86
    assert (await append(cache, "s", [b"d"], limit=86)).length == 3


async def test_a_whole_write_read_before_an_append_conflicts(cache: CacheBase) -> None:
    # Two workers: one read the session and rewrites it whole, the other appended meanwhile.
    # The rewrite must conflict rather than drop the appended message.
    assert isinstance(cache, AppendableCache)
    seen = await write(cache, "s")
    await append(cache, "s", [b"appended"])
    with pytest.raises(SessionConflictError):
        await cache.compare_and_set("s", b"stale", expected_version=seen.version, ttl=60)
    with pytest.raises(SessionConflictError):
        await cache.write_with_log(
            "s", b"stale", log=None, value_weight=5, expected_version=seen.version, ttl=60
        )
    with pytest.raises(SessionConflictError):
        await write(cache, "s", [b"replaced"], value=b"stale", expected_version=seen.version)
    entry, log = await read(cache, "s")
    assert (entry.value, entry.version) == (HEAD, 2)
    assert log.items == [*ITEMS, b"appended"]


async def test_append_ttl_sets_the_expiry_of_value_and_log(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "shortened")
    await write(cache, "extended", ttl=SHORT_TTL)
    shortened = await append(cache, "shortened", [b"x"], ttl=SHORT_TTL)
    assert shortened.expires_at == pytest.approx(now() + SHORT_TTL, abs=0.5)
    extended = await append(cache, "extended", [b"x"])
    assert extended.expires_at == pytest.approx(now() + 60, abs=2)
    assert (await read(cache, "extended"))[0].expires_at == extended.expires_at
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await cache.get_with_log("shortened") is None
    assert await cache.get_entry("shortened") is None
    entry, log = await read(cache, "extended")
    assert (entry.value, log.items) == (HEAD, [*ITEMS, b"x"])


async def test_append_keep_ttl_keeps_the_remaining_expiry(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    written = await write(cache, "s", ttl=SHORT_TTL)
    kept = await append(cache, "s", [b"x"], ttl=KEEP_TTL)
    assert written.expires_at is not None
    assert kept.expires_at == pytest.approx(written.expires_at, abs=0.05)
    forever = await write(cache, "forever", ttl=None)
    assert forever.expires_at is None
    assert (await append(cache, "forever", [b"x"], ttl=KEEP_TTL)).expires_at is None
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await cache.get_with_log("s") is None
    assert (await read(cache, "forever"))[1].length == 11


async def test_an_expired_log_is_gone_for_a_new_entry_at_its_key(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "by-cas", ttl=SHORT_TTL)
    await write(cache, "by-log-none", ttl=SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await cache.get_with_log("by-cas") is None
    assert (await cache.compare_and_set("by-cas", HEAD, expected_version=0, ttl=60)).version == 1
    assert (await read(cache, "by-cas"))[1] == LogSlice([], 0, 0, 0)
    # "Keep the stored log" must not resurrect the expired one.
    await cache.write_with_log("by-log-none", HEAD, log=None, value_weight=1, expected_version=0, ttl=60)
    assert (await read(cache, "by-log-none"))[1] == LogSlice([], 0, 0, 0)
    assert (await append(cache, "by-log-none", [b"x"])).length == 1


async def test_delete_removes_the_log(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    await append(cache, "s", [b"x"])
    assert await cache.delete("s") is True
    assert await cache.get_with_log("s") is None
    await cache.compare_and_set("s", HEAD, expected_version=0, ttl=60)
    assert (await read(cache, "s"))[1] == LogSlice([], 0, 0, 0)


async def test_compare_and_delete_removes_the_log(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    await write(cache, "s")
    await append(cache, "s", [b"x"])
    assert await cache.compare_and_delete("s", expected_version=2) is True
    assert await cache.get_with_log("s") is None
    await write(cache, "s", [b"new"])
    assert (await read(cache, "s"))[1] == LogSlice([b"new"], 0, 1, 3)


async def test_purge_expired_removes_the_logs(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    assert isinstance(cache, IndexedCache)
    await write(cache, "gone", ttl=SHORT_TTL)
    await write(cache, "kept")
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await cache.purge_expired() == ["gone"]
    await cache.compare_and_set("gone", HEAD, expected_version=0, ttl=60)
    assert (await read(cache, "gone"))[1] == LogSlice([], 0, 0, 0)
    assert (await read(cache, "kept"))[1] == LogSlice(ITEMS, 0, 10, weight_of(ITEMS))


async def test_the_log_never_shows_up_as_a_key(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    assert isinstance(cache, IndexedCache)
    assert isinstance(cache, ScannableCache)
    await cache.write_with_log(
        "s",
        HEAD,
        log=ITEMS,
        value_weight=len(HEAD),
        log_weight=weight_of(ITEMS),
        expected_version=0,
        ttl=60,
        indexes=["user:alice"],
    )
    await append(cache, "s", [b"x"])
    assert [key async for key in cache.scan_keys(batch_size=3)] == ["s"]
    assert await cache.index_members("user:alice") == ["s"]
    assert await cache.compare_and_delete("s")
    assert [key async for key in cache.scan_keys(batch_size=3)] == []
    assert await cache.index_members("user:alice") == []


async def test_concurrent_appends_lose_nothing(cache: CacheBase, adapter_name: str) -> None:
    # 20 workers append 50 items each, 5 per call: 1,000 items in 200 contended calls. A slow
    # test server takes 10 items each (moto copies the whole table for every transaction, so
    # the full count takes minutes there); the race is the same: 20 appenders, several calls.
    assert isinstance(cache, AppendableCache)
    workers, calls, per_call = (20, 2, 5) if few_contended_writes(adapter_name) else (20, 10, 5)
    created = await write(cache, "s", [])

    async def worker(w: int) -> list[int]:
        lengths = []
        for c in range(calls):
            batch = [f"{w}:{c * per_call + i}".encode() for i in range(per_call)]
            appended = await append(cache, "s", batch)
            lengths.append(appended.length)
        return lengths

    lengths = [length for result in await asyncio.gather(*map(worker, range(workers))) for length in result]
    total = workers * calls * per_call
    assert sorted(lengths) == list(range(per_call, total + 1, per_call))
    entry, log = await read(cache, "s")
    assert entry.version == created.version + workers * calls
    assert len(log.items) == log.length == total
    assert len(set(log.items)) == total
    for w in range(workers):
        mine = [item for item in log.items if item.startswith(f"{w}:".encode())]
        assert mine == [f"{w}:{i}".encode() for i in range(calls * per_call)]
    for start in range(0, total, per_call):  # each call's items stay together
        assert len({item.split(b":")[0] for item in log.items[start : start + per_call]}) == 1
    assert (await read(cache, "s", last=20))[1].items == log.items[-20:]


async def test_namespaces_isolate_logs(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    for namespace, items in (("ns-one", [b"a"]), ("ns-two", [b"b", b"c"])):
        await cache.write_with_log(
            "same",
            HEAD,
            log=items,
            value_weight=len(HEAD),
            log_weight=len(items),
            expected_version=0,
            ttl=60,
            namespace=namespace,
        )
    await append(cache, "same", [b"one more"], namespace="ns-one")
    found = await cache.get_with_log("same", namespace="ns-one")
    assert found is not None and found[1] == LogSlice([b"a", b"one more"], 0, 2, 9)
    found = await cache.get_with_log("same", namespace="ns-two")
    assert found is not None and found[1] == LogSlice([b"b", b"c"], 0, 2, 2)
    assert await cache.get_with_log("same") is None
    with pytest.raises(SessionNotFoundError):
        await append(cache, "same", [b"x"], namespace="ns-three")
    assert await cache.delete("same", namespace="ns-one")
    found = await cache.get_with_log("same", namespace="ns-two")
    assert found is not None and found[1].items == [b"b", b"c"]


async def test_binary_items_round_trip(cache: CacheBase) -> None:
    assert isinstance(cache, AppendableCache)
    every_byte = [bytes([b]) for b in range(256)]
    odd = [b"", bytes(range(256)), b"\x00\x00", "ü-日本".encode(), b""]
    await write(cache, "s", every_byte)
    await append(cache, "s", odd)
    _, log = await read(cache, "s")
    assert log.items == every_byte + odd
    assert log.length == 261
    assert (await read(cache, "s", last=5))[1].items == odd
