"""PostgreSQL-specific behaviour on real servers: the shared one at 127.0.0.1:5432 (a schema of
each test's own, dropped afterwards) and private ones started with initdb + pg_ctl, which the
fault tests stop, restart and replace with a socket that never answers.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from asyncpg import exceptions as pgx

from serverless_sessions.adapters.cache import postgres
from serverless_sessions.adapters.cache.base import KEEP_TTL, Entry, LogSlice
from serverless_sessions.adapters.cache.postgres import SCHEMA_VERSION, PostgresSettings, parse_url
from serverless_sessions.adapters.cache.postgres.errors import translate
from serverless_sessions.adapters.cache.postgres.schema import MIGRATIONS
from serverless_sessions.adapters.cache.postgres.statements import Statements
from serverless_sessions.errors import (
    ClosedError,
    ConfigurationError,
    InvalidSessionError,
    MissingDependencyError,
    SessionConflictError,
    SessionError,
    SessionTooLargeError,
    StorageError,
    StorageUnavailableError,
)
from tests.cache_factories.postgres import SHARED_URL, drop_schema, unique_schema
from tests.pg_servers import PostgresServer, private_server

ROOT = Path(__file__).resolve().parents[1]
BOUND = 15.0  # seconds: far above every timeout used here, so only a hang trips it


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = unique_schema()
    yield name
    await drop_schema(name)


@pytest.fixture
async def cache(schema: str) -> AsyncIterator[postgres.Cache]:
    async with postgres.Cache.from_url(SHARED_URL, namespace="t", schema=schema) as built:
        yield built


@pytest.fixture
async def raw() -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(SHARED_URL)
    yield connection
    await connection.close()


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with private_server() as started:
        yield started


def run_child(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- URLs and settings -------------------------------------------------------------------------


def test_url_forms() -> None:
    full = parse_url(
        "postgresql://al%40ice:p%3Ass@db.example.com:6543/app%2Fdb?sslmode=verify-full&schema=sessions"
        "&timeout=2.5&pool_size=4&statement_cache_size=0&sslrootcert=/etc/ca.pem"
    )
    assert (full.user, full.password and full.password.get_secret_value()) == ("al@ice", "p:ss")
    assert (full.host, full.port, full.database) == ("db.example.com", 6543, "app/db")
    assert (full.sslmode, full.sslrootcert, full.schema) == ("verify-full", "/etc/ca.pem", "sessions")
    assert (full.timeout, full.pool_size, full.statement_cache_size) == (2.5, 4, 0)
    short = parse_url("postgres://[::1]/db")
    assert (short.host, short.port, short.user, short.password) == ("::1", 5432, None, None)
    assert (short.sslmode, short.schema) == ("prefer", postgres.DEFAULT_SCHEMA)
    assert parse_url("postgresql://h/db", timeout=1).timeout == 1.0


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://h/db", "mysql://h/db"),
        ("postgresql:///db", "names no host"),
        ("postgresql://h", "''"),
        ("postgresql://h/", "''"),
        ("postgresql://h/a/b", "'a/b'"),
        ("postgresql://h:port/db", "'port'"),
        ("postgresql://h:70000/db", "'70000'"),
        ("postgresql://h/db?sslmode=sometimes", "'sometimes'"),
        ("postgresql://h/db?schema=Bad-Name", "'Bad-Name'"),
        ("postgresql://h/db?schema=pg_catalog", "'pg_catalog'"),
        ("postgresql://h/db?timeout=0", "'0'"),
        ("postgresql://h/db?timeout=nan", "'nan'"),
        ("postgresql://h/db?timeout=soon", "'soon'"),
        ("postgresql://h/db?pool_size=0", "'0'"),
        ("postgresql://h/db?statement_cache_size=-1", "'-1'"),
        ("postgresql://h/db?colour=blue", "'colour'"),
        ("postgresql://h/db?password=hunter2", "'password'"),
        ("postgresql://h/db?timeout=1&timeout=2", "'timeout' repeated"),
        ("postgresql://h/db#frag", "'frag'"),
        ("postgresql://[::1/db", "'postgresql://[::1/db'"),
    ],
)
def test_bad_urls_are_refused_naming_the_value(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_url(url)
    assert named in str(caught.value)


def test_bad_overrides_and_constructor_use_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="'colour'"):
        postgres.Cache.from_url("postgresql://h/db", colour="blue")
    with pytest.raises(ConfigurationError, match=r"'timeout'.*-1"):
        PostgresSettings(host="h", database="db", timeout=-1)
    with pytest.raises(ConfigurationError, match="exactly one"):
        postgres.Cache()


def test_the_password_never_shows() -> None:
    url = "postgresql://u:s3cr%2Fet@h/db"
    with pytest.raises(ConfigurationError) as bad_value:
        parse_url(f"{url}?sslmode=bad")
    with pytest.raises(ConfigurationError) as unknown:
        parse_url(f"{url}?what=1")
    with pytest.raises(ConfigurationError) as bad_port:
        parse_url("postgresql://u:s3cr%2Fet@h:x/db")
    with pytest.raises(ConfigurationError, match="percent-encode") as unencoded:
        parse_url("postgresql://u:s3cr/et@h/db")
    with pytest.raises(ConfigurationError) as unparsable:
        parse_url("postgresql://u:s3cret@[::1/db")
    cache = postgres.Cache.from_url(url)
    errors = [bad_value.value, unknown.value, bad_port.value, unencoded.value, unparsable.value]
    shown = [*errors, cache, cache.settings, cache.settings.describe()]
    for item in shown:
        assert "s3cr" not in str(item) and "s3cr" not in repr(item)
    assert cache.settings.password is not None and cache.settings.password.get_secret_value() == "s3cr/et"


# -- the driver is imported lazily -------------------------------------------------------------


def test_importing_the_package_does_not_import_the_driver() -> None:
    out = run_child(
        "import sys\n"
        "from serverless_sessions.adapters.cache.postgres import Cache, config, schema, cache\n"
        "before = 'asyncpg' in sys.modules\n"
        "Cache.from_url('postgresql://h/db')\n"
        "print(before, 'asyncpg' in sys.modules)\n"
    )
    assert out == "False True"


def test_a_missing_driver_names_the_extra() -> None:
    out = run_child(
        "import sys\n"
        "sys.modules['asyncpg'] = None  # as if it were not installed\n"
        "from serverless_sessions.adapters.cache.postgres import Cache\n"
        "from serverless_sessions.errors import MissingDependencyError\n"
        "try:\n"
        "    Cache.from_url('postgresql://h/db')\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    assert "pip install 'serverless-sessions[postgres]'" in out
    assert issubclass(MissingDependencyError, ConfigurationError)


# -- schema and its versions -------------------------------------------------------------------


async def test_schema_is_created_on_first_use_and_versioned(schema: str, raw: asyncpg.Connection) -> None:
    exists = "SELECT to_regnamespace($1) IS NOT NULL"
    cache = postgres.Cache.from_url(SHARED_URL, schema=schema)
    assert not await raw.fetchval(exists, schema)  # building a cache touches nothing
    # Five caches (five pools) race to create the schema: the advisory lock lets one migrate.
    caches = [cache, *(postgres.Cache.from_url(SHARED_URL, schema=schema) for _ in range(4))]
    await asyncio.gather(*(each.set("k", b"v") for each in caches))
    rows = await raw.fetch(f'SELECT version, description FROM "{schema}".schema_migrations')
    assert [row["version"] for row in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert all(row["description"] for row in rows)
    health = await cache.health()
    assert health["schema"] == schema and health["schema_version"] == SCHEMA_VERSION
    for each in caches:
        await each.close()
    async with postgres.Cache.from_url(SHARED_URL, schema=schema) as again:
        assert await again.get("k") == b"v"
    assert await raw.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations') == SCHEMA_VERSION


async def test_values_and_items_are_compressed_with_lz4(
    cache: postgres.Cache, raw: asyncpg.Connection
) -> None:
    # The shared server has lz4 (PostgreSQL 15 from Debian): cheaper than pglz for the same job.
    schema = cache.settings.schema
    await cache.write_with_log(
        "k", b"v" * 6000, log=[b"m" * 6000], value_weight=6000, expected_version=0, ttl=60
    )
    methods = await raw.fetch(
        f"""SELECT pg_column_compression(e.value), pg_column_compression(l.item)
        FROM "{schema}".entries AS e JOIN "{schema}".log_items AS l USING (namespace, key)"""
    )
    assert [tuple(row) for row in methods] == [("lz4", "lz4")]
    found = await cache.get_with_log("k")
    assert found is not None and found[0].value == b"v" * 6000 and found[1].items == [b"m" * 6000]


async def test_a_newer_schema_is_refused(schema: str, raw: asyncpg.Connection) -> None:
    async with postgres.Cache.from_url(SHARED_URL, schema=schema) as cache:
        await cache.ping()
    await raw.execute(f"INSERT INTO \"{schema}\".schema_migrations VALUES (99, 'from the future')")
    async with postgres.Cache.from_url(SHARED_URL, schema=schema) as newer:
        with pytest.raises(ConfigurationError, match=rf"version 99.*reads schema version {SCHEMA_VERSION}"):
            await newer.get("k")


# -- expiry, indexes and plans -----------------------------------------------------------------


async def test_expired_rows_are_never_returned(cache: postgres.Cache, raw: asyncpg.Connection) -> None:
    schema = cache.settings.schema
    await cache.compare_and_set("old", b"x", expected_version=0, ttl=0.3, indexes=["user:a"])
    await cache.compare_and_set("new", b"y", expected_version=0, ttl=60, indexes=["user:a"])
    await asyncio.sleep(0.6)
    # The row is still stored; no read shows it.
    assert await raw.fetchval(f'SELECT count(*) FROM "{schema}".entries WHERE key = $1', "old") == 1
    assert await cache.get("old") is None
    assert await cache.get_entry("old") is None
    assert await cache.get_entries(["old", "new"]) == [None, await cache.get_entry("new")]
    assert not await cache.exists("old")
    assert await cache.index_members("user:a") == ["new"]
    assert [key async for key in cache.scan_keys()] == ["new"]
    assert not await cache.delete("old")
    with pytest.raises(SessionConflictError, match="absent"):
        await cache.compare_and_set("old", b"z", expected_version=1, ttl=60)


async def test_set_counts_versions_and_keeps_indexes(cache: postgres.Cache) -> None:
    await cache.compare_and_set("k", b"v1", expected_version=0, ttl=60, indexes=["user:a", "user:a"])
    await cache.set("k", b"v2", ttl=60)
    entry = await cache.get_entry("k")
    assert entry is not None and (entry.version, entry.value) == (2, b"v2")
    assert await cache.index_members("user:a") == ["k"]
    # A key's indexes are fixed by its first indexed write: moving it is a conflict.
    with pytest.raises(SessionConflictError, match="other indexes"):
        await cache.compare_and_set("k", b"v3", expected_version=2, ttl=60, indexes=["user:b"])
    assert await cache.index_members("user:b") == []
    same = await cache.compare_and_set("k", b"v3", expected_version=2, ttl=60, indexes=["user:a"])
    assert same.version == 3


async def test_writing_an_expired_key_starts_a_new_life(cache: postgres.Cache) -> None:
    await cache.compare_and_set("k", b"old", expected_version=0, ttl=0.2, indexes=["user:a"])
    await asyncio.sleep(0.4)
    entry = await cache.compare_and_set("k", b"new", expected_version=0, ttl=KEEP_TTL, indexes=["user:b"])
    assert entry.version == 1 and entry.expires_at is None
    assert await cache.index_members("user:a") == []
    assert await cache.index_members("user:b") == ["k"]
    assert await cache.purge_expired() == []


async def test_purge_removes_expired_rows_and_their_memberships(
    cache: postgres.Cache, raw: asyncpg.Connection
) -> None:
    schema = cache.settings.schema
    for i in range(5):
        await cache.compare_and_set(f"e{i}", b"v", expected_version=0, ttl=0.1 + i * 0.02, indexes=["user:u"])
    await cache.compare_and_set("live", b"v", expected_version=0, ttl=60, indexes=["user:u"])
    await asyncio.sleep(0.5)
    assert await cache.purge_expired(limit=2) == ["e0", "e1"]
    assert await cache.purge_expired(limit=0) == []
    assert sorted(await cache.purge_expired()) == ["e2", "e3", "e4"]
    members = await raw.fetch(f'SELECT key FROM "{schema}".index_members')
    assert [row["key"] for row in members] == ["live"]
    assert await raw.fetchval(f'SELECT count(*) FROM "{schema}".entries') == 1


async def plan(raw: asyncpg.Connection, sql: str, *args: object) -> str:
    rows = await raw.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(row[0] for row in rows)


async def test_purge_and_listing_are_index_reads(cache: postgres.Cache, raw: asyncpg.Connection) -> None:
    schema = cache.settings.schema
    await cache.ping()
    # 20,000 live rows (their memberships, 3 log items each), a handful expired, statistics up
    # to date.
    await raw.execute(
        f"""INSERT INTO "{schema}".entries (namespace, key, value, version, expires_at, indexes)
        SELECT 't', 'k' || i, '\\x00', 1, extract(epoch FROM now()) + 3600 + i, ARRAY['user:' || i % 400]
        FROM generate_series(1, 20000) AS i"""
    )
    await raw.execute(
        f"""INSERT INTO "{schema}".index_members SELECT 't', 'user:' || i % 400, 'k' || i
        FROM generate_series(1, 20000) AS i"""
    )
    await raw.execute(
        f"""INSERT INTO "{schema}".log_items SELECT 't', 'k' || i, p, '\\x00'
        FROM generate_series(1, 20000) AS i, generate_series(0, 2) AS p"""
    )
    for i in range(5):
        await cache.write_with_log(f"gone{i}", b"v", log=[b"m"], value_weight=1, expected_version=0, ttl=0.1)
    for table in ("entries", "index_members", "log_items"):
        await raw.execute(f'ANALYZE "{schema}".{table}')
    sql = cache._sql  # the statements the adapter sends
    purge = await plan(raw, sql.purge, "t", 1000)
    assert "entries_by_expiry" in purge and "log_items_pkey" in purge and "Seq Scan" not in purge, purge
    listing = await plan(raw, sql.index_members, "t", "user:7")
    assert "index_members_pkey" in listing and "Seq Scan" not in listing, listing
    await asyncio.sleep(0.3)
    assert sorted(await cache.purge_expired()) == [f"gone{i}" for i in range(5)]
    assert await raw.fetchval(f"SELECT count(*) FROM \"{schema}\".log_items WHERE key LIKE 'gone%'") == 0
    assert len(await cache.index_members("user:7")) == 50


# -- message logs ------------------------------------------------------------------------------


async def test_twenty_concurrent_appenders_lose_nothing(schema: str) -> None:
    # Two pools, as two processes would be: 20 appenders of 50 single items each. They queue on
    # the key's row lock in the server; none retries and none is refused.
    async with (
        postgres.Cache.from_url(SHARED_URL, schema=schema, pool_size=5) as one,
        postgres.Cache.from_url(SHARED_URL, schema=schema, pool_size=5) as two,
    ):
        await one.write_with_log("s", b"head", log=[], value_weight=4, expected_version=0, ttl=60)

        async def appender(a: int) -> list[int]:
            cache = (one, two)[a % 2]
            lengths = []
            for i in range(50):
                appended = await cache.append("s", [f"{a}:{i}".encode()], weight=1, ttl=60, touched_at=1.0)
                lengths.append(appended.length)
            return lengths

        lengths = await asyncio.gather(*map(appender, range(20)))
        found = await two.get_with_log("s")
    assert sorted(chain.from_iterable(lengths)) == list(range(1, 1001))
    assert found is not None
    entry, log = found
    assert (entry.version, log.length, log.weight, len(log.items)) == (1001, 1000, 1000, 1000)
    assert len(set(log.items)) == 1000
    for a in range(20):
        mine = [item for item in log.items if item.startswith(f"{a}:".encode())]
        assert mine == [f"{a}:{i}".encode() for i in range(50)]


async def test_whole_writes_racing_appends_keep_the_log_whole(
    cache: postgres.Cache, raw: asyncpg.Connection
) -> None:
    # A whole write lands only on the version it read, so no appended item is dropped or doubled,
    # and the stored rows always match the length kept on the entry.
    await cache.write_with_log("s", b"head", log=[], value_weight=4, expected_version=0, ttl=60)
    rewrites = 0

    async def appender(a: int) -> None:
        for i in range(20):
            await cache.append("s", [f"a{a}:{i}".encode()], weight=1, ttl=60, touched_at=1.0)

    async def rewriter() -> None:
        nonlocal rewrites
        while rewrites < 15:
            found = await cache.get_with_log("s")
            assert found is not None
            entry, log = found
            items = [*log.items, f"w{rewrites}".encode()]
            try:
                await cache.write_with_log(
                    "s",
                    b"head",
                    log=items,
                    value_weight=4,
                    log_weight=len(items),
                    expected_version=entry.version,
                    ttl=60,
                )
            except SessionConflictError:
                continue
            rewrites += 1

    await asyncio.gather(rewriter(), *map(appender, range(5)))
    found = await cache.get_with_log("s")
    assert found is not None
    _, log = found
    assert sorted(item for item in log.items if item.startswith(b"a")) == sorted(
        f"a{a}:{i}".encode() for a in range(5) for i in range(20)
    )
    assert [item for item in log.items if item.startswith(b"w")] == [f"w{i}".encode() for i in range(15)]
    positions = await raw.fetch(
        f'SELECT position FROM "{cache.settings.schema}".log_items WHERE key = $1 ORDER BY position', "s"
    )
    assert [row[0] for row in positions] == list(range(log.length)) and log.length == 115


async def test_concurrent_creators_of_one_key(schema: str) -> None:
    async with (
        postgres.Cache.from_url(SHARED_URL, schema=schema, pool_size=5) as one,
        postgres.Cache.from_url(SHARED_URL, schema=schema, pool_size=5) as two,
    ):
        caches = [(one, two)[i % 2] for i in range(20)]
        # Expecting no key: the primary key lets exactly one creator in.
        outcomes = await asyncio.gather(
            *(
                cache.compare_and_set("c", str(i).encode(), expected_version=0, ttl=60, indexes=["user:u"])
                for i, cache in enumerate(caches)
            ),
            return_exceptions=True,
        )
        created = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
        refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert len(created) == 1 and created[0].version == 1
        assert all(isinstance(exc, SessionConflictError) and "already exists" in str(exc) for exc in refused)
        # set expects nothing: the ones that lose the creation write after the winner.
        await asyncio.gather(*(cache.set("s", str(i).encode(), ttl=60) for i, cache in enumerate(caches)))
        entry = await one.get_entry("s")
        assert entry is not None and entry.version == 20
        assert await two.index_members("user:u") == ["c"]


async def test_items_left_at_a_key_never_join_its_next_log(
    cache: postgres.Cache, raw: asyncpg.Connection
) -> None:
    # A process of the previous library version purges rows without their items.
    await cache.ping()
    insert = f'INSERT INTO "{cache.settings.schema}".log_items VALUES ($1, $2, $3, $4)'
    await raw.executemany(insert, [("t", "k", i, b"left over") for i in range(3)])
    await cache.compare_and_set("k", b"head", expected_version=0, ttl=60)
    assert (await cache.append("k", [b"new"], weight=3, ttl=60, touched_at=1.0)).length == 1
    found = await cache.get_with_log("k")
    assert found is not None and found[1] == LogSlice([b"new"], 0, 1, 3)


async def test_rewriting_a_log_writes_only_the_items_that_changed(
    cache: postgres.Cache, raw: asyncpg.Connection
) -> None:
    async def row_versions() -> dict[int, str]:
        rows = await raw.fetch(
            f'SELECT position, xmin::text FROM "{cache.settings.schema}".log_items WHERE key = $1', "s"
        )
        return {row[0]: row[1] for row in rows}

    await cache.write_with_log("s", b"h", log=[b"a", b"b", b"c"], value_weight=1, expected_version=0, ttl=60)
    before = await row_versions()
    await cache.write_with_log("s", b"h", log=[b"a", b"B"], value_weight=1, expected_version=1, ttl=60)
    after = await row_versions()
    assert after.keys() == {0, 1}
    assert after[0] == before[0] and after[1] != before[1]
    found = await cache.get_with_log("s")
    assert found is not None and found[1].items == [b"a", b"B"]


async def test_reading_the_last_items_reads_only_them(cache: postgres.Cache, raw: asyncpg.Connection) -> None:
    items = [str(i).encode() for i in range(5000)]
    await cache.write_with_log("long", b"head", log=items, value_weight=4, expected_version=0, ttl=60)
    await raw.execute(f'ANALYZE "{cache.settings.schema}".log_items')
    for last, before in ((20, None), (20, 1000)):
        rows = await raw.fetch(f"EXPLAIN ANALYZE {cache._sql.get_with_log}", "t", "long", last, before)
        explained = "\n".join(row[0] for row in rows)
        scans = [line for line in explained.splitlines() if "log_items" in line]
        assert scans and "log_items_pkey" in explained and "Seq Scan" not in explained, explained
        assert all("rows=20 loops=1" in line for line in scans), explained
    found = await cache.get_with_log("long", last=20, before=1000)
    assert found is not None and found[1] == LogSlice(items[980:1000], 980, 5000, 0)


async def test_a_version_1_schema_migrates_in_place_and_stays_readable(
    schema: str, raw: asyncpg.Connection
) -> None:
    sql = Statements(schema)
    await raw.execute(sql.create_schema)
    await raw.execute(sql.create_migrations)
    for statement in sql.migration(MIGRATIONS[0]):
        await raw.execute(statement)
    await raw.execute(sql.record_migration, 1, MIGRATIONS[0].description)
    # Rows written as the version-1 library wrote them: through its write function.
    write = f'SELECT outcome FROM "{schema}".write_entry($1, $2, $3, $4, $5, false, $6)'
    assert await raw.fetchval(write, "t", "kept", b"x" * 40, 0, 3600.0, ["user:a"]) == "ok"
    assert await raw.fetchval(write, "t", "forever", b"y", 0, None, []) == "ok"
    async with postgres.Cache.from_url(SHARED_URL, namespace="t", schema=schema) as cache:
        found = await cache.get_with_log("kept")
        assert found is not None
        entry, log = found
        assert (entry.value, entry.version, entry.touched_at) == (b"x" * 40, 1, None)
        assert entry.expires_at == pytest.approx(time.time() + 3600, abs=30)
        assert log == LogSlice([], 0, 0, 0)
        assert await cache.index_members("user:a") == ["kept"]
        forever = await cache.get_entry("forever")
        assert forever is not None and forever.expires_at is None
        # The value written without a weight weighs its length: 40 + 5 fits 45, 40 + 6 does not.
        with pytest.raises(SessionTooLargeError) as refused:
            await cache.append("kept", [b"123456"], weight=6, limit=45, ttl=KEEP_TTL, touched_at=1.0)
        assert refused.value.size == 46
        appended = await cache.append("kept", [b"12345"], weight=5, limit=45, ttl=KEEP_TTL, touched_at=1.0)
        assert (appended.version, appended.length, appended.expires_at) == (2, 1, entry.expires_at)
        assert (await cache.compare_and_set("kept", b"z", expected_version=2, ttl=60)).version == 3
    versions = await raw.fetch(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')
    assert [row[0] for row in versions] == list(range(1, SCHEMA_VERSION + 1))
    # The version-1 functions are gone: an older process fails its writes instead of writing
    # rows without weights.
    with pytest.raises(pgx.UndefinedFunctionError):
        await raw.fetchval(write, "t", "late", b"v", 0, None, [])


# -- input the database cannot hold ------------------------------------------------------------


# Random text does not compress, so 6,000 characters exceed what a btree index entry can hold.
TOO_LONG = secrets.token_urlsafe(4500)


@pytest.mark.parametrize("key", ["a\x00b", "\ud800", TOO_LONG], ids=["nul", "surrogate", "too-long"])
async def test_keys_postgres_cannot_store_are_typed_errors(cache: postgres.Cache, key: str) -> None:
    with pytest.raises(InvalidSessionError):
        await cache.set(key, b"v")
    with pytest.raises(InvalidSessionError):
        await cache.compare_and_set("fine", b"v", expected_version=0, ttl=60, indexes=[key])
    assert await cache.get_entry("fine") is None  # nothing half-written
    assert [k async for k in cache.scan_keys()] == []


def test_every_driver_exception_is_translated() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(pgx, inspect.isclass)
        if issubclass(cls, Exception) and not issubclass(cls, Warning)
    ]
    assert len(classes) > 200
    unavailable = (pgx.PostgresConnectionError, pgx.InvalidAuthorizationSpecificationError,
                   pgx.InsufficientResourcesError, pgx.OperatorInterventionError,
                   pgx.InvalidCatalogNameError, pgx.LockNotAvailableError)  # fmt: skip
    for cls in classes:
        error = translate(cls("boom"), operation="get", key="k", where="postgresql://h:5432/db", timeout=1)
        assert isinstance(error, SessionError), cls
        if issubclass(cls, unavailable):
            assert isinstance(error, StorageUnavailableError), cls
    for exc in (ConnectionRefusedError(111, "refused"), TimeoutError()):
        error = translate(exc, operation="get", key=None, where="w", timeout=1)
        assert isinstance(error, StorageUnavailableError)


# -- processes and pools -----------------------------------------------------------------------

INCREMENTER = """
import asyncio, sys
from serverless_sessions.adapters.cache.postgres import Cache
from serverless_sessions.errors import SessionConflictError

