"""Translation of asyncpg exceptions into the library's error tree (imports the driver).

The mapping, checked by a test against every exception class asyncpg defines::

    SQLSTATE class 22 (data exception: an argument the driver cannot encode, such as a lone
    surrogate, or one the server refuses, such as NUL in text), 54000 (a key too long for an
    index)                                                        -> InvalidSessionError
    SQLSTATE class 08 (connection), 28 (authorization), 3D (no such database), 53 (resources,
    e.g. too many connections), 57 (shutdown, cancelled by a timeout), 55P03 (lock not
    available); OSError (refused, reset, TLS); TimeoutError      -> StorageUnavailableError
    every other PostgresError, InterfaceError, InternalClientError -> StorageError

Input errors are refused by the server before anything is written: every write is one
statement, so nothing is half-done. Messages name the operation, the key and the address from
:meth:`~.config.PostgresSettings.describe`, never the password; asyncpg's own messages never
carry it either (it is sent in the startup packet only).

:data:`STALE_CONNECTION` are the failures of a connection the pool handed out although the
server had dropped it (a restart, an idle timeout, a frozen serverless instance): the call is
tried once more on a fresh connection.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
from asyncpg import exceptions as pgx

from serverless_sessions.errors import (
    InvalidSessionError,
    SessionError,
    StorageError,
    StorageUnavailableError,
)

__all__ = ["BACKEND_ERRORS", "STALE_CONNECTION", "translate"]

BACKEND_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    pgx.InternalClientError,
    OSError,
    TimeoutError,
)
"""Everything the adapter catches at its boundary: asyncpg's three roots, sockets, timeouts."""

STALE_CONNECTION: tuple[type[BaseException], ...] = (
    # A connection the server ended while it sat idle in the pool may come back in a broken
    # protocol state ("another operation is in progress"); a cached statement may be outdated.
    pgx.InternalClientError,
    pgx.ConnectionDoesNotExistError,
    pgx.ConnectionFailureError,
    pgx.AdminShutdownError,
    pgx.CrashShutdownError,
    ConnectionResetError,
    BrokenPipeError,
)

_UNAVAILABLE_CLASSES = ("08", "28", "3D", "53", "57")
_UNAVAILABLE_STATES = frozenset({"55P03"})


def translate(
    exc: BaseException, *, operation: str, key: str | None, where: str, timeout: float
) -> SessionError:
    """The library error for ``exc``; the caller raises it ``from exc``."""
    target = f" key {key!r}" if key is not None else ""
    prefix = f"postgres {operation}{target} at {where}"
    state = str(getattr(exc, "sqlstate", "") or "")
    if state[:2] == "22" or state == "54000":
        return InvalidSessionError(f"{prefix} refused the input: {exc}")
    if isinstance(exc, TimeoutError):
        return StorageUnavailableError(f"{prefix} timed out after {timeout:g}s")
    message = f"{prefix} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) or state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES:
        return StorageUnavailableError(message)
    return StorageError(message)
