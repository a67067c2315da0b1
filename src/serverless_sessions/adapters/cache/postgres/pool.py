"""The driver side of the PostgreSQL adapter: an asyncpg pool, the schema check, and the boundary.

This module imports asyncpg; :mod:`.cache` imports it only when a cache is built, so importing
the package costs nothing for who never uses PostgreSQL.

* **Lazy pool.** The pool is made on the first call and opens connections on demand (none is
  kept warm), so building a cache cannot fail on I/O and a serverless instance holds only the
  connections it used.
* **Schema on first use.** The first call of each cache checks ``schema_migrations`` with a
  plain read; only a missing or older schema takes a transaction-scoped advisory lock (one
  migrator per schema, across processes) and applies the missing migrations.
* **One deadline per call.** ``timeout`` bounds the whole call: waiting for a pooled connection,
  connecting, the statement and the one retry. asyncpg cancels a statement cut short on the
  server too.
* **No reset on release.** The adapter never changes session state (no ``SET``, ``LISTEN``,
  cursors or session-level locks), so the driver's reset query would be one wasted round trip
  per call; asyncpg still rolls back a transaction left open by a cancelled caller.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from serverless_sessions.adapters.cache.postgres.config import PostgresSettings
from serverless_sessions.adapters.cache.postgres.errors import BACKEND_ERRORS, STALE_CONNECTION, translate
from serverless_sessions.adapters.cache.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from serverless_sessions.adapters.cache.postgres.statements import Statements
from serverless_sessions.errors import ClosedError, ConfigurationError, SessionError

__all__ = ["Database"]

T = TypeVar("T")
Query = Callable[[Any], Awaitable[T]]
"""A function of one asyncpg connection: the unit the boundary runs, retries and translates."""


async def _keep_session(connection: Any) -> None:
    """The pool's reset hook: nothing to reset (see the module docstring)."""


async def _round_trip(connection: Any) -> float:
    started = time.perf_counter()
    await connection.fetchval("SELECT 1")
    return time.perf_counter() - started


