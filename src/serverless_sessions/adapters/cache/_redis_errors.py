"""Translation of redis-py exceptions into the library's error tree, and the retry policy.

The mapping, checked by a test against every exception class redis-py defines::

    redis ConnectionError (incl. BusyLoading, MasterNotFound, MaxConnections, auth errors),
    redis TimeoutError, ClusterDownError (incl. MasterDown), TryAgainError,
    SlotNotCoveredError, OSError, builtin TimeoutError      -> StorageUnavailableError
    every other RedisError / RedisClusterException          -> StorageError

Only the stable roots are named (redis-py >= 5.0.1 has them all), so newer subclasses are
mapped without a change here.

Only *transient* failures are retried (:class:`RetryPolicy`): a lost or refused connection, a
timeout, a server still loading its data, a cluster re-sharding or electing a master. A wrong
password, a refused TLS certificate or a script error is not, as a retry would fail the same way.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from redis import exceptions as rx

from serverless_sessions.errors import StorageError, StorageUnavailableError

__all__ = ["BACKEND_ERRORS", "RetryPolicy", "is_retryable", "translate"]

T = TypeVar("T")

BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    rx.RedisError,
    rx.RedisClusterException,
    OSError,
    TimeoutError,
)
"""Everything the adapter catches at its boundary: redis-py's two roots plus socket errors."""

_TRANSIENT: tuple[type[rx.RedisError], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.TryAgainError,
)

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *_TRANSIENT,
    rx.SlotNotCoveredError,
    OSError,
    TimeoutError,
)

_PERMANENT_CONNECTION_ERRORS = (rx.AuthenticationError, rx.AuthorizationError)


def is_retryable(exc: BaseException) -> bool:
    """Whether a retry may cure ``exc`` (refused credentials and TLS failures will not)."""
    return (
        isinstance(exc, _TRANSIENT)
        and not isinstance(exc, _PERMANENT_CONNECTION_ERRORS)
        and _tls_failure(exc) is None
    )


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc``, if the failure was a refused certificate or handshake."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def translate(
    exc: BaseException, *, backend: str, operation: str, key: str | None, where: str
) -> StorageError:
    """The library error for ``exc``; the caller raises it ``from exc``.

    ``where`` must be a secret-free address (``RedisSettings.describe``). The backend's own
    message is kept: redis-py never puts the password in it.
    """
    target = f" key {key!r}" if key is not None else ""
    reason = f"{type(exc).__name__}: {exc}"
    tls = _tls_failure(exc)
    if tls is not None:
        reason = (
            f"TLS handshake failed ({type(tls).__name__}: {tls}); "
            "check the CA file, the client certificate and key, and the hostname check"
        )
    message = f"{backend} {operation}{target} at {where} failed: {reason}"
    if isinstance(exc, _UNAVAILABLE):
        return StorageUnavailableError(message)
    return StorageError(message)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` retries of transient failures, exponential backoff with full jitter.

    The n-th retry waits a uniform random time in ``[0, min(cap, base * 2**n)]``: jitter keeps
    many clients that failed together from retrying together.
    """

    attempts: int
    base: float
    cap: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        return random.uniform(0.0, min(self.cap, self.base * 2**failures))

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        recover: Callable[[BaseException], Awaitable[None]],
    ) -> T:
        """``attempt()`` until it succeeds, fails permanently, or the retries are spent.

        ``recover(error)`` runs before each retry (to drop dead connections, ask Sentinel...).
        The last error propagates untranslated.
        """
        failures = 0
        while True:
            try:
                return await attempt()
            except _TRANSIENT as exc:
                if failures >= self.attempts or not is_retryable(exc):
                    raise
                failures += 1
                await recover(exc)
                await asyncio.sleep(self.delay(failures))
