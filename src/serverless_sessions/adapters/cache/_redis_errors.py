"""Translation of redis-py exceptions into the library's error tree, and what may be retried.

The mapping, checked by a test against every class redis-py defines::

    redis ConnectionError (incl. BusyLoading, MasterNotFound, MaxConnections, auth errors),
    redis TimeoutError, ClusterDownError (incl. MasterDown), TryAgainError,
    SlotNotCoveredError, OSError, builtin TimeoutError      -> StorageUnavailableError
    every other RedisError / RedisClusterException / redis exception -> StorageError

Only *transient* failures are retried: a lost or refused connection, a timeout, a server
still loading its data, a cluster re-sharding or electing a master. A wrong password or a
script error is not, as a retry would fail the same way.
"""

from __future__ import annotations

import ssl

from redis import exceptions as rx

from serverless_sessions.errors import StorageError, StorageUnavailableError

__all__ = ["BACKEND_ERRORS", "TRANSIENT_ERRORS", "is_retryable", "translate"]

BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    rx.RedisError,
    rx.RedisClusterException,
    rx.ChildDeadlockedError,
    rx.IncorrectPolicyType,
    OSError,
    TimeoutError,
)
"""Everything the adapter catches at its boundary: all of redis-py's roots plus socket errors."""

TRANSIENT_ERRORS: tuple[type[rx.RedisError], ...] = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.TryAgainError,
)
"""The redis-py errors a retry may cure (subject to :func:`is_retryable`)."""

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    rx.SlotNotCoveredError,
    OSError,
    TimeoutError,
)

_PERMANENT_CONNECTION_ERRORS: tuple[type[rx.RedisError], ...] = (
    rx.AuthenticationError,
    rx.AuthorizationError,
    rx.ExternalAuthProviderError,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether a retry may cure ``exc`` (refused credentials and TLS failures will not)."""
    return (
        isinstance(exc, TRANSIENT_ERRORS)
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
