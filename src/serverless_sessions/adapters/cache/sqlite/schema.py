"""The SQLite schema: created on a new file, upgraded in place on an older one, refused if newer.

Version 1 (the first release) is the base; each later version is a list of statements that
upgrades the one before it. A new file is created at version 1 and upgraded like any other, so
every file — new or years old — reaches the current layout through the same statements.

Layout at :data:`SCHEMA_VERSION` (recorded in ``meta``):

* ``entries(namespace, key, value, version, expires_at, value_weight, log_length, log_weight,
  touched_at)`` keyed by ``(namespace, key)``; ``expires_at`` is absolute UNIX seconds or NULL.
  ``value_weight`` is NULL for a value written before weights were kept: it then counts as the
  value's length in bytes. ``log_length`` and ``log_weight`` describe the entry's whole log;
  ``touched_at`` is the caller's time of the latest append since the value was written.
* ``entries_by_expiry`` on ``(namespace, expires_at)`` so a purge reads only expired rows.
* ``index_members(namespace, index_name, key)``, primary key in that order (an index listing is
  a range read), plus ``index_members_by_key`` so a key's memberships are found without a scan.
* ``log_items(namespace, key, position, item)`` keyed in that order: the last items of a log are
  one range read of the key, whatever the log's length. Expiry lives on the entry only.
* Activity (version 3): ``entries.activity`` is the latest write's, ``recent`` that raised by
  an append's ``touched_at`` since; ``index_members.recent`` copies the entry's. The indexes
  ``entries_by_recent`` ``(namespace, recent, key)`` and ``index_members_by_recent``
  ``(namespace, index_name, recent, key)`` make a page of the newest keys a range read. Rows
  written before version 3 have NULL there until their next write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from serverless_sessions.adapters.cache.sqlite.connection import immediate
from serverless_sessions.errors import ConfigurationError

__all__ = ["SCHEMA_VERSION", "ensure_schema"]

_BASE: Sequence[str] = (
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
    "INSERT INTO meta (name, value) VALUES ('schema_version', '1')",
)

# Upgrades from the version of the key to the next. Adding a column is a change of the table's
# definition only: no row is rewritten, so opening a large old file stays quick.
_UPGRADES: Mapping[int, Sequence[str]] = MappingProxyType(
    {
        1: (
            "ALTER TABLE entries ADD COLUMN value_weight INTEGER",
            "ALTER TABLE entries ADD COLUMN log_length INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE entries ADD COLUMN log_weight INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE entries ADD COLUMN touched_at REAL",
            # A rowid table for the same reason as entries: messages can be several KB.
            """CREATE TABLE log_items (
                namespace TEXT NOT NULL,
                key TEXT NOT NULL,
                position INTEGER NOT NULL,
                item BLOB NOT NULL,
                PRIMARY KEY (namespace, key, position)
            )""",
        ),
        # The two indexes are built over the existing rows (all NULL there): about a second per
        # million sessions, once, under the upgrade's write lock.
        2: (
            "ALTER TABLE entries ADD COLUMN activity REAL",
            "ALTER TABLE entries ADD COLUMN recent REAL",
            "ALTER TABLE index_members ADD COLUMN recent REAL",
            "CREATE INDEX entries_by_recent ON entries (namespace, recent, key)",
            "CREATE INDEX index_members_by_recent ON index_members (namespace, index_name, recent, key)",
        ),
    }
)

SCHEMA_VERSION = max(_UPGRADES) + 1
"""The layout this code reads and writes; a file with a newer version is refused."""


def _stored_schema_version(conn: sqlite3.Connection) -> int | None:
    meta = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    if conn.execute(meta).fetchone():
        row = conn.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'schema_version'").fetchone()
        if row is not None:
            return int(row[0])
    return None


def _check_known(version: int, path: Path) -> None:
    """Refuse a version this code cannot upgrade from: a newer library's, or none of ours."""
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"sqlite database {path} has schema version {version}; this version of "
            f"serverless-sessions reads schema version {SCHEMA_VERSION} (upgrade the library)"
        )
    if version < 1:
        raise ConfigurationError(f"sqlite database {path} has an unknown schema version {version}")


def ensure_schema(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the file to :data:`SCHEMA_VERSION`: create it, upgrade it, or refuse a newer one.

    The first check is a plain read, so opening an up-to-date database takes no write lock. A
    new or older file is changed under ``BEGIN IMMEDIATE`` after reading its version again:
    another process may have created or upgraded it meanwhile, and exactly one of them does.
    The upgrade is one transaction, so a crash leaves the file at its old version, intact.
    """
    version = _stored_schema_version(conn)
    if version is not None:
        _check_known(version, path)
    if version == SCHEMA_VERSION:
        return version
    with immediate(conn):
        version = _stored_schema_version(conn)
        if version is None:
            for statement in _BASE:
                conn.execute(statement)
            version = 1
        _check_known(version, path)
        for step in range(version, SCHEMA_VERSION):
            for statement in _UPGRADES[step]:
                conn.execute(statement)
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
    return SCHEMA_VERSION
