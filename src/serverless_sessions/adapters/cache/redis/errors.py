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
The whole call, retries and waits included, ends after one time budget.

A client and a server that disagree on TLS fail in ways that do not name the cause: a TLS hello
sent to a plain-text server gets no answer (a connect timeout) or garbage ("wrong version
number"); a plain command sent to a TLS-only server makes it drop the connection. When such a
failure comes before the server ever answered, the message suggests the other scheme.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from redis import exceptions as rx

from serverless_sessions.backoff import Backoff
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


# OpenSSL's reasons for a peer whose first bytes are not TLS at all.
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"}
)
_PLAIN_TEXT_HINT = "is the server plain-text? then use redis:// instead of rediss://"
_TLS_ONLY_HINT = "does the server accept only TLS? then use rediss:// instead of redis://"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, outermost first."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in found:
        found.append(seen)
        hidden = seen.__suppress_context__  # ``raise ... from None``
        seen = seen.__cause__ if seen.__cause__ is not None or hidden else seen.__context__
    return found


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc``, if the failure was a refused certificate or handshake."""
    return next((seen for seen in _chain(exc) if isinstance(seen, ssl.SSLError)), None)


def _tls_reason(tls: ssl.SSLError) -> str:
    reason = f"TLS handshake failed ({type(tls).__name__}: {tls})"
    if tls.reason in _NOT_TLS_REASONS:
        return f"{reason}; the server did not answer in TLS: {_PLAIN_TEXT_HINT}"
    return f"{reason}; check the CA file, the client certificate and key, and the hostname check"


def _mismatch_hint(exc: BaseException, *, tls: bool) -> str:
    """A hint naming the other scheme, for failures a TLS mismatch causes ("" if none fits)."""
    chain = _chain(exc)
    if tls and any(isinstance(seen, rx.TimeoutError | TimeoutError) for seen in chain):
        return f"; no TLS handshake completed: {_PLAIN_TEXT_HINT}"
    dropped = any(
        isinstance(seen, ConnectionResetError | BrokenPipeError | EOFError)
        or (isinstance(seen, rx.ConnectionError) and "closed by server" in str(seen))
        for seen in chain
    )
    if not tls and dropped:
        return f"; the server dropped the connection at once: {_TLS_ONLY_HINT}"
    return ""


def translate(
    exc: BaseException,
    *,
    backend: str,
    operation: str,
    key: str | None,
    where: str,
    tls: bool = False,
    first_contact: bool = False,
) -> StorageError:
    """The library error for ``exc``; the caller raises it ``from exc``.

    ``where`` must be a secret-free address (``RedisSettings.describe``). The backend's own
    message is kept: redis-py never puts the password in it. ``first_contact`` says the server
    has never answered this client (whose connections use TLS if ``tls``): a timeout or a
    dropped connection then probably means a TLS mismatch, and the message says so.
    """
    target = f" key {key!r}" if key is not None else ""
    reason = f"{type(exc).__name__}: {exc}"
    failed_tls = _tls_failure(exc)
    if failed_tls is not None:
        reason = _tls_reason(failed_tls)
    elif first_contact:
        reason += _mismatch_hint(exc, tls=tls)
    message = f"{backend} {operation}{target} at {where} failed: {reason}"
    if isinstance(exc, _UNAVAILABLE):
        return StorageUnavailableError(message)
    return StorageError(message)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` retries of transient failures, waiting by ``backoff`` (full jitter)."""

    attempts: int
    backoff: Backoff

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        recover: Callable[[BaseException], Awaitable[None]],
        *,
        budget: float,
        self_bounded: bool = False,
    ) -> T:
        """``attempt()`` until it succeeds, fails permanently, or the retries or time are spent.

        ``recover(error)`` runs before each retry (to drop dead connections, ask Sentinel...).
        The last error propagates untranslated. Attempts, recoveries and backoff all share
        ``budget`` seconds: when it runs out, the attempt in flight is cancelled and a redis
        ``TimeoutError`` naming the budget is raised from the last failure.

        ``self_bounded``: the first attempt ends by itself within ``budget`` (an auto-pipelined
        command's batch carries its deadline), so it runs without a timer of its own: the
        common call, which succeeds at once, then sets no timer at all.
        """
        loop = asyncio.get_running_loop()
        ends = loop.time() + budget
        started = failures = 0
        last: BaseException | None = None
        if self_bounded:
            started = 1
            try:
                return await attempt()
            except _TRANSIENT as exc:
                if self._gives_up(failures, exc):
                    raise
                if loop.time() >= ends:
                    raise self._spent(budget, started, exc) from exc
                last, failures = exc, 1
        deadline = asyncio.timeout_at(ends)  # made only when needed: it costs a lone call ~1 %
        try:
            async with deadline:
                while True:
                    if last is not None:
                        await recover(last)
                        await self.backoff.wait(failures)
                    try:
                        started += 1
                        return await attempt()
                    except _TRANSIENT as exc:
                        if self._gives_up(failures, exc):
                            raise
                        last = exc
                        failures += 1
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise self._spent(budget, started, last) from (last or exc)

    def _gives_up(self, failures: int, exc: BaseException) -> bool:
        """Whether ``exc``, after ``failures`` failed attempts before it, ends the call."""
        return failures >= self.attempts or not is_retryable(exc)

    @staticmethod
    def _spent(budget: float, started: int, last: BaseException | None) -> rx.TimeoutError:
        after = "" if last is None else f"; last error: {type(last).__name__}: {last}"
        return rx.TimeoutError(
            f"no answer within {budget:g}s ({started} attempt(s), retries included){after}"
        )
