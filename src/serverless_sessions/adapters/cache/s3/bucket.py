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

import contextlib
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from serverless_sessions.adapters.cache.aws import AWSSettings, AWSTimeouts, ClientHolder, session
from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.errors import (
    ConfigurationError,
    SessionError,
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


S3Timeouts = AWSTimeouts
"""The S3 adapter's timeouts: the ones every AWS adapter has."""


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Settings(AWSSettings):
    """Which bucket, and how to reach it: :class:`~serverless_sessions.adapters.cache.aws.AWSSettings`."""

    WHAT: ClassVar[str] = "S3"

    bucket: str
    addressing_style: Literal["auto", "path", "virtual"] = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.bucket, str) or not _BUCKET_RE.fullmatch(self.bucket):
            raise ConfigurationError(
                f"S3 bucket {self.bucket!r} is not a valid bucket name "
                "(3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit)"
            )
        AWSSettings.__post_init__(self)
        if self.addressing_style not in ("auto", "path", "virtual"):
            raise ConfigurationError(
                f"S3 addressing_style must be auto, path or virtual, got {self.addressing_style!r}"
            )

    def public(self) -> dict[str, Any]:
        """JSON-safe facts for health and stats output: no credentials, only their source."""
        return {"bucket": self.bucket, **AWSSettings.public(self)}


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


class S3Bucket(ClientHolder["S3Client"]):
    """Object operations on one bucket, with the error boundary applied to each of them."""

    def __init__(self, settings: S3Settings, *, backend: str, client: S3Client | None = None) -> None:
        super().__init__(
            backend=backend, client=client, checked=client is not None, resource=f"bucket {settings.bucket!r}"
        )
        self.settings = settings

    @property
    def name(self) -> str:
        """The bucket name."""
        return self.settings.bucket

    def _translate(self, exc: BotoCoreError | ClientError, operation: str, key: str | None) -> SessionError:
        return translate_error(exc, backend=self.backend, operation=operation, bucket=self.name, key=key)

    def _create(self) -> contextlib.AbstractAsyncContextManager[S3Client]:
        config = {"s3": {"addressing_style": self.settings.addressing_style}}
        return session().create_client("s3", **self.settings.client_arguments(**config))

    async def _check(self, client: S3Client) -> None:
        with self.errors("check bucket", None):
            await client.head_bucket(Bucket=self.name)

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
