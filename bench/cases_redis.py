"""Redis: store and retrieve of a 5 KB session against raw redis-py on the same bytes.

The raw side gets the session already encoded (it never encodes or decodes), so every ratio
also charges the candidate for its codec. litestar's ``RedisStore`` runs beside as a peer (plain
``SET``/``GET`` of pydantic JSON: no index, no compare-and-set), measured in the same rotation.
The shared server is used (db 13, keys containing this run's token), except for the server-CPU
row, which needs a private server whose ``INFO commandstats`` nobody else moves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from litestar.stores.redis import RedisStore
from redis.asyncio import Redis

import notes
from backends import TTL, open_cache, storage
from context import Context
from harness import Case, Profiler, Side, Target, clock, timed_concurrent
from redis_env import command_stats, private_server, raw_client
from serverless_sessions import ACBCacheStorage, SessionState
from sessions import SessionFactory

CASE_IDS = [
    "redis-store-50",
    "redis-retrieve-50",
    "redis-store-1",
    "redis-retrieve-1",
    "redis-store-vs-original-50",
    "redis-store-sessions-1000",
    "redis-server-cpu-per-write",
]
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")
Write = Callable[[SessionState], Awaitable[object]]


def writes(label: str, factory: SessionFactory, ops: int, flight: int, write: Write) -> Side:
    """``write`` of ``ops`` new sessions (built before the clock starts), ``flight`` at once."""

    async def run() -> float:
        states = factory.batch(ops)
        return await timed_concurrent(lambda i: write(states[i]), ops, flight)

    return Side(label, ops, run)


def reads(label: str, ids: Sequence[str], flight: int, read: Callable[[str], Awaitable[object]]) -> Side:
    async def run() -> float:
        return await timed_concurrent(lambda i: read(ids[i]), len(ids), flight)

    return Side(label, len(ids), run)


def _original(raw: Redis, token: str, blob: bytes) -> Write:
    """The original module's ``RedisStorage.store_session``: five commands, each awaited."""

    async def store(state: SessionState) -> None:
        user_key = f"{token}:orig:index:user:{state.user_id}"
        project_key = f"{token}:orig:index:project:{state.project_id}"
        await raw.set(f"{token}:orig:session:{state.session_id}", blob, ex=TTL)
        await raw.sadd(user_key, state.session_id)
        await raw.sadd(project_key, state.session_id)
        await raw.expire(user_key, TTL)
        await raw.expire(project_key, TTL)

    return store


def _batch(st: ACBCacheStorage, factory: SessionFactory, ops: int, flight: int) -> Side:
    """``store_sessions`` where the storage has it; otherwise ``gather`` of single stores."""
    batch = getattr(st, "store_sessions", None)

    async def run() -> float:
        states = factory.batch(ops)
        if batch is None:
            return await timed_concurrent(lambda i: st.store_session(states[i]), ops, flight)
        start = clock()
        await batch(states)
        return clock() - start

    label = "store_sessions (batch API)" if batch else f"no store_sessions yet: gather, {flight} in flight"
    return Side(label, ops, run)


async def _spent_during(
    raw: Redis, factory: SessionFactory, ops: int, write: Write
) -> dict[str, tuple[int, int]]:
    """``(calls, server CPU µs)`` per command while ``ops`` writes run, 50 in flight (INFO aside)."""
    states = factory.batch(ops)
    before = await command_stats(raw)
    await timed_concurrent(lambda i: write(states[i]), ops, 50)
    spent = {}
    for name, (calls, usec) in (await command_stats(raw)).items():
        calls_before, usec_before = before.get(name, (0, 0))
        if name != "info" and calls > calls_before:
            spent[name] = (calls - calls_before, usec - usec_before)
    return spent


def _server_cpu(label: str, raw: Redis, factory: SessionFactory, ops: int, write: Write) -> Side:
    """Server CPU seconds for ``ops`` writes, from ``INFO commandstats`` (a private server).

    Commands a script runs are also counted under their own names; when a script ran, only the
    script's own figure (which includes them) is taken, otherwise every command but INFO.
    """

    async def run() -> float:
        usec = {name: spent for name, (_, spent) in (await _spent_during(raw, factory, ops, write)).items()}
        scripted = sum(usec.get(name, 0) for name in SCRIPT_COMMANDS)
        return (scripted or sum(usec.values())) / 1e6

    return Side(label, ops, run)


