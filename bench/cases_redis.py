"""Redis store and retrieve of a 5 KB session against raw redis-py commands on the same server.

* Store (50 in flight): ``store_session`` of new sessions (encode + one Lua compare-and-set
  that also maintains the user, project and expiry indexes) against ``SET key bytes EX ttl`` of
  the already-encoded bytes.
* Retrieve (50 in flight): ``retrieve_session`` (read + decode + validate) against ``GET``.
* Store against the original module's store: ``SET EX`` + ``SADD`` x2 + ``EXPIRE`` x2 as
  separate awaited commands, one session at a time and 50 in flight.

The raw side never encodes or decodes (it gets the bytes ready-made), so every ratio also
charges the candidate for its codec. Both sides use the shared server, db 13, keys containing
this run's token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from backends import open_cache, storage
from context import Context
from harness import Case, Side, Target, timed_concurrent
from redis_env import raw_client
from serverless_sessions import ACBCacheStorage, SessionState
from sessions import SessionFactory

CASE_IDS = [
    "redis-store-50",
    "redis-retrieve-50",
    "redis-store-vs-original-1",
    "redis-store-vs-original-50",
]
TTL = 86400


def _store_side(label: str, st: ACBCacheStorage, factory: SessionFactory, ops: int, in_flight: int) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        return await timed_concurrent(lambda i: st.store_session(states[i]), ops, in_flight)

    return Side(label, ops, run)


def _raw_side(
    label: str,
    factory: SessionFactory,
    ops: int,
    in_flight: int,
    write: Callable[[SessionState], Awaitable[object]],
) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        return await timed_concurrent(lambda i: write(states[i]), ops, in_flight)

    return Side(label, ops, run)


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes = ctx.sizes
    token = ctx.token
    factory = SessionFactory("redis", 5_000)
    async with open_cache("redis", ctx, "redis") as cache, raw_client(ctx.redis_url) as raw:
        st = storage(cache, ctx.namespace("redis"))
        blob = st.encode(factory.template)

        async def raw_set(state: SessionState) -> None:
            await raw.set(f"{token}:raw:{state.session_id}", blob, ex=TTL)

        async def original_store(state: SessionState) -> None:
            user_key = f"{token}:orig:index:user:{state.user_id}"
            project_key = f"{token}:orig:index:project:{state.project_id}"
            await raw.set(f"{token}:orig:session:{state.session_id}", blob, ex=TTL)
            await raw.sadd(user_key, state.session_id)
            await raw.sadd(project_key, state.session_id)
            await raw.expire(user_key, TTL)
            await raw.expire(project_key, TTL)

        n, flight = sizes.redis_ops, sizes.in_flight
        yield Case(
            case_id="redis-store-50",
            title=f"Redis store, 5 KB session, {flight} in flight",
            baseline=_raw_side("raw redis-py SET EX of the encoded bytes", factory, n, flight, raw_set),
            candidate=_store_side("store_session (encode + 1 Lua CAS)", st, factory, n, flight),
            target=Target("speedup", 0.9),
            unit="ops/s",
            on_miss=_STORE_MISS,
        )

        readable = factory.batch(n)
        for state in readable:
            await st.store_session(state)
            await raw.set(f"{token}:get:{state.session_id}", st.encode(state), ex=TTL)

        async def get_raw() -> float:
            return await timed_concurrent(
                lambda i: raw.get(f"{token}:get:{readable[i].session_id}"), n, flight
            )

        async def get_session() -> float:
            return await timed_concurrent(lambda i: st.retrieve_session(readable[i].session_id), n, flight)

        yield Case(
            case_id="redis-retrieve-50",
            title=f"Redis retrieve, 5 KB session, {flight} in flight",
            baseline=Side("raw redis-py GET of the same bytes", n, get_raw),
            candidate=Side("retrieve_session (read + decode + validate)", n, get_session),
            target=Target("speedup", 0.9),
            unit="ops/s",
            on_miss=_RETRIEVE_MISS,
        )

        for flight in (1, sizes.in_flight):
            n = sizes.redis_serial_ops if flight == 1 else sizes.redis_ops
            yield Case(
                case_id=f"redis-store-vs-original-{'1' if flight == 1 else '50'}",
                title=f"Redis store vs the original module's store, {flight} in flight",
                baseline=_raw_side(
                    "SET EX + SADD x2 + EXPIRE x2, each awaited", factory, n, flight, original_store
                ),
                candidate=_store_side("store_session", st, factory, n, flight),
                target=Target("speedup", 3.0),
                unit="sessions/s",
                on_miss=_ORIGINAL_MISS,
            )


_STORE_MISS = "(analysis pending)"
_RETRIEVE_MISS = "(analysis pending)"
_ORIGINAL_MISS = "(analysis pending)"
