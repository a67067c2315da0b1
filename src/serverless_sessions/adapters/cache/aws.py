"""What the S3 and DynamoDB adapters share: both reach AWS (or an emulator) through aiobotocore.

* :class:`AWSTimeouts` — botocore's per-attempt timeouts and total attempts ("standard" retry
  mode retries throttling, 5xx and connection errors with jittered backoff).
* :class:`AWSSettings` — region, endpoint, credentials and pool size, checked once; an adapter's
  settings add what names its bucket or table. Credentials left ``None`` come from botocore's
  standard chain (environment variables, shared files, container and instance roles); they never
  come from a URL, which ends up in logs.
* :func:`split_url` and :func:`parse_url_query` — the parts of ``s3://`` and ``dynamodb://`` URLs
  that are alike, read through the shared :func:`~.urls.parse_query` table mechanism.
* :class:`ClientHolder` — a client created on first use, the bucket or table checked before it is
  handed out, and closed by :meth:`ClientHolder.close` only if it was created here: an injected
  client belongs to whoever injected it.
* :func:`session` — one botocore session per process: it caches service models, so a further
  client takes milliseconds to create instead of ~100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import SplitResult, urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from serverless_sessions.adapters.cache.urls import (
    Parser,
    check_fields,
    non_empty,
    parse_query,
    positive_float,
    positive_int,
)
from serverless_sessions.errors import ClosedError, ConfigurationError, SessionError

__all__ = [
    "AWSSettings",
    "AWSTimeouts",
    "ClientHolder",
    "parse_url_query",
    "query_parsers",
    "session",
    "split_url",
]

_Client = TypeVar("_Client")

_REGION_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?")
"""What botocore accepts as a region name (it would refuse others only on first use)."""
_QUERY_NAMES = MappingProxyType({"connect": "connect_timeout", "read": "read_timeout"})
"""Timeout fields whose URL query argument has another name (the others keep theirs)."""


@dataclass(frozen=True, slots=True)
class AWSTimeouts:
    """Connect and read timeouts (seconds) per attempt, and botocore's total attempts per request.

    An unreachable endpoint therefore fails within about ``max_attempts`` times ``connect``.
    """

    PARSERS: ClassVar[Mapping[str, Parser]] = MappingProxyType(
        {"connect": positive_float, "read": positive_float, "max_attempts": positive_int}
    )
    """Every field's parser (a sub-class with more fields extends it)."""

    connect: float = 5.0
    read: float = 10.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        check_fields(self, self.PARSERS, what="AWS timeouts")


@dataclass(frozen=True, slots=True, kw_only=True)
class AWSSettings:
    """How to reach the service. Secrets are ``SecretStr``, masked in ``repr``."""

    WHAT: ClassVar[str] = "AWS"
    """The service's name in messages."""

    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    timeouts: AWSTimeouts = field(default_factory=AWSTimeouts)
    max_pool_connections: int = 32

    def __post_init__(self) -> None:
        what = self.WHAT
        if self.region is not None and not (
            isinstance(self.region, str) and _REGION_RE.fullmatch(self.region)
        ):
            raise ConfigurationError(f"{what} region {self.region!r} is not a region name")
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.username or parts.password:
                raise ConfigurationError(
                    f"{what} endpoint_url must not carry credentials; pass access_key_id and "
                    "secret_access_key or use the AWS environment variables"
                )
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"{what} endpoint_url must be an http(s) URL with a host, got {self.endpoint_url!r}"
                )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigurationError(
                f"{what} access_key_id and secret_access_key must be given together (or neither)"
            )
        if isinstance(self.max_pool_connections, bool) or not (
            isinstance(self.max_pool_connections, int) and self.max_pool_connections >= 1
        ):
            raise ConfigurationError(f"{what} max_pool_connections must be an integer >= 1")

    def public(self) -> dict[str, Any]:
        """JSON-safe facts for health and stats output: no credentials, only their source."""
        return {
            "region": self.region,
            "endpoint": self.endpoint_url,
            "credentials": "explicit" if self.access_key_id is not None else "default chain",
        }

    def client_arguments(self, **config: Any) -> dict[str, Any]:
        """Keyword arguments of ``create_client`` for these settings; ``config`` adds to AioConfig."""
        t = self.timeouts
        return {
            "region_name": self.region,
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id.get_secret_value() if self.access_key_id else None,
            "aws_secret_access_key": (
                self.secret_access_key.get_secret_value() if self.secret_access_key else None
            ),
            "config": AioConfig(
                connect_timeout=t.connect,
                read_timeout=t.read,
                retries={"max_attempts": t.max_attempts, "mode": "standard"},
                max_pool_connections=self.max_pool_connections,
                **config,
            ),
        }


