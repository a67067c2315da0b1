"""PostgreSQL: asyncpg against psycopg 3 on the adapter's workload, then the adapter against raw SQL.

Usage::

    .venv/bin/python bench/postgres_drivers.py [--dsn postgresql://postgres@127.0.0.1:5432/test]
                                               [--ops 2000] [--reps 7] [--pool 10]

Workload (issue 14): store and retrieve of ~5 KB of bytes with 50 operations in flight on the
local server, through a pool of ``--pool`` connections (every side gets the same size):

* store — ``INSERT … ON CONFLICT (k) DO UPDATE`` of the bytes under a new key each time (a new
  session), autocommit, so every store pays its own commit;
* retrieve — ``SELECT v … WHERE k = $1`` of keys stored beforehand.

Each driver is used the way it is fastest and still safe for the adapter: asyncpg with its
statement cache and without the reset query on release (the adapter leaves no session state,
see ``postgres/pool.py``); psycopg in autocommit, binary parameters and results, preparing
repeated statements itself. Then, with asyncpg:

* the adapter's ``compare_and_set`` (two indexes, as the storage layer writes a session) and
  ``get_entry`` against the raw statements on the same bytes;
* the issue's bench case: ``store_session`` (encode + compare-and-set) and ``retrieve_session``
  (read + decode + validate) of a 5 KB session against the raw statements on its encoded bytes.

Rows are measured as in ``harness``: sides alternate (A B, B A, ...) after a warm-up; numbers
are medians of per-operation wall time; the range is that of the per-repetition ratios.
Everything lives in schemas of this run's own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from itertools import count

import asyncpg
from psycopg_pool import AsyncConnectionPool

from harness import Side, alternate, timed_concurrent
from serverless_sessions import ACBCacheStorage, Codec
from serverless_sessions.adapters.cache.postgres import Cache
from sessions import SessionFactory

IN_FLIGHT = 50
TTL = 86400.0
VALUE = os.urandom(5_000)
TIMES = "\u00d7"


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


@asynccontextmanager
async def bench_schema(dsn: str) -> AsyncIterator[str]:
    """A schema name of this run's own with the raw table; it and the adapter's are dropped."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.raw (k text PRIMARY KEY, v bytea NOT NULL)")
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema}_cache CASCADE")
        await conn.close()


def side(label: str, ops: int, op: Callable[[int], Awaitable[object]]) -> Side:
    async def run() -> float:
        return await timed_concurrent(op, ops, IN_FLIGHT)

    return Side(label, ops, run)


async def row(title: str, baseline: Side, candidate: Side, reps: int) -> str:
    """One markdown row: both sides' medians, candidate/baseline throughput and its range."""
    base, cand = await alternate([baseline, candidate], reps, warmup=True)
    b, c = statistics.median(base), statistics.median(cand)
    ratios = [x / y for x, y in zip(base, cand, strict=True)]
    return (
        f"| {title} | {baseline.label}: {1 / b:,.0f} ops/s ({b * 1e6:,.0f} µs) "
        f"| {candidate.label}: {1 / c:,.0f} ops/s ({c * 1e6:,.0f} µs) "
        f"| **{b / c:.2f}{TIMES}** ({min(ratios):.2f} to {max(ratios):.2f}) |"
    )