async def main(url, schema, count):
    async with Cache.from_url(url, namespace="procs", schema=schema) as cache:
        done = 0
        while done < count:
            entry = await cache.get_entry("counter")
            try:
                await cache.compare_and_set(
                    "counter", str(int(entry.value) + 1).encode(), expected_version=entry.version, ttl=None
                )
            except SessionConflictError:
                continue
            done += 1

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_three_processes_lose_no_compare_and_set_write(schema: str) -> None:
    async with postgres.Cache.from_url(SHARED_URL, namespace="procs", schema=schema) as cache:
        await cache.compare_and_set("counter", b"0", expected_version=0, ttl=None)
        children = [
            await asyncio.create_subprocess_exec(sys.executable, "-c", INCREMENTER, SHARED_URL, schema, "40")
            for _ in range(3)
        ]
        for child in children:
            assert await asyncio.wait_for(child.wait(), timeout=120) == 0
        entry = await cache.get_entry("counter")
    assert entry is not None and (entry.value, entry.version) == (b"120", 121)


async def test_many_callers_share_a_bounded_pool(schema: str) -> None:
    async with postgres.Cache.from_url(SHARED_URL, schema=schema, pool_size=3) as cache:
        await asyncio.gather(*(cache.set(f"k{i}", b"v") for i in range(100)))
        assert await asyncio.gather(*(cache.get(f"k{i}") for i in range(100))) == [b"v"] * 100
        health = await cache.health()
    assert health["available"] and health["pool"]["max"] == 3 and 1 <= health["pool"]["size"] <= 3
    assert health["rows_estimate"] >= 0 and health["server_version"].startswith("15")


