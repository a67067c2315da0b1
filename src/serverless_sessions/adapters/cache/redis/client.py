"""redis-py clients for the adapter: building, sharing, retrying, and following Sentinel.

A :class:`Link` wraps one redis-py client with the policy around it. Links built from settings
are shared: every cache made from equal :class:`RedisSettings` on one event loop uses the same
client and its bounded pool (:func:`acquire` / :meth:`Link.release`, reference counted); the
last release closes it. An injected client is wrapped but never closed: whoever creates a
client closes it.

Retries happen here, at the application level, not inside redis-py (its own retry is switched
off): only transient errors, a bounded number of times, with exponential backoff and full
jitter (:class:`~.errors.RetryPolicy`), all within one call's time budget
(``RedisSettings.call_timeout``), so a server that never answers cannot hold a caller for
several timeouts in a row. Between attempts idle pooled connections are dropped,
since after a restart they are all dead, and in Sentinel mode the master is looked up again:
redis-py's built-in retry on a Sentinel client keeps reconnecting to a dead master
(redis/redis-py#3874), while a fresh connection asks Sentinel.

Sentinel failover: after ``SENTINEL FAILOVER`` the old master keeps accepting writes for
seconds until it is demoted, and those writes are lost. So at most every
``sentinel_check_interval`` seconds the link asks Sentinel for the master and, if it moved,
drops *every* pooled connection (in-use ones too: their commands fail and are retried on the
new master).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serverless_sessions.adapters.cache.redis.config import RedisSettings
from serverless_sessions.adapters.cache.redis.errors import RetryPolicy
from serverless_sessions.adapters.cache.redis.pipeline import AutoPipeline, Batching, ClusterAutoPipeline
from serverless_sessions.backoff import Backoff
from serverless_sessions.errors import ClosedError, ConfigurationError

__all__ = ["AnyClient", "Link", "acquire", "describe_client", "wrap"]

AnyClient = Redis | RedisCluster
T = TypeVar("T")

# redis-py must not retry on its own: our retry decides, and asks Sentinel again.
_NO_RETRY = Retry(NoBackoff(), 0)


def _connection_kwargs(settings: RedisSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": settings.username,
        "password": settings.password.get_secret_value() if settings.password else None,
        # No per-read timeout: redis-py would wrap every send and read in its own timer, while
        # the link already bounds each whole call (``RedisSettings.call_timeout``).
        "socket_timeout": None,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "max_connections": settings.max_connections,
    }
    if settings.ssl:
        kwargs |= {
            "ssl": True,
            "ssl_ca_certs": settings.ssl_ca_certs,
            "ssl_certfile": settings.ssl_certfile,
            "ssl_keyfile": settings.ssl_keyfile,
            "ssl_cert_reqs": settings.ssl_cert_reqs,
            "ssl_check_hostname": settings.ssl_check_hostname,
        }
    return kwargs


def _build(settings: RedisSettings) -> tuple[AnyClient, Sentinel | None]:
    kwargs = _connection_kwargs(settings)
    if settings.cluster:
        # The link is the one retry layer, as on one server: redis-py's cluster pipeline meets a
        # connection error by closing every connection of the client, other callers' in use
        # included, before it retries. Redirections (MOVED/ASK) are followed whatever this count.
        return RedisCluster(host=settings.host, port=settings.port, retry=_NO_RETRY, **kwargs), None
    kwargs |= {"db": settings.db, "retry": _NO_RETRY}
    if settings.sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.sentinels),
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.socket_connect_timeout,
        )
        client = sentinel.master_for(settings.service_name or "", check_connection=True, **kwargs)
        return client, sentinel
    if settings.unix_socket_path:
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl")}
        return Redis(unix_socket_path=settings.unix_socket_path, **kwargs), None
    return Redis(host=settings.host, port=settings.port, **kwargs), None


class Link:
    """One redis-py client, its concurrency bound, retry policy and (Sentinel) master tracking."""

    def __init__(
        self,
        client: AnyClient,
        settings: RedisSettings,
        *,
        owned: bool,
        sentinel: Sentinel | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.cluster = isinstance(client, RedisCluster)
        self.owned = owned
        self._sentinel = sentinel
        self._budget = settings.call_timeout
        pool = client.connection_pool if isinstance(client, Redis) else None
        self._sentinel_pool = pool if isinstance(pool, SentinelConnectionPool) else None
        self._slots = asyncio.Semaphore(settings.max_connections) if owned else None
        self._pipeline: Batching = (
            ClusterAutoPipeline(
                client, self._slots, budget=self._budget, exchange_timeout=settings.socket_timeout
            )
            if isinstance(client, RedisCluster)
            else AutoPipeline(
                client.connection_pool,
                self._slots,
                budget=self._budget,
                exchange_timeout=settings.socket_timeout,
                # Only where the link bounds every use of the pool (its slots) may it keep one.
                keep_connection=owned,
            )
        )
        backoff = Backoff(settings.retry_backoff, settings.retry_backoff_cap)
        self._retry = RetryPolicy(settings.retry_attempts, backoff)
        self._ready = not self.cluster
        self._ready_lock = asyncio.Lock()
        self._master: Any = None
        self._checked_at = -float("inf")
        self._refs = 0
        self._closed = False
        self.answered = False  # has the server ever answered? (see errors.translate)

    @property
    def where(self) -> str:
        """Secret-free address for messages."""
        return self.settings.describe()

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` with the retry policy; backend errors propagate untranslated.

        ``operation`` must talk to the server: its success sets :attr:`answered`. It holds
        one of the link's connection slots while it runs (pipelines, SCAN, script loads, health).
        """

        async def attempt(waiting: list[bool]) -> T:
            if self._slots is None:
                return await operation()
            # The pool raises instead of waiting when it is exhausted; waiting here instead
            # keeps the bound without failing bursts of concurrent calls.
            waiting[0] = True
            async with self._slots:
                waiting[0] = False
                await self._release_idle()  # the pool may need it: this slot's connection
                return await operation()

        return await self._guarded(attempt, bounded=False)

    async def execute(self, *args: Any) -> Any:
        """One command, with the retry policy, auto-pipelined (:mod:`.pipeline`).

        Commands that callers issue concurrently leave together: in one write on one server, in
        one write per master on a cluster. On one server the reply is not post-processed by
        redis-py; on a cluster its reply callbacks apply (an ``HGETALL`` reply is a dict there).
        """
        pipeline = self._pipeline

        async def attempt(waiting: list[bool]) -> Any:
            pending = pipeline.command(args)
            try:
                return await pipeline.run(pending)
            finally:  # mostly spent queued for a slot: the pool, not the server, was slow
                waiting[0] = pending.queued_for() > self._budget / 2

        # Its batch ends by the call's deadline, unless asking Sentinel, or a cluster for its
        # masters, comes first.
        return await self._guarded(attempt, bounded=self._sentinel_pool is None and not self.cluster)

    async def _guarded(self, attempt: Callable[[list[bool]], Awaitable[T]], *, bounded: bool) -> T:
        """``attempt(waiting)`` under one time budget and the retry policy.

        ``bounded``: a first attempt ends within the budget by itself (see ``RetryPolicy.run``).

        ``attempt`` sets ``waiting[0]`` while it waits for a connection: a call whose budget runs
        out so fails with redis-py's ``MaxConnectionsError``, so the message blames the pool,
        not the server.
        """
        if self._closed:
            raise ClosedError(f"Redis client for {self.where}")
        budget = self._budget
        waiting = [False]

        async def once() -> T:
            if not self._ready:
                await self._initialize_cluster()
            await self._follow_master(force=False)
            return await attempt(waiting)

        try:
            result = await self._retry.run(once, self._recover, budget=budget, self_bounded=bounded)
        except RedisTimeoutError:
            if waiting[0]:
                raise MaxConnectionsError(
                    f"all {self.settings.max_connections} connections stayed busy for {budget:g}s"
                ) from None
            raise
        self.answered = True
        return result

    async def _release_idle(self) -> None:
        await self._pipeline.release_idle()

    async def _initialize_cluster(self) -> None:
        # redis-py's async cluster client initializes lazily on its first command; when many
        # commands arrive at once, that first initialization closes connections other tasks
        # are using (observed with redis-py 8.1: "'NoneType' object has no attribute
        # 'writelines'", then commands re-sent after they had run). One task initializes it
        # before any other command is let through.
        async with self._ready_lock:
            if not self._ready and isinstance(self.client, RedisCluster):
                await self.client.initialize()
            self._ready = True

    async def _recover(self, error: BaseException) -> None:
        # After a restart every idle pooled socket is dead: drop them all, not one per retry.
        if isinstance(self.client, Redis):
            await self._release_idle()
            await self.client.connection_pool.disconnect(inuse_connections=False)
        await self._follow_master(force=True)

    async def _follow_master(self, *, force: bool) -> None:
        pool = self._sentinel_pool
        if pool is None:
            return
        now = time.monotonic()
        if not force and now - self._checked_at < self.settings.sentinel_check_interval:
            return
        self._checked_at = now  # set before awaiting, so concurrent calls do not all ask
        address = await pool.get_master_address()  # type: ignore[no-untyped-call]
        if self._master is not None and address != self._master:
            await pool.disconnect(inuse_connections=True)
        self._master = address

    def retain(self) -> Link:
        """Count one more user of a shared link."""
        self._refs += 1
        return self

    async def release(self) -> None:
        """Drop one user; the last one closes an owned client (an injected one is left open)."""
        self._refs -= 1
        if self._refs > 0 or self._closed:
            return
        self._closed = True
        _forget(self)
        await self._release_idle()
        if self.owned:
            await self.client.aclose()
            if self._sentinel is not None:  # Sentinel.aclose() exists only from redis-py 8.1
                for sentinel_client in self._sentinel.sentinels:
                    await sentinel_client.aclose()


