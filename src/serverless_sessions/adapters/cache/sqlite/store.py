"""The synchronous half of the SQLite adapter: one function per call of the cache contract.

Nothing here is async and nothing here is thread-safe on its own: :mod:`.cache` confines one
:class:`SqliteStore` to a single worker thread, so each method runs alone on its connection and
the event loop never waits for the file.

Atomicity comes from the database, not from that thread: every method that writes runs in one
``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock *before* the current version is
read. Another process (or another adapter on the same file) therefore cannot slip a write between
the compare and the set; it waits up to ``busy_timeout`` for the lock. Reads are single
statements or one deferred transaction and, in WAL mode, never wait for a writer.

The tables are described in :mod:`.schema`. An entry's log is rows of ``log_items`` at positions
``0 .. log_length - 1``; the entry row holds the length and total weight, so an append inserts
its items and updates one row, and a read of the last items is one range read of the key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from serverless_sessions.adapters.cache.base import (
    Appended,
    Entry,
    LogSlice,
    TTLArg,
    check_same_indexes,
    check_weight,
)
from serverless_sessions.adapters.cache.sqlite.connection import (
    create_private_file,
    immediate,
    snapshot,
    use_wal,
)
from serverless_sessions.adapters.cache.sqlite.schema import ensure_schema
from serverless_sessions.adapters.cache.sqlite.statements import (
    APPENDED,
    DELETE_LOG,
    EXPIRED_KEYS,
    FIRST_PAGE,
    HEAD,
    INSERT_ITEM,
    INSERT_MEMBER,
    LIVE_ENTRY,
    LIVE_INDEX_MEMBERS,
    LOG_RANGE,
    NEXT_PAGE,
    RECENT_ENTRIES,
    RECENT_MEMBERS,
    RECENT_OF_MEMBERS,
    UNORDERED_ENTRY,
    UNORDERED_MEMBER,
    UPSERT,
)
from serverless_sessions.errors import SessionConflictError, SessionNotFoundError
from serverless_sessions.ttl import expiry_for, is_expired, now

T = TypeVar("T")

# The statements and version are also named here for the tests that predate their own modules.
__all__ = ["SqliteStore"]


@dataclass(frozen=True, slots=True)
class _Head:
    """What a write needs to know of the live entry it replaces or appends to."""

    version: int
    expires_at: float | None
    value_weight: int
    log_length: int
    log_weight: int


class SqliteStore:
    """One open database connection and the operations of the cache contract, synchronously.

    A key whose row has expired is treated exactly like a missing key: reads skip it, and a write
    to it first deletes the stale row, its log and its index memberships, so versions restart at
    1 and neither old indexes nor old messages leak into the new key's life.
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
        connections are waited out for up to ``timeout`` seconds. A file of an older schema is
        upgraded in place (:func:`.schema.ensure_schema`).
        """
        create_private_file(path, private_dir=private_dir)
        # timeout= sets the busy handler before any statement runs.
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, the module adds none.
        # check_same_thread=False: the adapter confines the connection to one worker thread.
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            journal_mode = use_wal(conn, timeout)
            # With WAL, NORMAL loses no integrity on power loss, only the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            version = ensure_schema(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, journal_mode=journal_mode, schema_version=version)

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL if this is the last one)."""
        self._conn.close()

    # -- helpers that run inside a write transaction -------------------------------------------

    def _current(self, ns: str, key: str, at: float) -> _Head | None:
        """The live head of ``key``; an expired row is removed first."""
        row = self._conn.execute(HEAD, (ns, key)).fetchone()
        if row is None:
            return None
        if is_expired(row[1], at):
            self._remove(ns, [key])
            return None
        return _Head(int(row[0]), row[1], int(row[2]), int(row[3]), int(row[4]))

    def _remove(self, ns: str, keys: Sequence[str]) -> None:
        params = [(ns, key) for key in keys]
        self._conn.executemany("DELETE FROM index_members WHERE namespace = ? AND key = ?", params)
        self._conn.executemany(DELETE_LOG, params)
        self._conn.executemany("DELETE FROM entries WHERE namespace = ? AND key = ?", params)

    def _write(
        self,
        ns: str,
        key: str,
        value: bytes,
        current: _Head | None,
        *,
        log: Sequence[bytes] | None,
        value_weight: int,
        log_weight: int,
        limit: int | None,
        expires_at: float | None,
        activity: float | None,
    ) -> int:
        """Write the value, replacing the log (``log`` given) or keeping it; the new version."""
        if log is None:
            length, log_weight = (current.log_length, current.log_weight) if current else (0, 0)
        else:
            length = len(log)
        check_weight(key, value_weight + log_weight, limit)
        # A new entry starts with an empty log even if an older library deleted a key (after this
        # file was upgraded) without knowing about its log rows.
        if log is not None or current is None:
            self._conn.execute(DELETE_LOG, (ns, key))
            self._insert_items(ns, key, 0, log or ())
        version = current.version + 1 if current else 1
        self._conn.execute(
            UPSERT,
            (ns, key, value, version, expires_at, value_weight, length, log_weight, activity, activity),
        )
        return version

    def _insert_items(self, ns: str, key: str, start: int, items: Sequence[bytes]) -> None:
        self._conn.executemany(
            INSERT_ITEM, [(ns, key, start + offset, item) for offset, item in enumerate(items)]
        )

    def _memberships(self, ns: str, key: str) -> frozenset[str]:
        rows = self._conn.execute(
            "SELECT index_name FROM index_members WHERE namespace = ? AND key = ?", (ns, key)
        ).fetchall()
        return frozenset(row[0] for row in rows)

    # -- reads ---------------------------------------------------------------------------------

    def get_entry(self, ns: str, key: str) -> Entry | None:
        """The live entry at ``key``, or ``None`` if it is missing or expired."""
        row = self._conn.execute(LIVE_ENTRY, (ns, key, now())).fetchone()
        return None if row is None else Entry(row[0], int(row[1]), row[2], row[3], int(row[5]))

    def get_entries(self, ns: str, keys: Sequence[str]) -> list[Entry | None]:
        """Live entries for ``keys`` in order, read in one snapshot (one deferred transaction)."""
        with snapshot(self._conn):
            return [self.get_entry(ns, key) for key in keys]

    def get_with_log(
        self, ns: str, key: str, last: int | None, before: int | None
    ) -> tuple[Entry, LogSlice] | None:
        """The live entry and its log items in ``[end - last, end)``, from one snapshot.

        ``end`` is ``before`` capped at the log's length. Reads the entry row and the asked
        positions only (a range of ``log_items``' primary key), however long the log is.
        """
        with snapshot(self._conn):
            row = self._conn.execute(LIVE_ENTRY, (ns, key, now())).fetchone()
            if row is None:
                return None
            value, version, expires_at, touched_at, length, weight = row
            end = length if before is None else max(0, min(before, length))
            start = 0 if last is None else max(0, end - last)
            items = [item for (item,) in self._conn.execute(LOG_RANGE, (ns, key, start, end))]
        entry = Entry(value, int(version), expires_at, touched_at, int(weight))
        return entry, LogSlice(items, start, int(length), int(weight))

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

    def recent(
        self, ns: str, index: str | None, limit: int, before: tuple[float, str] | None
    ) -> list[tuple[str, float]] | None:
        """Up to ``limit`` live keys, newest first below ``before``; ``None`` if some has no order.

        Reads from one snapshot: the check for unordered rows and the page agree.
        """
        at = now()
        bound, after = before if before is not None else (float("inf"), "")
        with snapshot(self._conn):
            if index is None:
                if self._conn.execute(UNORDERED_ENTRY, (ns, at)).fetchone() is not None:
                    return None
                rows = self._conn.execute(RECENT_ENTRIES, (ns, bound, after, at, limit))
            else:
                if self._conn.execute(UNORDERED_MEMBER, (ns, index, at)).fetchone() is not None:
                    return None
                rows = self._conn.execute(RECENT_MEMBERS, (ns, index, bound, after, at, limit))
            return [(key, float(recent)) for key, recent in rows]

    def scan_page(self, ns: str, after: str | None, batch_size: int) -> list[str]:
        """Up to ``batch_size`` live keys sorted after ``after`` (keyset pagination)."""
        if after is None:
            cursor = self._conn.execute(FIRST_PAGE, (ns, now(), batch_size))
        else:
            cursor = self._conn.execute(NEXT_PAGE, (ns, after, now(), batch_size))
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

    def together(self, writes: Sequence[Callable[[SqliteStore], T]]) -> list[T | Exception]:
        """Run ``writes`` in one transaction, each in its own savepoint; one outcome each.

        A write that raises has its changes undone and its exception as its outcome; the others
        commit together. If the transaction itself fails (the lock, the commit, an error that
        aborts it) this raises and none of them stands. One commit for many writes is what
        makes a batch cheap: the cost of a commit dwarfs that of a row.
        """
        outcomes: list[T | Exception] = []
        with immediate(self._conn):
            for write in writes:
                try:
                    outcomes.append(write(self))
                except Exception as exc:
                    if not self._conn.in_transaction:
                        raise  # the transaction is gone, and the group's earlier writes with it
                    outcomes.append(exc)
        return outcomes

    def set(self, ns: str, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value``; a live key keeps its indexes and log, and its version grows by one."""
        with immediate(self._conn):
            at = now()
            current = self._current(ns, key, at)
            self._write(
                ns,
                key,
                value,
                current,
                log=None,
                value_weight=len(value),
                log_weight=0,
                limit=None,
                expires_at=expiry_for(ttl, current=None, at=at),
                activity=None,
            )
            self._conn.execute(RECENT_OF_MEMBERS, (ns, key))

    def write_with_log(
        self,
        ns: str,
        key: str,
        value: bytes,
        *,
        log: Sequence[bytes] | None,
        value_weight: int,
        log_weight: int,
        limit: int | None,
        expected_version: int,
        ttl: TTLArg,
        indexes: Sequence[str],
        activity: float | None = None,
    ) -> Entry:
        """Write if the live version is ``expected_version``; else raise and write nothing.

        ``log`` replaces the stored log, ``None`` keeps it. ``indexes`` are recorded in the same
        transaction, unless the live key already belongs to some (a key's indexes are fixed by
        its first indexed write).
        """
        with immediate(self._conn):
            at = now()
            current = self._current(ns, key, at)
            actual = current.version if current else 0
            if actual != expected_version:
                raise SessionConflictError(key, expected_version, actual if current else None)
            memberships = self._memberships(ns, key) if current else frozenset()
            check_same_indexes(key, memberships, indexes, expected=expected_version, actual=actual)
            expires_at = expiry_for(ttl, current=current.expires_at if current else None, at=at)
            version = self._write(
                ns,
                key,
                value,
                current,
                log=log,
                value_weight=value_weight,
                log_weight=log_weight,
                limit=limit,
                expires_at=expires_at,
                activity=activity,
            )
            if indexes and not memberships:
                self._conn.executemany(
                    INSERT_MEMBER,
                    [(ns, index, key, activity) for index in indexes],
                )
            elif memberships:
                self._conn.execute(RECENT_OF_MEMBERS, (ns, key))
        return Entry(value, version, expires_at)

    def append(
        self,
        ns: str,
        key: str,
        items: Sequence[bytes],
        *,
        weight: int,
        limit: int | None,
        expected_length: int | None,
        ttl: TTLArg,
        touched_at: float,
    ) -> Appended:
        """Add ``items`` after the log's last position and bump the version; all or nothing."""
        with immediate(self._conn):
            at = now()
            current = self._current(ns, key, at)
            if current is None:
                raise SessionNotFoundError(key)
            if expected_length is not None and expected_length != current.log_length:
                raise SessionConflictError(
                    key,
                    current.version,
                    current.version,
                    message=f"{key!r}: expected {expected_length} log items, found {current.log_length}",
                )
            check_weight(key, current.value_weight + current.log_weight + weight, limit)
            self._insert_items(ns, key, current.log_length, items)
            version, length = current.version + 1, current.log_length + len(items)
            expires_at = expiry_for(ttl, current=current.expires_at, at=at)
            self._conn.execute(
                APPENDED,
                (version, expires_at, length, current.log_weight + weight, touched_at, touched_at, ns, key),
            )
            self._conn.execute(RECENT_OF_MEMBERS, (ns, key))
        return Appended(version, length, expires_at)

    def delete(self, ns: str, key: str, expected_version: int | None) -> bool:
        """Delete ``key``, its log and memberships; ``expected_version`` (if given) must match."""
        with immediate(self._conn):
            current = self._current(ns, key, now())
            actual = current.version if current else 0
            if expected_version is not None and actual != expected_version:
                raise SessionConflictError(key, expected_version, actual if current else None)
            if current is None:
                return False
            self._remove(ns, [key])
            return True

    def purge_expired(self, ns: str, limit: int | None) -> list[str]:
        """Delete up to ``limit`` expired keys of ``ns`` (oldest expiry first) and return them.

        Reads ``entries_by_expiry`` from the start of the namespace's expired range, so the cost
        is proportional to the rows purged (and their logs), however many live rows there are.
        """
        with immediate(self._conn):
            # SQLite reads a negative LIMIT as "no limit"; None means that, a negative int is 0.
            bound = -1 if limit is None else max(limit, 0)
            keys = [row[0] for row in self._conn.execute(EXPIRED_KEYS, (ns, now(), bound))]
            self._remove(ns, keys)
        return keys