async def test_statement_cache_can_be_off_for_transaction_poolers(schema: str) -> None:
    async with postgres.Cache.from_url(SHARED_URL, schema=schema, statement_cache_size=0) as cache:
        entry = await cache.compare_and_set("k", b"v", expected_version=0, ttl=60, indexes=["user:u"])
        assert await cache.get_entry("k") == entry
        assert await cache.index_members("user:u") == ["k"]


async def test_closed_cache_refuses_use(schema: str) -> None:
    cache = postgres.Cache.from_url(SHARED_URL, schema=schema)
    await cache.set("k", b"v")
    await cache.close()
    await cache.close()
    with pytest.raises(ClosedError, match="postgres"):
        await cache.get("k")


# -- TLS settings ------------------------------------------------------------------------------


async def test_tls_required_by_a_server_without_it_is_unavailable(schema: str) -> None:
    async with postgres.Cache.from_url(SHARED_URL, schema=schema, sslmode="require", timeout=3) as cache:
        with pytest.raises(StorageUnavailableError, match="ping"):
            await cache.ping()


async def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path, schema: str) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    url = f"{SHARED_URL}?sslmode=verify-full&sslrootcert={missing}"
    async with postgres.Cache.from_url(url, schema=schema) as cache:
        with pytest.raises(ConfigurationError, match=str(missing)):
            await cache.get("k")


