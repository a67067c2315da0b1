"""Translation of ``sqlite3`` exceptions into the library's errors, at the adapter's boundary.

Busy/locked/unopenable → :class:`~serverless_sessions.errors.StorageUnavailableError` (try again
later); anything else (not a database, disk full, corruption) →
:class:`~serverless_sessions.errors.StorageError`. The message names the operation, the key and
the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from serverless_sessions.errors import StorageError, StorageUnavailableError

__all__ = ["about", "translate_error"]

# Primary result codes meaning "try again later": another connection holds a lock, or the file
# (or its directory) cannot be opened right now.
_UNAVAILABLE_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL}
)


def about(target: str | None) -> str:
    """`` 'key'`` for a message about ``target``, nothing when the call has no single one."""
    return "" if target is None else f" {target!r}"


def translate_error(exc: sqlite3.Error, *, operation: str, target: str | None, path: Path) -> StorageError:
    """The library error for a ``sqlite3`` exception, with context; the caller chains it."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    message = f"sqlite {operation}{about(target)} failed on {path}: {name}: {exc}"
    # Extended result codes carry the primary code in their low byte (SQLITE_BUSY_SNAPSHOT...).
    if isinstance(code, int) and code & 0xFF in _UNAVAILABLE_CODES:
        return StorageUnavailableError(message)
    return StorageError(message)
