"""Listing: does one page of 50 cost the same among 10^5 sessions as among 10^3?

On a private Redis (the tests' helper: no persistence, nobody else's keys), then on a SQLite
file, then in a schema of its own on the local PostgreSQL: two namespaces, one of
``list_small`` and one of ``list_large`` small sessions, all of one user and spread over 97
projects, written through the public API (``store_sessions`` where it exists). Each row times
``ServerlessSessionManager.list_sessions`` for the newest page of 50: the user's page (the
user owns every session) and the global page. Every engine here reads a page by range from an
activity order (Redis' activity zsets, SQLite's and PostgreSQL's indexes): O(page); a storage
without one reads the whole owner first, O(owner), which would show here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.cache_factories.postgres import SHARED_URL, drop_schema, unique_schema

from backends import open_cache, storage
from context import Context
from harness import Case, Side, Target, clock, timed_concurrent
from redis_env import private_server
from serverless_sessions import ACBCacheStorage, ServerlessSessionManager, SessionState
from serverless_sessions.adapters.cache.postgres import Cache
from sessions import SessionFactory

CASE_IDS = [
    "list-user",
    "list-global",
    "list-user-sqlite",
    "list-global-sqlite",
    "list-user-postgres",
    "list-global-postgres",
]
PAGE = 50
CHUNK = 1000
USER = "user-0"


async def populate(st: ACBCacheStorage, total: int) -> float:
    """Store ``total`` small sessions of ``USER``, ``CHUNK`` at a time; return the seconds taken."""
    factory = SessionFactory(f"fill-{st.namespace}", 300, users=1, projects=97)
    batch = getattr(st, "store_sessions", None)
    start = clock()
    for done in range(0, total, CHUNK):
        states = factory.batch(min(CHUNK, total - done))
        if batch is not None:
            await batch(states)
            continue

        async def store(i: int, states: list[SessionState] = states) -> None:
            await st.store_session(states[i])

        await timed_concurrent(store, len(states), 64)
    return clock() - start


def _listing(manager: ServerlessSessionManager, total: int, user: str | None, ops: int) -> Side:
    async def run() -> float:
        start = clock()
        for _ in range(ops):
            page = await manager.list_sessions(user_id=user, limit=PAGE)
            if len(page.sessions) != PAGE:
                raise AssertionError(f"listed {len(page.sessions)} of {PAGE} sessions")
        return clock() - start

    return Side(f"among {total:,}", ops, run)


async def _cases_on(ctx: Context, backend: str, cache: object, suffix: str) -> AsyncIterator[Case]:
    sizes = ctx.sizes
    small, large = storage(cache, "small"), storage(cache, "large")
    filled = [await populate(small, sizes.list_small), await populate(large, sizes.list_large)]
    managers = ServerlessSessionManager(small), ServerlessSessionManager(large)
    note = f"Populations written in {filled[0]:.1f} s and {filled[1]:.1f} s ({backend})."
    for case_id, user, title in (("list-user", USER, "one user's"), ("list-global", None, "global")):
        yield Case(
            case_id=case_id + suffix,
            title=f"list a page of {PAGE}, {title}, among {sizes.list_large:,} vs {sizes.list_small:,}"
            f" ({backend})",
            baseline=_listing(managers[0], sizes.list_small, user, sizes.list_ops),
            candidate=_listing(managers[1], sizes.list_large, user, sizes.list_ops),
            target=Target("cost", 1.5),
            unit="ms/page",
            notes=[note],
            reps=sizes.list_reps,
        )


async def cases(ctx: Context) -> AsyncIterator[Case]:
    async with (
        private_server(ctx.tmp / "redis-listing") as url,
        open_cache("redis", ctx, "list", url=url) as cache,
    ):
        async for case in _cases_on(ctx, "private redis-server", cache, ""):
            yield case
    async with open_cache("sqlite", ctx, "list") as cache:
        async for case in _cases_on(ctx, "SQLite file", cache, "-sqlite"):
            yield case
    schema = unique_schema()
    try:
        async with Cache.from_url(SHARED_URL, schema=schema) as cache:
            async for case in _cases_on(ctx, "local PostgreSQL", cache, "-postgres"):
                yield case
    finally:
        await drop_schema(schema)