# -- faults on private servers -----------------------------------------------------------------


async def test_wrong_password_is_unavailable_and_never_shown(server: PostgresServer) -> None:
    async with postgres.Cache.from_url(server.url("not-the-password"), timeout=3) as cache:
        with pytest.raises(StorageUnavailableError) as caught:
            await cache.ping()
        report = await cache.health()
    assert "InvalidPasswordError" in str(caught.value)
    for text in (str(caught.value), repr(caught.value.__cause__), str(report), repr(cache)):
        assert "not-the-password" not in text and server.password not in text
    assert report["available"] is False


async def test_a_stopped_server_is_unavailable_in_bounded_time_then_recovers(server: PostgresServer) -> None:
    async with postgres.Cache.from_url(server.url(), namespace="faults", timeout=2) as cache:
        await cache.compare_and_set("kept", b"before", expected_version=0, ttl=None, indexes=["user:u"])

        async def writer(n: int) -> list[BaseException]:
            errors: list[BaseException] = []
            for i in range(200):
                try:
                    await cache.set(f"w{n}", str(i).encode())
                except StorageError as exc:
                    errors.append(exc)
                    if len(errors) >= 3:
                        return errors
                await asyncio.sleep(0.005)
            return errors

        writers = [asyncio.create_task(writer(n)) for n in range(10)]
        await asyncio.sleep(0.2)
        await asyncio.to_thread(server.stop)  # mid-run: sessions are ended, new connections refused
        try:
            failures = await asyncio.wait_for(asyncio.gather(*writers), BOUND)
            assert all(failures), "every writer met the outage"
            assert all(isinstance(exc, StorageUnavailableError) for batch in failures for exc in batch), [
                repr(exc) for batch in failures for exc in batch
            ]
            for call in (cache.get_entry("kept"), cache.ping(), cache.purge_expired(), cache.set("x", b"x")):
                with pytest.raises(StorageUnavailableError):
                    await asyncio.wait_for(call, BOUND)
            assert (await asyncio.wait_for(cache.health(), BOUND))["available"] is False
        finally:
            await asyncio.to_thread(server.start)
        entry = await cache.get_entry("kept")  # the same cache: its pool reconnects
        assert entry is not None and entry.value == b"before"
        await cache.compare_and_set("kept", b"after", expected_version=1, ttl=None)
        assert await cache.index_members("user:u") == ["kept"]


