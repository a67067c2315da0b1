"""Conversations that grow (issue 15): does a turn cost the same at message 1,000 as at 10?

Run on the shared Redis (keys containing this run's token), an SQLite file in the run's scratch
directory and the shared PostgreSQL (a schema of this run's own, dropped afterwards). Messages
are about 400 characters of prose (JSON of about 480 bytes); every conversation is built by
appends, so its messages are in the session's log, as a conversation's are once it has grown.

* ``conv-turn-<engine>``: a turn -- ``get_messages(last=20)`` then ``append_messages`` of one
  message, one turn at a time -- in sessions of ``long`` messages against the same turn in
  sessions of ``short``. Peers: the whole-session turn (``get_session`` + ``mutate`` appending
  one message) at both lengths, as ratios to the same baseline.
* ``conv-append-flat-<engine>``: ``ServerlessSessionManager.append_messages`` of one message at a
  time to one session: the last ``window`` of ``total`` appends against the first ``window``.
  The earlier messages are appended ``prefill_batch`` at a time, untimed: the same log as
  appending them one by one, in a fraction of the time.
* ``conv-redis-append-50`` and ``conv-redis-append-adapter-50``: one message appended with 50
  in flight, by ``ACBCacheStorage.append_messages`` (encodes the message) and by the Redis
  adapter's ``append`` (bytes already encoded), against redis-py ``RPUSH`` of the same bytes.

Conversations are built before a repetition's clock starts, and rebuilt (the old ones deleted)
whenever the turns measured on them would grow them by more than ``DRIFT`` of their length: a
10-message conversation is rebuilt every repetition, a 1,000-message one stays within 1,000-1,100.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tests.cache_factories.postgres import SHARED_URL as POSTGRES_URL
from tests.cache_factories.postgres import drop_schema, unique_schema

from backends import TTL, open_cache, storage
from context import Context
from harness import Case, Side, Target, timed_concurrent
from redis_env import raw_client
from serverless_sessions import KEEP_TTL, ACBCacheStorage, Codec, ServerlessSessionManager
from serverless_sessions.adapters.cache import postgres
from serverless_sessions.adapters.cache.base import AppendableCache
from sessions import sample_fields

ENGINES = ("redis", "sqlite", "postgres")
CASE_IDS = [
    *(case_id for engine in ENGINES for case_id in (f"conv-turn-{engine}", f"conv-append-flat-{engine}")),
    "conv-redis-append-50",
    "conv-redis-append-adapter-50",
]
WINDOW = 20
DRIFT = 0.1  # how far (a fraction of their length) conversations may grow before they are rebuilt
USER, PROJECT = "user-conv", "project-conv"
# The long conversation of the flat-append case is past the default 1 MiB session bound.
LONG_CODEC = Codec(max_size=16 * 1024 * 1024)
# About 400 characters of prose each; the sample's last, shorter message is left out.
MESSAGES: list[Any] = sample_fields(60_000)["conversation_history"][:-1]


@dataclass(frozen=True)
class ConversationSizes:
    """Work per repetition of this module's cases; ``--smoke`` shrinks every one.

    Turns are short (a few milliseconds), so their case takes many small repetitions: on a
    loaded 2-core machine the median of 21 is steadier than that of 11 longer ones.
    """

    short: int = 10
    long: int = 1_000
    sessions: int = 10
    turns: int = 30
    whole_turns_long: int = 10
    turn_reps: int = 21
    total: int = 10_000
    window: int = 1_000
    prefill_batch: int = 1_000
    flat_reps: int = 3
    append_sessions: int = 200


FULL = ConversationSizes()
SMOKE = ConversationSizes(
    long=60,
    sessions=2,
    turns=4,
    whole_turns_long=2,
    total=80,
    window=20,
    prefill_batch=30,
    turn_reps=1,
    flat_reps=1,
    append_sessions=10,
)


def message(i: int) -> Any:
    return MESSAGES[i % len(MESSAGES)]


class Conversations:
    """``count`` sessions of ``length`` messages, plus at most ``DRIFT`` of that appended since.

    :meth:`ready` rebuilds them (deleting the previous ones) when the coming appends would take
    them past that: short conversations every repetition, long ones seldom, since rebuilding
    1,000 messages per session costs more than the turns measured on it.
    """

    def __init__(
        self, manager: ServerlessSessionManager, tag: str, count: int, length: int, batch: int
    ) -> None:
        self.manager = manager
        self.tag = tag
        self.count = count
        self.length = length
        self.batch = batch
        self.ids: list[str] = []
        self.appended = 0  # messages appended to each session since it was built, at most
        self._built = 0

    async def ready(self, appends: int) -> list[str]:
        """The sessions, to receive ``appends`` more messages spread round-robin over them."""
        each = -(-appends // self.count)
        if not self.ids or self.appended + each > self.length * DRIFT:
            await self._rebuild()
        self.appended += each
        return self.ids

    async def _rebuild(self) -> None:
        for session_id in self.ids:
            await self.manager.delete_session(session_id)
        self.ids, self.appended = [], 0
        for _ in range(self.count):
            self._built += 1
            session_id = await self.manager.create_session(
                USER, PROJECT, session_id=f"{self.tag}-{self._built}"
            )
            for done in range(0, self.length, self.batch):
                batch = [message(i) for i in range(done, min(done + self.batch, self.length))]
                await self.manager.append_messages(session_id, batch)
            self.ids.append(session_id)


Turn = Callable[[str, int], Awaitable[object]]


def turns(label: str, conversations: Conversations, ops: int, turn: Turn) -> Side:
    """``ops`` turns, one at a time, spread round-robin over ``conversations``."""

    async def run() -> float:
        ids = await conversations.ready(ops)
        return await timed_concurrent(lambda i: turn(ids[i % len(ids)], i), ops, 1)

    return Side(label, ops, run)


def log_turn(manager: ServerlessSessionManager) -> Turn:
    """Issue 15's turn: read the last ``WINDOW`` messages, append one."""

    async def turn(session_id: str, i: int) -> None:
        page = await manager.get_messages(session_id, last=WINDOW)
        if len(page.messages) != min(WINDOW, page.total):
            raise AssertionError(f"read {len(page.messages)} of the last {WINDOW} of {page.total} messages")
        await manager.append_messages(session_id, [message(i)])

    return turn