def query_parsers(timeouts: type[AWSTimeouts], **extra: Parser) -> Mapping[str, Parser]:
    """A URL's query table: region, endpoint, every field of ``timeouts``, and ``extra``."""
    timeout_parsers = {_QUERY_NAMES.get(name, name): parse for name, parse in timeouts.PARSERS.items()}
    return MappingProxyType({"region": non_empty, "endpoint_url": non_empty, **timeout_parsers, **extra})


def split_url(url: str, scheme: str, *, what: str) -> SplitResult:
    """``url``'s parts; refused: another scheme, credentials (never repeated), a port, a fragment."""
    parts = urlsplit(url)
    if parts.scheme != scheme:
        raise ConfigurationError(f"{what} URL must start with {scheme}://, got scheme {parts.scheme!r}")
    if "@" in parts.netloc or ":" in parts.netloc:
        raise ConfigurationError(
            f"{what} URL must not carry credentials or a port; use the AWS environment variables "
            "or access_key_id/secret_access_key arguments, and ?endpoint_url=... for a server"
        )
    if parts.fragment:
        raise ConfigurationError(f"{what} URL must not have a #fragment")
    return parts


def parse_url_query(
    query: str, parsers: Mapping[str, Parser], *, what: str, timeouts: type[AWSTimeouts]
) -> dict[str, Any]:
    """Constructor arguments from a URL query read through ``parsers`` (:func:`query_parsers`).

    The timeout arguments are gathered into one ``timeouts`` instance.
    """
    values = parse_query(query, parsers, what=what)
    fields = {
        name: values.pop(_QUERY_NAMES.get(name, name))
        for name in timeouts.PARSERS
        if _QUERY_NAMES.get(name, name) in values
    }
    if fields:
        values["timeouts"] = timeouts(**fields)
    return values


class ClientHolder(ABC, Generic[_Client]):
    """One service client, created and checked on first use (see the module docstring).

    ``checked``: whether the bucket or table is known to be there already (for an injected client
    whose owner vouches for it).
    """

    def __init__(self, *, backend: str, client: _Client | None, checked: bool, resource: str) -> None:
        self.backend = backend
        self._resource = resource
        self._client = client
        self._checked = checked
        self._owned = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._closed = False

    @contextlib.contextmanager
    def errors(self, operation: str, key: str | None) -> Iterator[None]:
        """Translate botocore exceptions raised inside the block (:meth:`_translate`)."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, operation, key) from exc

    @abstractmethod
    def _translate(self, exc: BotoCoreError | ClientError, operation: str, key: str | None) -> SessionError:
        """The library error for ``exc``, naming backend, operation, resource and key."""

    @abstractmethod
    def _create(self) -> contextlib.AbstractAsyncContextManager[_Client]:
        """A new client (entered on first use, exited by :meth:`close`)."""

    @abstractmethod
    async def _check(self, client: _Client) -> None:
        """Make sure the bucket or table is there (called under the lock, inside ``errors``)."""

    async def client(self) -> _Client:
        """The client, created (and the bucket or table checked) on first use."""
        if self._client is not None and self._checked and not self._closed:
            return self._client
        async with self._lock:
            client = await self._connect()
            if not self._checked:
                await self._check(client)
                self._checked = True
        return client

    async def _connect(self) -> _Client:
        """The client, created if there is none yet; call it under the lock."""
        if self._closed:
            raise ClosedError(f"{self.backend} {self._resource}")
        if self._client is None:
            with self.errors("connect", None):
                self._client = await self._owned.enter_async_context(self._create())
        return self._client

    async def close(self) -> None:
        """Close the client if this object created it. Idempotent."""
        self._closed = True
        await self._owned.aclose()
        self._client = None


_shared_session: AioSession | None = None


def session() -> AioSession:
    """The process's botocore session, shared by every client the adapters create.

    Clients given explicit credentials never use the session's own credentials.
    """
    global _shared_session
    if _shared_session is None:
        _shared_session = AioSession()
    return _shared_session
