"""Auto-pipelining: commands issued concurrently on one link share one write and one read.

A command issued while the link is idle (no batch queued or in flight) is sent at once by its
caller, as a plain redis-py call would be: a lone caller pays for no task and no extra turn of
the event loop. A command issued while others are in flight is queued with a future; the first
one queued starts one flush task, whose first step runs on the next turn of the event loop, so
the command leaves together with every command other tasks queued in the same turn. A flush
takes one pooled connection, writes the whole batch at once and reads the replies in order,
resolving each command's future as its reply arrives.

Error delivery:

* an error reply (``WRONGTYPE``, ``NOSCRIPT``, a Lua error...) fails only its own command;
* a connection failure or the batch's deadline fails every command of the batch still without
  a reply, and the connection is dropped (never returned with replies left unread);
* a caller that gives up (its own deadline, a cancellation) only abandons its future: the
  flush still reads that command's reply, so the connection stays in step for the others.

A batch ends by its first caller's deadline (queued + the link's call budget), and its exchange
(once it has a connection) within ``socket_timeout``, so a server that stops answering cannot
hold a flush (and its connection) longer than its callers wait for it. That deadline is the one
timer of a call that succeeds at once: the caller's retry policy sets its own only for retries
(:meth:`.errors.RetryPolicy.run`), and redis-py's per-send and per-read timeouts are off
(``socket_timeout=None`` on its connections).

On a cluster (:class:`ClusterAutoPipeline`) a batch is split by master, and each master's share
is one exchange through redis-py's cluster pipeline (which follows ``MOVED`` / ``ASK``), all
shares at once. The batching, the deadline and the error delivery above are the same
(:class:`Batching`), per share: a master that stops answering fails only the commands it holds.
There each call also keeps a timer of its own (learning the cluster's layout comes before its
batch), and redis-py's own cluster retry is off: it would close every connection of the client.

A link that owns its pool keeps the connection of its last exchange for the next one, instead of
giving it back to the pool and taking one again: redis-py 8's pool records metrics and takes a
lock on both steps, about a tenth of a lone call's client time. The kept connection still
counts as in use in the pool, so anything else that takes a connection from the pool first
gives it back (:meth:`AutoPipeline.release_idle`). One that the server closed while it sat idle
(or that has unread bytes) is closed and connected again before use.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serverless_sessions.adapters.cache.redis.errors import BACKEND_ERRORS

try:  # hiredis packs a command in C; redis-py's asyncio client packs in Python
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with the ``redis`` extra
    _hiredis_pack = None  # type: ignore[assignment]

__all__ = ["AutoPipeline", "Batching", "ClusterAutoPipeline", "Pending"]

Command = tuple[Any, ...]


class Pending:
    """One queued command: its arguments, its future, and when its batch got a connection slot."""

    __slots__ = ("args", "future", "queued_at", "started_at")

    def __init__(self, args: Command, future: asyncio.Future[Any], queued_at: float) -> None:
        self.args = args
        self.future = future
        self.queued_at = queued_at
        self.started_at: float | None = None

    def queued_for(self) -> float:
        """Seconds this command waited for a connection slot (so far, if it still waits)."""
        end = asyncio.get_running_loop().time() if self.started_at is None else self.started_at
        return end - self.queued_at


def _pack(connection: Any, commands: Sequence[Command]) -> list[bytes]:
    if _hiredis_pack is None:  # pragma: no cover
        return list(connection.pack_commands(commands))
    return [b"".join(map(_hiredis_pack, commands))]


class Batching(ABC):
    """Concurrent commands gathered into batches; how a batch reaches the server is a subclass's."""

    def __init__(self, slots: asyncio.Semaphore | None, *, budget: float, exchange_timeout: float) -> None:
        self._slots = slots
        self._budget = budget
        self._exchange_timeout = exchange_timeout
        self._queue: list[Pending] = []
        self._flushing: set[asyncio.Task[None]] = set()
        self._sending = 0  # batches between their start and their last reply

    @staticmethod
    def command(args: Command) -> Pending:
        """A command to :meth:`run`; it records when it was issued."""
        loop = asyncio.get_running_loop()
        return Pending(args, loop.create_future(), loop.time())

    async def run(self, pending: Pending) -> Any:
        """``pending``'s reply (or its error): sent now if the link is idle, else with the next batch."""
        if self._sending or self._queue:
            if not self._queue:
                # The task's first step runs on the next turn, after every command queued in this one.
                task = asyncio.get_running_loop().create_task(self._flush())
                self._flushing.add(task)  # the loop keeps only weak references to tasks
                task.add_done_callback(self._flushing.discard)
            self._queue.append(pending)
        else:
            await self._send([pending])
        return await pending.future

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        await self._send(batch)

    async def _send(self, batch: list[Pending]) -> None:
        self._sending += 1
        budget_ends = batch[0].queued_at + self._budget
        try:
            # Armed only where a wait can begin (one timer for a batch that takes the kept
            # connection, instead of one set here and moved once connected).
            async with asyncio.timeout_at(None) as deadline:
                if self._slots is None:
                    await self._start(batch, deadline, budget_ends)
                    return
                if self._slots.locked():
                    deadline.reschedule(budget_ends)
                async with self._slots:
                    await self._start(batch, deadline, budget_ends)
        except TimeoutError:
            _fail(batch, RedisTimeoutError("no reply in time"))
        except BaseException as exc:  # every caller must hear of it, whatever it is
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._sending -= 1

    async def _start(self, batch: list[Pending], deadline: asyncio.Timeout, budget_ends: float) -> None:
        if all(pending.future.done() for pending in batch):
            return  # every caller gave up while the batch waited for a connection slot
        started_at = asyncio.get_running_loop().time()
        for pending in batch:
            pending.started_at = started_at
        await self._exchange(batch, deadline, budget_ends)

    @abstractmethod
    async def _exchange(self, batch: list[Pending], deadline: asyncio.Timeout, budget_ends: float) -> None:
        """Send ``batch`` and settle each command's future, within ``deadline`` (rescheduled here)."""

    async def release_idle(self) -> None:  # noqa: B027 - only AutoPipeline keeps a connection
        """Give back a connection kept between batches, if this kind keeps one."""


