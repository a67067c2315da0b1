"""``ACBCacheStorage``: the plan's storage, a thin layer over any cache adapter.

The storage owns the envelope (codec), optional encryption and the key layout; the adapter only
moves bytes. Within its namespace a session lives at key ``<session_id>`` and is listed in the
indexes ``user:<user_id>`` and ``project:<project_id>``, maintained by the adapter atomically with
the write (:class:`~serverless_sessions.adapters.cache.base.AtomicCache`). Writes are
compare-and-set on ``SessionState.revision``, so a stale writer gets
:class:`~serverless_sessions.errors.SessionConflictError` instead of silently erasing a newer
update.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from serverless_sessions.adapters.cache.base import (
    KEEP_TTL,
    AtomicCache,
    CacheBase,
    Entry,
    IndexedCache,
    PingableCache,
    ScannableCache,
    TTLArg,
    validate_namespace,
)
from serverless_sessions.codec import Codec, is_plaintext
from serverless_sessions.errors import (
    CapabilityNotSupportedError,
    ConfigurationError,
    CorruptSessionError,
    DecryptionError,
    SessionError,
    StorageError,
)
from serverless_sessions.ids import validate_owner_id, validate_session_id
from serverless_sessions.model import SessionState
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.storage.foreign import EmulatedAtomicCache, ForeignCache
from serverless_sessions.ttl import ttl_seconds

__all__ = ["ACBCacheStorage", "Encryptor"]

logger = logging.getLogger(__name__)

_PURGE_BATCH = 1000


class Encryptor(Protocol):
    r"""Seals envelopes at rest; ``associated_data`` binds a ciphertext to its key.

    Sealed bytes must not start like a plain envelope (``b"SSN"`` or gzip's ``b"\x1f\x8b"``):
    a reader would take them for plaintext and never open them, so such a write is refused.
    """

    def seal(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``."""

    def open(self, sealed: bytes, *, associated_data: bytes, key: str) -> bytes:
        """Authenticate and decrypt; raise DecryptionError naming ``key`` on any failure."""


def user_index(user_id: str) -> str:
    """Index name listing one user's sessions."""
    return f"user:{user_id}"


def project_index(project_id: str) -> str:
    """Index name listing one project's sessions."""
    return f"project:{project_id}"


class ACBCacheStorage(SessionStorage):
    """Session storage over a cache adapter (built-in or foreign; see ``storage.foreign``).

    ``default_ttl`` (seconds, ``None`` = never) applies to new sessions stored without a TTL.
    ``owns_cache``: close the cache in :meth:`close` (true when a factory built it for us).
    ``require_encryption``: with an encryptor, refuse plaintext payloads (turn it on once
    ``reencrypt`` has completed; until then plaintext sessions stay readable).
    """

    def __init__(
        self,
        cache: CacheBase | ForeignCache,
        namespace: str = "session",
        *,
        codec: Codec | None = None,
        default_ttl: float | None = 86400,
        encryptor: Encryptor | None = None,
        owns_cache: bool = False,
        require_encryption: bool = False,
    ) -> None:
        super().__init__()
        self.namespace = validate_namespace(namespace)
        self.cache = cache
        self.codec = codec or Codec()
        self.default_ttl = ttl_seconds(default_ttl, what="default_ttl")
        self.encryptor = encryptor
        self.owns_cache = owns_cache
        if require_encryption and encryptor is None:
            raise ConfigurationError("require_encryption needs encryption keys")
        self.require_encryption = require_encryption
        if isinstance(cache, AtomicCache):
            self._atomic: AtomicCache = cache
        elif isinstance(cache, ForeignCache):
            self._atomic = EmulatedAtomicCache(cache, self.namespace)
        else:
            raise ConfigurationError(
                f"{type(cache).__name__} is not a cache: it needs async get/set/delete/exists"
            )
        self.backend = str(getattr(cache, "backend", "foreign"))

    def __repr__(self) -> str:
        return (
            f"ACBCacheStorage(backend={self.backend!r}, namespace={self.namespace!r}, "
            f"compression={self.codec.compression!r}, encrypted={self.encryptor is not None})"
        )

    # -- bytes <-> sessions ------------------------------------------------------------------

    def _key_name(self, session_id: str) -> str:
        return f"{self.namespace}:{session_id}"

    def _associated_data(self, session_id: str) -> bytes:
        return self._key_name(session_id).encode("utf-8")

    def encode(self, state: SessionState) -> bytes:
        """The bytes stored for ``state`` (envelope, then sealed if encryption is on).

        Refuses, before anything is written, whatever :meth:`decode` would refuse.
        """
        envelope = self.codec.encode(state)
        if self.encryptor is None:
            return envelope
        sealed = self.encryptor.seal(envelope, associated_data=self._associated_data(state.session_id))
        if is_plaintext(sealed):
            raise ConfigurationError(
                f"encryptor {type(self.encryptor).__name__} sealed session {state.session_id!r} "
                "into bytes that start like a plain envelope; readers would not decrypt them"
            )
        return sealed

    def decode(self, session_id: str, data: bytes, version: int) -> SessionState:
        """Parse stored bytes for ``session_id``; every failure names the key."""
        key = self._key_name(session_id)
        if not isinstance(data, bytes):
            raise CorruptSessionError(key, f"expected bytes, found {type(data).__name__}")
        if is_plaintext(data):
            if self.require_encryption:
                raise DecryptionError(key, "payload is not encrypted and plaintext is refused")
        else:
            if self.encryptor is None:
                raise DecryptionError(key, "payload is encrypted or foreign; no encryption keys set")
            data = self.encryptor.open(
                data, associated_data=self._associated_data(session_id), key=key
            )
        state = self.codec.decode(data, key=key)
        if state.session_id != session_id:
            raise CorruptSessionError(key, f"payload belongs to session {state.session_id!r}")
        state.revision = version
        return state

    def _stored(self, session_id: str, entry: Entry) -> StoredSession:
        return StoredSession(
            self.decode(session_id, entry.value, entry.version), entry.expires_at, len(entry.value)
        )

    # -- SessionStorage ----------------------------------------------------------------------

    def _ns(self) -> str | None:
        return self.namespace if isinstance(self.cache, CacheBase) else None

    async def store_session(
        self, session_state: SessionState, ttl_seconds: float | None = None
    ) -> bool:
        await self.write(session_state, ttl=self._ttl_for(session_state, ttl_seconds))
        return True

    def _ttl_for(self, state: SessionState, ttl: float | None) -> TTLArg:
        if ttl is not None:
            return ttl
        return KEEP_TTL if state.revision > 0 else self.default_ttl

    async def write(self, session_state: SessionState, *, ttl: TTLArg) -> Entry:
        """Compare-and-set ``session_state`` on its revision; bumps ``revision`` on success.

        Nothing is written when encoding fails (too large, not JSON) or the revision is stale.
        """
        self._check_open()
        # The adapter's version is the revision; the one inside the payload is overwritten on
        # read, so the state is encoded as it is, without a copy to bump it.
        data = self.encode(session_state)
        entry = await self._atomic.compare_and_set(
            session_state.session_id,
            data,
            expected_version=session_state.revision,
            ttl=ttl,
            indexes=(user_index(session_state.user_id), project_index(session_state.project_id)),
            namespace=self._ns(),
        )
        session_state.revision = entry.version
        return entry

    async def load_session(self, session_id: str) -> StoredSession | None:
        self._check_open()
        validate_session_id(session_id)
        entry = await self._atomic.get_entry(session_id, namespace=self._ns())
        return None if entry is None else self._stored(session_id, entry)

    async def load_sessions(self, session_ids: Sequence[str]) -> list[StoredSession | None]:
        self._check_open()
        for session_id in session_ids:
            validate_session_id(session_id)
        entries = await self._atomic.get_entries(list(session_ids), namespace=self._ns())
        return [
            None if entry is None else self._stored(session_id, entry)
            for session_id, entry in zip(session_ids, entries, strict=True)
        ]

    async def delete_session(self, session_id: str) -> bool:
        self._check_open()
        validate_session_id(session_id)
        return await self._atomic.compare_and_delete(session_id, namespace=self._ns())

    def _indexed(self, operation: str) -> IndexedCache:
        if not isinstance(self._atomic, IndexedCache):
            raise CapabilityNotSupportedError(self.cache, "index", operation)
        return self._atomic

    async def list_sessions(
        self, user_id: str | None = None, project_id: str | None = None
    ) -> list[str]:
        self._check_open()
        if user_id is None and project_id is None:
            return [session_id async for session_id in self.iter_session_ids()]
        cache = self._indexed("list_sessions")
        found: set[str] | None = None
        if user_id is not None:
            validate_owner_id(user_id, what="user id")
            found = set(await cache.index_members(user_index(user_id), namespace=self._ns()))
        if project_id is not None:
            validate_owner_id(project_id, what="project id")
            members = set(await cache.index_members(project_index(project_id), namespace=self._ns()))
            found = members if found is None else found & members
        return sorted(found or ())

    async def iter_session_ids(self) -> AsyncIterator[str]:
        self._check_open()
        if not isinstance(self.cache, ScannableCache):
            raise CapabilityNotSupportedError(self.cache, "scan", "listing every session")
        async for key in self.cache.scan_keys(namespace=self.namespace):
            yield key

    async def cleanup_expired_sessions(self) -> int:
        self._check_open()
        cache = self._indexed("cleanup_expired_sessions")
        removed = 0
        while True:
            purged = await cache.purge_expired(namespace=self._ns(), limit=_PURGE_BATCH)
            removed += len(purged)
            if len(purged) < _PURGE_BATCH:
                return removed

    async def is_available(self) -> bool:
        self._check_open()
        try:
            if isinstance(self.cache, PingableCache):
                await self.cache.ping()
            else:
                await self._atomic.get_entry("availability-probe", namespace=self._ns())
        except SessionError as exc:
            logger.warning("%s storage unavailable: %s", self.backend, exc)
            return False
        return True

    async def health(self) -> dict[str, Any]:
        """The adapter's health report (or a probe result), plus this storage's settings."""
        self._check_open()
        report: dict[str, Any]
        if isinstance(self.cache, PingableCache):
            try:
                report = await self.cache.health()
            except StorageError as exc:
                report = {"backend": self.backend, "available": False, "error": str(exc)}
        else:
            report = {"backend": self.backend, "available": await self.is_available()}
        return {**report, **self.describe()}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "namespace": self.namespace,
            "compression": self.codec.compression,
            "max_session_bytes": self.codec.max_size,
            "default_ttl_seconds": self.default_ttl,
            "encrypted": self.encryptor is not None,
        }

    async def close(self) -> None:
        try:
            if not self._closed and self.owns_cache:
                close = getattr(self.cache, "close", None)
                if close is not None:
                    await close()
        finally:
            await super().close()