async def test_a_server_restarted_between_calls_is_invisible(server: PostgresServer) -> None:
    async with postgres.Cache.from_url(server.url(), namespace="restart", timeout=2, pool_size=2) as cache:
        await asyncio.gather(*(cache.set(f"k{i}", b"v") for i in range(4)))  # pooled connections
        await asyncio.to_thread(server.stop, "immediate")
        await asyncio.to_thread(server.start)
        # The pool's connections died with the old server: the calls retry on fresh ones.
        assert await asyncio.gather(*(cache.get(f"k{i}") for i in range(4))) == [b"v"] * 4


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


async def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_port}/db?timeout=0.5&sslmode=disable"
    async with postgres.Cache.from_url(url) as cache:
        with pytest.raises(StorageUnavailableError, match=r"timed out after 0\.5s"):
            await asyncio.wait_for(cache.get("k"), BOUND)
        with pytest.raises(StorageUnavailableError):
            await asyncio.wait_for(cache.set("k", b"v"), BOUND)


# -- Reads issued together share one statement ---------------------------------------------------


class StatementCounting(postgres.Cache):
    """Counts the multi-key statements its reads and creates were sent as (which still run)."""

    shared: list[int]
    created: list[int]

    async def _read_many(self, window: Any, keys: Any) -> Any:
        self.shared.append(len(keys))
        return await super()._read_many(window, keys)

    async def _create_many(self, where: Any, creations: Any) -> Any:
        self.created.append(len(creations))
        return await super()._create_many(where, creations)


