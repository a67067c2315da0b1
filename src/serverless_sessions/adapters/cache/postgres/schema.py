"""The adapter's tables and their versioned migrations (the statements are in :mod:`.statements`).

Everything lives in one schema of the database (``?schema=``, default ``serverless_sessions``),
so several deployments can share a database and a test can drop its own schema afterwards.
Every name is qualified with that schema: nothing depends on ``search_path``.

Tables (schema version :data:`SCHEMA_VERSION`):

* ``schema_migrations(version, description, applied_at)`` — one row per applied migration; the
  highest version is the schema's version. Created with the schema on first use.
* ``entries(namespace, key, value, version, expires_at, indexes, value_weight, log_length,
  log_weight, touched_at)`` keyed by ``(namespace, key)``; ``expires_at`` is absolute UNIX
  seconds by the server's clock, or NULL; ``indexes`` the names the key was listed under by its
  first indexed write; ``log_length`` and ``log_weight`` describe the key's whole log, so an
  append or a read of the last items never counts them. Expired rows stay until a write to the
  key or a purge removes them; every read filters them out.
* ``entries_by_expiry`` on ``(namespace, expires_at)`` (rows that expire only), so a purge reads
  the expired range of one namespace and nothing else.
* ``index_members(namespace, index_name, key)``, primary key in that order: listing an index is
  a range read of it.
* ``log_items(namespace, key, position, item)``, primary key in that order: the last items of a
  log, or any window of it, are a range read of it.

Neither ``index_members`` nor ``log_items`` has a foreign key to ``entries``: its trigger would
check every inserted item on its own. Instead every statement that ends a key's life (delete,
purge, a write over an expired row) removes its memberships and items in the same statement,
and a write that starts a key's life clears any items left at its key.

Text columns use the ``"C"`` collation: keys compare as bytes, the same on every server whatever
its locale, so scan pages and index listings have one stable order.

Writes go through the PL/pgSQL function ``write_entry`` (version 2's): one statement, hence one
round trip and one transaction, that locks the row (``FOR UPDATE``), compares the version and
writes the row, its memberships and its log. A write expecting no key first tries the insert,
so creating a key costs one insert; two writers creating one key at once are settled by the
primary key (``ON CONFLICT DO NOTHING``): exactly one insert wins. Appends, deletes and reads
are single SQL statements (:mod:`.statements`).

Migrations are history: a database is only ever moved forward, one version at a time, and a
new database runs them all (version 1's functions are created, then replaced by version 2).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its number, what it does, and its DDL (``{s}`` = the schema)."""

    version: int
    description: str
    statements: tuple[str, ...]


# Version 1's functions, kept as the history a new database is built from (version 2 drops them).
_UNLIST = """DELETE FROM {s}.index_members AS m
            WHERE m.namespace = p_namespace AND m.index_name = ANY (cur.indexes) AND m.key = p_key;
            DELETE FROM {s}.entries AS e WHERE e.namespace = p_namespace AND e.key = p_key;"""

_WRITE_ENTRY = (
    """
CREATE FUNCTION {s}.write_entry(
    p_namespace text, p_key text, p_value bytea, p_expected bigint,
    p_ttl float8, p_keep_ttl boolean, p_indexes text[],
    OUT outcome text, OUT version bigint, OUT expires_at float8, OUT indexes text[]
) LANGUAGE plpgsql AS $$
-- p_expected NULL: write whatever the version (set); p_keep_ttl: keep the live row's expiry.
DECLARE
    cur {s}.entries%ROWTYPE;
    live boolean;
    actual bigint;
    at float8;
    expiry float8;
BEGIN
    LOOP
        IF p_expected IS NULL OR p_expected = 0 THEN
            -- Most such writes create the key: one insert settles them, the primary key
            -- deciding between concurrent creators.
            at := extract(epoch FROM clock_timestamp())::float8;
            expiry := CASE WHEN p_keep_ttl THEN NULL ELSE at + p_ttl END;
            INSERT INTO {s}.entries AS e (namespace, key, value, version, expires_at, indexes)
            VALUES (p_namespace, p_key, p_value, 1, expiry, p_indexes)
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                INSERT INTO {s}.index_members (namespace, index_name, key)
                SELECT p_namespace, name, p_key FROM unnest(p_indexes) AS name ON CONFLICT DO NOTHING;
                outcome := 'ok';
                version := 1;
                expires_at := expiry;
                RETURN;
            END IF;
        END IF;
        SELECT * INTO cur FROM {s}.entries AS e
        WHERE e.namespace = p_namespace AND e.key = p_key FOR UPDATE;
        live := FOUND;
        at := extract(epoch FROM clock_timestamp())::float8;
        IF live AND cur.expires_at <= at THEN
            -- An expired key is a missing key: its row and memberships go, its life restarts.
            """
    + _UNLIST
    + """
            live := false;
        END IF;
        actual := CASE WHEN live THEN cur.version ELSE 0 END;
        IF p_expected IS NOT NULL AND p_expected <> actual THEN
            outcome := 'conflict';
            version := nullif(actual, 0);
            RETURN;
        END IF;
        IF live THEN
            EXIT;
        END IF;
        -- Absent now (expired, or deleted since the insert failed): the insert goes again.
    END LOOP;
    IF cardinality(cur.indexes) > 0 AND cardinality(p_indexes) > 0
            AND NOT (cur.indexes @> p_indexes AND cur.indexes <@ p_indexes) THEN
        outcome := 'conflict';
        version := cur.version;
        indexes := cur.indexes;
        RETURN;
    END IF;
    expiry := CASE WHEN p_keep_ttl THEN cur.expires_at ELSE at + p_ttl END;
    UPDATE {s}.entries AS e
    SET value = p_value, version = cur.version + 1, expires_at = expiry,
        indexes = CASE WHEN cardinality(cur.indexes) = 0 THEN p_indexes ELSE cur.indexes END
    WHERE e.namespace = p_namespace AND e.key = p_key;
    IF cardinality(cur.indexes) = 0 THEN
        INSERT INTO {s}.index_members (namespace, index_name, key)
        SELECT p_namespace, name, p_key FROM unnest(p_indexes) AS name ON CONFLICT DO NOTHING;
    END IF;
    outcome := 'ok';
    version := cur.version + 1;
    expires_at := expiry;
END
$$"""
)