def whole_turn(manager: ServerlessSessionManager) -> Turn:
    """The turn before issue 15: read the whole session, then append by read-modify-write."""

    async def turn(session_id: str, i: int) -> None:
        await manager.get_session(session_id)
        await manager.mutate(session_id, lambda state: state.conversation_history.append(message(i)))

    return turn


def turn_case(engine: str, manager: ServerlessSessionManager, sizes: ConversationSizes) -> Case:
    def conversations(kind: str, length: int) -> Conversations:
        return Conversations(manager, f"turn-{kind}-{length}", sizes.sessions, length, sizes.long)

    short, long = sizes.short, sizes.long
    return Case(
        case_id=f"conv-turn-{engine}",
        title=f"{engine}: a turn (last {WINDOW} messages + append 1) at {long:,} vs {short} messages",
        baseline=turns(f"at {short} messages", conversations("log", short), sizes.turns, log_turn(manager)),
        candidate=turns(f"at {long:,} messages", conversations("log", long), sizes.turns, log_turn(manager)),
        target=Target("cost", 1.5),
        unit="turns/s",
        reps=sizes.turn_reps,
        peers=[
            turns(
                f"whole-session turn at {short}",
                conversations("whole", short),
                sizes.turns,
                whole_turn(manager),
            ),
            turns(
                f"whole-session turn at {long:,}",
                conversations("whole", long),
                sizes.whole_turns_long,
                whole_turn(manager),
            ),
        ],
    )


def appends(label: str, conversation: Conversations, window: int) -> Side:
    """``window`` appends of one message each to ``conversation`` (rebuilt for every run)."""

    async def run() -> float:
        (session_id,) = await conversation.ready(window)
        offset = conversation.length + conversation.appended - window

        async def append(i: int) -> None:
            await conversation.manager.append_messages(session_id, [message(offset + i)])

        return await timed_concurrent(append, window, 1)

    return Side(label, window, run)


def flat_case(engine: str, manager: ServerlessSessionManager, sizes: ConversationSizes) -> Case:
    total, window, batch = sizes.total, sizes.window, sizes.prefill_batch
    return Case(
        case_id=f"conv-append-flat-{engine}",
        title=f"{engine}: append_messages one by one, appends {total - window:,}-{total:,} vs 0-{window:,}",
        baseline=appends(f"first {window:,}", Conversations(manager, "flat-first", 1, 0, batch), window),
        candidate=appends(
            f"last {window:,} of {total:,}",
            Conversations(manager, "flat-last", 1, total - window, batch),
            window,
        ),
        target=Target("cost", 1.5),
        unit="appends/s",
        reps=sizes.flat_reps,
    )


