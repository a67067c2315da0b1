"""One S3 bucket seen through aiobotocore: settings, client lifecycle, error boundary, object ops.

Shared by the S3 cache adapter (:mod:`serverless_sessions.adapters.cache.s3`) and the legacy
``S3Storage``, which lay out their objects differently but talk to S3 the same way.

Contracts:

* The client is created on first use and closed by :meth:`S3Bucket.close` — only if this object
  created it; an injected client belongs to whoever injected it. First use also checks that the
  bucket exists (``HeadBucket``, which needs the ``s3:ListBucket`` permission listing needs
  anyway), because ``HEAD`` on an object answers a bare 404 for a missing *bucket* too, and
  reads would otherwise report "no such key" forever.
* Every botocore exception is translated by :func:`translate_error` into
  :class:`~serverless_sessions.errors.StorageUnavailableError` (unreachable, timed out, throttled,
  5xx) or :class:`~serverless_sessions.errors.StorageError` (everything else), with backend,
  operation, bucket and key in the message and the original as ``__cause__``. Credentials are
  never part of a message.
* Conditional writes and deletes return ``False`` when their precondition fails (412, or 404 for
  ``If-Match`` on a missing object); callers decide what that means.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import SecretStr

from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.errors import (
    ClosedError,
    ConfigurationError,
    StorageError,
    StorageUnavailableError,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["ObjectInfo", "S3Bucket", "S3Settings", "S3Timeouts", "translate_error"]

_T = TypeVar("_T")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_DELETE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class S3Timeouts:
    """Connect and read timeouts (seconds) and botocore's total attempts per request."""

    connect: float = 5.0
    read: float = 10.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"S3 timeout {name!r} must be > 0 seconds, got {value!r}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError(f"S3 max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"S3 max_attempts must be >= 1, got {self.max_attempts!r}")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where the bucket is and how to reach it. Secrets are ``SecretStr``, masked in ``repr``.

    Credentials left ``None`` come from botocore's standard chain (``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY`` environment variables, shared files, instance roles).
    """

    bucket: str
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    timeouts: S3Timeouts = field(default_factory=S3Timeouts)
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    max_pool_connections: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.bucket, str) or not _BUCKET_RE.fullmatch(self.bucket):
            raise ConfigurationError(
                f"S3 bucket {self.bucket!r} is not a valid bucket name "
                "(3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit)"
            )
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"S3 endpoint_url must be an http(s) URL with a host, got {self.endpoint_url!r}"
                )
            if parts.username or parts.password:
                raise ConfigurationError(
                    "S3 endpoint_url must not carry credentials; pass access_key_id and "
                    "secret_access_key or use the AWS environment variables"
                )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigurationError(
                "S3 access_key_id and secret_access_key must be given together (or neither)"
            )
        if self.addressing_style not in ("auto", "path", "virtual"):
            raise ConfigurationError(
                f"S3 addressing_style must be auto, path or virtual, got {self.addressing_style!r}"
            )
        if self.max_pool_connections < 1:
            raise ConfigurationError("S3 max_pool_connections must be >= 1")

    def public(self) -> dict[str, Any]:
        """JSON-safe facts for health and stats output: no credentials, only their source."""
        return {
            "bucket": self.bucket,
            "region": self.region,
            "endpoint": self.endpoint_url,
            "credentials": "explicit" if self.access_key_id is not None else "default chain",
        }


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``HEAD`` tells about an object: its ETag (for conditional writes) and metadata."""

    etag: str
    metadata: dict[str, str]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_not_found(exc: ClientError) -> bool:
    """Whether a ClientError says "no such object" (not "no such bucket")."""
    return _error_code(exc) in _NOT_FOUND_CODES


def _precondition_failed(exc: ClientError) -> bool:
    # moto and SeaweedFS answer If-Match on a missing object with 404; AWS with 412.
    return _error_code(exc) == "PreconditionFailed" or _http_status(exc) == 412 or is_not_found(exc)


def translate_error(
    exc: BaseException, *, backend: str, operation: str, bucket: str, key: str | None
) -> StorageError:
    """The library error for a botocore exception (never holding a credential)."""
    where = f"{backend} {operation} failed (bucket {bucket!r}" + (
        f", key {key!r})" if key is not None else ")"
    )
    if isinstance(exc, ClientError):
        code = _error_code(exc) or str(_http_status(exc))
        message = exc.response.get("Error", {}).get("Message", "")
        text = f"{where}: {code}" + (f": {message}" if message else "")
        if code in _TRANSIENT_CODES or _http_status(exc) >= 500:
            return StorageUnavailableError(text)
        return StorageError(text)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return StorageUnavailableError(f"{where}: unreachable: {type(exc).__name__}: {exc}")
    return StorageError(f"{where}: {type(exc).__name__}: {exc}")


_shared_session: AioSession | None = None


def _session() -> AioSession:
    """The process's botocore session, shared by every client this module creates.

    It caches the S3 service model, so a further client takes ~4 ms to create instead of
    ~100 ms. Clients given explicit credentials never use the session's own credentials.
    """
    global _shared_session
    if _shared_session is None:
        _shared_session = AioSession()
    return _shared_session