_DELETE_ENTRY = (
    """
CREATE FUNCTION {s}.delete_entry(
    p_namespace text, p_key text, p_expected bigint, OUT outcome text, OUT version bigint
) LANGUAGE plpgsql AS $$
-- p_expected NULL: delete whatever the version. Outcomes: deleted, absent, conflict.
DECLARE
    cur {s}.entries%ROWTYPE;
    present boolean;
    live boolean;
    actual bigint;
BEGIN
    SELECT * INTO cur FROM {s}.entries AS e
    WHERE e.namespace = p_namespace AND e.key = p_key FOR UPDATE;
    present := FOUND;
    live := present AND (cur.expires_at IS NULL
        OR cur.expires_at > extract(epoch FROM clock_timestamp())::float8);
    actual := CASE WHEN live THEN cur.version ELSE 0 END;
    version := nullif(actual, 0);
    IF p_expected IS NOT NULL AND p_expected <> actual THEN
        outcome := 'conflict';
        RETURN;
    END IF;
    IF present THEN
        -- An expired row goes too: it was invisible already.
        """
    + _UNLIST
    + """
    END IF;
    outcome := CASE WHEN live THEN 'deleted' ELSE 'absent' END;
END
$$"""
)

# Version 2's write: the branches of a write run only the statements they need (a whole-SQL
# statement would set up every data-modifying part on every call, which costs more). One call is
# one statement, hence one round trip and one transaction.
_WRITE_ENTRY_2 = """
CREATE FUNCTION {s}.write_entry(
    p_namespace text, p_key text, p_value bytea, p_expected bigint, p_ttl float8,
    p_keep_ttl boolean, p_indexes text[], p_value_weight bigint, p_log bytea[],
    p_log_weight bigint, p_limit bigint,
    OUT outcome text, OUT version bigint, OUT expires_at float8, OUT indexes text[], OUT total bigint
) LANGUAGE plpgsql AS $$
-- p_expected NULL: write whatever the version (set); p_keep_ttl: keep the live row's expiry;
-- p_log NULL: keep the live log; p_limit NULL: no limit. Outcomes: ok; conflict (version: the
-- live one, NULL if none); indexes (indexes: the stored ones); too_large (total: the weight).
DECLARE
    cur {s}.entries%ROWTYPE;
    at float8 := extract(epoch FROM clock_timestamp())::float8;
    created boolean := false;
    live boolean := false;
    actual bigint;
    stored text[] := '{{}}';
    new_length bigint := coalesce(cardinality(p_log), 0);
    new_weight bigint := CASE WHEN p_log IS NULL THEN 0 ELSE p_log_weight END;
    new_expiry float8 := CASE WHEN p_keep_ttl THEN NULL ELSE at + p_ttl END;
BEGIN
    total := p_value_weight + new_weight;
    LOOP
        IF coalesce(p_expected, 0) = 0 AND NOT coalesce(total > p_limit, false) THEN
            -- Most such writes create the key: one insert settles them, the primary key
            -- deciding between concurrent creators.
            INSERT INTO {s}.entries
                (namespace, key, value, version, expires_at, indexes, value_weight, log_length, log_weight)
            VALUES (p_namespace, p_key, p_value, 1, new_expiry, p_indexes, p_value_weight, new_length,
                new_weight)
            ON CONFLICT DO NOTHING;
            created := FOUND;
            EXIT WHEN created;
        END IF;
        SELECT * INTO cur FROM {s}.entries AS e
        WHERE e.namespace = p_namespace AND e.key = p_key FOR UPDATE;
        EXIT WHEN FOUND;
        IF coalesce(p_expected, 0) <> 0 THEN
            outcome := 'conflict';
            RETURN;
        ELSIF total > p_limit THEN
            outcome := 'too_large';
            RETURN;
        END IF;
        -- Absent now (deleted since the insert found it): the insert goes again.
    END LOOP;
    IF created THEN
        version := 1;
    ELSE
        at := extract(epoch FROM clock_timestamp())::float8;  -- after waiting for the lock
        live := cur.expires_at IS NULL OR cur.expires_at > at;
        actual := CASE WHEN live THEN cur.version ELSE 0 END;
        IF p_expected <> actual THEN
            outcome := 'conflict';
            version := nullif(actual, 0);
            RETURN;
        END IF;
        IF live THEN
            stored := cur.indexes;
        END IF;
        IF cardinality(stored) > 0 AND cardinality(p_indexes) > 0
                AND NOT (stored @> p_indexes AND stored <@ p_indexes) THEN
            outcome := 'indexes';
            version := actual;
            indexes := stored;
            RETURN;
        END IF;
        IF p_log IS NULL AND live THEN
            new_length := cur.log_length;
            new_weight := cur.log_weight;
            total := p_value_weight + new_weight;
        END IF;
        IF total > p_limit THEN
            outcome := 'too_large';
            RETURN;
        END IF;
        new_expiry := CASE WHEN NOT p_keep_ttl THEN at + p_ttl WHEN live THEN cur.expires_at END;
        version := actual + 1;
        UPDATE {s}.entries AS e
        SET value = p_value, version = actual + 1, expires_at = new_expiry,
            indexes = CASE WHEN cardinality(stored) > 0 THEN stored ELSE p_indexes END,
            value_weight = p_value_weight, log_length = new_length, log_weight = new_weight,
            touched_at = NULL
        WHERE e.namespace = p_namespace AND e.key = p_key;
        IF NOT live THEN
            -- An expired key is a missing key: its life ends here, its memberships with it.
            DELETE FROM {s}.index_members AS m
            WHERE m.namespace = p_namespace AND m.index_name = ANY (cur.indexes) AND m.key = p_key;
        END IF;
    END IF;
    IF cardinality(stored) = 0 THEN
        INSERT INTO {s}.index_members (namespace, index_name, key)
        SELECT p_namespace, name, p_key FROM unnest(p_indexes) AS name ON CONFLICT DO NOTHING;
    END IF;
    IF p_log IS NOT NULL OR NOT live THEN
        -- A replaced log, or a new life of the key (which keeps no item found at it): the
        -- items past the new length go.
        DELETE FROM {s}.log_items AS l
        WHERE l.namespace = p_namespace AND l.key = p_key AND l.position >= new_length;
    END IF;
    IF p_log IS NOT NULL THEN
        -- Items below it are written where they changed only.
        INSERT INTO {s}.log_items AS l (namespace, key, position, item)
        SELECT p_namespace, p_key, i.n - 1, i.item FROM unnest(p_log) WITH ORDINALITY AS i (item, n)
        ON CONFLICT (namespace, key, position) DO UPDATE
        SET item = excluded.item WHERE l.item IS DISTINCT FROM excluded.item;
    END IF;
    outcome := 'ok';
    expires_at := new_expiry;
END
$$"""


