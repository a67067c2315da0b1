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
    "INSERT_MEMBER",
    "LIVE_ENTRY",
    "LIVE_INDEX_MEMBERS",
    "LOG_RANGE",
    "NEXT_PAGE",
    "RECENT_ENTRIES",
    "RECENT_MEMBERS",
    "RECENT_OF_MEMBERS",
    "UNORDERED_ENTRY",
    "UNORDERED_MEMBER",
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
# Newest first below a cursor (recent, key): a backwards range read of entries_by_recent or
# index_members_by_recent, then one primary-key lookup per row to skip expired ones. A NULL
# recent sorts below every number, so the range never reaches the rows without one.
RECENT_ENTRIES = """
    SELECT e.key, e.recent FROM entries AS e
    WHERE e.namespace = ? AND e.recent IS NOT NULL AND (e.recent, e.key) < (?, ?)
    AND (e.expires_at IS NULL OR e.expires_at > ?)
    ORDER BY e.recent DESC, e.key DESC LIMIT ?"""
RECENT_MEMBERS = """
    SELECT m.key, m.recent FROM index_members AS m
    JOIN entries AS e ON e.namespace = m.namespace AND e.key = m.key
    WHERE m.namespace = ? AND m.index_name = ? AND m.recent IS NOT NULL
    AND (m.recent, m.key) < (?, ?)
    AND (e.expires_at IS NULL OR e.expires_at > ?)
    ORDER BY m.recent DESC, m.key DESC LIMIT ?"""
# Whether a live row of the scope has no activity: the start of the same indexes.
UNORDERED_ENTRY = """
    SELECT 1 FROM entries WHERE namespace = ? AND recent IS NULL
    AND (expires_at IS NULL OR expires_at > ?) LIMIT 1"""
UNORDERED_MEMBER = """
    SELECT 1 FROM index_members AS m JOIN entries AS e ON e.namespace = m.namespace AND e.key = m.key
    WHERE m.namespace = ? AND m.index_name = ? AND m.recent IS NULL
    AND (e.expires_at IS NULL OR e.expires_at > ?) LIMIT 1"""
LIVE_ENTRY = """
    SELECT value, version, expires_at, touched_at, log_length, log_weight FROM entries
    WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)"""
# A NULL value_weight marks a value written before weights were kept: it weighs its length.
HEAD = """
    SELECT version, expires_at, COALESCE(value_weight, length(value)), log_length, log_weight
    FROM entries WHERE namespace = ? AND key = ?"""
UPSERT = """
    INSERT INTO entries
        (namespace, key, value, version, expires_at, value_weight, log_length, log_weight, activity,
        recent)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (namespace, key) DO UPDATE
    SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at,
        value_weight = excluded.value_weight, log_length = excluded.log_length,
        log_weight = excluded.log_weight, touched_at = NULL, activity = excluded.activity,
        recent = excluded.recent"""
# recent: the write's activity raised by this append's touched_at (SQLite's max() of a NULL is
# NULL: a row without activity stays without).
APPENDED = """
    UPDATE entries SET version = ?, expires_at = ?, log_length = ?, log_weight = ?, touched_at = ?,
        recent = max(activity, ?)
    WHERE namespace = ? AND key = ?"""
RECENT_OF_MEMBERS = """
    UPDATE index_members SET recent = (SELECT e.recent FROM entries AS e
        WHERE e.namespace = index_members.namespace AND e.key = index_members.key)
    WHERE namespace = ? AND key = ?"""
INSERT_MEMBER = "INSERT OR IGNORE INTO index_members (namespace, index_name, key, recent) VALUES (?, ?, ?, ?)"
INSERT_ITEM = "INSERT INTO log_items (namespace, key, position, item) VALUES (?, ?, ?, ?)"
DELETE_LOG = "DELETE FROM log_items WHERE namespace = ? AND key = ?"