class S3Bucket:
    """Object operations on one bucket, with the error boundary applied to each of them."""

    def __init__(self, settings: S3Settings, *, backend: str, client: S3Client | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self._client: S3Client | None = client
        self._checked = client is not None
        self._owned = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def name(self) -> str:
        """The bucket name."""
        return self.settings.bucket

    @contextlib.contextmanager
    def errors(self, operation: str, key: str | None) -> Iterator[None]:
        """Translate botocore exceptions raised inside the block (see module docstring)."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise translate_error(
                exc, backend=self.backend, operation=operation, bucket=self.name, key=key
            ) from exc

    async def client(self) -> S3Client:
        """The client, created (and the bucket checked) on first use."""
        if self._closed:
            raise ClosedError(f"{self.backend} bucket {self.name!r}")
        if self._client is not None and self._checked:
            return self._client
        async with self._lock:
            if self._client is None:
                with self.errors("connect", None):
                    self._client = await self._owned.enter_async_context(self._create())
            if not self._checked:
                with self.errors("check bucket", None):
                    await self._client.head_bucket(Bucket=self.name)
                self._checked = True
        return self._client

    def _create(self) -> contextlib.AbstractAsyncContextManager[S3Client]:
        s = self.settings
        config = AioConfig(
            connect_timeout=s.timeouts.connect,
            read_timeout=s.timeouts.read,
            retries={"max_attempts": s.timeouts.max_attempts, "mode": "standard"},
            max_pool_connections=s.max_pool_connections,
            s3={"addressing_style": s.addressing_style},
        )
        return _session().create_client(
            "s3",
            region_name=s.region,
            endpoint_url=s.endpoint_url,
            aws_access_key_id=s.access_key_id.get_secret_value() if s.access_key_id else None,
            aws_secret_access_key=(s.secret_access_key.get_secret_value() if s.secret_access_key else None),
            config=config,
        )

    async def close(self) -> None:
        """Close the client if this object created it. Idempotent."""
        self._closed = True
        await self._owned.aclose()
        self._client = None

    async def ping(self) -> float:
        """Seconds for one ``HeadBucket`` round trip."""
        client = await self.client()
        started = time.perf_counter()
        with self.errors("ping", None):
            await client.head_bucket(Bucket=self.name)
        return time.perf_counter() - started

    async def head(self, name: str, *, key: str) -> ObjectInfo | None:
        """ETag and metadata of object ``name``, or ``None`` if it does not exist."""
        client = await self.client()
        with self.errors("head", key):
            try:
                response = await client.head_object(Bucket=self.name, Key=name)
            except ClientError as exc:
                if is_not_found(exc):
                    return None
                raise
        return ObjectInfo(response["ETag"], dict(response.get("Metadata", {})))

    async def get(self, name: str, *, key: str) -> tuple[bytes, ObjectInfo] | None:
        """Body, ETag and metadata of object ``name``, or ``None`` if it does not exist."""
        client = await self.client()
        with self.errors("get", key):
            try:
                response = await client.get_object(Bucket=self.name, Key=name)
            except ClientError as exc:
                if is_not_found(exc):
                    return None
                raise
            async with response["Body"] as stream:
                body = await stream.read()
        return body, ObjectInfo(response["ETag"], dict(response.get("Metadata", {})))

    async def put(
        self,
        name: str,
        body: bytes,
        *,
        key: str,
        metadata: dict[str, str] | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> bool:
        """Write object ``name``; ``False`` if the ``If-Match``/``If-None-Match`` check failed."""
        client = await self.client()
        extra: dict[str, Any] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        with self.errors("put", key):
            try:
                await client.put_object(
                    Bucket=self.name, Key=name, Body=body, Metadata=metadata or {}, **extra
                )
            except ClientError as exc:
                if extra and _precondition_failed(exc):
                    return False
                raise
        return True

    async def delete(self, name: str, *, key: str, if_match: str | None = None) -> bool:
        """Delete object ``name``; ``False`` if an ``If-Match`` check failed or it was gone."""
        client = await self.client()
        with self.errors("delete", key):
            try:
                if if_match is None:
                    await client.delete_object(Bucket=self.name, Key=name)
                else:
                    await client.delete_object(Bucket=self.name, Key=name, IfMatch=if_match)
            except ClientError as exc:
                if if_match is not None and _precondition_failed(exc):
                    return False
                raise
        return True

    async def delete_many(self, names: Sequence[str], *, key: str | None) -> None:
        """Delete objects unconditionally, 1,000 per request; any per-object error raises."""
        if not names:
            return
        client = await self.client()
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            with self.errors("delete objects", key):
                response = await client.delete_objects(
                    Bucket=self.name,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            failed = response.get("Errors", [])
            if failed:
                first = failed[0]
                raise StorageError(
                    f"{self.backend} delete objects failed (bucket {self.name!r}, key {key!r}): "
                    f"{len(failed)} object(s) not deleted, first {first.get('Key')!r}: "
                    f"{first.get('Code')}: {first.get('Message')}"
                )

    async def pages(self, prefix: str, *, page_size: int = 1000) -> AsyncIterator[list[str]]:
        """Object names under ``prefix``, one list per ``ListObjectsV2`` page, all pages."""
        client = await self.client()
        paginator = client.get_paginator("list_objects_v2")
        with self.errors("list", prefix):
            async for page in paginator.paginate(
                Bucket=self.name, Prefix=prefix, PaginationConfig={"PageSize": page_size}
            ):
                yield [item["Key"] for item in page.get("Contents", []) if "Key" in item]

    async def head_many(self, names: Sequence[str], keys: Sequence[str]) -> list[ObjectInfo | None]:
        """``head`` for many objects at once, at most ``max_pool_connections`` in flight."""
        calls = [partial(self.head, name, key=key) for name, key in zip(names, keys, strict=True)]
        return await gather_bounded(calls, self.settings.max_pool_connections)