class AutoPipeline(Batching):
    """Batches of concurrent commands over one pool, each batch on one connection."""

    def __init__(
        self,
        pool: ConnectionPool,
        slots: asyncio.Semaphore | None,
        *,
        budget: float,
        exchange_timeout: float,
        keep_connection: bool = False,
    ) -> None:
        super().__init__(slots, budget=budget, exchange_timeout=exchange_timeout)
        self._pool = pool
        self._keep_connection = keep_connection
        self._idle: AbstractConnection | None = None  # kept from the last exchange

    async def _exchange(self, batch: list[Pending], deadline: asyncio.Timeout, budget_ends: float) -> None:
        loop = asyncio.get_running_loop()
        connection = await self._take_connection(deadline, budget_ends)
        # Connecting had the call's budget; the exchange itself gets the socket timeout.
        deadline.reschedule(min(budget_ends, loop.time() + self._exchange_timeout))
        try:
            await connection.send_packed_command(_pack(connection, [p.args for p in batch]), False)
            for pending in batch:
                try:
                    reply = await connection.read_response()
                except ResponseError as error:
                    _settle(pending.future, error=error)
                else:
                    _settle(pending.future, reply)
        except BaseException:
            await self._close_and_release(connection)  # replies may be left unread
            raise
        if self._keep_connection and self._idle is None:
            self._idle = connection
        else:
            await self._pool.release(connection)

    async def _take_connection(self, deadline: asyncio.Timeout, budget_ends: float) -> AbstractConnection:
        kept, self._idle = self._idle, None
        if kept is not None:
            reconnect = kept.should_reconnect()  # type: ignore[no-untyped-call]
            try:
                if kept.is_connected and not reconnect and not await kept.can_read():
                    return kept
            except RedisConnectionError:  # the socket failed while it sat idle
                pass
            # Closed, so the pool connects it again (redis-py 8's pool skips its own check of
            # a connection's state when maintenance notifications are on).
            await self._close_and_release(kept)
        deadline.reschedule(budget_ends)  # the pool may connect, within the call's budget
        return await self._pool.get_connection()  # type: ignore[no-untyped-call,no-any-return]

    async def _close_and_release(self, connection: AbstractConnection) -> None:
        await connection.disconnect(nowait=True)
        await self._pool.release(connection)

    async def release_idle(self) -> None:
        """Give the kept connection back to the pool (before anything else takes one from it)."""
        kept, self._idle = self._idle, None
        if kept is not None:
            await self._pool.release(kept)


