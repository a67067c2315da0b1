"""Bulk store (a migration's write side): many stores in flight against one at a time.

``ACBCacheStorage`` has no batch-store API, so the candidate is what a migration can do today:
``asyncio.gather`` over ``store_session`` with ``bulk_in_flight`` calls outstanding, which on
Redis pipelines requests over the pooled connections. The baseline awaits each store before
the next, as the original module's callers did. SQLite is measured too: its adapter serializes
calls on one worker thread, so concurrency cannot help it; only a batch write in one
transaction could (see the miss analysis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from backends import open_cache, storage
from context import Context
from harness import Case, Side, Target, timed_concurrent
from serverless_sessions import ACBCacheStorage
from sessions import SessionFactory

CASE_IDS = ["bulk-store-redis", "bulk-store-sqlite"]


def _side(label: str, st: ACBCacheStorage, factory: SessionFactory, ops: int, flight: int) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        return await timed_concurrent(lambda i: st.store_session(states[i]), ops, flight)

    return Side(label, ops, run)


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes = ctx.sizes
    for kind in ("redis", "sqlite"):
        async with open_cache(kind, ctx, f"bulk-{kind}") as cache:
            st = storage(cache, ctx.namespace(f"bulk-{kind}"))
            factory = SessionFactory(f"bulk-{kind}", 5_000)
            ops = sizes.bulk_ops if kind == "redis" else sizes.bulk_ops // 4
            yield Case(
                case_id=f"bulk-store-{kind}",
                title=f"bulk store, 5 KB sessions ({kind})",
                baseline=_side("store_session one at a time", st, factory, ops, 1),
                candidate=_side(
                    f"gather, {sizes.bulk_in_flight} stores in flight",
                    st,
                    factory,
                    ops,
                    sizes.bulk_in_flight,
                ),
                target=Target("speedup", 5.0),
                unit="sessions/s",
            )
