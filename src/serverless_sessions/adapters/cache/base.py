"""The cache-adapter contract (the plan's ``CacheBase``) and its optional capabilities.

The core contract is the plan's four async methods plus ``close``; values are ``bytes`` (the
storage layer owns encoding). Optional capabilities are separate abstract classes an adapter
also inherits; callers check them with ``isinstance``:

* :class:`AtomicCache` — versioned entries and compare-and-set, optionally keeping a key listed
  in named secondary indexes atomically with the write.
* :class:`IndexedCache` — reads those indexes and purges expired keys in time proportional to
  the number of expired keys.
* :class:`AppendableCache` — an ordered log of items kept with each entry (a session's
  messages): appends and reads of the last items cost the same however long the log is.
* :class:`ScannableCache` — iterates every live key of a namespace without blocking the server.
* :class:`PingableCache` — a cheap liveness probe and a health report.

Keys live in namespaces: ``namespace=None`` means the adapter's own default namespace (given to
its constructor, possibly none). A namespace is a prefix the adapter applies; two namespaces
never see each other's keys or indexes.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from serverless_sessions.errors import ConfigurationError, SessionConflictError, SessionTooLargeError
from serverless_sessions.ids import validate_namespace
from serverless_sessions.lifecycle import Closable
from serverless_sessions.ttl import KEEP_TTL, KeepTTL, TTLArg

__all__ = [
    "KEEP_TTL",
    "AppendableCache",
    "Appended",
    "AtomicCache",
    "CacheBase",
    "Entry",
    "IndexedCache",
    "KeepTTL",
    "LogSlice",
    "PingableCache",
    "RecentCache",
    "ScannableCache",
    "TTLArg",
    "check_same_indexes",
    "check_weight",
    "gather_bounded",
    "validate_namespace",
]

_T = TypeVar("_T")


def check_same_indexes(
    key: str, stored: Collection[str], requested: Collection[str], *, expected: int, actual: int | None
) -> None:
    """Refuse a write that names other indexes than the ones ``key`` is already listed in.

    A key's indexes are fixed by its first indexed write; a write naming none keeps them.
    Accepting others would leave the key listed under its old owner only.
    """
    if stored and requested and set(stored) != set(requested):
        raise SessionConflictError(key, expected, actual, message=f"{key!r} is listed under other indexes")


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored value with its version and absolute expiry (UNIX seconds, ``None`` = never).

    ``touched_at`` (appendable caches only): the ``touched_at`` of the latest
    :meth:`AppendableCache.append` since the value was last written, ``None`` when there was
    none. An append does not rewrite the value, so this is how a reader learns of the activity.
    ``log_weight`` (appendable caches' reads): the total weight of the entry's log, so a reader
    of the value alone knows what the messages beside it weigh. Entries returned by writes leave
    it 0, so it takes no part in comparing entries: it describes the log, not the entry.
    """

    value: bytes
    version: int
    expires_at: float | None
    touched_at: float | None = None
    log_weight: int = field(default=0, compare=False)


def check_weight(key: str, total: int, limit: int | None) -> None:
    """Refuse a write or append that would take ``key``'s weight past ``limit``.

    See :class:`AppendableCache`; checked before anything is written.
    """
    if limit is not None and total > limit:
        raise SessionTooLargeError(key, total, limit)


@dataclass(frozen=True, slots=True)
class LogSlice:
    """Consecutive items of an entry's log: ``items[i]`` is at position ``start + i``.

    ``length`` is the number of items in the whole log and ``weight`` their summed weights
    (see :class:`AppendableCache`).
    """

    items: list[bytes]
    start: int
    length: int
    weight: int


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of :meth:`AppendableCache.append`: the entry's new version and log length."""

    version: int
    length: int
    expires_at: float | None