def _server_profile(raw: Redis, factory: SessionFactory, ops: int, write: Write) -> Profiler:
    """Where a write's server CPU goes: ``INFO commandstats`` per write, by command.

    A Python profile would show the client, which this row does not measure.
    """

    async def profile() -> str:
        spent = await _spent_during(raw, factory, ops, write)
        lines = [f"{'command':<12}{'calls/write':>12}{'µs/write':>10}"]
        lines += [
            f"{name:<12}{calls / ops:>12.2f}{usec / ops:>10.1f}"
            for name, (calls, usec) in sorted(spent.items(), key=lambda item: -item[1][1])
        ]
        lines.append("(a script's row includes the commands it called, also listed under their own names)")
        return "\n".join(lines)

    return profile


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes, token = ctx.sizes, ctx.token
    factory = SessionFactory("redis", 5_000)
    async with (
        open_cache("redis", ctx, "redis") as cache,
        raw_client(ctx.redis_url) as raw,
        raw_client(ctx.redis_url) as peer_client,
    ):
        peer = RedisStore(peer_client, namespace=f"{token}-litestar")
        st = storage(cache, ctx.namespace("redis"))
        blob = st.encode(factory.template)
        stored = factory.batch(sizes.redis_ops)
        for state in stored:
            await st.store_session(state)
            await raw.set(f"{token}:raw:{state.session_id}", st.encode(state), ex=TTL)
            await peer.set(state.session_id, state.model_dump_json(), expires_in=TTL)

        async def raw_set(state: SessionState) -> None:
            await raw.set(f"{token}:raw:{state.session_id}", blob, ex=TTL)

        async def peer_set(state: SessionState) -> None:
            await peer.set(state.session_id, state.model_dump_json(), expires_in=TTL)

        async def peer_get(session_id: str) -> SessionState:
            data = await peer.get(session_id)
            assert data is not None
            return SessionState.model_validate_json(data)

        targets = {sizes.in_flight: (0.9, 0.9, sizes.redis_ops), 1: (0.45, 0.7, sizes.redis_serial_ops)}
        for flight, (store_bound, read_bound, ops) in targets.items():
            ids = [state.session_id for state in stored[:ops]]
            yield Case(
                case_id=f"redis-store-{50 if flight > 1 else 1}",
                title=f"Redis store, 5 KB session, {flight} in flight",
                baseline=writes("raw redis-py SET EX of the encoded bytes", factory, ops, flight, raw_set),
                candidate=writes("store_session", factory, ops, flight, st.store_session),
                target=Target("speedup", store_bound),
                peers=[writes("litestar RedisStore.set of pydantic JSON", factory, ops, flight, peer_set)],
            )
            yield Case(
                case_id=f"redis-retrieve-{50 if flight > 1 else 1}",
                title=f"Redis retrieve, 5 KB session, {flight} in flight",
                baseline=reads("raw redis-py GET", ids, flight, lambda sid: raw.get(f"{token}:raw:{sid}")),
                candidate=reads("retrieve_session", ids, flight, st.retrieve_session),
                target=Target("speedup", read_bound),
                peers=[reads("litestar RedisStore.get + model_validate_json", ids, flight, peer_get)],
            )
        n, flight = sizes.redis_ops, sizes.in_flight
        yield Case(
            case_id="redis-store-vs-original-50",
            title=f"Redis store vs the original module's RedisStorage, {flight} in flight",
            baseline=writes(
                "SET EX + SADD x2 + EXPIRE x2, each awaited", factory, n, flight, _original(raw, token, blob)
            ),
            candidate=writes("store_session", factory, n, flight, st.store_session),
            target=Target("speedup", 4.0),
            unit="sessions/s",
        )
        yield Case(
            case_id="redis-store-sessions-1000",
            title=f"batch store of {sizes.bulk_ops:,} sessions vs as many single stores",
            baseline=writes("store_session one at a time", factory, sizes.bulk_ops, 1, st.store_session),
            candidate=_batch(st, factory, sizes.bulk_ops, sizes.bulk_in_flight),
            target=Target("speedup", 5.0),
            unit="sessions/s",
            on_miss=notes.BULK_MISS,
        )

    async with (
        private_server(ctx.tmp / "redis-cpu") as url,
        open_cache("redis", ctx, "cpu", url=url) as cache,
        raw_client(url) as raw,
    ):
        st = storage(cache, "cpu")
        blob = st.encode(factory.template)

        async def plain_set(state: SessionState) -> None:
            await raw.set(f"raw:{state.session_id}", blob, ex=TTL)

        yield Case(
            case_id="redis-server-cpu-per-write",
            title="Redis server CPU per new-session write (INFO commandstats, private server)",
            baseline=_server_cpu("SET EX", raw, factory, sizes.cpu_ops, plain_set),
            candidate=_server_cpu("store_session's write", raw, factory, sizes.cpu_ops, st.store_session),
            target=Target("limit", 25e-6),
            unit="µs/write",
            on_miss=notes.SERVER_CPU_MISS,
            profile=_server_profile(raw, factory, sizes.cpu_ops, st.store_session),
        )
