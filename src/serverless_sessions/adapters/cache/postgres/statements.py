"""Every statement the adapter sends, written once per schema (the tables are in :mod:`.schema`).

Each call is ONE statement: one round trip, one transaction, one snapshot, prepared once per
connection by asyncpg's statement cache. Writes call the schema's ``write_entry`` function;
appends and deletes are data-modifying CTEs in one shape:

1. ``cur`` locks the key's row with ``FOR UPDATE``. Callers of one key queue there; under READ
   COMMITTED the next one reads the row its predecessor committed.
2. A decision made from that locked row (or its absence) gates the data-modifying parts, each
   reading it or another part's RETURNING, so nothing runs unless the change is due; the parts
   touch disjoint rows, so the order in which PostgreSQL runs them does not matter.
3. The final ``SELECT`` reports what was found and what was done.

A part that would otherwise scan a range of another table reads its gate through a scalar
sub-select (evaluated once, before that table is touched) and reaches rows by their whole
primary key. Expiries are absolute UNIX seconds by the server's clock (``now()``: the
statement's start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serverless_sessions.adapters.cache.postgres.schema import Migration

__all__ = ["Statements"]

NOW = "extract(epoch FROM now())::float8"
LIVE = f"(e.expires_at IS NULL OR e.expires_at > {NOW})"

# Parameters: $1 namespace, $2 key, $3 items, $4 their weight, $5 expected log length (NULL:
# any), $6 weight limit (NULL: none), $7 ttl seconds (NULL: none), $8 keep the expiry,
# $9 touched_at (it raises the write's activity). Concurrent appends queue on the row lock of
# ``cur``; each reads the length its predecessor left, so every call's items land together,
# after the others'.
_APPEND = """WITH cur AS MATERIALIZED (
    SELECT e.version, e.expires_at, e.log_length, e.log_weight,
        coalesce(e.value_weight, octet_length(e.value)) + e.log_weight AS weight
    FROM {s}.entries AS e WHERE e.namespace = $1 AND e.key = $2 AND {live}
    FOR UPDATE
), ok AS MATERIALIZED (
    SELECT c.* FROM cur AS c
    WHERE ($5::bigint IS NULL OR c.log_length = $5) AND ($6::bigint IS NULL OR c.weight + $4::bigint <= $6)
), added AS (
    INSERT INTO {s}.log_items (namespace, key, position, item)
    SELECT $1, $2, ok.log_length + i.n - 1, i.item FROM ok, unnest($3::bytea[]) WITH ORDINALITY AS i (item, n)
), bumped AS (
    UPDATE {s}.entries AS e
    SET version = ok.version + 1, log_length = ok.log_length + cardinality($3),
        log_weight = ok.log_weight + $4, touched_at = $9::float8,
        expires_at = CASE WHEN $8::boolean THEN ok.expires_at ELSE {now} + $7::float8 END,
        recent = CASE WHEN e.activity IS NOT NULL THEN greatest(e.activity, $9::float8) END
    FROM ok WHERE e.namespace = $1 AND e.key = $2
    RETURNING e.version, e.log_length, e.expires_at, e.recent, e.indexes
), restamped AS (
    UPDATE {s}.index_members AS m SET recent = b.recent FROM bumped AS b
    WHERE m.namespace = $1 AND m.index_name = ANY (b.indexes) AND m.key = $2
)
SELECT c.version, c.log_length, c.weight + $4, b.version, b.log_length, b.expires_at
FROM cur AS c LEFT JOIN bumped AS b ON true"""

# Parameters: $1 namespace, $2 key, $3 expected version (NULL: any). An expired row goes too
# (it was invisible already); its outcome is 'absent'.
_DELETE = """WITH cur AS MATERIALIZED (
    SELECT e.version, {live} AS live FROM {s}.entries AS e
    WHERE e.namespace = $1 AND e.key = $2
    FOR UPDATE
), verdict AS MATERIALIZED (
    SELECT c.version IS NOT NULL AS present, coalesce(c.live, false) AS live,
        CASE WHEN c.live THEN c.version ELSE 0 END AS actual
    FROM (VALUES (1)) AS one LEFT JOIN cur AS c ON true
), gone AS (
    DELETE FROM {s}.entries AS e USING verdict AS v
    WHERE v.present AND ($3::bigint IS NULL OR $3 = v.actual) AND e.namespace = $1 AND e.key = $2
    RETURNING e.indexes
), unlisted AS (
    DELETE FROM {s}.index_members AS m USING unnest((SELECT g.indexes FROM gone AS g)) AS old (name)
    WHERE m.namespace = $1 AND m.index_name = old.name AND m.key = $2 AND EXISTS (SELECT FROM gone)
), dropped AS (
    DELETE FROM {s}.log_items AS l WHERE l.namespace = $1 AND l.key = $2 AND EXISTS (SELECT FROM gone)
)
SELECT CASE WHEN $3 IS NOT NULL AND $3 <> v.actual THEN 'conflict'
    WHEN v.live THEN 'deleted' ELSE 'absent' END, nullif(v.actual, 0)
