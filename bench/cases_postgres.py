"""PostgreSQL: store and retrieve of a 5 KB session against raw driver statements on its bytes.

On the shared server (127.0.0.1:5432, database ``test``) in two schemas of this run's own,
dropped afterwards: the adapter's, and one raw table ``(k text PRIMARY KEY, v bytea)``. Every
side has a pool of ``POOL`` connections and 50 operations in flight.

* store: ``store_session`` of new sessions (encode + compare-and-set with two indexes, one
  transaction) against ``INSERT … ON CONFLICT (k) DO UPDATE`` of the encoded bytes, autocommit.
* retrieve: ``retrieve_session`` (read + decode + validate) against ``SELECT v WHERE k = $1``.

The raw asyncpg side runs as the adapter does (statement cache on, no reset query on release);
raw psycopg 3 runs beside it as a peer (autocommit, binary), which is how the adapter's driver
was chosen: the peer's ratio is psycopg's throughput over asyncpg's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import count

import asyncpg
from psycopg_pool import AsyncConnectionPool
from tests.cache_factories.postgres import SHARED_URL, drop_schema, unique_schema

from backends import storage
from context import Context
from harness import Case, Side, Target, timed_concurrent
from serverless_sessions.adapters.cache.postgres import Cache
from sessions import SessionFactory

CASE_IDS = ["pg-store-50", "pg-retrieve-50"]
IN_FLIGHT = 50
POOL = 10


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


def concurrent(label: str, ops: int, op: Callable[[int], Awaitable[object]]) -> Side:
    async def run() -> float:
        return await timed_concurrent(op, ops, IN_FLIGHT)

    return Side(label, ops, run)


async def cases(ctx: Context) -> AsyncIterator[Case]:
    ops = ctx.sizes.pg_ops
    raw_schema, cache_schema = unique_schema(), unique_schema()
    conn = await asyncpg.connect(SHARED_URL)
    try:
        await conn.execute(f'CREATE SCHEMA "{raw_schema}"')
        await conn.execute(f'CREATE TABLE "{raw_schema}".raw (k text PRIMARY KEY, v bytea NOT NULL)')
    finally:
        await conn.close()
    apg = await asyncpg.create_pool(SHARED_URL, min_size=POOL, max_size=POOL, reset=_no_reset)
    psy = AsyncConnectionPool(
        SHARED_URL, min_size=POOL, max_size=POOL, kwargs={"autocommit": True}, open=False
    )
    cache = Cache.from_url(SHARED_URL, schema=cache_schema, pool_size=POOL)
    try:
        await psy.open(wait=True)
        st = storage(cache, ctx.namespace("pg"))
        factory = SessionFactory("pg", 5_000)
        blob = st.encode(factory.template)
        table = f'"{raw_schema}".raw'
        upsert = (
            f"INSERT INTO {table} (k, v) VALUES ({{}}, {{}}) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        )
        select = f"SELECT v FROM {table} WHERE k = {{}}"
        stored = factory.batch(ops)
        ids = [state.session_id for state in stored]
        for state in stored:
            await st.store_session(state)
        await apg.executemany(upsert.format("$1", "$2"), [(s.session_id, st.encode(s)) for s in stored])
        keys, select_pg = count(), select.format("$1")

        async def psy_store(i: int) -> None:
            async with psy.connection() as conn:
                await conn.execute(upsert.format("%s", "%b"), (f"p{next(keys)}", blob))

        async def psy_fetch(i: int) -> None:
            async with psy.connection() as conn:
                found = await (await conn.execute(select.format("%s"), (ids[i],), binary=True)).fetchone()
                assert found is not None

        async def new_sessions() -> float:
            states = factory.batch(ops)  # built before the clock starts
            return await timed_concurrent(lambda i: st.store_session(states[i]), ops, IN_FLIGHT)

        yield Case(
            case_id="pg-store-50",
            title=f"PostgreSQL store, 5 KB session, {IN_FLIGHT} in flight",
            baseline=concurrent(
                "raw asyncpg INSERT … ON CONFLICT",
                ops,
                lambda i: apg.execute(upsert.format("$1", "$2"), f"a{next(keys)}", blob),
            ),
            candidate=Side("store_session", ops, new_sessions),
            target=Target("speedup", 0.8),
            peers=[concurrent("raw psycopg 3 INSERT … ON CONFLICT", ops, psy_store)],
        )
        yield Case(
            case_id="pg-retrieve-50",
            title=f"PostgreSQL retrieve, 5 KB session, {IN_FLIGHT} in flight",
            baseline=concurrent("raw asyncpg SELECT", ops, lambda i: apg.fetchval(select_pg, ids[i])),
            candidate=concurrent("retrieve_session", ops, lambda i: st.retrieve_session(ids[i])),
            target=Target("speedup", 0.8),
            peers=[concurrent("raw psycopg 3 SELECT", ops, psy_fetch)],
        )
    finally:
        await cache.close()
        await psy.close()
        await apg.close()
        for schema in (raw_schema, cache_schema):
            await drop_schema(schema)
