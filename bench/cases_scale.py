"""Scale: does listing one user's sessions, or purging expired ones, stay flat as the store grows?

Three populations per backend (memory, SQLite, Redis on the shared server), each of filler
sessions spread so that every user owns about 50, plus one target user's 50 real 5 KB sessions:
``list_small`` (10^3), ``cleanup_small`` (10^4) and ``list_large`` = ``cleanup_large`` (10^5).
On a private Redis, 10^3 against ``list_huge`` (10^6).

* Listing: one page of the target user's 50 sessions (``ServerlessSessionManager.list_sessions``,
  which reads the user index, loads the 50 sessions and summarizes them), among 10^5 (or 10^6)
  against among 10^3.
* Cleanup: each repetition writes expired sessions (a short TTL, then a wait), and times
  ``cleanup_sessions``. Two rows per backend, because "1 % among 10^5 against 1 % among 10^4"
  alone cannot tell the two cost models apart (both grow 10x):

  - ``fixed``: the same number of expired sessions among 10^5 and among 10^4. Flat if and only if
    the cost does not grow with the total.
  - ``1pct``: 1 % expired among each; the ratio is of the cost *per expired session*. Flat if the
    cost grows linearly with the expired count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import notes
from backends import open_cache, populate, settle, storage, store_all
from context import Context
from harness import Case, Side, Target, clock, cpu_clock
from redis_env import private_server
from serverless_sessions import ACBCacheStorage, ServerlessSessionManager
from sessions import SessionFactory

BACKENDS = ("memory", "sqlite", "redis")
CASE_IDS = [
    *(f"list-{kind}" for kind in BACKENDS),
    "list-redis-1e6",
    *(f"cleanup-{kind}-{mode}" for kind in BACKENDS for mode in ("fixed", "1pct")),
]
TARGET_USER = "target-user"
EXPIRE_TTL = 0.05
PER_USER = 50


@dataclass
class Population:
    """A namespace holding ``total`` sessions, ``PER_USER`` of them the target user's."""

    label: str
    total: int
    storage: ACBCacheStorage
    manager: ServerlessSessionManager
    fill_seconds: float = 0.0
    expired_batches: int = 0


async def _build(cache: object, ctx: Context, kind: str, label: str, total: int) -> Population:
    st = storage(cache, ctx.namespace(f"{kind}-{label}"))  # type: ignore[arg-type]
    factory = SessionFactory(f"{kind}-{label}", 5_000, users=1, projects=1)
    mine = [state.model_copy(update={"user_id": TARGET_USER}) for state in factory.batch(PER_USER)]
    start = clock()
    await store_all(st, mine)
    await populate(st, total - PER_USER, tag="fill", users=max(1, total // PER_USER))
    population = Population(label, total, st, ServerlessSessionManager(st))
    population.fill_seconds = clock() - start
    return population


def _listing_side(population: Population, ops: int) -> Side:
    tick = cpu_clock if population.storage.backend == "memory" else clock

    async def list_page(_: int) -> None:
        page = await population.manager.list_sessions(user_id=TARGET_USER, limit=PER_USER)
        if len(page.sessions) != PER_USER:
            raise AssertionError(f"listed {len(page.sessions)} of {PER_USER} sessions")

    async def run() -> float:
        start = tick()
        for i in range(ops):
            await list_page(i)
        return tick() - start

    return Side(f"among {population.total:,}", ops, run)


def _cleanup_side(population: Population, expired: int) -> Side:
    tick = cpu_clock if population.storage.backend == "memory" else clock

    async def run() -> float:
        population.expired_batches += 1
        tag = f"expired-{population.expired_batches}"
        await populate(population.storage, expired, tag=tag, users=PER_USER, ttl=EXPIRE_TTL)
        await asyncio.sleep(EXPIRE_TTL + 0.05)
        await settle(population.storage.cache)  # type: ignore[arg-type]
        start = tick()
        removed = await population.storage.cleanup_expired_sessions()
        elapsed = tick() - start
        if removed != expired:
            raise AssertionError(f"cleanup removed {removed}, expected {expired}")
        return elapsed

    return Side(f"{expired:,} expired among {population.total:,}", expired, run)


def _listing_case(case_id: str, small: Population, large: Population, ops: int) -> Case:
    return Case(
        case_id=case_id,
        title=f"list one user's {PER_USER} sessions ({case_id.split('-', 1)[1]})",
        baseline=_listing_side(small, ops),
        candidate=_listing_side(large, ops),
        target=Target("cost", 1.5),
        unit="ms/listing",
        on_miss=notes.SCALE_MISS,
        notes=[
            f"Populations written in {small.fill_seconds:.1f} s ({small.total:,}) and "
            f"{large.fill_seconds:.1f} s ({large.total:,})."
        ],
    )


def _cleanup_cases(kind: str, mid: Population, large: Population, ctx: Context) -> list[Case]:
    fixed = ctx.sizes.cleanup_fixed_expired
    return [
        Case(
            case_id=f"cleanup-{kind}-fixed",
            title=f"cleanup, {fixed} expired among 10x more sessions ({kind})",
            baseline=_cleanup_side(mid, fixed),
            candidate=_cleanup_side(large, fixed),
            target=Target("cost", 1.5),
            unit="µs/expired session",
            on_miss=notes.SCALE_MISS,
        ),
        Case(
            case_id=f"cleanup-{kind}-1pct",
            title=f"cleanup, 1% expired, cost per expired session ({kind})",
            baseline=_cleanup_side(mid, mid.total // 100),
            candidate=_cleanup_side(large, large.total // 100),
            target=Target("cost", 1.5),
            unit="µs/expired session",
            on_miss=notes.SCALE_MISS,
        ),
    ]


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes = ctx.sizes
    for kind in BACKENDS:
        if not ctx.wants(f"list-{kind}", *(f"cleanup-{kind}-{m}" for m in ("fixed", "1pct"))):
            continue
        async with AsyncExitStack() as stack:
            built: dict[str, Population] = {}
            for label, total in (
                ("small", sizes.list_small),
                ("mid", sizes.cleanup_small),
                ("large", sizes.list_large),
            ):
                cache = await stack.enter_async_context(open_cache(kind, ctx, f"scale-{label}"))
                built[label] = await _build(cache, ctx, kind, label, total)
            yield _listing_case(f"list-{kind}", built["small"], built["large"], sizes.list_reps)
            for case in _cleanup_cases(kind, built["mid"], built["large"], ctx):
                yield case
    if not ctx.wants("list-redis-1e6"):
        return
    async with private_server() as url, open_cache("redis", ctx, "huge", url=url) as cache:
        small = await _build(cache, ctx, "private", "small", sizes.list_small)
        huge = await _build(cache, ctx, "private", "huge", sizes.list_huge)
        case = _listing_case("list-redis-1e6", small, huge, sizes.list_reps)
        case.notes.append("Private redis-server on loopback (no persistence), stopped afterwards.")
        yield case