async def run(dsn: str, ops: int, reps: int, pool_size: int) -> None:
    async with bench_schema(dsn) as schema:
        upsert = "INSERT INTO {}.raw (k, v) VALUES ({}, {}) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        upsert_pg, upsert_ps = upsert.format(schema, "$1", "$2"), upsert.format(schema, "%s", "%b")
        select_pg, select_ps = (f"SELECT v FROM {schema}.raw WHERE k = {p}" for p in ("$1", "%s"))
        apg = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size, reset=_no_reset)
        pspool = AsyncConnectionPool(
            dsn, min_size=pool_size, max_size=pool_size, kwargs={"autocommit": True}, open=False
        )
        await pspool.open(wait=True)
        cache = Cache.from_url(f"{dsn}?schema={schema}_cache&pool_size={pool_size}")
        st = ACBCacheStorage(cache, "bench", codec=Codec(), default_ttl=TTL)
        factory = SessionFactory("pg", 5_000)
        encoded = st.encode(factory.template)
        keys = count()
        try:
            stored = [f"r{i}" for i in range(ops)]
            await apg.executemany(upsert_pg, [(key, VALUE) for key in stored])
            await apg.executemany(upsert_pg, [(f"e{key}", encoded) for key in stored])
            sessions = factory.batch(ops)
            for start in range(0, ops, IN_FLIGHT):
                await asyncio.gather(*(st.store_session(s) for s in sessions[start : start + IN_FLIGHT]))
                chunk = stored[start : start + IN_FLIGHT]
                await asyncio.gather(
                    *(cache.compare_and_set(k, VALUE, expected_version=0, ttl=TTL) for k in chunk)
                )

            def raw_store(value: bytes) -> Callable[[int], Awaitable[object]]:
                return lambda i: apg.execute(upsert_pg, f"a{next(keys)}", value)

            def raw_fetch(prefix: str, value: bytes) -> Callable[[int], Awaitable[object]]:
                async def fetch(i: int) -> None:
                    assert await apg.fetchval(select_pg, f"{prefix}{stored[i]}") == value

                return fetch

            async def ps_store(i: int) -> None:
                async with pspool.connection() as conn:
                    await conn.execute(upsert_ps, (f"p{next(keys)}", VALUE))

            async def ps_fetch(i: int) -> None:
                async with pspool.connection() as conn:
                    cur = await conn.execute(select_ps, (stored[i],), binary=True)
                    found = await cur.fetchone()
                    assert found is not None and found[0] == VALUE

            async def cas_store(i: int) -> None:
                indexes = (f"user:{i % 50}", f"project:{i % 10}")
                await cache.compare_and_set(
                    f"c{next(keys)}", VALUE, expected_version=0, ttl=TTL, indexes=indexes
                )

            async def cas_fetch(i: int) -> None:
                entry = await cache.get_entry(stored[i])
                assert entry is not None and entry.value == VALUE

            async def store_sessions() -> float:
                batch = factory.batch(ops)  # new sessions, built before the clock starts
                return await timed_concurrent(lambda i: st.store_session(batch[i]), ops, IN_FLIGHT)

            async def retrieve_session(i: int) -> None:
                assert await st.retrieve_session(sessions[i].session_id) is not None

            comparisons = [
                ("store 5 KB", side("psycopg", ops, ps_store), side("asyncpg", ops, raw_store(VALUE))),
                ("retrieve 5 KB", side("psycopg", ops, ps_fetch), side("asyncpg", ops, raw_fetch("", VALUE))),
                (
                    "compare_and_set (2 indexes) vs raw INSERT … ON CONFLICT, 5 KB",
                    side("raw asyncpg", ops, raw_store(VALUE)),
                    side("compare_and_set", ops, cas_store),
                ),
                (
                    "get_entry vs raw SELECT, 5 KB",
                    side("raw asyncpg", ops, raw_fetch("", VALUE)),
                    side("get_entry", ops, cas_fetch),
                ),
                (
                    "store_session (encode + CAS) vs raw INSERT of the encoded bytes",
                    side("raw asyncpg", ops, raw_store(encoded)),
                    Side("store_session", ops, store_sessions),
                ),
                (
                    "retrieve_session (read + decode + validate) vs raw SELECT of them",
                    side("raw asyncpg", ops, raw_fetch("e", encoded)),
                    side("retrieve_session", ops, retrieve_session),
                ),
            ]
            rows = [await row(title, base, cand, reps) for title, base, cand in comparisons]
            load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"{ops} ops per repetition, {reps} repetitions per side, {IN_FLIGHT} in flight, pool of")
            print(f"{pool_size}; session encoded to {len(encoded):,} bytes; load average after: {load}\n")
            print("| comparison | baseline | candidate | candidate/baseline throughput |\n|---|---|---|---|")
            print("\n".join(rows))
        finally:
            await cache.close()
            await pspool.close()
            await apg.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--pool", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.ops, args.reps, args.pool))


if __name__ == "__main__":
    main()
