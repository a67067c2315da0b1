"""S3 cache adapter: one object per key, expiry and version in object metadata.

Layout under ``{prefix}`` (``ns`` for the default namespace, ``ns-{name}`` for a named one)::

    {prefix}{ns}/d/{key}            the value; metadata ss-version, ss-expires-at, ss-indexes
    {prefix}{ns}/i/{index}/{key}    an empty marker: ``key`` is listed in ``index``

``{key}`` and ``{index}`` are percent-encoded (every byte outside ``A-Z a-z 0-9 _ - ~``, dots
included), so keys with ``:``, ``/`` or unicode are safe object names, never dot segments, and a
data object can never collide with a marker. ``ss-expires-at`` is absolute UNIX seconds; an
expired object is invisible to every read and is removed by :meth:`Cache.purge_expired`. S3
lifecycle rules work in whole days and are not used.

Compare-and-set uses conditional writes: a read (``HEAD``) gives the live version and the ETag,
then ``PutObject`` carries ``If-None-Match: *`` (the key must not exist) or ``If-Match: <ETag>``
(nobody wrote since the read); a failed precondition (412, or 404 for ``If-Match`` on a vanished
object) is a :class:`~serverless_sessions.errors.SessionConflictError`. Deletes carry
``If-Match`` too, so :meth:`Cache.purge_expired` never removes a key rewritten after it looked.

**Servers without conditional writes.** AWS S3, moto and SeaweedFS enforce them. A server that
*ignores* the headers turns every write into last-writer-wins: the version check against the
``HEAD`` still refuses stale writers one at a time, but two writers racing between the ``HEAD``
and the ``PUT`` both succeed and one update is lost; a purge racing with a rewrite may delete it.
A server that *rejects* the headers makes every write raise
:class:`~serverless_sessions.errors.StorageError`. Use Redis or SQLite where that matters.

**Indexes.** A key's markers are written *before* its first data object, so a live key is never
missing from an index; a marker whose key is absent, expired, or does not list that index in its
metadata is filtered by :meth:`Cache.index_members`. Markers are deleted after their key (by
``delete`` or ``purge_expired``). Two known leftovers, both filtered and harmless: markers of a
create that lost its race to a writer with other indexes, and markers of an expired key
re-created with other indexes. One remaining race: deleting a key while another writer
re-creates the same key can remove the new key's marker.

**Costs.** ``get``/``exists``/``compare_and_set`` take one or two requests plus one per index on
creation. S3 has no expiry index: :meth:`Cache.purge_expired` lists every data object of the
namespace and reads each one's metadata — O(objects), the one exception to the contract's
O(expired). ``index_members`` and ``scan_keys`` issue one ``HEAD`` per listed key. Listings follow
``ListObjectsV2`` continuation tokens past 1,000 objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from pydantic import SecretStr

from serverless_sessions.adapters.cache._s3_bucket import (
    ObjectInfo,
    S3Bucket,
    S3Settings,
    S3Timeouts,
    gather_bounded,
)
from serverless_sessions.adapters.cache.base import (
    CacheBase,
    Entry,
    IndexedCache,
    PingableCache,
    ScannableCache,
    TTLArg,
)
from serverless_sessions.errors import (
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionIdError,
    SessionConflictError,
    StorageError,
)
from serverless_sessions.ttl import expiry_for, is_expired, now, ttl_seconds

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["Cache", "S3Timeouts"]

_VERSION = "ss-version"
_EXPIRES = "ss-expires-at"
_INDEXES = "ss-indexes"
_ATTEMPTS = 8
"""Rounds of read-then-conditional-write before a write without a version check gives up."""


def encode_name(part: str) -> str:
    """Percent-encode a key or index name into one safe object-name segment."""
    if not isinstance(part, str) or not part:
        raise InvalidSessionIdError(part, "must be a non-empty string", what="key")
    return quote(part, safe="").replace(".", "%2E")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _addressing_style(text: str) -> str:
    if text not in ("auto", "path", "virtual"):
        raise ValueError("must be auto, path or virtual")
    return text


def _non_empty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


_QUERY_PARSERS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "endpoint_url": _non_empty,
        "region": _non_empty,
        "addressing_style": _addressing_style,
        "connect_timeout": _positive_float,
        "read_timeout": _positive_float,
        "max_attempts": _positive_int,
    }
)
"""``s3://`` URL query parameters and how each is parsed (read-only)."""
_TIMEOUT_PARAMS = MappingProxyType(
    {"connect_timeout": "connect", "read_timeout": "read", "max_attempts": "max_attempts"}
)