def wrap(client: AnyClient, settings: RedisSettings) -> Link:
    """A link around a caller's client; :meth:`Link.release` will not close it."""
    return Link(client, settings, owned=False).retain()


def describe_client(client: AnyClient | None) -> RedisSettings:
    """Secret-free settings describing an injected client, for messages and health."""
    if isinstance(client, RedisCluster):
        # Before its first command a cluster client knows only the nodes it was given.
        node = next(iter(client.nodes_manager.startup_nodes.values()))
        return RedisSettings(host=node.host, port=int(node.port), cluster=True)
    if isinstance(client, Redis):
        kwargs = client.connection_pool.connection_kwargs
        return RedisSettings(
            host=str(kwargs.get("host", "localhost")),
            port=int(kwargs.get("port") or 6379),
            db=int(kwargs.get("db", 0)),
            unix_socket_path=kwargs.get("path"),
        )
    raise ConfigurationError(
        f"client must be a redis.asyncio Redis or RedisCluster, got a {type(client).__name__}"
    )


# Shared links, per event loop (redis-py connections belong to the loop that opened them).
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[RedisSettings, Link]] = (
    weakref.WeakKeyDictionary()
)


def acquire(settings: RedisSettings) -> Link:
    """The link shared by every cache built from settings equal to ``settings`` on this loop."""
    links = _SHARED.setdefault(asyncio.get_running_loop(), {})
    link = links.get(settings)
    if link is None:
        client, sentinel = _build(settings)
        link = links[settings] = Link(client, settings, owned=True, sentinel=sentinel)
    return link.retain()


def _forget(link: Link) -> None:
    for links in _SHARED.values():
        if links.get(link.settings) is link:
            del links[link.settings]
