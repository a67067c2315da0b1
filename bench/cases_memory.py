"""Memory adapter: store + retrieve through ``ACBCacheStorage`` against a plain dict of bytes.

Both sides encode and decode with the same :class:`Codec`, so the ratio is the cost of the
storage layer and the adapter (copy, revision check, indexes, expiry, LRU), not of the codec.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import notes
from context import Context
from harness import Case, Side, Target, clock
from serverless_sessions import ACBCacheStorage, Codec
from serverless_sessions.adapters.cache import memory
from sessions import SessionFactory

CASE_IDS = ["memory-store-retrieve"]


async def cases(ctx: Context) -> AsyncIterator[Case]:
    ops = ctx.sizes.memory_ops
    factory = SessionFactory("mem", 5_000)
    codec = Codec()
    plain: dict[str, bytes] = {}

    async def baseline() -> float:
        states = factory.batch(ops)
        start = clock()
        for state in states:
            plain[state.session_id] = codec.encode(state)
            codec.decode(plain[state.session_id], key=state.session_id)
        return clock() - start

    cache = memory.Cache(max_entries=10_000_000)
    async with ACBCacheStorage(cache, ctx.namespace("memory"), codec=codec, owns_cache=True) as st:

        async def candidate() -> float:
            states = factory.batch(ops)
            start = clock()
            for state in states:
                await st.store_session(state)
                await st.retrieve_session(state.session_id)
            return clock() - start

        yield Case(
            case_id="memory-store-retrieve",
            title="memory adapter store+retrieve, 5 KB session",
            baseline=Side("dict of encoded bytes (same codec)", ops, baseline),
            candidate=Side("ACBCacheStorage over memory.Cache", ops, candidate),
            target=Target("speedup", 0.8),
            unit="ops/s",
            on_miss=notes.MEMORY_MISS,
        )