@asynccontextmanager
async def engine_cache(engine: str, ctx: Context) -> AsyncIterator[Any]:
    """A fresh cache of ``engine``; PostgreSQL's in a schema of its own, dropped on exit."""
    if engine != "postgres":
        async with open_cache(engine, ctx, f"conv-{engine}") as cache:
            yield cache
        return
    schema = unique_schema()
    try:
        async with postgres.Cache.from_url(POSTGRES_URL, schema=schema) as cache:
            yield cache
    finally:
        await drop_schema(schema)


def in_flight(label: str, ops: int, flight: int, op: Callable[[int], Awaitable[object]]) -> Side:
    async def run() -> float:
        return await timed_concurrent(op, ops, flight)

    return Side(label, ops, run)


async def redis_append_cases(ctx: Context, sizes: ConversationSizes) -> AsyncIterator[Case]:
    # Three times the other Redis rows' work per repetition: at ~0.1 s a repetition of these
    # cheap calls was shorter than the bursts of the other processes sharing the 2 cores.
    ops, flight = 3 * ctx.sizes.redis_ops, ctx.sizes.in_flight
    async with open_cache("redis", ctx, "conv-append") as cache, raw_client(ctx.redis_url) as raw:
        st = storage(cache, ctx.namespace("conv-append"))
        manager = ServerlessSessionManager(st)
        ids = await Conversations(manager, "append", sizes.append_sessions, 0, 1).ready(0)
        raw_keys = [f"{ctx.token}:raw-log:{session_id}" for session_id in ids]
        body = st.codec.message_body(message(0), session_id=ids[0], path="messages[0]")
        item = st.codec.wrap(body)
        log: AppendableCache = cache

        async def rpush(i: int) -> None:
            await raw.rpush(raw_keys[i % len(raw_keys)], item)

        async def storage_append(i: int) -> None:
            # Without encryption an append is not checked against the count the caller read.
            await st.append_messages(ids[i % len(ids)], [message(0)], ttl_seconds=None, expected_count=0)

        async def adapter_append(i: int) -> None:
            await log.append(
                ids[i % len(ids)],
                [item],
                weight=len(body),
                limit=st.codec.max_size,
                ttl=KEEP_TTL,
                touched_at=time.time(),
                namespace=st.namespace,
            )

        baseline = f"raw redis-py RPUSH of the {len(item)}-byte item"
        for case_id, label, op in (
            ("conv-redis-append-50", "ACBCacheStorage.append_messages", storage_append),
            ("conv-redis-append-adapter-50", "redis Cache.append (encoded item)", adapter_append),
        ):
            yield Case(
                case_id=case_id,
                title=f"Redis append of one message, {flight} in flight: {label} vs RPUSH",
                baseline=in_flight(baseline, ops, flight, rpush),
                candidate=in_flight(label, ops, flight, op),
                target=Target("speedup", 0.9),
                unit="appends/s",
            )


def managers(
    cache: Any, ctx: Context, engine: str
) -> tuple[ServerlessSessionManager, ServerlessSessionManager]:
    """The managers of the turn case (default codec) and the flat case (``LONG_CODEC``)."""
    turn = storage(cache, ctx.namespace(f"conv-turn-{engine}"))
    flat = ACBCacheStorage(cache, ctx.namespace(f"conv-flat-{engine}"), codec=LONG_CODEC, default_ttl=TTL)
    for st in (turn, flat):
        if st.message_log is None:
            raise AssertionError(f"the {engine} adapter keeps no message log")
    return ServerlessSessionManager(turn), ServerlessSessionManager(flat)


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes = SMOKE if ctx.smoke else FULL
    for engine in ENGINES:
        if not ctx.wants(f"conv-turn-{engine}", f"conv-append-flat-{engine}"):
            continue
        async with engine_cache(engine, ctx) as cache:
            turn, flat = managers(cache, ctx, engine)
            yield turn_case(engine, turn, sizes)
            yield flat_case(engine, flat, sizes)
    if ctx.wants("conv-redis-append"):
        async for case in redis_append_cases(ctx, sizes):
            yield case
