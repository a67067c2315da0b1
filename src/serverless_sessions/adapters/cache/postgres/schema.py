"""The adapter's tables, their versioned migrations, and every statement it sends.

Everything lives in one schema of the database (``?schema=``, default ``serverless_sessions``),
so several deployments can share a database and a test can drop its own schema afterwards.
Every name is qualified with that schema: nothing depends on ``search_path``.

Tables (schema version :data:`SCHEMA_VERSION`):

* ``schema_migrations(version, description, applied_at)`` — one row per applied migration; the
  highest version is the schema's version. Created with the schema on first use.
* ``entries(namespace, key, value, version, expires_at, indexes)`` keyed by ``(namespace, key)``;
  ``expires_at`` is absolute UNIX seconds by the server's clock, or NULL; ``indexes`` the names
  the key was listed under by its first indexed write. Expired rows stay until a write to the
  key or a purge removes them; every read filters them out.
* ``entries_by_expiry`` on ``(namespace, expires_at)`` (rows that expire only), so a purge reads
  the expired range of one namespace and nothing else.
* ``index_members(namespace, index_name, key)``, primary key in that order: listing an index is
  a range read of it. Every statement that removes an entry removes its memberships too, each
  found through that primary key from the entry's ``indexes`` (no foreign key: its trigger and
  a second index would cost every write more than they save).

Text columns use the ``"C"`` collation: keys compare as bytes, the same on every server whatever
its locale, so scan pages and index listings have one stable order.

Writes are two PL/pgSQL functions, ``write_entry`` and ``delete_entry``: one statement, hence
one round trip and one transaction, locks the row (``FOR UPDATE``), compares the version, writes
the row and its memberships. A write expecting no key first tries the insert, so creating a key
costs one insert; two writers creating one key at once are settled by the primary key
(``ON CONFLICT DO NOTHING``): exactly one insert wins.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "Statements"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: its number, what it does, and its DDL (``{s}`` = the schema)."""

    version: int
    description: str
    statements: tuple[str, ...]


_LIVE = "(e.expires_at IS NULL OR e.expires_at > extract(epoch FROM now())::float8)"

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
)
"""Every migration in order; a database records each one it applied in ``schema_migrations``."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema this code reads; a database at a higher version is refused (upgrade the library)."""


class Statements:
    """The SQL of one schema, every table name qualified once, so each call sends a ready string."""

    def __init__(self, schema: str) -> None:
        # The name was checked against [a-z_][a-z0-9_]*; quoting still guards against keywords.
        s = f'"{schema}"'
        self.schema = schema
        self._qualified = s
        self.create_schema = f"CREATE SCHEMA {s}"
        self.create_migrations = f"""CREATE TABLE {s}.schema_migrations (
            version integer PRIMARY KEY,
            description text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )"""
        # Catalog reads with the statement's snapshot, not to_regclass(): a session's name cache
        # may still miss a schema another session created while this one waited for the lock.
        self.schema_exists = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)"
        self.migrations_exist = """SELECT EXISTS (SELECT 1 FROM pg_class AS c
            JOIN pg_namespace AS n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = 'schema_migrations')"""
        self.schema_version = f"SELECT coalesce(max(version), 0) FROM {s}.schema_migrations"
        self.record_migration = f"INSERT INTO {s}.schema_migrations (version, description) VALUES ($1, $2)"
        self.get_entry = f"""SELECT e.value, e.version, e.expires_at FROM {s}.entries AS e
            WHERE e.namespace = $1 AND e.key = $2 AND {_LIVE}"""
        self.get_entries = f"""SELECT e.key, e.value, e.version, e.expires_at FROM {s}.entries AS e
            WHERE e.namespace = $1 AND e.key = ANY($2::text[]) AND {_LIVE}"""
        self.exists = f"""SELECT EXISTS (SELECT 1 FROM {s}.entries AS e
            WHERE e.namespace = $1 AND e.key = $2 AND {_LIVE})"""
        self.write = (
            f"SELECT outcome, version, expires_at, indexes FROM {s}.write_entry($1, $2, $3, $4, $5, $6, $7)"
        )
        self.delete = f"SELECT outcome, version FROM {s}.delete_entry($1, $2, $3)"
        # A range read of the index_members primary key, then one entries lookup per member.
        self.index_members = f"""SELECT m.key FROM {s}.index_members AS m
            JOIN {s}.entries AS e ON e.namespace = m.namespace AND e.key = m.key
            WHERE m.namespace = $1 AND m.index_name = $2 AND {_LIVE}
            ORDER BY m.key"""
        # Oldest expiry first through entries_by_expiry; rows being written right now are skipped
        # (their writer decides their fate), so a purge never waits for a writer. The removed
        # rows' memberships go in the same statement, found by the primary key of each.
        self.purge = f"""WITH gone AS (
                DELETE FROM {s}.entries AS d USING (
                    SELECT e.namespace, e.key FROM {s}.entries AS e
                    WHERE e.namespace = $1 AND e.expires_at <= extract(epoch FROM now())::float8
                    ORDER BY e.expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
                ) AS x WHERE d.namespace = x.namespace AND d.key = x.key
                RETURNING d.key, d.indexes
            ), unlisted AS (
                DELETE FROM {s}.index_members AS m
                USING (SELECT g.key, unnest(g.indexes) AS index_name FROM gone AS g) AS u
                WHERE m.namespace = $1 AND m.index_name = u.index_name AND m.key = u.key
            )
            SELECT key FROM gone"""
        self.first_page = f"""SELECT e.key FROM {s}.entries AS e
            WHERE e.namespace = $1 AND {_LIVE} ORDER BY e.key LIMIT $2"""
        self.next_page = f"""SELECT e.key FROM {s}.entries AS e
            WHERE e.namespace = $1 AND e.key > $2 AND {_LIVE} ORDER BY e.key LIMIT $3"""
        # The planner's estimate: exact counts cost a full scan of a table that may be large.
        self.row_estimate = (
            f"SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass('{s}.entries')"
        )

    def migration(self, migration: Migration) -> list[str]:
        """The DDL of ``migration`` for this schema."""
        return [statement.format(s=self._qualified) for statement in migration.statements]
