"""``S3Storage``: the original S3 layout, made correct.

Layout (unchanged): object ``{key_prefix}{id}.json.gz`` holding the gzip JSON, with metadata
``user_id``, ``project_id``, ``created_at``, ``last_activity``; added: ``revision`` and
``expires_at`` (absolute UNIX seconds). Non-ASCII owner ids, which S3 metadata cannot carry raw,
are written RFC 2047-encoded (``=?utf-8?b?...?=``), the form S3 itself uses.

Guarantees:

* Expiry is ``expires_at`` in the metadata, enforced on every read, listing and cleanup. The
  HTTP ``Expires`` header, which the original set as if S3 would delete the object, is neither
  written nor read: objects written by the original module carry no expiry and never expire
  until rewritten.
* Writes are conditional (``If-None-Match: *`` for a new session, ``If-Match: <ETag>``
  otherwise), so a stale revision, or a writer that slipped in between our read and our write,
  raises :class:`~serverless_sessions.errors.SessionConflictError`. On servers that ignore
  conditional writes the read-time revision check remains, but racing writers can both succeed
  (see :mod:`serverless_sessions.adapters.cache.s3`).
* Listing and cleanup follow ``ListObjectsV2`` continuation tokens past 1,000 objects and read
  each object's metadata (one ``HEAD`` per object: there is no index in this layout). Cleanup
  deletes with ``If-Match``, so a session rewritten after it looked stays.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import Field, SecretStr

from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.adapters.cache.s3 import ObjectInfo, S3Bucket, S3Settings, S3Timeouts
from serverless_sessions.errors import CorruptSessionError, SessionConflictError
from serverless_sessions.model import SessionState
from serverless_sessions.storage.base import StoredSession
from serverless_sessions.storage.legacy._common import (
    LegacyConfig,
    LegacyStorage,
    decode_session,
    encode_session,
    next_revision,
    owned_by,
    parse_config,
    session_id_from_name,
    ttl_for_write,
)
from serverless_sessions.ttl import expiry_for, is_expired, now

__all__ = ["S3Storage"]

_SUFFIX = ".json.gz"
_RFC2047 = ("=?utf-8?b?", "?=")


def _header_value(text: str) -> str:
    """``text`` as an S3 metadata value: raw if printable ASCII, else RFC 2047."""
    if text.isascii() and text.isprintable() and not text.startswith("=?"):
        return text
    return _RFC2047[0] + base64.b64encode(text.encode("utf-8")).decode("ascii") + _RFC2047[1]


def _header_text(value: str) -> str:
    """Inverse of :func:`_header_value` (S3 may report the charset in either case)."""
    start, end = _RFC2047
    if value.lower().startswith(start) and value.endswith(end):
        return base64.b64decode(value[len(start) : -len(end)]).decode("utf-8")
    return value


class _S3Config(LegacyConfig):
    bucket_name: str
    region: str = "us-east-1"
    key_prefix: str = "sessions/"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    endpoint_url: str | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)


@dataclass(frozen=True, slots=True)
class _Head:
    """A session object's ETag, revision, expiry and owners, from its metadata."""

    etag: str
    revision: int
    expires_at: float | None
    user_id: str
    project_id: str

    @classmethod
    def parse(cls, info: ObjectInfo, key: str) -> _Head:
        """Read the metadata; an object without ``revision`` was written by the original: 1."""
        meta = info.metadata
        try:
            revision = int(meta.get("revision", "1"))
            raw = meta.get("expires_at")
            expires_at = float(raw) if raw else None
        except ValueError as exc:
            raise CorruptSessionError(key, f"bad revision or expires_at metadata: {exc}") from exc
        owners = (_header_text(meta.get("user_id", "")), _header_text(meta.get("project_id", "")))
        return cls(info.etag, revision, expires_at, *owners)

    def live(self, at: float | None = None) -> bool:
        """Whether the session has not expired (at ``at``, default now)."""
        return not is_expired(self.expires_at, at)


