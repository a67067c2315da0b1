"""The cache-adapter contract (the plan's ``CacheBase``) and its optional capabilities.

The core contract is the plan's four async methods plus ``close``; values are ``bytes`` (the
storage layer owns encoding). Optional capabilities are separate abstract classes an adapter
also inherits; callers check them with ``isinstance``:

* :class:`AtomicCache` — versioned entries and compare-and-set, optionally keeping a key listed
  in named secondary indexes atomically with the write.
* :class:`IndexedCache` — reads those indexes and purges expired keys in time proportional to
  the number of expired keys.
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
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from serverless_sessions.errors import SessionConflictError
from serverless_sessions.ids import validate_namespace
from serverless_sessions.lifecycle import Closable
from serverless_sessions.ttl import KEEP_TTL, KeepTTL, TTLArg

__all__ = [
    "KEEP_TTL",
    "AtomicCache",
    "CacheBase",
    "Entry",
    "IndexedCache",
    "KeepTTL",
    "PingableCache",
    "ScannableCache",
    "TTLArg",
    "check_same_indexes",
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
        raise SessionConflictError(
            key, expected, actual, message=f"{key!r} is listed under other indexes"
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored value with its version and absolute expiry (UNIX seconds, ``None`` = never)."""

    value: bytes
    version: int
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
    """

    @abstractmethod
    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        """Return the live entry at ``key`` or ``None``."""

    @abstractmethod
    async def get_entries(
        self, keys: Sequence[str], *, namespace: str | None = None
    ) -> list[Entry | None]:
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
    async def purge_expired(
        self, *, namespace: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Remove expired keys and their index entries; return the keys removed.

        Cost grows with the number of expired keys, not with the total (S3, which has no
        server-side expiry index, documents its exception). ``limit`` bounds one call.
        """


class ScannableCache(ABC):
    """Capability: iterate the live keys of a namespace incrementally (never ``KEYS``)."""

    @abstractmethod
    def scan_keys(
        self, *, namespace: str | None = None, batch_size: int = 500
    ) -> AsyncIterator[str]:
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
    exception, if any, is raised.
    """
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[_T]]) -> _T:
        async with semaphore:
            return await call()

    outcomes = await asyncio.gather(*(run(call) for call in calls), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[_T], outcomes)
