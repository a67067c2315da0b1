"""Bulk store (a migration's write side): the batch API against one store at a time.

The candidate is ``store_sessions`` (what ``migrate`` uses: concurrent compare-and-sets, at
most ``DEFAULT_CONCURRENCY`` in flight, which the Redis adapter pipelines). The baseline awaits
each ``store_session`` before the next, as the original module's callers did. Redis is
measured on loopback and through the latency proxy (a network-like round trip, where
overlapping round trips is what pays).

SQLite is measured too: its adapter serializes calls on one worker thread, so concurrency
cannot help it; only a batch write in one transaction could.

Next to the Redis loopback row, the notes give what a batch API would reach: the same WRITE
script for ``CHUNK`` sessions per pipeline (``redis_loader``, a bench-only prototype), encoding
included, against the same single stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from redis.asyncio import Redis

import notes
import redis_loader
from backends import open_cache, storage
from context import Context
from harness import Case, Side, Target, clock, measure, timed_concurrent
from latency_proxy import latency_proxy
from redis_env import measured_rtt_ms, raw_client
from serverless_sessions import ACBCacheStorage
from serverless_sessions.storage.batch import DEFAULT_CONCURRENCY
from serverless_sessions.storage.cache_storage import project_index, user_index
from sessions import SessionFactory

CASE_IDS = ["bulk-store-redis", "bulk-store-redis-rtt", "bulk-store-sqlite"]
ONE_WAY_DELAY_MS = 0.1


def _side(label: str, st: ACBCacheStorage, factory: SessionFactory, ops: int, flight: int) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        return await timed_concurrent(lambda i: st.store_session(states[i]), ops, flight)

    return Side(label, ops, run)


def _batch_side(st: ACBCacheStorage, factory: SessionFactory, ops: int) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        start = clock()
        (await st.store_sessions(states)).raise_for_failures()
        return clock() - start

    return Side(f"store_sessions, {DEFAULT_CONCURRENCY} in flight", ops, run)


def _case(case_id: str, title: str, st: ACBCacheStorage, ops: int) -> Case:
    factory = SessionFactory(case_id, 5_000)
    return Case(
        case_id=case_id,
        title=title,
        baseline=_side("store_session one at a time", st, factory, ops, 1),
        candidate=_batch_side(st, factory, ops),
        target=Target("speedup", 5.0),
        unit="sessions/s",
        on_miss=notes.BULK_MISS,
    )


def _prototype_side(st: ACBCacheStorage, client: Redis, ops: int) -> Side:
    factory = SessionFactory("bulk-prototype", 5_000)

    async def run() -> float:
        states = factory.batch(ops)
        start = clock()
        items = [
            (s.session_id, st.encode(s), (user_index(s.user_id), project_index(s.project_id))) for s in states
        ]
        await redis_loader.load(client, st.cache, st.namespace, items, ttl=86400)
        return clock() - start

    return Side(f"pipelined WRITE script, {redis_loader.CHUNK} per round trip", ops, run)


async def _prototype_note(case: Case, st: ACBCacheStorage, url: str, ops: int, ctx: Context) -> str:
    """Measure the batch prototype against the case's own single-store baseline."""
    async with raw_client(url) as client:
        side = _prototype_side(st, client, ops)
        prototype = Case("bulk-prototype", "", case.baseline, side, case.target)
        found = await measure(prototype, ctx.sizes.reps, warmup=ctx.sizes.warmup)
    return (
        f"Batch-API prototype (bench-only `redis_loader`: the adapter's WRITE script, up to "
        f"{redis_loader.CHUNK} sessions per pipeline, encoding included): "
        f"{1 / found.candidate_s:,.0f} sessions/s, **{found.ratio:.1f}x** single stores "
        f"({found.reps} alternating repetitions)."
    )


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes = ctx.sizes
    ops = sizes.bulk_ops
    async with open_cache("redis", ctx, "bulk-redis") as cache:
        st = storage(cache, ctx.namespace("bulk-redis"))
        case = _case("bulk-store-redis", "bulk store, 5 KB sessions (Redis, loopback)", st, ops)
        yield case
        case.notes.append(await _prototype_note(case, st, ctx.redis_url, ops, ctx))

    parts = urlsplit(ctx.redis_url)
    async with latency_proxy(parts.port or 6379, ONE_WAY_DELAY_MS) as port:
        url = parts._replace(netloc=f"127.0.0.1:{port}").geturl()
        async with open_cache("redis", ctx, "bulk-rtt", url=url) as cache, raw_client(url) as raw:
            rtt = await measured_rtt_ms(raw)
            st = storage(cache, ctx.namespace("bulk-rtt"))
            title = f"bulk store, 5 KB sessions (Redis, {rtt:.2f} ms round trip)"
            case = _case("bulk-store-redis-rtt", title, st, sizes.rtt_ops)
            case.notes.append(f"Through latency_proxy: PING round trip {rtt:.2f} ms median.")
            yield case
            case.notes.append(await _prototype_note(case, st, url, sizes.rtt_ops, ctx))

    async with open_cache("sqlite", ctx, "bulk-sqlite") as cache:
        st = storage(cache, ctx.namespace("bulk-sqlite"))
        yield _case("bulk-store-sqlite", "bulk store, 5 KB sessions (SQLite)", st, ops // 4)