class ClusterAutoPipeline(Batching):
    """Batches of concurrent commands on a cluster: one exchange per master, side by side.

    The batch is split by the master that serves each command's key (every command this
    adapter sends has one key, or a script given one key); each master's share goes through
    redis-py's cluster pipeline, which writes it on one of that master's connections and
    follows ``MOVED`` / ``ASK``. The shares settle their callers as each ends, so a master that
    stops answering fails only the commands it holds, when the batch's deadline ends it. A lone
    command goes through the client's own ``execute_command``.
    """

    def __init__(
        self, client: RedisCluster, slots: asyncio.Semaphore | None, *, budget: float, exchange_timeout: float
    ) -> None:
        super().__init__(slots, budget=budget, exchange_timeout=exchange_timeout)
        self._client = client

    async def _exchange(self, batch: list[Pending], deadline: asyncio.Timeout, budget_ends: float) -> None:
        # redis-py connects inside the exchange: the call's budget bounds both.
        deadline.reschedule(min(budget_ends, asyncio.get_running_loop().time() + self._exchange_timeout))
        shares: dict[str, list[Pending]] = {}
        for pending in batch:
            shares.setdefault(self._master_of(pending.args), []).append(pending)
        await asyncio.gather(*(self._exchange_share(share) for share in shares.values()))

    def _master_of(self, args: Command) -> str:
        key = args[3] if args[0] == "EVALSHA" else args[1]
        try:
            master = self._client.get_node_from_key(key)
        except RedisClusterException:  # no layout for its slot yet: redis-py will route it
            return ""
        return "" if master is None else master.name

    async def _exchange_share(self, share: list[Pending]) -> None:
        try:
            replies = await self._replies(share)
        except Exception as error:  # this share's connection or routing failed, not the others'
            _fail(share, _backend_error(error))
            return
        for pending, reply in zip(share, replies, strict=True):
            if isinstance(reply, Exception):
                _settle(pending.future, error=_backend_error(reply))
            else:
                _settle(pending.future, reply)

    async def _replies(self, share: list[Pending]) -> list[Any]:
        """One reply per command of ``share``, an error reply as its exception."""
        if len(share) == 1:
            try:
                return [await self._client.execute_command(*share[0].args)]
            except ResponseError as error:
                return [error]
        pipeline = self._client.pipeline(transaction=False)
        for pending in share:
            pipeline.execute_command(*pending.args)
        return list(await pipeline.execute(raise_on_error=False))


def _backend_error(error: Exception) -> Exception:
    """``error``, or a lost connection in its place when redis-py failed outside its own errors.

    An injected cluster client keeps redis-py's own retries, which close every connection of
    the client; a command then using one of them can fail inside redis-py with, say,
    ``AttributeError``. Its caller retries it as the lost connection it is.
    """
    if isinstance(error, BACKEND_ERRORS):
        return error
    lost = RedisConnectionError(f"connection lost inside redis-py ({type(error).__name__}: {error})")
    lost.__cause__ = error
    return lost


def _settle(future: asyncio.Future[Any], reply: Any = None, *, error: BaseException | None = None) -> None:
    if future.done():  # its caller gave up; the reply was read all the same
        return
    if error is None:
        future.set_result(reply)
    else:
        future.set_exception(error)


def _fail(batch: list[Pending], error: BaseException) -> None:
    for pending in batch:
        if isinstance(error, asyncio.CancelledError):
            # Its waiters see the cancellation; a lone caller that sent it itself (and was
            # the one cancelled) leaves no future with an error nobody reads.
            pending.future.cancel()
        else:
            _settle(pending.future, error=error)
