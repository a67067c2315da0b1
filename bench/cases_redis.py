"""Redis store and retrieve of a 5 KB session against raw redis-py commands on the same server.

* Store (50 in flight): ``store_session`` of new sessions (encode + one Lua compare-and-set
  that also maintains the user, project and expiry indexes) against ``SET key bytes EX ttl`` of
  the already-encoded bytes.
* Retrieve (50 in flight): ``retrieve_session`` (read + decode + validate) against ``GET``.
* Store against the original module's store: ``SET EX`` + ``SADD`` x2 + ``EXPIRE`` x2 as
  separate awaited commands; one session at a time and 50 in flight on loopback, and one at a
  time through a proxy adding a network-like round trip (see ``latency_proxy``).

The raw side never encodes or decodes (it gets the bytes ready-made), so every ratio also
charges the candidate for its codec. Both sides use the shared server, db 13, keys containing
this run's token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from redis.asyncio import Redis

import notes
from backends import open_cache, storage
from context import Context
from harness import Case, Side, Target, ladder, timed_concurrent
from latency_proxy import latency_proxy
from redis_env import measured_rtt_ms, raw_client
from serverless_sessions import ACBCacheStorage, SessionState
from sessions import SessionFactory

CASE_IDS = [
    "redis-store-50",
    "redis-retrieve-50",
    "redis-store-vs-original-1",
    "redis-store-vs-original-50",
    "redis-store-vs-original-1-rtt",
]
TTL = 86400
ONE_WAY_DELAY_MS = 0.1


def _side(
    label: str,
    factory: SessionFactory,
    ops: int,
    flight: int,
    write: Callable[[SessionState], Awaitable[object]],
) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        return await timed_concurrent(lambda i: write(states[i]), ops, flight)

    return Side(label, ops, run)


def _original_store(raw: Redis, token: str, blob: bytes) -> Callable[[SessionState], Awaitable[None]]:
    async def store(state: SessionState) -> None:
        user_key = f"{token}:orig:index:user:{state.user_id}"
        project_key = f"{token}:orig:index:project:{state.project_id}"
        await raw.set(f"{token}:orig:session:{state.session_id}", blob, ex=TTL)
        await raw.sadd(user_key, state.session_id)
        await raw.sadd(project_key, state.session_id)
        await raw.expire(user_key, TTL)
        await raw.expire(project_key, TTL)

    return store


def _versus_original(
    case_id: str, title: str, st: ACBCacheStorage, raw: Redis, ctx: Context, ops: int, flight: int
) -> Case:
    factory = SessionFactory(f"orig-{case_id}", 5_000)
    blob = st.encode(factory.template)
    return Case(
        case_id=case_id,
        title=title,
        baseline=_side(
            "SET EX + SADD x2 + EXPIRE x2, each awaited",
            factory,
            ops,
            flight,
            _original_store(raw, ctx.token, blob),
        ),
        candidate=_side("store_session", factory, ops, flight, st.store_session),
        target=Target("speedup", 3.0),
        unit="sessions/s",
        on_miss=notes.ORIGINAL_MISS,
    )


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes = ctx.sizes
    token = ctx.token
    n, flight = sizes.redis_ops, sizes.in_flight
    factory = SessionFactory("redis", 5_000)
    async with open_cache("redis", ctx, "redis") as cache, raw_client(ctx.redis_url) as raw:
        st = storage(cache, ctx.namespace("redis"))
        blob = st.encode(factory.template)

        async def raw_set(state: SessionState) -> None:
            await raw.set(f"{token}:raw:{state.session_id}", blob, ex=TTL)

        store_case = Case(
            case_id="redis-store-50",
            title=f"Redis store, 5 KB session, {flight} in flight",
            baseline=_side("raw redis-py SET EX of the encoded bytes", factory, n, flight, raw_set),
            candidate=_side("store_session (encode + 1 Lua CAS)", factory, n, flight, st.store_session),
            target=Target("speedup", 0.9),
            unit="ops/s",
            on_miss=notes.STORE_MISS,
        )
        yield store_case
        noop = raw.register_script("return 1")
        layout_keys = 5  # data hash, expiry zset, user and project index zsets (+1 spare)

        async def noop_script(state: SessionState) -> None:
            keys = [f"{token}:noop:{state.session_id}:{k}" for k in range(layout_keys)]
            await noop(keys, ["set", state.session_id, 0, blob, "1", "g" * 16, "[]", "1", ""])

        async def adapter_cas(state: SessionState) -> None:
            indexes = (f"user:{state.user_id}", f"project:{state.project_id}")
            await cache.compare_and_set(
                state.session_id,
                blob,
                expected_version=0,
                ttl=TTL,
                indexes=indexes,
                namespace=ctx.namespace("redis-cas"),
            )

        async def encode_and_set(state: SessionState) -> None:
            await raw.set(f"{token}:raw:{state.session_id}", st.encode(state), ex=TTL)

        steps = [
            store_case.baseline,
            _side("encode + SET EX", factory, n, flight, encode_and_set),
            _side("no-op EVALSHA with the same keys and args", factory, n, flight, noop_script),
            _side("adapter compare_and_set of encoded bytes", factory, n, flight, adapter_cas),
            _side("store_session", factory, n, flight, st.store_session),
        ]
        store_case.notes.append(await ladder("Decomposition", steps, sizes.ladder_reps, warmup=False))

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

        retrieve_case = Case(
            case_id="redis-retrieve-50",
            title=f"Redis retrieve, 5 KB session, {flight} in flight",
            baseline=Side("raw redis-py GET of the same bytes", n, get_raw),
            candidate=Side("retrieve_session (read + decode + validate)", n, get_session),
            target=Target("speedup", 0.9),
            unit="ops/s",
            on_miss=notes.RETRIEVE_MISS,
        )
        yield retrieve_case
        hashes = [f"{token}:hash:{state.session_id}" for state in readable]
        for key in hashes:
            await raw.hset(key, mapping={"v": blob, "n": 1, "e": 1})

        async def piped_hmget(i: int) -> object:
            pipe = raw.pipeline(transaction=False)
            pipe.hmget(hashes[i], ["v", "n", "e"])
            return await pipe.execute()

        def reads(label: str, op: Callable[[int], Awaitable[object]]) -> Side:
            async def run() -> float:
                return await timed_concurrent(op, n, flight)

            return Side(label, n, run)

        async def get_and_decode(i: int) -> object:
            session_id = readable[i].session_id
            data = await raw.get(f"{token}:get:{session_id}")
            assert isinstance(data, bytes)
            return st.decode(session_id, data, 1)

        steps = [
            retrieve_case.baseline,
            reads("GET + decode", get_and_decode),
            reads("raw HMGET v n e", lambda i: raw.hmget(hashes[i], ["v", "n", "e"])),
            reads("raw pipeline of that one HMGET", piped_hmget),
            reads(
                "adapter get_entry", lambda i: cache.get_entry(readable[i].session_id, namespace=st.namespace)
            ),
            retrieve_case.candidate,
        ]
        retrieve_case.notes.append(await ladder("Decomposition", steps, sizes.ladder_reps, warmup=False))
        yield _versus_original(
            "redis-store-vs-original-1",
            "Redis store vs the original module's store, 1 in flight",
            st,
            raw,
            ctx,
            sizes.redis_serial_ops,
            1,
        )
        yield _versus_original(
            "redis-store-vs-original-50",
            f"Redis store vs the original module's store, {flight} in flight",
            st,
            raw,
            ctx,
            n,
            flight,
        )

    parts = urlsplit(ctx.redis_url)
    async with latency_proxy(parts.port or 6379, ONE_WAY_DELAY_MS) as port:
        url = parts._replace(netloc=f"127.0.0.1:{port}").geturl()
        async with open_cache("redis", ctx, "redis-rtt", url=url) as cache, raw_client(url) as raw:
            rtt = await measured_rtt_ms(raw)
            case = _versus_original(
                "redis-store-vs-original-1-rtt",
                f"Redis store vs the original module's store, 1 in flight, {rtt:.2f} ms round trip",
                storage(cache, ctx.namespace("redis-rtt")),
                raw,
                ctx,
                sizes.rtt_ops,
                1,
            )
            case.notes.append(
                f"Through latency_proxy ({ONE_WAY_DELAY_MS} ms each way): PING round trip "
                f"{rtt:.2f} ms median (loopback without the proxy: ~0.1 ms)."
            )
            yield case