async def test_concurrent_reads_share_a_statement_and_each_gets_its_own_row(schema: str) -> None:
    async with StatementCounting.from_url(SHARED_URL, namespace="t", schema=schema) as cache:
        cache.shared = []
        for i in range(70):
            await cache.write_with_log(
                f"k{i}", f"v{i}".encode(), log=[f"m{i}-{j}".encode() for j in range(i % 3)],
                value_weight=2, expected_version=0, ttl=60,
            )  # fmt: skip
        keys = [f"k{i}" for i in range(70)] + ["missing", "k5", "k5"]
        found = await asyncio.gather(*(cache.get_with_log(key, last=1) for key in keys))
        assert sorted(cache.shared) == [8, 64]  # 73 readers, 64 per statement; a repeated key once
        alone = [await cache.get_with_log(key, last=1) for key in keys]  # one at a time
        assert found == alone and sorted(cache.shared) == [8, 64]  # a read alone: its own statement
        for key, got in zip(keys, found, strict=True):
            if key == "missing":
                assert got is None
                continue
            assert got is not None
            entry, window = got
            i = int(key[1:])
            assert entry.value == f"v{i}".encode() and window.length == i % 3
            assert window.items == ([f"m{i}-{i % 3 - 1}".encode()] if i % 3 else [])
        # Different windows are different statements; a cancelled reader leaves the others be.
        cache.shared = []
        pending = [asyncio.ensure_future(cache.get_with_log(f"k{i}", last=None)) for i in range(5)]
        other = asyncio.ensure_future(cache.get_with_log("k7", last=2))
        await asyncio.sleep(0)  # all six are waiting for the next turn of the loop
        pending[0].cancel()
        rest = await asyncio.gather(*pending[1:], other)
        assert [got[0].value for got in rest if got] == [b"v1", b"v2", b"v3", b"v4", b"v7"]
        assert rest[-1] is not None and rest[-1][1].items == [b"m7-0"]
        assert pending[0].cancelled() and cache.shared == [4]  # not k0, cancelled; nor k7, alone