def parse_url(url: str) -> dict[str, Any]:
    """Constructor arguments from ``s3://bucket/prefix?param=value&...``; errors name the part."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ConfigurationError(f"S3 URL must start with s3://, got scheme {parts.scheme!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise ConfigurationError(
            "S3 URL must not carry credentials or a port; use the AWS environment variables "
            "or access_key_id/secret_access_key arguments, and ?endpoint_url=... for a server"
        )
    if parts.fragment:
        raise ConfigurationError("S3 URL must not have a #fragment")
    kwargs: dict[str, Any] = {"bucket": parts.netloc, "prefix": unquote(parts.path)}
    timeouts: dict[str, Any] = {}
    seen: set[str] = set()
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        parser = _QUERY_PARSERS.get(name)
        if parser is None:
            raise ConfigurationError(
                f"unknown S3 URL query parameter {name!r}; known: {', '.join(_QUERY_PARSERS)}"
            )
        if name in seen:
            raise ConfigurationError(f"S3 URL query parameter {name!r} is given twice")
        seen.add(name)
        try:
            value = parser(raw)
        except ValueError as exc:
            raise ConfigurationError(
                f"S3 URL query parameter {name!r} has a bad value {raw!r}: {exc}"
            ) from exc
        if name in _TIMEOUT_PARAMS:
            timeouts[_TIMEOUT_PARAMS[name]] = value
        else:
            kwargs[name] = value
    if timeouts:
        kwargs["timeouts"] = S3Timeouts(**timeouts)
    return kwargs


@dataclass(frozen=True, slots=True)
class _Record:
    """A data object's ETag and parsed metadata."""

    etag: str
    version: int
    expires_at: float | None
    indexes: tuple[str, ...]

    @classmethod
    def parse(cls, info: ObjectInfo, key: str) -> _Record:
        meta = info.metadata
        try:
            version = int(meta[_VERSION])
            expires = meta.get(_EXPIRES)
            expires_at = float(expires) if expires else None
        except (KeyError, ValueError) as exc:
            raise CorruptSessionError(key, f"S3 object metadata is not ours: {exc!r}") from exc
        raw_indexes = meta.get(_INDEXES, "")
        indexes = tuple(unquote(item) for item in raw_indexes.split(",")) if raw_indexes else ()
        return cls(info.etag, version, expires_at, indexes)

    def metadata(self) -> dict[str, str]:
        meta = {_VERSION: str(self.version)}
        if self.expires_at is not None:
            meta[_EXPIRES] = repr(self.expires_at)
        if self.indexes:
            meta[_INDEXES] = ",".join(quote(index, safe="") for index in self.indexes)
        return meta


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

        ``client``: an aiobotocore S3 client to use instead of creating one; it is not closed
        by :meth:`close`. ``prefix``: a folder for all objects (a trailing ``/`` is added).
        """
        super().__init__(namespace=namespace)
        settings = S3Settings(
            bucket=bucket,
            region=region,
            endpoint_url=endpoint_url,
            access_key_id=access_key_id,  # type: ignore[arg-type]  # wrapped in __post_init__
            secret_access_key=secret_access_key,  # type: ignore[arg-type]
            timeouts=timeouts or S3Timeouts(),
            addressing_style=addressing_style,
        )
        stripped = prefix.strip("/")
        self.prefix = f"{stripped}/" if stripped else ""
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

    # -- layout ------------------------------------------------------------------------------

    def _root(self, ns: str) -> str:
        return f"{self.prefix}ns-{ns}/" if ns else f"{self.prefix}ns/"

    def _data_prefix(self, ns: str) -> str:
        return f"{self._root(ns)}d/"

    def _data_name(self, ns: str, key: str) -> str:
        return self._data_prefix(ns) + encode_name(key)

    def _index_prefix(self, ns: str, index: str) -> str:
        return f"{self._root(ns)}i/{encode_name(index)}/"

    def _markers(self, ns: str, key: str, indexes: Sequence[str]) -> list[str]:
        return [self._index_prefix(ns, index) + encode_name(key) for index in indexes]

    # -- reads -------------------------------------------------------------------------------

    async def _head(self, ns: str, key: str) -> _Record | None:
        info = await self._bucket.head(self._data_name(ns, key), key=key)
        return None if info is None else _Record.parse(info, key)

    async def _heads(self, ns: str, keys: Sequence[str]) -> list[_Record | None]:
        names = [self._data_name(ns, key) for key in keys]
        infos = await self._bucket.head_many(names, keys)
        return [
            None if info is None else _Record.parse(info, key) for info, key in zip(infos, keys, strict=True)
        ]

    async def _read(self, ns: str, key: str) -> Entry | None:
        found = await self._bucket.get(self._data_name(ns, key), key=key)
        if found is None:
            return None
        body, info = found
        record = _Record.parse(info, key)
        if is_expired(record.expires_at):
            return None
        return Entry(body, record.version, record.expires_at)

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
        record = await self._head(self._namespace(namespace), key)
        return record is not None and not is_expired(record.expires_at)

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

        A lost precondition is retried only where retrying cannot hide a conflict: when the
        key was absent (``expected`` 0, it may have been purged meanwhile) or for ``set``.
        """
        name = self._data_name(ns, key)
        for _ in range(_ATTEMPTS if not expected else 1):
            current = await self._head(ns, key)
            at = now()
            live = current if current is not None and not is_expired(current.expires_at, at) else None
            actual = live.version if live else 0
            if expected is not None and actual != expected:
                raise SessionConflictError(key, expected, actual if live else None)
            record = _Record(
                "",
                actual + 1,
                expiry_for(ttl, current=live.expires_at if live else None, at=at),
                live.indexes if live else tuple(dict.fromkeys(indexes)),
            )
            if live is None and record.indexes:
                await self._put_markers(ns, key, record.indexes)
            if await self._bucket.put(
                name,
                bytes(value),
                key=key,
                metadata=record.metadata(),
                if_match=current.etag if current else None,
                if_none_match=current is None,
            ):
                return Entry(bytes(value), record.version, record.expires_at)
        raise await self._gave_up(ns, key, expected, "write")

    async def _put_markers(self, ns: str, key: str, indexes: Sequence[str]) -> None:
        calls = [
            partial(self._bucket.put, marker, b"", key=key) for marker in self._markers(ns, key, indexes)
        ]
        await gather_bounded(calls, self.settings.max_pool_connections)

    async def _gave_up(self, ns: str, key: str, expected: int | None, operation: str) -> Exception:
        if expected is None:
            return StorageError(
                f"s3 {operation} of key {key!r} in bucket {self.settings.bucket!r} gave up after "
                f"{_ATTEMPTS} rounds of concurrent writers"
            )
        latest = await self._head(ns, key)
        live = latest is not None and not is_expired(latest.expires_at)
        return SessionConflictError(key, expected, latest.version if latest and live else None)

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        for _ in range(_ATTEMPTS if not expected_version else 1):
            current = await self._head(ns, key)
            live = current if current is not None and not is_expired(current.expires_at) else None
            actual = live.version if live else 0
            if expected_version is not None and actual != expected_version:
                raise SessionConflictError(key, expected_version, actual if live else None)
            if live is None:
                return False
            if await self._bucket.delete(self._data_name(ns, key), key=key, if_match=live.etag):
                await self._bucket.delete_many(self._markers(ns, key, live.indexes), key=key)
                return True
        raise await self._gave_up(ns, key, expected_version, "delete")

    # -- IndexedCache ------------------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        self._check_open()
        ns = self._namespace(namespace)
        prefix = self._index_prefix(ns, index)
        members: list[str] = []
        async for page in self._bucket.pages(prefix):
            keys = [unquote(name[len(prefix) :]) for name in page]
            at = now()
            for key, record in zip(keys, await self._heads(ns, keys), strict=True):
                if record and index in record.indexes and not is_expired(record.expires_at, at):
                    members.append(key)
        return members

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        self._check_open()
        ns = self._namespace(namespace)
        prefix = self._data_prefix(ns)
        purged: list[str] = []
        async for page in self._bucket.pages(prefix):
            keys = [unquote(name[len(prefix) :]) for name in page]
            at = now()
            expired = [
                (key, record)
                for key, record in zip(keys, await self._heads(ns, keys), strict=True)
                if record is not None and is_expired(record.expires_at, at)
            ]
            if limit is not None:
                expired = expired[: max(0, limit - len(purged))]
            deleted = await gather_bounded(
                [
                    partial(self._bucket.delete, self._data_name(ns, key), key=key, if_match=rec.etag)
                    for key, rec in expired
                ],
                self.settings.max_pool_connections,
            )
            done = [(key, rec) for (key, rec), ok in zip(expired, deleted, strict=True) if ok]
            markers = [m for key, rec in done for m in self._markers(ns, key, rec.indexes)]
            await self._bucket.delete_many(markers, key=None)
            purged.extend(key for key, _ in done)
            if limit is not None and len(purged) >= limit:
                break
        return purged

    # -- ScannableCache / PingableCache ------------------------------------------------------

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        self._check_open()
        ns = self._namespace(namespace)
        prefix = self._data_prefix(ns)
        async for page in self._bucket.pages(prefix, page_size=min(max(batch_size, 1), 1000)):
            keys = [unquote(name[len(prefix) :]) for name in page]
            at = now()
            for key, record in zip(keys, await self._heads(ns, keys), strict=True):
                if record is not None and not is_expired(record.expires_at, at):
                    yield key

    async def ping(self) -> float:
        self._check_open()
        return await self._bucket.ping()

    async def health(self) -> dict[str, Any]:
        self._check_open()
        report: dict[str, Any] = {"backend": self.backend, **self.settings.public()}
        report["prefix"] = self.prefix
        try:
            latency = await self.ping()
        except StorageError as exc:
            return {**report, "available": False, "error": str(exc)}
        return {**report, "available": True, "latency_ms": round(latency * 1000, 3)}
