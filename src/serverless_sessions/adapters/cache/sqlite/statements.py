"""The SQL the SQLite adapter's store runs, in one place (the tables are in :mod:`.schema`).

Every statement takes ``namespace`` first and reads or writes through a primary key or index
prefix; none scans a table.
"""

from __future__ import annotations

__all__ = [
    "APPENDED",
    "DELETE_LOG",
    "EXPIRED_KEYS",
    "FIRST_PAGE",
    "HEAD",
    "INSERT_ITEM",
    "LIVE_ENTRY",
    "LIVE_INDEX_MEMBERS",
    "LOG_RANGE",
    "NEXT_PAGE",
    "UPSERT",
]

# The statements whose query plans matter; tests check them with EXPLAIN QUERY PLAN.
LIVE_INDEX_MEMBERS = """
    SELECT m.key FROM index_members AS m
    JOIN entries AS e ON e.namespace = m.namespace AND e.key = m.key
    WHERE m.namespace = ? AND m.index_name = ? AND (e.expires_at IS NULL OR e.expires_at > ?)
    ORDER BY m.key"""
EXPIRED_KEYS = """
    SELECT key FROM entries WHERE namespace = ? AND expires_at <= ?
    ORDER BY expires_at LIMIT ?"""
LOG_RANGE = """
    SELECT item FROM log_items WHERE namespace = ? AND key = ? AND position >= ? AND position < ?
    ORDER BY position"""
FIRST_PAGE = """
    SELECT key FROM entries WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)
    ORDER BY key LIMIT ?"""
NEXT_PAGE = """
    SELECT key FROM entries WHERE namespace = ? AND key > ?
    AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?"""
LIVE_ENTRY = """
    SELECT value, version, expires_at, touched_at, log_length, log_weight FROM entries
    WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)"""
# A NULL value_weight marks a value written before weights were kept: it weighs its length.
HEAD = """
    SELECT version, expires_at, COALESCE(value_weight, length(value)), log_length, log_weight
    FROM entries WHERE namespace = ? AND key = ?"""
UPSERT = """
    INSERT INTO entries
        (namespace, key, value, version, expires_at, value_weight, log_length, log_weight)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (namespace, key) DO UPDATE
    SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at,
        value_weight = excluded.value_weight, log_length = excluded.log_length,
        log_weight = excluded.log_weight, touched_at = NULL"""
APPENDED = """
    UPDATE entries SET version = ?, expires_at = ?, log_length = ?, log_weight = ?, touched_at = ?
    WHERE namespace = ? AND key = ?"""
INSERT_ITEM = "INSERT INTO log_items (namespace, key, position, item) VALUES (?, ?, ?, ?)"
DELETE_LOG = "DELETE FROM log_items WHERE namespace = ? AND key = ?"