async def test_concurrent_creates_share_a_statement_and_stay_compare_and_set(schema: str) -> None:
    async with StatementCounting.from_url(SHARED_URL, namespace="t", schema=schema) as cache:
        cache.created = []
        await cache.compare_and_set("taken", b"old", expected_version=0, ttl=60)
        await cache.compare_and_set("lapsed", b"old", expected_version=0, ttl=0.05, indexes=["user:z"])
        await asyncio.sleep(0.2)

        async def create(key: str, index: str, ttl: float | None) -> Entry | BaseException:
            try:
                return await cache.compare_and_set(
                    key, key.encode(), expected_version=0, ttl=ttl, indexes=[index, "all"], activity=7.0
                )
            except SessionConflictError as exc:
                return exc

        calls = [create(f"k{i:02d}", f"user:{i % 3}", 60 if i % 2 else None) for i in range(66)]
        calls += [create("taken", "user:t", 60), create("lapsed", "user:l", 60)]
        calls += [create("same", f"user:s{n}", 60) for n in range(4)]  # one of four wins
        results = await asyncio.gather(*calls)
        assert sorted(cache.created) == [5, 64]  # 72 callers: 64, then 8 with "same" once
        created = dict(zip([f"k{i:02d}" for i in range(66)], results[:66], strict=True))
        for key, entry in created.items():
            assert isinstance(entry, Entry) and entry.version == 1, (key, entry)
            assert (entry.expires_at is None) == (int(key[1:]) % 2 == 0)
            stored = await cache.get_entry(key)
            assert stored is not None and stored.value == key.encode() and stored.version == 1
        assert isinstance(results[66], SessionConflictError)  # a live key is never overwritten
        assert isinstance(results[67], Entry) and results[67].version == 1  # an expired one starts over
        assert await cache.index_members("user:z") == []  # with its old memberships gone
        assert await cache.index_members("user:l") == ["lapsed"]
        same = results[68:]
        assert (
            sum(isinstance(r, Entry) for r in same) == 1
            and sum(isinstance(r, SessionConflictError) for r in same) == 3
        )
        assert await cache.index_members("user:1") == [f"k{i:02d}" for i in range(66) if i % 3 == 1]
        assert len(await cache.index_members("all")) == 66 + 2
        assert [key for key, _ in await cache.recent("user:2", limit=3)] == ["k65", "k62", "k59"]