FROM verdict AS v"""

# The two writes most calls are -- creating a key, and replacing the value of a live key of the
# expected version and the same indexes, keeping its log -- as plain statements: PL/pgSQL costs
# about a fifth of a write (measured: 148 against 123 us for a create, 131 against 108 for an
# update, 50 in flight). Either returns no row when its case does not hold (the key exists;
# another version, expired, other indexes), and the caller then calls ``write_entry``, which
# decides. Under READ COMMITTED a racing writer's UPDATE re-checks the version on the row its
# predecessor committed, and a racing creator's insert waits for the first to commit and does
# nothing: both then lose to ``write_entry``'s verdict, as one call would.

# Parameters: $1 namespace, $2 key, $3 value, $4 ttl seconds (NULL: none), $5 keep the expiry
# (a new key: none), $6 indexes, $7 value weight, $8 activity. A new key keeps no log item
# found at it.
_CREATE = """WITH made AS (
    INSERT INTO {s}.entries AS e
        (namespace, key, value, version, expires_at, indexes, value_weight, activity, recent)
    VALUES ($1, $2, $3, 1, CASE WHEN $5::boolean THEN NULL ELSE {now} + $4::float8 END, $6::text[], $7,
        $8::float8, $8::float8)
    ON CONFLICT DO NOTHING
    RETURNING e.expires_at
), listed AS (
    INSERT INTO {s}.index_members (namespace, index_name, key, recent)
    SELECT $1, i.name, $2, $8::float8 FROM made, unnest($6::text[]) AS i (name) ON CONFLICT DO NOTHING
), cleared AS (
    DELETE FROM {s}.log_items AS l USING made WHERE l.namespace = $1 AND l.key = $2
)
SELECT 1::bigint, m.expires_at FROM made AS m"""

# _CREATE for several keys: $1 namespace, then one array per column, a row per key: $2 keys,
# $3 values, $4 ttl seconds, $5 keep the expiry, $6 indexes (JSON lists: an array of arrays
# must be rectangular), $7 value weights, $8 activities. Returns the keys it created.
_CREATE_MANY = """WITH made AS (
    INSERT INTO {s}.entries AS e
        (namespace, key, value, version, expires_at, indexes, value_weight, activity, recent)
    SELECT $1, i.key, i.value, 1, CASE WHEN i.keep THEN NULL ELSE {now} + i.seconds END,
        ARRAY (SELECT jsonb_array_elements_text(i.indexes)), i.value_weight, i.activity, i.activity
    FROM unnest($2::text[], $3::bytea[], $4::float8[], $5::boolean[], $6::jsonb[], $7::bigint[],
        $8::float8[]) AS i (key, value, seconds, keep, indexes, value_weight, activity)
    ON CONFLICT DO NOTHING
    RETURNING e.key, e.expires_at, e.indexes, e.recent
), listed AS (
    INSERT INTO {s}.index_members (namespace, index_name, key, recent)
    SELECT $1, x.name, m.key, m.recent FROM made AS m, unnest(m.indexes) AS x (name)
    ON CONFLICT DO NOTHING
), cleared AS (
    DELETE FROM {s}.log_items AS l USING made AS m WHERE l.namespace = $1 AND l.key = m.key
)
SELECT m.key, m.expires_at FROM made AS m"""

# Parameters: $1 namespace, $2 key, $3 value, $4 expected version, $5 ttl seconds (NULL: none),
# $6 keep the expiry, $7 indexes (empty: keep the stored ones), $8 value weight, $9 activity.
_UPDATE = """WITH changed AS (
    UPDATE {s}.entries AS e
    SET value = $3, version = e.version + 1, value_weight = $8, touched_at = NULL,
        expires_at = CASE WHEN $6::boolean THEN e.expires_at ELSE {now} + $5::float8 END,
        activity = $9::float8, recent = $9::float8
    WHERE e.namespace = $1 AND e.key = $2 AND e.version = $4::bigint AND {live}
        AND CASE WHEN cardinality($7::text[]) = 0 THEN true
            ELSE cardinality(e.indexes) > 0 AND e.indexes @> $7 AND e.indexes <@ $7 END
    RETURNING e.version, e.expires_at, e.indexes
), restamped AS (
    UPDATE {s}.index_members AS m SET recent = $9::float8 FROM changed AS c
    WHERE m.namespace = $1 AND m.index_name = ANY (c.indexes) AND m.key = $2
)
SELECT c.version, c.expires_at FROM changed AS c"""

# Newest first below a cursor (activity, key), so many rows at most, after the namespace and
# (for members) the index: a backwards range read of entries_by_recent or
# index_members_by_recent, one entries lookup per row to skip expired ones. Rows without
# activity (NULL) are outside the range; the UNORDERED ones find them.
_RECENT_ENTRIES = """SELECT e.key, e.recent FROM {s}.entries AS e
WHERE e.namespace = $1 AND e.recent IS NOT NULL AND (e.recent, e.key) < ($2::float8, $3::text)
    AND {live}
