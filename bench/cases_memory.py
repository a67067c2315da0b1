"""Memory adapter: store + retrieve through ``ACBCacheStorage`` against a plain dict of bytes.

Both sides encode and decode with the same :class:`Codec`, so the ratio is the cost of the
storage layer and the adapter (copy, revision check, indexes, expiry, LRU), not of the codec.
Everything here is in-process CPU work, so both sides are timed with the thread's CPU clock.
A decomposition (codec alone, then each layer added) is measured after the case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import notes
from context import Context
from harness import Case, Side, Target, cpu_clock, ladder
from serverless_sessions import ACBCacheStorage, Codec, SessionState
from serverless_sessions.adapters.cache import memory
from serverless_sessions.storage.cache_storage import project_index, user_index
from sessions import SessionFactory

CASE_IDS = ["memory-store-retrieve"]


def _side(
    label: str, factory: SessionFactory, ops: int, op: Callable[[SessionState], Awaitable[object]]
) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        start = cpu_clock()
        for state in states:
            await op(state)
        return cpu_clock() - start

    return Side(label, ops, run)


async def cases(ctx: Context) -> AsyncIterator[Case]:
    ops = ctx.sizes.memory_ops
    factory = SessionFactory("mem", 5_000)
    codec = Codec()
    plain: dict[str, bytes] = {}

    async def codec_only(state: SessionState) -> None:
        codec.decode(codec.encode(state), key=state.session_id)

    async def with_dict(state: SessionState) -> None:
        plain[state.session_id] = codec.encode(state)
        codec.decode(plain[state.session_id], key=state.session_id)

    cache = memory.Cache(max_entries=10_000_000)
    async with ACBCacheStorage(cache, ctx.namespace("memory"), codec=codec, owns_cache=True) as st:

        async def with_adapter(state: SessionState) -> None:
            indexes = (user_index(state.user_id), project_index(state.project_id))
            data = codec.encode(state)
            await cache.compare_and_set(
                state.session_id, data, expected_version=0, ttl=86400, indexes=indexes, namespace="raw"
            )
            entry = await cache.get_entry(state.session_id, namespace="raw")
            assert entry is not None
            codec.decode(entry.value, key=state.session_id)

        async def with_storage(state: SessionState) -> None:
            await st.store_session(state)
            await st.retrieve_session(state.session_id)

        baseline = _side("dict of encoded bytes (same codec)", factory, ops, with_dict)
        candidate = _side("ACBCacheStorage over memory.Cache", factory, ops, with_storage)
        case = Case(
            case_id="memory-store-retrieve",
            title="memory adapter store+retrieve, 5 KB session",
            baseline=baseline,
            candidate=candidate,
            target=Target("speedup", 0.8),
            unit="ops/s",
            on_miss=notes.MEMORY_MISS,
        )
        yield case
        steps = [
            _side("codec encode+decode", factory, ops, codec_only),
            _side("+ dict", factory, ops, with_dict),
            _side("+ memory.Cache compare_and_set/get_entry instead", factory, ops, with_adapter),
            _side("ACBCacheStorage store/retrieve", factory, ops, with_storage),
        ]
        case.notes.append(await ladder("Decomposition", steps, ctx.sizes.ladder_reps, warmup=False))