def _evolved(source: str, *changes: tuple[str, str]) -> str:
    """``source`` with each ``(old, new)`` applied, each ``old`` found exactly once."""
    for old, new in changes:
        if source.count(old) != 1:
            raise AssertionError(f"migration source changed: {old!r}")
        source = source.replace(old, new)
    return source


# Version 3's write: version 2's, recording the write's activity (p_activity) on the row and on
# its index memberships, for the activity-ordered listing.
_WRITE_ENTRY_3 = _evolved(
    _WRITE_ENTRY_2,
    ("p_log_weight bigint, p_limit bigint,", "p_log_weight bigint, p_limit bigint, p_activity float8,"),
    (
        """(namespace, key, value, version, expires_at, indexes, value_weight, log_length, log_weight)
            VALUES (p_namespace, p_key, p_value, 1, new_expiry, p_indexes, p_value_weight, new_length,
                new_weight)""",
        """(namespace, key, value, version, expires_at, indexes, value_weight, log_length, log_weight,
                activity, recent)
            VALUES (p_namespace, p_key, p_value, 1, new_expiry, p_indexes, p_value_weight, new_length,
                new_weight, p_activity, p_activity)""",
    ),
    (
        "            touched_at = NULL\n",
        "            touched_at = NULL, activity = p_activity, recent = p_activity\n",
    ),
    (
        """        INSERT INTO {s}.index_members (namespace, index_name, key)
        SELECT p_namespace, name, p_key FROM unnest(p_indexes) AS name ON CONFLICT DO NOTHING;
    END IF;""",
        """        INSERT INTO {s}.index_members (namespace, index_name, key, recent)
        SELECT p_namespace, name, p_key, p_activity FROM unnest(p_indexes) AS name ON CONFLICT DO NOTHING;
    ELSE
        UPDATE {s}.index_members AS m SET recent = p_activity
        WHERE m.namespace = p_namespace AND m.index_name = ANY (stored) AND m.key = p_key;
    END IF;""",
    ),
)