def _lock_key(schema: str) -> int:
    """A signed 64-bit advisory-lock key for migrating ``schema``."""
    digest = hashlib.blake2b(f"serverless-sessions:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _stored_version(connection: Any, sql: Statements) -> int:
    if not await connection.fetchval(sql.migrations_exist, sql.schema):
        return 0
    return int(await connection.fetchval(sql.schema_version))


async def ensure_schema(connection: Any, sql: Statements, where: str) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; refuse one written by a newer library."""
    version = await _stored_version(connection, sql)
    if version < SCHEMA_VERSION:
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(sql.schema))
            version = await _stored_version(connection, sql)  # another process may have done it
            if version == 0:
                # Only now: CREATE SCHEMA needs a privilege a user of an existing schema may lack.
                if not await connection.fetchval(sql.schema_exists, sql.schema):
                    await connection.execute(sql.create_schema)
                if not await connection.fetchval(sql.migrations_exist, sql.schema):
                    await connection.execute(sql.create_migrations)
            for migration in MIGRATIONS:
                if migration.version > version:
                    for statement in sql.migration(migration):
                        await connection.execute(statement)
                    await connection.execute(sql.record_migration, migration.version, migration.description)
                    version = migration.version
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"postgres schema {sql.schema!r} at {where} has schema version {version}; this version "
            f"of serverless-sessions reads schema version {SCHEMA_VERSION} (upgrade the library)"
        )
    return version


class Database:
    """One lazily created asyncpg pool, the schema check, and the error boundary of every call."""

    def __init__(self, settings: PostgresSettings, sql: Statements) -> None:
        self.settings = settings
        self._sql = sql
        self._pool: Any = None
        self._ready = False
        self._closed = False
        self._lock = asyncio.Lock()
        self.schema_version: int | None = None

    async def _ssl(self) -> ssl.SSLContext | str:
        """The driver's ``ssl`` argument; ``verify-*`` modes get a context of our own.

        Ours trusts ``sslrootcert`` or, without one, the system's trust store (managed services
        present publicly trusted certificates), where the driver would demand a file.
        """
        mode = self.settings.sslmode
        if not mode.startswith("verify-"):
            return mode
        cafile = self.settings.sslrootcert
        try:
            context = await asyncio.to_thread(ssl.create_default_context, cafile=cafile)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"postgres sslrootcert {cafile!r} cannot be loaded: {exc}") from exc
        context.check_hostname = mode == "verify-full"
        return context

    async def _open(self) -> Any:
        """The pool, made and the schema checked by the first call (one at a time)."""
        if self._ready:
            return self._pool
        async with self._lock:
            if self._closed:  # a call that was running when the cache closed may not reopen it
                raise ClosedError("postgres.Cache")
            s = self.settings
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    host=s.host,
                    port=s.port,
                    user=s.user,
                    password=None if s.password is None else s.password.get_secret_value(),
                    database=s.database,
                    ssl=await self._ssl(),
                    timeout=s.timeout,
                    statement_cache_size=s.statement_cache_size,
                    server_settings={"application_name": "serverless-sessions"},
                    min_size=0,
                    max_size=s.pool_size,
                    reset=_keep_session,
                )
            if not self._ready:
                async with self._pool.acquire() as connection:
                    self.schema_version = await ensure_schema(connection, self._sql, s.describe())
                self._ready = True
        return self._pool

    async def _once(self, query: Query[T]) -> T:
        pool = await self._open()
        async with pool.acquire() as connection:
            return await query(connection)

    async def run(self, operation: str, key: str | None, query: Query[T]) -> T:
        """``query`` on a pooled connection within ``timeout``; asyncpg errors translated here.

        A connection the server had already dropped means the others in the pool are likely
        dead too (a restart, a failover, a frozen serverless instance): they are all replaced
        and the query is tried once more. A write retried this way after its first attempt
        committed, but lost its reply, reports a conflict for its own write; callers re-read,
        as after any conflict.
        """
        try:
            async with asyncio.timeout(self.settings.timeout):
                try:
                    return await self._once(query)
                except STALE_CONNECTION:
                    if self._pool is not None:
                        await self._pool.expire_connections()
                    return await self._once(query)
        except BACKEND_ERRORS as exc:
            raise self.error(exc, operation, key) from exc

    def error(self, exc: BaseException, operation: str, key: str | None) -> SessionError:
        """The library error for the driver's ``exc`` in ``operation`` of ``key`` (caused by it)."""
        where, timeout = self.settings.describe(), self.settings.timeout
        translated = translate(exc, operation=operation, key=key, where=where, timeout=timeout)
        translated.__cause__ = exc
        return translated

    async def ping(self) -> float:
        """Seconds for one ``SELECT 1`` round trip on a pooled connection (connecting not timed)."""
        return await self.run("ping", None, _round_trip)

    async def server_stats(self) -> tuple[str, int]:
        """The server's ``major.minor`` version and the planner's estimate of stored entries."""
        return await self.run("health", None, self._server_stats)

    async def _server_stats(self, connection: Any) -> tuple[str, int]:
        version = connection.get_server_version()
        rows = await connection.fetchval(self._sql.row_estimate)
        return f"{version.major}.{version.minor}", int(rows or 0)

    def pool_stats(self) -> dict[str, int]:
        """Open, idle and maximum connections of the pool (zeros before the first call)."""
        pool = self._pool
        if pool is None:
            return {"size": 0, "idle": 0, "max": self.settings.pool_size}
        return {"size": pool.get_size(), "idle": pool.get_idle_size(), "max": pool.get_max_size()}

    async def close(self) -> None:
        """Close the pool once running calls release their connections, within ``timeout``.

        Connections still busy after that (a server that stopped answering) are cut off, so
        closing never hangs.
        """
        async with self._lock:
            pool, self._pool, self._ready, self._closed = self._pool, None, False, True
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.settings.timeout)
        except BACKEND_ERRORS:
            pool.terminate()