class CacheBase(Closable, ABC):
    """Key-value store with TTL and namespaces: the plan's ``CacheBase`` contract.

    Expired keys are invisible to every read (``get``, ``exists``, listing) even before the
    backend reclaims them. Every backend exception is translated into
    :class:`~serverless_sessions.errors.StorageError` (or a subclass) at this boundary.
    """

    backend: str = "cache"

    def __init__(self, *, namespace: str | None = None) -> None:
        self.namespace = validate_namespace(namespace) if namespace is not None else None

    def _namespace(self, namespace: str | None) -> str:
        """The effective namespace: the argument, else the adapter default, else ``""``."""
        if namespace is not None:
            return validate_namespace(namespace)
        return self.namespace or ""

    @abstractmethod
    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        """Return the bytes stored at ``key``, or ``default`` if it is missing or expired."""

    @abstractmethod
    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        """Store ``value`` at ``key``; ``ttl`` seconds until expiry, ``None`` for none."""

    @abstractmethod
    async def delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete ``key``; return whether a live key was removed."""

    @abstractmethod
    async def exists(self, key: str, namespace: str | None = None) -> bool:
        """Return whether ``key`` holds a live (unexpired) value."""


class AtomicCache(ABC):
    """Capability: versioned entries with atomic compare-and-set.

    Versions start at 1 for a new key and grow by one on every successful write. A missing or
    expired key has version 0. ``indexes`` names secondary indexes (e.g. ``"user:alice"``) that
    list the key; the adapter records the key in each of them in the same atomic step as the
    write, or — where the backend cannot span keys atomically — *before* the write, so a live key
    is never missing from its indexes (an index may briefly name a key that is not written yet;
    readers filter those). A key's index names are fixed by its first indexed write; a write
    naming none keeps them.

    ``activity`` (UNIX seconds) is the caller's time of the entry's latest activity; an adapter
    with :class:`RecentCache` orders keys by it, the others ignore it.
    """

    @abstractmethod
    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        """Return the live entry at ``key`` or ``None``."""

    @abstractmethod
    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        """Return the live entries at ``keys`` in order, in as few round trips as possible."""

    @abstractmethod
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
        """Write ``value`` if the stored version equals ``expected_version`` (0 = absent).

        Raises :class:`~serverless_sessions.errors.SessionConflictError` and writes nothing
        otherwise. Returns the new entry (version ``expected_version + 1``).
        """

    @abstractmethod
    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        """Delete ``key`` and its index entries; ``expected_version=None`` deletes any version.

        Returns whether a live key was removed. A version mismatch raises
        :class:`~serverless_sessions.errors.SessionConflictError`.
        """


class IndexedCache(AtomicCache):
    """Capability: read the secondary indexes maintained by :meth:`compare_and_set`."""

    @abstractmethod
    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        """Keys listed in ``index`` that are live now; cost O(size of that index)."""

    @abstractmethod
    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        """Remove expired keys and their index entries; return the keys removed.

        Cost grows with the number of expired keys, not with the total (S3, which has no
        server-side expiry index, documents its exception). ``limit`` bounds one call.
        """


class RecentCache(IndexedCache):
    """Capability: the keys of an index, or of a namespace, newest activity first, a page at a time.

    A key's activity is the ``activity`` of its latest write, raised by the ``touched_at`` of
    an append since that write when later (what a reader of the entry sees as its latest
    activity). The adapter keeps keys ordered by it, so a page costs O(page) however many keys
    the index holds.
    """

    @abstractmethod
    async def recent(
        self,
        index: str | None,
        *,
        limit: int,
        before: tuple[float, str] | None = None,
        namespace: str | None = None,
    ) -> list[tuple[str, float]] | None:
        """Up to ``limit`` live keys of ``index`` (``None``: every key) with their activity.

        Sorted by ``(activity, key)``, descending, strictly below ``before``. ``None`` when some
        live key of that scope was written without an activity (by an older version, or
        without one): the order would be incomplete, so the caller must list another way.
        """


class AppendableCache(AtomicCache):
    """Capability: an ordered log of items kept with each entry (a session's messages).

    Positions start at 0 and grow by one per appended item. The log lives and dies with its
    entry: it has the entry's expiry (every write or append sets both), it is removed with the
    entry (:meth:`~AtomicCache.compare_and_delete`, :meth:`IndexedCache.purge_expired`,
    expiry), it is invisible once the entry has expired, and it never shows up as a key of its
    own (``scan_keys``, index listings). Every change to the log bumps the entry's version, so a
    whole write that read the entry before an append conflicts instead of losing the appended
    items. :meth:`~AtomicCache.compare_and_set` keeps the log as it is (and counts the value's
    weight as its length in bytes).

    Weights: each write states the weight of the value and of the log items it adds (the
    storage uses their JSON sizes). The adapter keeps the value's weight and the log's total
    weight, and refuses with :class:`~serverless_sessions.errors.SessionTooLargeError`, writing
    nothing, a write or append that would take their sum past ``limit``. An entry written
    before the adapter kept weights counts its value's length in bytes.

    Activity: ``append`` stores its ``touched_at`` with the entry and every read of the entry
    (``get_entry``, ``get_entries``, ``get_with_log``) returns it in :attr:`Entry.touched_at`;
    a write of the value (``write_with_log``, ``compare_and_set``, ``set``) resets it to
    ``None``.

    Every operation here is atomic: a reader sees the log before or after an append, never a
    part of one, and never a log that does not match the entry's version.
    """

    @abstractmethod
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
        """:meth:`~AtomicCache.compare_and_set` that also replaces the log, or keeps it.

        ``log=None`` keeps the stored log (items and weight); a sequence replaces it, its items
        at positions 0, 1, ... with total weight ``log_weight``. Conflicts and index rules are
        those of ``compare_and_set``; a key whose log is replaced by ``[]`` has an empty log.
        """

    @abstractmethod
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
        """Append ``items`` (total weight ``weight``) at the end of ``key``'s log.

        Bumps the entry's version by one, sets its expiry from ``ttl`` (the log's with it) and
        records ``touched_at`` (UNIX seconds, the caller's clock) as the entry's
        :attr:`Entry.touched_at`.
        Raises :class:`~serverless_sessions.errors.SessionNotFoundError` for a missing or
        expired key, :class:`~serverless_sessions.errors.SessionConflictError` when
        ``expected_length`` is given and the log has another length, and
        :class:`~serverless_sessions.errors.SessionTooLargeError` past ``limit``; each of them
        writes nothing. Concurrent appends without ``expected_length`` all succeed, each one's
        items kept together and in order.
        """

    @abstractmethod
    async def get_with_log(
        self,
        key: str,
        *,
        last: int | None = None,
        before: int | None = None,
        namespace: str | None = None,
    ) -> tuple[Entry, LogSlice] | None:
        """The live entry and its log items before ``before``, at most the ``last`` of them.

        ``before=None`` reads up to the end of the log, ``last=None`` from its start. ``None``
        when the key is missing or expired. Read in one consistent step; cost O(items
        returned), not O(log).
        """


class ScannableCache(ABC):
    """Capability: iterate the live keys of a namespace incrementally (never ``KEYS``)."""

    @abstractmethod
    def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        """Yield every live key of ``namespace`` once (order unspecified)."""


class PingableCache(ABC):
    """Capability: liveness and health."""

    @abstractmethod
    async def ping(self) -> float:
        """Round-trip time in seconds; raises StorageUnavailableError when unreachable."""

    @abstractmethod
    async def health(self) -> dict[str, Any]:
        """A JSON-safe health report (backend, latency, version, ...). Never holds secrets."""


async def gather_bounded(calls: Sequence[Callable[[], Awaitable[_T]]], limit: int) -> list[_T]:
    """Run ``calls`` concurrently, at most ``limit`` at a time; results in order.

    Every call runs to its end (none is left running in the background); then the first
    exception, if any, is raised. ``limit`` workers take the calls in order: a batch of a
    thousand costs ``limit`` tasks, not a thousand tasks queued on a semaphore.
    """
    if limit < 1:
        raise ConfigurationError(f"limit must be at least 1, got {limit!r}")
    outcomes: list[Any] = [None] * len(calls)
    unstarted = iter(range(len(calls)))

    async def worker() -> None:
        for position in unstarted:  # shared: each call is taken by one worker
            try:
                outcomes[position] = await calls[position]()
            except Exception as exc:  # the others go on; raised below, in call order
                outcomes[position] = exc

    # A cancellation (or another BaseException) ends its worker; the others finish first.
    stops = await asyncio.gather(*(worker() for _ in range(min(limit, len(calls)))), return_exceptions=True)
    for outcome in (*outcomes, *stops):
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[_T], outcomes)
