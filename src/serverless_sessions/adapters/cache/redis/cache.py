"""Redis cache adapter: one server, Sentinel, or Cluster, over ``redis.asyncio`` (hiredis if present).

Build it from a URL (``Cache(url=...)`` / :meth:`Cache.from_url`), a :class:`RedisSettings`, or
an injected redis-py client (``Cache(client=...)``; such a client is never closed here).
Caches built from equal settings on one event loop share one bounded pool.

Key layout (``P`` = ``key_prefix``, ``N`` = namespace, both limited to ``[A-Za-z0-9_.-]``)::

    P:N:d:<key>     HASH  v=value  n=version  g=generation  i=index list (JSON)  [e=expiry ms]
                          [log: l:<position>=item  ll=length  lw=weight
                           vw=<version>:<value weight>  t=<version>:<touched_at of an append>]
    P:N:i:<index>   ZSET  member <generation><key>               score = expiry ms, +inf = none
    P:N:x           ZSET  member <generation><index list><key>   score = expiry ms, +inf = none
    P:N:r           ZSET  member <key>NUL<generation>            score = activity (UNIX s)
    P:N:r:<index>   ZSET  member <key>NUL<generation>            score = activity (UNIX s)

* The markers ``:d:``, ``:i:``, ``:r:`` and the bare ``:x`` and ``:r`` after a colon-free
  namespace make data keys, index keys, activity keys and the expiry key disjoint for ANY key
  or index string (colons, braces, glob characters, unicode). ``SCAN MATCH P:N:d:*`` (glob
  characters escaped) lists the data keys.
* A data hash carries Redis's own expiry (``PEXPIREAT``), so no read ever sees an expired value.
* The log (:class:`~serverless_sessions.adapters.cache.base.AppendableCache`) lives in the data
  hash itself: it shares the value's expiry, slot, ``DEL`` and purge, can never show up as a key,
  and a read of the last items or an append touches only those items' fields (:mod:`.log`).
  ``compare_and_set`` and ``set`` keep it and touch no log field, so they cost what they cost
  without a log: ``vw`` and ``t`` hold only while stamped with the entry's current version, and
  otherwise (or absent, as in entries written before logs) the value weighs its length in bytes
  and the entry has no ``touched_at``.
* The *generation* (16 hex characters, chosen when a key is created) tags index entries, so an
  entry of a deleted or expired incarnation of a key is never taken for, nor removes, one of a
  newer incarnation with the same name.
* ``P:N:x`` lists every key of the namespace with its index names: purging reads only its
  expired range and touches only those keys' index entries, O(expired) not O(total).
* ``P:N:r`` and ``P:N:r:<index>`` (one server only) mirror the members of ``P:N:x`` and of
  each index zset, scored by the activity of each key's latest write (raised by later
  appends), and expire with them: a page of a listing is a range read
  (:class:`~serverless_sessions.adapters.cache.base.RecentCache`). A key written without an
  activity (``set``, an older version) is left out, so the counts differ and the listing sorts
  instead. An older version's process that deletes or purges keys also leaves counts that
  differ (until those members are written or purged again by this version); one that creates
  keys while another deletes could balance them, so upgrade every writer before relying on
  the order.
* Hygiene: every zset expires ``index_grace`` after its latest-expiring member (so it never
  expires before a key it lists, and never lives forever after them), persists while it holds a
  member without expiry, and disappears when its last member is removed.

Hash slots: no two keys need to share one. On one server (or behind Sentinel) a single script
updates a data hash, the expiry zset and every index zset atomically, in one round trip. In a
cluster every script touches ONE key, so ``CROSSSLOT`` cannot occur and data keys spread over all
masters by their own names; index and expiry entries are written *before* the data (see
:mod:`.cluster`) so a live key is never missing from its indexes.

Clocks: expiries are absolute, computed from this process's clock; "now" for index reads and
purges is the server's clock, the same one that expires keys.

Errors: every redis-py exception is translated at this boundary (:mod:`.errors`), with
the operation, the key and a password-free address. A retried write whose first attempt reached
the server but lost its reply may report a conflict for its own write; callers re-read, as after
any conflict.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Self, TypeVar

from redis.asyncio.cluster import RedisCluster

from serverless_sessions.adapters.cache.base import (
    CacheBase,
    Entry,
    PingableCache,
    RecentCache,
    ScannableCache,
    TTLArg,
    check_same_indexes,
)
from serverless_sessions.adapters.cache.redis import cluster
from serverless_sessions.adapters.cache.redis.client import (
    AnyClient,
    Link,
    acquire,
    describe_client,
    wrap,
)
from serverless_sessions.adapters.cache.redis.config import RedisSettings, parse_url
from serverless_sessions.adapters.cache.redis.errors import BACKEND_ERRORS, translate
from serverless_sessions.adapters.cache.redis.health import server_report
from serverless_sessions.adapters.cache.redis.log import LogCommands, RecentIndexLists, refusal
from serverless_sessions.adapters.cache.redis.scripts import (
    GENERATION_LENGTH,
    ExpiryRecord,
    KeyLayout,
    Lua,
    WriteRequest,
    activity_member,
    decode_entry,
    encode_indexes,
    expiry_arg,
    new_tag,
    parse_expiry_member,
)
from serverless_sessions.errors import ConfigurationError, StorageError

__all__ = ["Cache", "RedisSettings"]

T = TypeVar("T")

_STALE_ATTEMPTS = 4  # a write retried this often because its key's indexes kept moving fails
_PURGE_BATCH = 1000


class Cache(CacheBase, RecentCache, LogCommands, ScannableCache, PingableCache):
    """Sessions' bytes in Redis hashes, indexed by expiry-scored sorted sets."""

    backend = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: AnyClient | None = None,
        settings: RedisSettings | None = None,
        namespace: str | None = None,
        **overrides: object,
    ) -> None:
        """Give exactly one of ``url``, ``settings`` or ``client``; ``overrides`` replace settings.

        With ``client``, only layout and retry settings apply (``key_prefix``,
        ``index_grace``, ``retry_*``); the client's own pool and timeouts are used.
        """
        super().__init__(namespace=namespace)
        if sum(given is not None for given in (url, client, settings)) != 1:
            raise ConfigurationError("redis.Cache needs exactly one of url=, settings=, client=")
        if url is not None:
            settings = parse_url(url, **overrides)
        elif settings is not None:
            settings = settings.with_overrides(**overrides)
        else:
            settings = describe_client(client).with_overrides(**overrides)
        self.settings = settings
        self._layout = KeyLayout(settings.key_prefix)
        self._grace = str(round(settings.index_grace * 1000))
        self._link: Link | None = None if client is None else wrap(client, settings)
        self._lua: Lua | None = None
        self._index_lists = RecentIndexLists()

    @classmethod
    def from_url(cls, url: str, *, namespace: str | None = None, **overrides: object) -> Self:
        """A cache for ``url`` (see :mod:`.config` for the accepted forms)."""
        return cls(settings=parse_url(url, **overrides), namespace=namespace)

    def __repr__(self) -> str:
        return f"redis.Cache({self.settings.describe()!r}, namespace={self.namespace!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _connected(self) -> tuple[Link, Lua]:
        self._check_open()
        if self._link is None:
            self._link = acquire(self.settings)  # needs the running loop, so not in __init__
        if self._lua is None:
            self._lua = Lua(self._command, self._run, self._grace)
        return self._link, self._lua

    async def _run(self, operation: str, key: str | None, call: Callable[[Any], Awaitable[T]]) -> T:
        """``call(client)`` with retries; every backend exception leaves as a StorageError."""
        return await self._guard(operation, key, lambda link: link.call(lambda: call(link.client)))

    async def _command(self, operation: str, key: str | None, *args: Any) -> Any:
        """One command, auto-pipelined with concurrent ones; errors as in :meth:`_run`."""
        return await self._guard(operation, key, lambda link: link.execute(*args))

    async def _guard(self, operation: str, key: str | None, call: Callable[[Link], Awaitable[T]]) -> T:
        link = self._connected()[0]
        try:
            return await call(link)
        except BACKEND_ERRORS as exc:
            raise translate(
                exc,
                backend=self.backend,
                operation=operation,
                key=key,
                where=link.where,
                tls=link.settings.ssl,
                first_contact=not link.answered,
            ) from exc

    async def _mutate(self, request: WriteRequest) -> list[Any]:
        """Set, append to or delete a key and its index entries; the WRITE script's ``ok`` reply.

        On one server the first attempt guesses the key's index list (the caller's; for an
        append, the one this cache last saw for the key); a ``stale`` reply carries the stored
        list and the script runs again with its keys.
        """
        link, lua = self._connected()
        layout, ns, key = self._layout, request.namespace, request.key
        guess = self._index_lists.get(ns, key) if request.op == "append" else request.indexes
        for _ in range(_STALE_ATTEMPTS):
            if link.cluster:
                reply = await cluster.mutate(self._command, lua, layout, request)
            else:
                keys = [layout.data(ns, key), layout.expiry(ns), layout.activity(ns)]
                for name in guess:
                    keys += (layout.index(ns, name), layout.activity(ns, name))
                reply = await lua.write(request, keys, new_tag(), encode_indexes(guess), "")
            if reply[0] == b"ok":
                self._index_lists.remember(ns, key, None if request.op == "del" else reply[4])
                return reply
            if reply[0] != b"stale":
                raise refusal(request, reply)
            guess = tuple(json.loads(reply[1] or b"[]"))
            if request.op == "set":
                check_same_indexes(key, guess, request.indexes, expected=request.expected or 0, actual=None)
        raise StorageError(f"redis {request.op} of key {key!r}: its index entries kept changing")

    # -- CacheBase -----------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        data = self._layout.data(self._namespace(namespace), key)
        value = await self._command("get", key, "HGET", data, "v")
        return default if value is None else bytes(value)

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        """Store ``value``; the key keeps its generation and index names if it exists."""
        ns = self._namespace(namespace)
        await self._mutate(WriteRequest("set", ns, key, bytes(value), expiry=expiry_arg(ttl)))

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        return await self.compare_and_delete(key, namespace=namespace)

    async def exists(self, key: str, namespace: str | None = None) -> bool:
        data = self._layout.data(self._namespace(namespace), key)
        return bool(await self._command("exists", key, "EXISTS", data))

    async def close(self) -> None:
        """Release this cache's share of the pool; the last user of a pool closes it."""
        if not self._closed and self._link is not None:
            await self._link.release()
        await super().close()

    # -- AtomicCache ---------------------------------------------------------------------------

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        """One HMGET: the common read path, auto-pipelined with concurrent calls."""
        data = self._layout.data(self._namespace(namespace), key)
        row = await self._command("get_entry", key, "HMGET", data, "v", "n", "e", "t", "lw")
        return None if row[1] is None else decode_entry(key, *row)

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        """One pipelined round trip (per cluster node) for all ``keys``."""
        ns = self._namespace(namespace)
        if not keys:
            return []

        async def fetch(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._layout.data(ns, key), ["v", "n", "e", "t", "lw"])
            return list(await pipe.execute())

        rows = await self._run("get_entries", keys[0] if len(keys) == 1 else None, fetch)
        return [
            None if row[1] is None else decode_entry(key, *row) for key, row in zip(keys, rows, strict=True)
        ]

    async def compare_and_set(
        self,
        key: str,
        value: bytes,
        *,
        expected_version: int,
        ttl: TTLArg,
        indexes: Sequence[str] = (),
        namespace: str | None = None,
        activity: float | None = None,
    ) -> Entry:
        ns = self._namespace(namespace)
        request = WriteRequest(
            "set", ns, key, bytes(value), expected_version, expiry_arg(ttl), tuple(indexes),
            activity=activity,
        )  # fmt: skip
        reply = await self._mutate(request)
        return decode_entry(key, value, reply[1], reply[2])

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        ns = self._namespace(namespace)
        reply = await self._mutate(WriteRequest("del", ns, key, expected=expected_version))
        return bool(reply[1])

    # -- IndexedCache --------------------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        """Live keys of ``index``: one range read (plus, in a cluster, a verifying pipeline)."""
        ns = self._namespace(namespace)
        link, lua = self._connected()
        _, members = await lua.members(
            self._layout.index(ns, index), expired=False, operation="index_members"
        )
        if link.cluster:
            return sorted(await cluster.verify_members(self._run, self._layout, ns, index, members))
        return sorted(m[GENERATION_LENGTH:].decode("utf-8") for m in members)

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        """Drop expired keys' index and expiry entries, ``_PURGE_BATCH`` at a time.

        Index entries go first and only those scored at or before the server's "now" are
        removed, so a crash or a concurrent purge leaves nothing live unlisted; each key is
        reported by the one call that removed its expiry entry.
        """
        ns = self._namespace(namespace)
        link, lua = self._connected()
        expiry_zset = self._layout.expiry(ns)
        purged: list[str] = []
        while limit is None or len(purged) < limit:
            batch = _PURGE_BATCH if limit is None else min(_PURGE_BATCH, limit - len(purged))
            now_ms, members = await lua.members(expiry_zset, expired=True, limit=batch, operation="purge")
            records = [parse_expiry_member(member) for member in members]
            by_index: dict[str, list[ExpiryRecord]] = {}
            for record in records:
                for name in record.indexes:
                    by_index.setdefault(name, []).append(record)
            drop = partial(self._drop_expired, lua, link, ns, bound=now_ms)
            await asyncio.gather(*(drop(name, listed) for name, listed in by_index.items()))
            removed = set(await drop(None, records))
            purged += [record.key for record in records if record.member in removed]
            if len(members) < batch:
                break
        return purged

    async def recent(
        self,
        index: str | None,
        *,
        limit: int,
        before: tuple[float, str] | None = None,
        namespace: str | None = None,
    ) -> list[tuple[str, float]] | None:
        """One ``RECENT`` script on one server; ``None`` in a cluster (no activity zsets there)."""
        ns = self._namespace(namespace)
        link, lua = self._connected()
        if link.cluster:
            return None
        layout = self._layout
        partner = layout.expiry(ns) if index is None else layout.index(ns, index)
        ordered = layout.activity(ns, index)
        return await lua.recent(ordered, partner, layout.data(ns, ""), limit=limit, before=before)

    async def _drop_expired(
        self,
        lua: Lua,
        link: Link,
        namespace: str,
        index: str | None,
        records: Sequence[ExpiryRecord],
        *,
        bound: str,
    ) -> list[bytes]:
        """Drop the expired keys ``records`` from ``index``'s zset (``None``: the expiry zset).

        In the same step they go from its activity zset, on one server (a cluster has none).
        """
        layout = self._layout
        members: list[str | bytes]
        if index is None:
            zset, members = layout.expiry(namespace), [r.member for r in records]
        else:
            zset, members = layout.index(namespace, index), [r.generation + r.key for r in records]
        mirror = None
        if not link.cluster:
            ordered = [activity_member(r.generation, r.key) for r in records]
            mirror = (layout.activity(namespace, index), ordered)
        return await lua.drop(zset, members, bound=bound, operation="purge", mirror=mirror)

    # -- ScannableCache / PingableCache --------------------------------------------------------

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        """SCAN (never KEYS) over every master; a key SCAN returns twice is yielded once."""
        ns = self._namespace(namespace)
        pattern = self._layout.scan_pattern(ns)
        skip = len(self._layout.data(ns, ""))
        seen: set[bytes] = set()
        nodes = await self._run("scan", None, _primaries) if self._connected()[0].cluster else [None]
        for node in nodes:
            cursor: Any = 0
            while True:
                step = partial(_scan, node=node, cursor=cursor, pattern=pattern, count=batch_size)
                cursor, batch = await self._run("scan", None, step)
                for raw in batch:
                    if raw not in seen:
                        seen.add(raw)
                        yield raw[skip:].decode("utf-8")
                if not cursor:
                    break

    async def ping(self) -> float:
        started = time.perf_counter()
        await self._run("ping", None, lambda c: c.ping())
        return time.perf_counter() - started

    async def health(self) -> dict[str, Any]:
        """Latency, version, role, memory (and cluster state); ``available`` False if down."""
        report: dict[str, Any] = {
            "backend": self.backend,
            "mode": self.settings.mode,
            "address": self.settings.describe(),
            "namespace": self.namespace,
            "max_connections": self.settings.max_connections,
        }
        try:
            report["latency_ms"] = round(await self.ping() * 1000, 3)
            report |= await self._run("health", None, server_report)
        except StorageError as exc:
            return report | {"available": False, "error": str(exc)}
        return report | {"available": True}


async def _primaries(client: RedisCluster) -> list[Any]:
    """Every master of a cluster, asked through the guarded call so the client is initialized."""
    return list(client.get_primaries())


async def _scan(client: Any, *, node: Any, cursor: Any, pattern: str, count: int) -> tuple[Any, list[bytes]]:
    """One SCAN step on a server, or on one cluster node (whose cursor comes keyed by name)."""
    if node is None:
        next_cursor, keys = await client.scan(cursor, match=pattern, count=count)
        return next_cursor, list(keys)
    cursors, keys = await client.scan(cursor, match=pattern, count=count, target_nodes=node)
    return cursors[node.name], list(keys)