class S3Storage(LegacyStorage):
    """Deprecated S3 storage, configured as the original: ``{"bucket_name": ..., ...}``.

    Keys: ``bucket_name``, ``region``, ``key_prefix``, ``access_key_id``, ``secret_access_key``,
    ``endpoint_url`` (S3-compatible servers); optional ``default_ttl_seconds`` (new sessions
    stored without a TTL; default 24 h, ``None`` for never), ``connect_timeout``,
    ``read_timeout``, ``max_attempts``.
    """

    backend = "legacy-s3"
    replacement = "ACBCacheStorage(s3.Cache.from_url('s3://bucket/prefix'))"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = c = parse_config(_S3Config, config, "S3Storage")
        settings = S3Settings(
            bucket=c.bucket_name,
            region=c.region,
            endpoint_url=c.endpoint_url,
            access_key_id=c.access_key_id,
            secret_access_key=c.secret_access_key,
            timeouts=S3Timeouts(c.connect_timeout, c.read_timeout, c.max_attempts),
        )
        self._bucket = S3Bucket(settings, backend=self.backend)
        self._prefix = c.key_prefix

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.config.bucket_name!r}, key_prefix={self._prefix!r})"

    def _name(self, session_id: str) -> str:
        return f"{self._prefix}{session_id}{_SUFFIX}"

    async def _head(self, session_id: str) -> _Head | None:
        name = self._name(session_id)
        info = await self._bucket.head(name, key=name)
        return None if info is None else _Head.parse(info, name)

    async def _pages(self) -> AsyncIterator[list[tuple[str, _Head]]]:
        """(id, metadata) of every live session, one list per listing page."""
        async for page in self._bucket.pages(self._prefix):
            ids = [sid for name in page if (sid := session_id_from_name(name, self._prefix, _SUFFIX))]
            names = [self._name(session_id) for session_id in ids]
            infos = await self._bucket.head_many(names, names)
            yield [
                (session_id, _Head.parse(info, name))
                for session_id, name, info in zip(ids, names, infos, strict=True)
                if info is not None
            ]

    # -- LegacyStorage hooks -----------------------------------------------------------------

    async def _load(self, session_id: str) -> StoredSession | None:
        name = self._name(session_id)
        found = await self._bucket.get(name, key=name)
        if found is None:
            return None
        data, info = found
        head = _Head.parse(info, name)
        if not head.live():
            return None
        return StoredSession(
            decode_session(data, session_id=session_id, key=name), head.expires_at, len(data)
        )

    async def _store(self, state: SessionState, ttl: float | None) -> int:
        session_id = state.session_id
        current = await self._head(session_id)
        at = now()
        live = current if current is not None and current.live(at) else None
        revision = next_revision(state, live.revision if live else None)
        ttl_arg = ttl_for_write(ttl, exists=live is not None, default=self.config.default_ttl_seconds)
        expires_at = expiry_for(ttl_arg, current=live.expires_at if live else None, at=at)
        document = state.to_dict()
        metadata = {
            "user_id": _header_value(state.user_id),
            "project_id": _header_value(state.project_id),
            "created_at": document["created_at"],
            "last_activity": document["last_activity"],
            "revision": str(revision),
        }
        if expires_at is not None:
            metadata["expires_at"] = repr(expires_at)
        if not await self._bucket.put(
            self._name(session_id),
            encode_session(state, revision),
            key=self._name(session_id),
            metadata=metadata,
            if_match=current.etag if current else None,
            if_none_match=current is None,
        ):
            latest = await self._head(session_id)
            raise SessionConflictError(session_id, state.revision, latest.revision if latest else None)
        return revision

    async def _delete(self, session_id: str) -> bool:
        current = await self._head(session_id)
        if current is None:
            return False
        await self._bucket.delete(self._name(session_id), key=self._name(session_id))
        return current.live()

    async def _list(self, user_id: str | None, project_id: str | None) -> list[str]:
        found: list[str] = []
        async for page in self._pages():
            at = now()
            found.extend(
                session_id
                for session_id, head in page
                if head.live(at) and owned_by(head.user_id, head.project_id, user_id, project_id)
            )
        return found

    async def _iter_ids(self) -> AsyncIterator[str]:
        async for page in self._pages():
            at = now()
            for session_id, head in page:
                if head.live(at):
                    yield session_id

    async def _cleanup(self) -> int:
        removed = 0
        async for page in self._pages():
            at = now()
            calls = [
                partial(self._bucket.delete, name, key=name, if_match=head.etag)
                for name, head in ((self._name(sid), head) for sid, head in page if not head.live(at))
            ]
            removed += sum(await gather_bounded(calls, self._bucket.settings.max_pool_connections))
        return removed

    async def _ping(self) -> None:
        await self._bucket.ping()

    def _public(self) -> dict[str, Any]:
        return {**self._bucket.settings.public(), "key_prefix": self._prefix}

    async def close(self) -> None:
        await self._bucket.close()
        await super().close()