# Values and items over 2 KB are compressed by PostgreSQL: lz4 costs a fraction of the CPU of
# the default (pglz) for nearly its ratio, and the codec already compresses large payloads (and
# sealed ones cannot be), so the cheap one is the right one. Only new values are affected; a
# server without lz4 (before 14, or built without it) keeps pglz.
_LZ4 = """DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_settings
            WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE {s}.entries ALTER COLUMN value SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE {s}.log_items ALTER COLUMN item SET COMPRESSION lz4';
    END IF;
END
$$"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "entries, index memberships, expiry index, write and delete functions",
        (
            """CREATE TABLE {s}.entries (
                namespace text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                value bytea NOT NULL,
                version bigint NOT NULL,
                expires_at float8,
                indexes text[] COLLATE "C" NOT NULL DEFAULT '{{}}',
                PRIMARY KEY (namespace, key)
            )""",
            "CREATE INDEX entries_by_expiry ON {s}.entries (namespace, expires_at) "
            "WHERE expires_at IS NOT NULL",
            """CREATE TABLE {s}.index_members (
                namespace text COLLATE "C" NOT NULL,
                index_name text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                PRIMARY KEY (namespace, index_name, key)
            )""",
            _WRITE_ENTRY,
            _DELETE_ENTRY,
        ),
    ),
    Migration(
        2,
        "message logs: log_items, log length, weights and activity on entries; write function; lz4",
        (
            # Metadata-only column additions: no table rewrite, so the migration holds its lock
            # for an instant whatever the table's size. A NULL value_weight (a row written
            # before weights) counts the value's length in bytes.
            """ALTER TABLE {s}.entries
                ADD COLUMN value_weight bigint,
                ADD COLUMN log_length bigint NOT NULL DEFAULT 0,
                ADD COLUMN log_weight bigint NOT NULL DEFAULT 0,
                ADD COLUMN touched_at float8""",
            """CREATE TABLE {s}.log_items (
                namespace text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                position bigint NOT NULL,
                item bytea NOT NULL,
                PRIMARY KEY (namespace, key, position)
            )""",
            # A process of the previous version still running fails its writes and deletes
            # loudly instead of writing rows without weights or leaving log items behind.
            "DROP FUNCTION {s}.write_entry(text, text, bytea, bigint, float8, boolean, text[])",
            "DROP FUNCTION {s}.delete_entry(text, text, bigint)",
            _WRITE_ENTRY_2,
            _LZ4,
        ),
    ),
    Migration(
        3,
        "activity: entries.activity and recent, index_members.recent, their indexes; write function",
        (
            # NULL for every row written before: their scopes list by sorting until rewritten.
            "ALTER TABLE {s}.entries ADD COLUMN activity float8, ADD COLUMN recent float8",
            "ALTER TABLE {s}.index_members ADD COLUMN recent float8",
            # Built inside the migration's transaction: writes wait while they are built (about
            # a second per million rows here); reads go on.
            "CREATE INDEX entries_by_recent ON {s}.entries (namespace, recent, key)",
            "CREATE INDEX index_members_by_recent ON {s}.index_members (namespace, index_name, recent, key)",
            # As in version 2, a process of the previous version fails its writes loudly rather
            # than leave a stale activity behind.
            "DROP FUNCTION {s}.write_entry(text, text, bytea, bigint, float8, boolean, text[], bigint, "
            "bytea[], bigint, bigint)",
            _WRITE_ENTRY_3,
        ),
    ),
)
"""Every migration in order; a database records each one it applied in ``schema_migrations``."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema this code reads; a database at a higher version is refused (upgrade the library)."""
