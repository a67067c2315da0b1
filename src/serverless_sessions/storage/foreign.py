"""Adapt a foreign cache (an ACB or aiocache cache, anything with get/set/delete/exists).

A foreign cache is trusted with nothing but ``get(key)``, ``set(key, value, ttl=int)``,
``delete(key)`` and ``exists(key)``: no namespace argument, no default, no serializer. The keys it
receives are already prefixed with the storage namespace and its values are ``bytes`` framed as::

    b"SSF" | 0x01 | version (8 bytes, big-endian) | expires_at (8-byte double, 0 = never) | body

What a foreign cache cannot guarantee, and this wrapper therefore does not claim:

* compare-and-set is read-then-write: two writers racing in the gap can both succeed;
* there are no secondary indexes, so listing and cleanup raise
  :class:`~serverless_sessions.errors.CapabilityNotSupportedError` (the cache's own TTL still
  expires sessions);
* a cache whose serializer alters bytes makes every read a
  :class:`~serverless_sessions.errors.CorruptSessionError`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from serverless_sessions.adapters.cache.base import AtomicCache, Entry, TTLArg
from serverless_sessions.errors import (
    CorruptSessionError,
    SessionConflictError,
    SessionError,
    StorageError,
)
from serverless_sessions.ttl import expiry_for, is_expired, now

__all__ = ["EmulatedAtomicCache", "ForeignCache"]

_MAGIC = b"SSF\x01"
_HEADER = struct.Struct(">Qd")


@runtime_checkable
class ForeignCache(Protocol):
    """The duck type ``ACBCacheStorage`` accepts besides its own adapters."""

    async def get(self, key: str) -> Any: ...

    async def set(self, key: str, value: Any, ttl: int | None = None) -> Any: ...

    async def delete(self, key: str) -> Any: ...

    async def exists(self, key: str) -> Any: ...


class EmulatedAtomicCache(AtomicCache):
    """Versioned entries on top of a foreign cache, without atomicity (see module docstring)."""

    backend = "foreign"

    def __init__(self, cache: ForeignCache, namespace: str) -> None:
        self.cache = cache
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"EmulatedAtomicCache({type(self.cache).__name__}, namespace={self.namespace!r})"

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    async def _call(self, operation: str, key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except SessionError:
            raise
        except Exception as exc:  # a foreign cache may raise anything; translate, never hide
            raise StorageError(
                f"foreign cache {type(self.cache).__name__} failed to {operation} {key!r}: "
                f"{type(exc).__name__}"
            ) from exc

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        full_key = self._key(key)
        raw = await self._call("get", full_key, lambda: self.cache.get(full_key))
        if raw is None:
            return None
        if not isinstance(raw, bytes) or not raw.startswith(_MAGIC):
            raise CorruptSessionError(full_key, "foreign cache returned an unframed value")
        try:
            version, expiry = _HEADER.unpack_from(raw, len(_MAGIC))
        except struct.error as exc:
            raise CorruptSessionError(full_key, "truncated foreign frame") from exc
        expires_at = expiry or None
        if is_expired(expires_at):
            return None
        return Entry(raw[len(_MAGIC) + _HEADER.size :], version, expires_at)

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        return [await self.get_entry(key) for key in keys]

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
        current = await self.get_entry(key)
        actual = current.version if current else 0
        if actual != expected_version:
            raise SessionConflictError(self._key(key), expected_version, actual or None)
        at = now()
        expires_at = expiry_for(ttl, current=current.expires_at if current else None, at=at)
        frame = _MAGIC + _HEADER.pack(actual + 1, expires_at or 0.0) + value
        ttl_int = None if expires_at is None else max(1, math.ceil(expires_at - at))
        full_key = self._key(key)
        await self._call("set", full_key, lambda: self.cache.set(full_key, frame, ttl=ttl_int))
        return Entry(value, actual + 1, expires_at)

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        current = await self.get_entry(key)
        if expected_version is not None and (current.version if current else 0) != expected_version:
            raise SessionConflictError(self._key(key), expected_version, current.version if current else None)
        full_key = self._key(key)
        await self._call("delete", full_key, lambda: self.cache.delete(full_key))
        return current is not None