async def test_a_create_cancelled_before_its_statement_left_is_not_made(cache: postgres.Cache) -> None:
    calls = [
        asyncio.ensure_future(cache.compare_and_set(key, b"v", expected_version=0, ttl=60))
        for key in ("a", "b", "c")
    ]
    await asyncio.sleep(0)  # all three wait for the next turn of the loop
    calls[1].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [await cache.exists(key) for key in ("a", "b", "c")] == [True, False, True]


async def test_a_refused_create_fails_only_its_own_write(cache: postgres.Cache) -> None:
    results = await asyncio.gather(
        cache.compare_and_set("good", b"v", expected_version=0, ttl=60, indexes=["user:a"]),
        cache.compare_and_set("bad", b"v", expected_version=0, ttl=60, indexes=["user:\x00"]),
        cache.compare_and_set("fine", b"v", expected_version=0, ttl=60),
        return_exceptions=True,
    )
    assert isinstance(results[1], InvalidSessionError) and "'bad'" in str(results[1])
    assert [type(r) for r in (results[0], results[2])] == [Entry, Entry]
    assert await cache.get_entry("bad") is None and await cache.index_members("user:a") == ["good"]


async def test_a_refused_key_fails_only_its_own_read(cache: postgres.Cache) -> None:
    await cache.set("fine", b"v")
    results = await asyncio.gather(
        cache.get_with_log("fine"), cache.get_with_log("a\x00b"), cache.get_with_log("fine"),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[1], InvalidSessionError) and "a\\x00b" in str(results[1])
    for result in (results[0], results[2]):
        assert isinstance(result, tuple) and result[0].value == b"v"


async def test_a_shared_statement_failing_tells_each_caller_about_its_own_key(server: PostgresServer) -> None:
    async with postgres.Cache.from_url(server.url(), namespace="shared", timeout=2) as cache:
        await cache.set("warm", b"v")  # the pool and the schema exist
        await asyncio.to_thread(server.stop)
        try:
            errors = await asyncio.wait_for(
                asyncio.gather(*(cache.get_with_log(f"key{i}") for i in range(4)), return_exceptions=True),
                BOUND,
            )
            creates = await asyncio.wait_for(
                asyncio.gather(
                    *(cache.compare_and_set(f"key{i}", b"v", expected_version=0, ttl=60) for i in range(4)),
                    return_exceptions=True,
                ),
                BOUND,
            )
        finally:
            await asyncio.to_thread(server.start)
        for failures in (errors, creates):
            assert all(isinstance(exc, StorageUnavailableError) for exc in failures), failures
            assert [f"'key{i}'" in str(exc) for i, exc in enumerate(failures)] == [True] * 4
            assert len({id(exc) for exc in failures}) == 4  # objects of their own: tracebacks apart
        assert await cache.get_with_log("warm") is not None  # and it recovers