ORDER BY e.recent DESC, e.key DESC LIMIT $4"""
_RECENT_MEMBERS = """SELECT m.key, m.recent FROM {s}.index_members AS m
JOIN {s}.entries AS e ON e.namespace = m.namespace AND e.key = m.key
WHERE m.namespace = $1 AND m.index_name = $2 AND m.recent IS NOT NULL
    AND (m.recent, m.key) < ($3::float8, $4::text) AND {live}
ORDER BY m.recent DESC, m.key DESC LIMIT $5"""
_UNORDERED_ENTRY = """SELECT EXISTS (SELECT FROM {s}.entries AS e
WHERE e.namespace = $1 AND e.recent IS NULL AND {live})"""
_UNORDERED_MEMBER = """SELECT EXISTS (SELECT FROM {s}.index_members AS m
JOIN {s}.entries AS e ON e.namespace = m.namespace AND e.key = m.key
WHERE m.namespace = $1 AND m.index_name = $2 AND m.recent IS NULL AND {live})"""

# Parameters: $1 namespace, $2 key (or keys: see `keys`), $3 last (NULL: from the start), $4
# before (NULL: to the end). The items come from a range of the log's primary key: O(items
# returned). Read for several keys, each row starts with its key.
_GET_WITH_LOG = """SELECT {key}e.value, e.version, e.expires_at, e.touched_at, e.log_length, e.log_weight,
    w.start, ARRAY (
        SELECT l.item FROM {s}.log_items AS l
        WHERE l.namespace = $1 AND l.key = e.key AND l.position >= w.start AND l.position < w.stop
        ORDER BY l.position
    )
