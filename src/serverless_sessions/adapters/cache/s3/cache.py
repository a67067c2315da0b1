"""S3 cache adapter: one object per key, expiry and version in object metadata.

Layout under ``{prefix}`` (``ns`` for the default namespace, ``ns-{name}`` for a named one)::

    {prefix}{ns}/d/{key}            the value; metadata ss-version, ss-expires-at, ss-indexes
    {prefix}{ns}/i/{index}/{key}    an empty marker: ``key`` is listed in ``index``

``{key}`` and ``{index}`` are percent-encoded (every byte outside ``A-Z a-z 0-9 _ - ~``, dots
included), so keys with ``:``, ``/`` or unicode are safe object names, never dot segments, and a
data object can never collide with a marker. ``ss-expires-at`` is absolute UNIX seconds; an
expired object is invisible to every read and is removed by :meth:`Cache.purge_expired`. S3
lifecycle rules work in whole days and are not used. An object under the data prefix without
this metadata (not written by this adapter) raises
:class:`~serverless_sessions.errors.CorruptSessionError` naming its key.

Compare-and-set uses conditional writes: a read (``HEAD``) gives the live version and the ETag,
then ``PutObject`` carries ``If-None-Match: *`` (the key must not exist) or ``If-Match: <ETag>``
(nobody wrote since the read); a failed precondition (412, or 404 for ``If-Match`` on a vanished
object) is a :class:`~serverless_sessions.errors.SessionConflictError`. Deletes carry
``If-Match`` too, so :meth:`Cache.purge_expired` never removes a key rewritten after it looked.

**Servers without conditional writes.** AWS S3 (conditional deletes since 2025-09; an ETag
condition on a delete needs ``s3:GetObject`` as well), moto and SeaweedFS enforce them. A server that
*ignores* the headers turns every write into last-writer-wins: the version check against the
``HEAD`` still refuses stale writers one at a time, but two writers racing between the ``HEAD``
and the ``PUT`` both succeed and one update is lost; a purge racing with a rewrite may delete it.
A server that *rejects* the headers makes every write raise
:class:`~serverless_sessions.errors.StorageError`. Use Redis or SQLite where that matters.

**Indexes.** A key's indexes are fixed by its first indexed write (a key first written without
indexes gains them on a later write that names some; a write naming none keeps them). Their
markers are written *before* the data object that first lists them, so a live key is never
missing from an index; a marker whose key is absent, expired, or does not list that index in its
metadata is filtered by :meth:`Cache.index_members`. Markers are deleted after their key (by
``delete`` or ``purge_expired``). Two known leftovers, both filtered and harmless: markers of a
write that lost its race to a writer with other indexes, and markers of an expired key
re-created with other indexes. One remaining race: deleting a key while another writer
re-creates the same key can remove the new key's marker.

**Costs.** ``get``/``exists``/``compare_and_set`` take one or two requests plus one per index when
a key gets its indexes. S3 has no expiry index: :meth:`Cache.purge_expired` lists every data object of the
namespace and reads each one's metadata — O(objects), the one exception to the contract's
O(expired). ``index_members`` and ``scan_keys`` issue one ``HEAD`` per listed key. Listings follow
``ListObjectsV2`` continuation tokens past 1,000 objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import SecretStr

from serverless_sessions.adapters.cache.base import (
    CacheBase,
    Entry,
    IndexedCache,
    PingableCache,
    ScannableCache,
    TTLArg,
    check_same_indexes,
    gather_bounded,
)
from serverless_sessions.adapters.cache.s3.bucket import S3Bucket, S3Settings, S3Timeouts
from serverless_sessions.adapters.cache.s3.layout import Layout, Record, live, metadata
from serverless_sessions.adapters.cache.s3.url import parse_url
from serverless_sessions.adapters.cache.urls import secret
from serverless_sessions.errors import SessionConflictError, StorageError
from serverless_sessions.ttl import expiry_for, is_expired, now, ttl_seconds

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["Cache", "S3Timeouts"]

_ATTEMPTS = 8
"""Rounds of read-then-conditional-write before a write without a version check gives up."""


class Cache(CacheBase, IndexedCache, ScannableCache, PingableCache):
    """Cache over one S3 bucket (or S3 API server); see the module docstring for the layout."""

    backend = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        access_key_id: str | SecretStr | None = None,
        secret_access_key: str | SecretStr | None = None,
        namespace: str | None = None,
        timeouts: S3Timeouts | None = None,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
        client: S3Client | None = None,
    ) -> None:
        """Configure the adapter; nothing connects until first use.

        ``client``: an aiobotocore S3 client to use instead of creating one; :meth:`close` leaves
        it open. ``prefix``: a folder for all objects (a trailing ``/`` is added).
        """
        super().__init__(namespace=namespace)
        settings = S3Settings(
            bucket=bucket,
            region=region,
            endpoint_url=endpoint_url,
            access_key_id=secret(access_key_id),
            secret_access_key=secret(secret_access_key),
            timeouts=timeouts or S3Timeouts(),
            addressing_style=addressing_style,
        )
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""
        self._layout = Layout(self.prefix)
        self._bucket = S3Bucket(settings, backend=self.backend, client=client)

    @classmethod
    def from_url(cls, url: str, *, namespace: str | None = None, **overrides: Any) -> Self:
        """Build from ``s3://bucket/prefix?endpoint_url=...&region=...``; ``overrides`` win.

        Query parameters: ``endpoint_url``, ``region``, ``addressing_style``,
        ``connect_timeout``, ``read_timeout``, ``max_attempts``. Credentials never go in the URL:
        pass ``access_key_id``/``secret_access_key`` or use the standard AWS variables.
        """
        return cls(**{**parse_url(url), **overrides}, namespace=namespace)

    @property
    def settings(self) -> S3Settings:
        """Connection settings (secrets masked in ``repr``)."""
        return self._bucket.settings

    def __repr__(self) -> str:
        return (
            f"s3.Cache(bucket={self.settings.bucket!r}, prefix={self.prefix!r}, "
            f"namespace={self.namespace!r}, endpoint={self.settings.endpoint_url!r})"
        )

    # -- reads -------------------------------------------------------------------------------

    async def _head(self, ns: str, key: str) -> Record | None:
        info = await self._bucket.head(self._layout.data(ns, key), key=key)
        return None if info is None else Record.parse(info, key)

    async def _live_heads(self, ns: str, prefix: str, names: Sequence[str]) -> list[tuple[str, Record]]:
        """(key, record) of the live data objects of the keys encoded in ``names``."""
        keys = Layout.keys(prefix, names)
        infos = await self._bucket.head_many([self._layout.data(ns, key) for key in keys], keys)
        at = now()
        found = [
            (key, live(None if info is None else Record.parse(info, key), at))
            for key, info in zip(keys, infos, strict=True)
        ]
        return [(key, record) for key, record in found if record is not None]

    async def _read(self, ns: str, key: str) -> Entry | None:
        found = await self._bucket.get(self._layout.data(ns, key), key=key)
        if found is None:
            return None
        body, info = found
        record = live(Record.parse(info, key))
        return None if record is None else Entry(body, record.version, record.expires_at)

    # -- CacheBase ---------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        entry = await self.get_entry(key, namespace=namespace)
        return default if entry is None else entry.value

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        self._check_open()
        await self._write(self._namespace(namespace), key, value, None, ttl_seconds(ttl), ())

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        return await self.compare_and_delete(key, namespace=namespace)

    async def exists(self, key: str, namespace: str | None = None) -> bool:
        self._check_open()
        return live(await self._head(self._namespace(namespace), key)) is not None

    async def close(self) -> None:
        await self._bucket.close()
        await super().close()

    # -- AtomicCache -------------------------------------------------------------------------

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        self._check_open()
        return await self._read(self._namespace(namespace), key)

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        self._check_open()
        ns = self._namespace(namespace)
        calls = [partial(self._read, ns, key) for key in keys]
        return await gather_bounded(calls, self.settings.max_pool_connections)

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
        self._check_open()
        return await self._write(self._namespace(namespace), key, value, expected_version, ttl, indexes)

    async def _write(
        self,
        ns: str,
        key: str,
        value: bytes,
        expected: int | None,
        ttl: TTLArg,
        indexes: Sequence[str],
    ) -> Entry:
        """Read, check ``expected`` (``None``: any version), write conditionally on the read.

        A lost precondition is retried only where retrying cannot hide a conflict: when the key
        was absent (``expected`` 0: it may have been purged meanwhile) or for ``set``.
        """
        value = bytes(value)
        for _ in range(_ATTEMPTS if not expected else 1):
            current = await self._head(ns, key)
            at = now()
            found = live(current, at)
            version = (found.version if found else 0) + 1
            if expected is not None and version - 1 != expected:
                raise SessionConflictError(key, expected, found.version if found else None)
            expires_at = expiry_for(ttl, current=found.expires_at if found else None, at=at)
            if found is not None:
                check_same_indexes(key, found.indexes, indexes, expected=expected or 0, actual=found.version)
            # A key's indexes are fixed by its first indexed write; a write naming none keeps them.
            listed_in = found.indexes if found else ()
            names = listed_in or tuple(dict.fromkeys(indexes))
            if names != listed_in:
                # Markers first: a live key must never be missing from its indexes.
                markers = self._layout.markers(ns, key, names)
                calls = [partial(self._bucket.put, marker, b"", key=key) for marker in markers]
                await gather_bounded(calls, self.settings.max_pool_connections)
            if await self._bucket.put(
                self._layout.data(ns, key),
                value,
                key=key,
                metadata=metadata(version, expires_at, names),
                if_match=current.etag if current else None,
                if_none_match=current is None,
            ):
                return Entry(value, version, expires_at)
        raise await self._gave_up(ns, key, expected, "write")

    async def _gave_up(self, ns: str, key: str, expected: int | None, operation: str) -> Exception:
        if expected is None:
            return StorageError(
                f"s3 {operation} of key {key!r} in bucket {self.settings.bucket!r} gave up after "
                f"{_ATTEMPTS} rounds of concurrent writers"
            )
        latest = live(await self._head(ns, key))
        return SessionConflictError(key, expected, latest.version if latest else None)

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        for _ in range(_ATTEMPTS if not expected_version else 1):
            found = live(await self._head(ns, key))
            actual = found.version if found else 0
            if expected_version is not None and actual != expected_version:
                raise SessionConflictError(key, expected_version, found.version if found else None)
            if found is None:
                return False
            if await self._bucket.delete(self._layout.data(ns, key), key=key, if_match=found.etag):
                await self._bucket.delete_many(self._layout.markers(ns, key, found.indexes), key=key)
                return True
        raise await self._gave_up(ns, key, expected_version, "delete")

    # -- IndexedCache ------------------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        self._check_open()
        ns = self._namespace(namespace)
        prefix = self._layout.index_prefix(ns, index)
        members: list[str] = []
        async for page in self._bucket.pages(prefix):
            found = await self._live_heads(ns, prefix, page)
            members.extend(key for key, record in found if index in record.indexes)
        return members

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        self._check_open()
        ns = self._namespace(namespace)
        prefix = self._layout.data_prefix(ns)
        purged: list[str] = []
        async for page in self._bucket.pages(prefix):
            keys = Layout.keys(prefix, page)
            infos = await self._bucket.head_many(page, keys)
            at = now()
            records = [(key, Record.parse(info, key)) for key, info in zip(keys, infos, strict=True) if info]
            expired = [(key, rec) for key, rec in records if is_expired(rec.expires_at, at)]
            if limit is not None:
                expired = expired[: max(0, limit - len(purged))]
            # If-Match: a key rewritten since the HEAD above is live again and stays.
            calls = [
                partial(self._bucket.delete, self._layout.data(ns, key), key=key, if_match=rec.etag)
                for key, rec in expired
            ]
            deleted = await gather_bounded(calls, self.settings.max_pool_connections)
            done = [(key, rec) for (key, rec), ok in zip(expired, deleted, strict=True) if ok]
            markers = [m for key, rec in done for m in self._layout.markers(ns, key, rec.indexes)]
            await self._bucket.delete_many(markers, key=None)
            purged.extend(key for key, _ in done)
            if limit is not None and len(purged) >= limit:
                break
        return purged

    # -- ScannableCache / PingableCache ------------------------------------------------------

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        self._check_open()
        ns = self._namespace(namespace)
        prefix = self._layout.data_prefix(ns)
        async for page in self._bucket.pages(prefix, page_size=min(max(batch_size, 1), 1000)):
            for key, _ in await self._live_heads(ns, prefix, page):
                yield key

    async def ping(self) -> float:
        self._check_open()
        return await self._bucket.ping()

    async def health(self) -> dict[str, Any]:
        self._check_open()
        report: dict[str, Any] = {"backend": self.backend, "prefix": self.prefix, **self.settings.public()}
        try:
            latency = await self.ping()
        except StorageError as exc:
            return {**report, "available": False, "error": str(exc)}
        return {**report, "available": True, "latency_ms": round(latency * 1000, 3)}
