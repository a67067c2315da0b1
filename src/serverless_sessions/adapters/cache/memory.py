"""In-process cache: tests, development, and a single long-lived process.

Every method runs without an ``await`` between its read and its write, so on one event loop each
call is atomic; that is what makes compare-and-set and index updates safe under concurrent tasks.
The size is bounded: past ``max_entries`` the least recently used key is evicted together with
its index entries.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

from serverless_sessions.adapters.cache.base import (
    AppendableCache,
    Appended,
    CacheBase,
    Entry,
    IndexedCache,
    LogSlice,
    PingableCache,
    ScannableCache,
    TTLArg,
    check_same_indexes,
    check_weight,
)
from serverless_sessions.adapters.cache.urls import parse_query, positive_int
from serverless_sessions.errors import (
    ConfigurationError,
    SessionConflictError,
    SessionNotFoundError,
)
from serverless_sessions.ttl import expiry_for, is_expired, now, ttl_seconds

logger = logging.getLogger(__name__)

__all__ = ["Cache"]


@dataclass(slots=True)
class _Record:
    value: bytes
    version: int
    expires_at: float | None
    indexes: tuple[str, ...] = field(default=())
    log: list[bytes] = field(default_factory=list)
    value_weight: int = 0
    log_weight: int = 0
    touched_at: float | None = None

    def entry(self) -> Entry:
        return Entry(self.value, self.version, self.expires_at, self.touched_at, self.log_weight)


class Cache(CacheBase, IndexedCache, AppendableCache, ScannableCache, PingableCache):
    """A bounded, LRU-evicting, TTL-honouring dictionary of bytes."""

    backend = "memory"

    def __init__(self, *, namespace: str | None = None, max_entries: int = 100_000) -> None:
        super().__init__(namespace=namespace)
        if max_entries < 1:
            raise ConfigurationError(f"memory cache max_entries must be >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._indexes: dict[tuple[str, str], set[str]] = {}
        self._expiry_heap: list[tuple[float, str, str]] = []

    @classmethod
    def from_url(cls, url: str, *, namespace: str | None = None) -> Self:
        """Build from ``memory://[?max_entries=N]`` (each URL is a new, empty cache)."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "memory":
            raise ConfigurationError(f"not a memory URL (scheme {parts.scheme!r}); use memory://")
        options = parse_query(parts.query, {"max_entries": positive_int}, what="memory")
        return cls(namespace=namespace, **options)

    def __repr__(self) -> str:
        return f"memory.Cache(entries={len(self._records)}, max_entries={self.max_entries})"

    # -- internals ---------------------------------------------------------------------------

    def _live(self, ns: str, key: str, *, touch: bool = True) -> _Record | None:
        """The unexpired record; ``touch`` marks it recently used (listing does not)."""
        record = self._records.get((ns, key))
        if record is None:
            return None
        if is_expired(record.expires_at):
            self._drop(ns, key)
            return None
        if touch:
            self._records.move_to_end((ns, key))
        return record

    def _drop(self, ns: str, key: str) -> _Record | None:
        record = self._records.pop((ns, key), None)
        if record is not None:
            for index in record.indexes:
                members = self._indexes.get((ns, index))
                if members is not None:
                    members.discard(key)
                    if not members:
                        del self._indexes[(ns, index)]
        return record

    def _put(self, ns: str, key: str, record: _Record) -> None:
        self._records[(ns, key)] = record
        self._records.move_to_end((ns, key))
        for index in record.indexes:
            self._indexes.setdefault((ns, index), set()).add(key)
        if record.expires_at is not None:
            heapq.heappush(self._expiry_heap, (record.expires_at, ns, key))
            if len(self._expiry_heap) > 2 * len(self._records) + 1024:
                self._rebuild_expiry_heap()
        if len(self._records) > self.max_entries:
            self._drop_expired(now())
        while len(self._records) > self.max_entries:
            (old_ns, old_key), _ = next(iter(self._records.items()))
            logger.warning("memory cache full (%d entries): evicting %r", self.max_entries, old_key)
            self._drop(old_ns, old_key)

    def _drop_expired(
        self, at: float, *, namespace: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Pop due heap items, dropping records that are really expired (of ``namespace``)."""
        purged: list[str] = []
        kept: list[tuple[float, str, str]] = []
        while self._expiry_heap and self._expiry_heap[0][0] <= at:
            if limit is not None and len(purged) >= limit:
                break
            item = heapq.heappop(self._expiry_heap)
            _, item_ns, key = item
            if namespace is not None and item_ns != namespace:
                kept.append(item)
                continue
            record = self._records.get((item_ns, key))
            if record is not None and is_expired(record.expires_at, at):
                self._drop(item_ns, key)
                purged.append(key)
        for item in kept:
            heapq.heappush(self._expiry_heap, item)
        return purged

    def _rebuild_expiry_heap(self) -> None:
        # Rewrites leave superseded heap items behind; rebuild so the heap tracks live records.
        self._expiry_heap = [
            (record.expires_at, ns, key)
            for (ns, key), record in self._records.items()
            if record.expires_at is not None
        ]
        heapq.heapify(self._expiry_heap)

    # -- CacheBase ---------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        self._check_open()
        record = self._live(self._namespace(namespace), key)
        return default if record is None else record.value

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        self._check_open()
        ns = self._namespace(namespace)
        expires_at = expiry_for(ttl_seconds(ttl), current=None, at=now())
        previous = self._live(ns, key)
        record = _Record(bytes(value), 1, expires_at, value_weight=len(value))
        if previous is not None:
            record.version, record.indexes = previous.version + 1, previous.indexes
            record.log, record.log_weight = previous.log, previous.log_weight
        self._put(ns, key, record)

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        return self._live(ns, key) is not None and self._drop(ns, key) is not None

    async def exists(self, key: str, namespace: str | None = None) -> bool:
        self._check_open()
        return self._live(self._namespace(namespace), key) is not None

    async def close(self) -> None:
        self._records.clear()
        self._indexes.clear()
        self._expiry_heap.clear()
        await super().close()

    # -- AtomicCache -------------------------------------------------------------------------

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        self._check_open()
        record = self._live(self._namespace(namespace), key)
        return None if record is None else record.entry()

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        return [await self.get_entry(key, namespace=namespace) for key in keys]

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
        return await self.write_with_log(
            key,
            value,
            log=None,
            value_weight=len(value),
            expected_version=expected_version,
            ttl=ttl,
            indexes=indexes,
            namespace=namespace,
        )

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        current = self._live(ns, key)
        if expected_version is not None:
            actual = current.version if current else 0
            if actual != expected_version:
                raise SessionConflictError(key, expected_version, actual if current else None)
        return current is not None and self._drop(ns, key) is not None

    # -- AppendableCache ---------------------------------------------------------------------

    async def write_with_log(
        self,
        key: str,
        value: bytes,
        *,
        log: Sequence[bytes] | None,
        value_weight: int,
        log_weight: int = 0,
        limit: int | None = None,
        expected_version: int,
        ttl: TTLArg,
        indexes: Sequence[str] = (),
        namespace: str | None = None,
        activity: float | None = None,
    ) -> Entry:
        self._check_open()
        ns = self._namespace(namespace)
        at = now()
        current = self._live(ns, key)
        actual = current.version if current else 0
        if actual != expected_version:
            raise SessionConflictError(key, expected_version, actual if current else None)
        if current is not None:
            check_same_indexes(key, current.indexes, indexes, expected=expected_version, actual=actual)
        if log is None:
            items, log_weight = (current.log, current.log_weight) if current else ([], 0)
        else:
            items = [bytes(item) for item in log]
        check_weight(key, value_weight + log_weight, limit)
        record = _Record(
            bytes(value),
            actual + 1,
            expiry_for(ttl, current=current.expires_at if current else None, at=at),
            current.indexes if current is not None and current.indexes else tuple(indexes),
            items,
            value_weight,
            log_weight,
        )
        self._put(ns, key, record)
        return record.entry()

    async def append(
        self,
        key: str,
        items: Sequence[bytes],
        *,
        weight: int,
        limit: int | None = None,
        expected_length: int | None = None,
        ttl: TTLArg,
        touched_at: float,
        namespace: str | None = None,
    ) -> Appended:
        self._check_open()
        ns = self._namespace(namespace)
        current = self._live(ns, key)
        if current is None:
            raise SessionNotFoundError(key)
        if expected_length is not None and expected_length != len(current.log):
            raise SessionConflictError(
                key,
                current.version,
                current.version,
                message=f"{key!r}: expected {expected_length} log items, found {len(current.log)}",
            )
        check_weight(key, current.value_weight + current.log_weight + weight, limit)
        current.log = [*current.log, *(bytes(item) for item in items)]
        current.log_weight += weight
        current.version += 1
        current.touched_at = touched_at
        current.expires_at = expiry_for(ttl, current=current.expires_at, at=now())
        self._put(ns, key, current)
        return Appended(current.version, len(current.log), current.expires_at)

    async def get_with_log(
        self,
        key: str,
        *,
        last: int | None = None,
        before: int | None = None,
        namespace: str | None = None,
    ) -> tuple[Entry, LogSlice] | None:
        self._check_open()
        record = self._live(self._namespace(namespace), key)
        if record is None:
            return None
        end = len(record.log) if before is None else max(0, min(before, len(record.log)))
        start = 0 if last is None else max(0, end - last)
        return (
            record.entry(),
            LogSlice(record.log[start:end], start, len(record.log), record.log_weight),
        )

    # -- IndexedCache ------------------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        self._check_open()
        ns = self._namespace(namespace)
        members = sorted(self._indexes.get((ns, index), ()))
        return [key for key in members if self._live(ns, key, touch=False) is not None]

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        self._check_open()
        return self._drop_expired(now(), namespace=self._namespace(namespace), limit=limit)

    # -- ScannableCache / PingableCache ------------------------------------------------------

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        self._check_open()
        ns = self._namespace(namespace)
        snapshot = [key for (item_ns, key) in list(self._records) if item_ns == ns]
        for key in snapshot:
            if self._live(ns, key, touch=False) is not None:
                yield key

    async def ping(self) -> float:
        self._check_open()
        return 0.0

    async def health(self) -> dict[str, Any]:
        self._check_open()
        return {
            "backend": self.backend,
            "available": True,
            "latency_ms": 0.0,
            "entries": len(self._records),
            "max_entries": self.max_entries,
        }