FROM {s}.entries AS e
CROSS JOIN LATERAL (
    SELECT CASE WHEN $4::bigint IS NULL THEN e.log_length
        ELSE greatest(0, least($4, e.log_length)) END AS stop
) AS b
CROSS JOIN LATERAL (
    SELECT CASE WHEN $3::bigint IS NULL THEN 0 ELSE greatest(0, b.stop - $3) END AS start, b.stop
) AS w
WHERE e.namespace = $1 AND {keys} AND {live}"""

# Oldest expiry first through entries_by_expiry; rows being written right now are skipped
# (their writer decides their fate), so a purge never waits for a writer. The removed rows'
# memberships and log items go in the same statement, found by the primary key of each.
_PURGE = """WITH gone AS (
    DELETE FROM {s}.entries AS d USING (
        SELECT e.namespace, e.key FROM {s}.entries AS e
        WHERE e.namespace = $1 AND e.expires_at <= {now}
        ORDER BY e.expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
    ) AS x WHERE d.namespace = x.namespace AND d.key = x.key
    RETURNING d.key, d.indexes
), unlisted AS (
    DELETE FROM {s}.index_members AS m
    USING (SELECT g.key, unnest(g.indexes) AS index_name FROM gone AS g) AS u
    WHERE m.namespace = $1 AND m.index_name = u.index_name AND m.key = u.key
), dropped AS (
    DELETE FROM {s}.log_items AS l
    WHERE l.namespace = $1 AND l.key = ANY (ARRAY (SELECT g.key FROM gone AS g))
)
SELECT key FROM gone"""


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
        self.get_entry = f"""SELECT e.value, e.version, e.expires_at, e.touched_at, e.log_weight
            FROM {s}.entries AS e
            WHERE e.namespace = $1 AND e.key = $2 AND {LIVE}"""
        self.get_entries = f"""SELECT e.key, e.value, e.version, e.expires_at, e.touched_at, e.log_weight
            FROM {s}.entries AS e WHERE e.namespace = $1 AND e.key = ANY($2::text[]) AND {LIVE}"""
        self.exists = f"""SELECT EXISTS (SELECT 1 FROM {s}.entries AS e
            WHERE e.namespace = $1 AND e.key = $2 AND {LIVE})"""
        self.write = f"""SELECT outcome, version, expires_at, indexes, total
            FROM {s}.write_entry($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"""
        self.create = _CREATE.format(s=s, now=NOW)
        self.create_many = _CREATE_MANY.format(s=s, now=NOW)
        self.update = _UPDATE.format(s=s, live=LIVE, now=NOW)
        self.recent_entries = _RECENT_ENTRIES.format(s=s, live=LIVE)
        self.recent_members = _RECENT_MEMBERS.format(s=s, live=LIVE)
        self.unordered_entry = _UNORDERED_ENTRY.format(s=s, live=LIVE)
        self.unordered_member = _UNORDERED_MEMBER.format(s=s, live=LIVE)
        self.append = _APPEND.format(s=s, live=LIVE, now=NOW)
        self.delete = _DELETE.format(s=s, live=LIVE)
        self.get_with_log = _GET_WITH_LOG.format(s=s, live=LIVE, key="", keys="e.key = $2")
        self.get_many_with_log = _GET_WITH_LOG.format(
            s=s, live=LIVE, key="e.key, ", keys="e.key = ANY($2::text[])"
        )
        # A range read of the index_members primary key, then one entries lookup per member.
        self.index_members = f"""SELECT m.key FROM {s}.index_members AS m
            JOIN {s}.entries AS e ON e.namespace = m.namespace AND e.key = m.key
            WHERE m.namespace = $1 AND m.index_name = $2 AND {LIVE}
            ORDER BY m.key"""
        self.purge = _PURGE.format(s=s, now=NOW)
        self.first_page = f"""SELECT e.key FROM {s}.entries AS e
            WHERE e.namespace = $1 AND {LIVE} ORDER BY e.key LIMIT $2"""
        self.next_page = f"""SELECT e.key FROM {s}.entries AS e
            WHERE e.namespace = $1 AND e.key > $2 AND {LIVE} ORDER BY e.key LIMIT $3"""
        # The planner's estimate: exact counts cost a full scan of a table that may be large.
        self.row_estimate = (
            f"SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass('{s}.entries')"
        )

    def migration(self, migration: Migration) -> list[str]:
        """The DDL of ``migration`` for this schema."""
        return [statement.format(s=self._qualified) for statement in migration.statements]
