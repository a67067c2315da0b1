"""Opening the SQLite file: a private new file, WAL mode despite other writers, write transactions.

Synchronous, like everything the adapter's worker thread runs (:mod:`.store`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from serverless_sessions.errors import ConfigurationError, StorageUnavailableError

__all__ = ["create_private_file", "immediate", "snapshot", "use_wal"]


def _check_directory(path: Path) -> None:
    """Refuse, in the user's words, a database path whose directory is not there."""
    directory = path.parent
    if not directory.exists():
        raise ConfigurationError(
            f"SQLite database directory {directory} does not exist (database file {path}); "
            "create it first or choose another path"
        )
    if not directory.is_dir():
        raise ConfigurationError(f"SQLite database path {path}: {directory} is not a directory")
    if path.is_dir():
        raise ConfigurationError(
            f"SQLite database path {path} is a directory; name a file, e.g. {path / 'sessions.db'}"
        )


def create_private_file(path: Path, *, private_dir: bool) -> None:
    """Create the database file owner-only if missing, and its directory if it is ours.

    SQLite creates files 0644 and gives the -wal/-shm files the database's mode; sessions may
    hold tokens, so a new database starts owner-only. An existing file is left as it is. Only
    the default location gets missing directories created (the last one 0700): for a path the
    caller chose, a missing directory is more likely a typo than a wish.
    """
    try:
        if private_dir:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            _check_directory(path)
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except PermissionError as exc:
        raise ConfigurationError(
            f"SQLite database file {path} cannot be created: permission denied ({exc.strerror})"
        ) from exc
    except OSError as exc:
        raise StorageUnavailableError(f"SQLite database file {path} cannot be created: {exc}") from exc


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def use_wal(conn: sqlite3.Connection, timeout: float) -> str:
    """Put the file in WAL mode, waiting up to ``timeout`` for other connections; the mode set.

    The switch reads the file header (a read lock), then takes the write lock to rewrite it.
    SQLite never calls the busy handler for a connection that holds a read lock and wants the
    write lock (that could deadlock): while another connection writes to a file not yet in WAL
    mode, as when two processes create the same database at once, the switch fails at once
    with SQLITE_BUSY whatever the timeout. So it is retried here, with backoff, until
    ``timeout``. On a file already in WAL mode the pragma changes nothing and takes no lock.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # on the adapter's worker thread, never the event loop
        pause = min(pause * 2, 0.05)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: lock first, then read and write; roll back on any exception.

    Inside a transaction already open (a group of writes, :meth:`.store.SqliteStore.together`)
    it is a savepoint instead: a write that fails undoes only its own changes.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT one_write")
        try:
            yield
            conn.execute("RELEASE one_write")
        except BaseException:
            if conn.in_transaction:  # some errors end the whole transaction by themselves
                conn.execute("ROLLBACK TO one_write")
                conn.execute("RELEASE one_write")
            raise
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: its statements see the same state of the file, and no writer waits."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
