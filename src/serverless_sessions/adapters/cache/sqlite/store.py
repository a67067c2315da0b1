"""The synchronous half of the SQLite adapter: schema, connection set-up and one function per call.

Nothing here is async and nothing here is thread-safe on its own: :mod:`.sqlite` confines one
:class:`SqliteStore` to a single worker thread, so each method runs alone on its connection and
the event loop never waits for the file.

Atomicity comes from the database, not from that thread: every method that writes runs in one
``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock *before* the current version is
read. Another process (or another adapter on the same file) therefore cannot slip a write between
the compare and the set; it waits up to ``busy_timeout`` for the lock. Reads are single
statements (or one deferred transaction) and, in WAL mode, never wait for a writer.

Schema (version :data:`SCHEMA_VERSION`, recorded in ``meta``):

* ``entries(namespace, key, value, version, expires_at)`` keyed by ``(namespace, key)``;
  ``expires_at`` is absolute UNIX seconds or NULL. Rows past their expiry stay until a write to
  the key or :meth:`SqliteStore.purge_expired` removes them; every read filters them out.
* ``entries_by_expiry`` on ``(namespace, expires_at)`` so a purge reads only expired rows.
* ``index_members(namespace, index_name, key)``, primary key in that order (an index listing is
  a range read), plus ``index_members_by_key`` so a key's memberships are found without a scan.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from serverless_sessions.adapters.cache.base import Entry, TTLArg, check_same_indexes
from serverless_sessions.errors import (
    ConfigurationError,
    SessionConflictError,
    StorageUnavailableError,
)
from serverless_sessions.ttl import expiry_for, is_expired, now

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

SCHEMA_VERSION = 1
"""Bumped on every incompatible schema change; a file with a newer version is refused."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # A rowid table: values are session payloads of several KB, which WITHOUT ROWID stores badly.
    """CREATE TABLE IF NOT EXISTS entries (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        version INTEGER NOT NULL,
        expires_at REAL,
        PRIMARY KEY (namespace, key)
    )""",
    "CREATE INDEX IF NOT EXISTS entries_by_expiry ON entries (namespace, expires_at)",
    """CREATE TABLE IF NOT EXISTS index_members (
        namespace TEXT NOT NULL,
        index_name TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (namespace, index_name, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS index_members_by_key ON index_members (namespace, key)",
)

# The statements whose query plans matter; tests check them with EXPLAIN QUERY PLAN.
LIVE_INDEX_MEMBERS = """
    SELECT m.key FROM index_members AS m
    JOIN entries AS e ON e.namespace = m.namespace AND e.key = m.key
    WHERE m.namespace = ? AND m.index_name = ? AND (e.expires_at IS NULL OR e.expires_at > ?)
    ORDER BY m.key"""
EXPIRED_KEYS = """
    SELECT key FROM entries WHERE namespace = ? AND expires_at <= ?
    ORDER BY expires_at LIMIT ?"""
_FIRST_PAGE = """
    SELECT key FROM entries WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)
    ORDER BY key LIMIT ?"""
_NEXT_PAGE = """
    SELECT key FROM entries WHERE namespace = ? AND key > ?
    AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?"""
_LIVE_ENTRY = """
    SELECT value, version, expires_at FROM entries
    WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)"""
_UPSERT = """
    INSERT INTO entries (namespace, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (namespace, key) DO UPDATE
    SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at"""


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


def _create_private_file(path: Path, *, private_dir: bool) -> None:
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


def _use_wal(conn: sqlite3.Connection, timeout: float) -> str:
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
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: lock first, then read and write; roll back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _stored_schema_version(conn: sqlite3.Connection) -> int | None:
    meta = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    if conn.execute(meta).fetchone():
        row = conn.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'schema_version'").fetchone()
        if row is not None:
            return int(row[0])
    return None


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> int:
    """Create the schema on a new file; refuse a file written by a newer, unknown schema.

    The first check is a plain read so that opening an existing database takes no write lock;
    only a new file pays for ``BEGIN IMMEDIATE`` (and re-checks, as another process may have
    created the schema meanwhile).
    """
    version = _stored_schema_version(conn)
    if version is None:
        with _immediate(conn):
            version = _stored_schema_version(conn)
            if version is None:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                version = SCHEMA_VERSION
    if version != SCHEMA_VERSION:
        raise ConfigurationError(
            f"sqlite database {path} has schema version {version}; this version of "
            f"serverless-sessions reads schema version {SCHEMA_VERSION} (upgrade the library)"
        )
    return version


class SqliteStore:
    """One open database connection and the operations of the cache contract, synchronously.

    A key whose row has expired is treated exactly like a missing key: reads skip it, and a write
    to it first deletes the stale row and its index memberships, so versions restart at 1 and old
    indexes do not leak into the new key's life.
    """

    def __init__(self, conn: sqlite3.Connection, *, journal_mode: str, schema_version: int) -> None:
        self._conn = conn
        self.journal_mode = journal_mode
        self.schema_version = schema_version

    @classmethod
    def open(cls, path: Path, *, timeout: float, private_dir: bool) -> SqliteStore:
        """Open (creating if needed) the database at ``path`` in WAL mode with its schema.

        ``private_dir`` creates missing parent directories, the last one mode 0700 — used for the
        default location, never for a path the caller chose: there a missing directory is a
        :class:`~serverless_sessions.errors.ConfigurationError` naming it. Locks held by other
        connections are waited out for up to ``timeout`` seconds.
        """
        _create_private_file(path, private_dir=private_dir)
        # timeout= sets the busy handler before any statement runs.
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, the module adds none.
        # check_same_thread=False: the adapter confines the connection to one worker thread.
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            journal_mode = _use_wal(conn, timeout)
            # With WAL, NORMAL loses no integrity on power loss, only the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            version = _ensure_schema(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, journal_mode=journal_mode, schema_version=version)

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL if this is the last one)."""
        self._conn.close()

    # -- helpers that run inside a write transaction -------------------------------------------

    def _current(self, ns: str, key: str, at: float) -> tuple[int, float | None] | None:
        """The live ``(version, expires_at)`` of ``key``; an expired row is removed first."""
        row = self._conn.execute(
            "SELECT version, expires_at FROM entries WHERE namespace = ? AND key = ?", (ns, key)
        ).fetchone()
        if row is None:
            return None
        if is_expired(row[1], at):
            self._remove(ns, [key])
            return None
        return int(row[0]), row[1]

    def _remove(self, ns: str, keys: Sequence[str]) -> None:
        params = [(ns, key) for key in keys]
        self._conn.executemany("DELETE FROM index_members WHERE namespace = ? AND key = ?", params)
        self._conn.executemany("DELETE FROM entries WHERE namespace = ? AND key = ?", params)

    # -- reads ---------------------------------------------------------------------------------

    def get_entry(self, ns: str, key: str) -> Entry | None:
        """The live entry at ``key``, or ``None`` if it is missing or expired."""
        row = self._conn.execute(_LIVE_ENTRY, (ns, key, now())).fetchone()
        return None if row is None else Entry(row[0], int(row[1]), row[2])

    def get_entries(self, ns: str, keys: Sequence[str]) -> list[Entry | None]:
        """Live entries for ``keys`` in order, read in one snapshot (one deferred transaction)."""
        self._conn.execute("BEGIN")
        try:
            return [self.get_entry(ns, key) for key in keys]
        finally:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def exists(self, ns: str, key: str) -> bool:
        """Whether ``key`` holds a live value."""
        return (
            self._conn.execute(
                "SELECT 1 FROM entries WHERE namespace = ? AND key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (ns, key, now()),
            ).fetchone()
            is not None
        )

    def index_members(self, ns: str, index: str) -> list[str]:
        """Live keys listed in ``index``, sorted; a range read of that index, then key lookups."""
        return [row[0] for row in self._conn.execute(LIVE_INDEX_MEMBERS, (ns, index, now()))]

    def scan_page(self, ns: str, after: str | None, batch_size: int) -> list[str]:
        """Up to ``batch_size`` live keys sorted after ``after`` (keyset pagination)."""
        if after is None:
            cursor = self._conn.execute(_FIRST_PAGE, (ns, now(), batch_size))
        else:
            cursor = self._conn.execute(_NEXT_PAGE, (ns, after, now(), batch_size))
        return [row[0] for row in cursor]

    def ping(self) -> None:
        """Read from the file (not just the connection) so a broken database is noticed."""
        self._conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()

    def stats(self) -> dict[str, Any]:
        """Schema version, journal mode and the number of stored rows (expired ones included)."""
        (rows,) = self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()
        return {
            "schema_version": self.schema_version,
            "journal_mode": self.journal_mode,
            "rows": int(rows),
        }

    # -- writes (each one BEGIN IMMEDIATE transaction) -----------------------------------------

    def set(self, ns: str, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value``; a live key keeps its indexes and its version grows by one."""
        with _immediate(self._conn):
            at = now()
            current = self._current(ns, key, at)
            version = current[0] + 1 if current else 1
            expires_at = expiry_for(ttl, current=None, at=at)
            self._conn.execute(_UPSERT, (ns, key, value, version, expires_at))

    def compare_and_set(
        self,
        ns: str,
        key: str,
        value: bytes,
        expected_version: int,
        ttl: TTLArg,
        indexes: Sequence[str],
    ) -> Entry:
        """Write if the live version is ``expected_version``; else raise and write nothing.

        ``indexes`` are recorded in the same transaction, unless the live key already belongs to
        some (a key's indexes are fixed by its first indexed write).
        """
        with _immediate(self._conn):
            at = now()
            current = self._current(ns, key, at)
            actual = current[0] if current else 0
            if actual != expected_version:
                raise SessionConflictError(key, expected_version, actual if current else None)
            memberships = self._memberships(ns, key) if current else frozenset()
            check_same_indexes(key, memberships, indexes, expected=expected_version, actual=actual)
            expires_at = expiry_for(ttl, current=current[1] if current else None, at=at)
            self._conn.execute(_UPSERT, (ns, key, value, actual + 1, expires_at))
            if indexes and not memberships:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO index_members (namespace, index_name, key) VALUES (?, ?, ?)",
                    [(ns, index, key) for index in indexes],
                )
        return Entry(value, actual + 1, expires_at)

    def _memberships(self, ns: str, key: str) -> frozenset[str]:
        rows = self._conn.execute(
            "SELECT index_name FROM index_members WHERE namespace = ? AND key = ?", (ns, key)
        ).fetchall()
        return frozenset(row[0] for row in rows)

    def delete(self, ns: str, key: str, expected_version: int | None) -> bool:
        """Delete ``key`` and its memberships; ``expected_version`` (if given) must match."""
        with _immediate(self._conn):
            current = self._current(ns, key, now())
            actual = current[0] if current else 0
            if expected_version is not None and actual != expected_version:
                raise SessionConflictError(key, expected_version, actual if current else None)
            if current is None:
                return False
            self._remove(ns, [key])
            return True

    def purge_expired(self, ns: str, limit: int | None) -> list[str]:
        """Delete up to ``limit`` expired keys of ``ns`` (oldest expiry first) and return them.

        Reads ``entries_by_expiry`` from the start of the namespace's expired range, so the cost
        is proportional to the rows purged, however many live rows there are.
        """
        with _immediate(self._conn):
            # SQLite reads a negative LIMIT as "no limit"; None means that, a negative int is 0.
            bound = -1 if limit is None else max(limit, 0)
            keys = [row[0] for row in self._conn.execute(EXPIRED_KEYS, (ns, now(), bound))]
            self._remove(ns, keys)
        return keys
