"""PostgreSQL cache: sessions in one schema of a (managed) PostgreSQL database, over asyncpg.

Why it is built this way:

* **One statement per call.** Reads are single ``SELECT`` statements; writes call the schema's
  PL/pgSQL functions (:mod:`.schema`), which lock the row, compare the version and write the row
  with its index memberships in one transaction — one round trip, atomic across every process
  sharing the database.
* **The server's clock.** Expiries are absolute UNIX seconds computed and compared by the
  server, so many clients with drifting clocks agree on what has expired. Every read filters
  expired rows; a write to an expired key starts it afresh; :meth:`Cache.purge_expired` deletes
  them through the expiry index.
* **Lazy everything.** Building a cache imports asyncpg (a missing driver is a
  :class:`~serverless_sessions.errors.MissingDependencyError` naming the ``postgres`` extra)
  and touches no network; the pool and the schema come with the first call (:mod:`.pool`).

Every asyncpg exception is translated at this boundary (:mod:`.errors`) with the operation, the
key and a password-free address.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Self

from serverless_sessions.adapters.cache.base import (
    KEEP_TTL,
    CacheBase,
    Entry,
    IndexedCache,
    PingableCache,
    ScannableCache,
    TTLArg,
    check_same_indexes,
)
from serverless_sessions.adapters.cache.postgres.config import PostgresSettings, parse_url
from serverless_sessions.adapters.cache.postgres.schema import Statements
from serverless_sessions.errors import (
    ConfigurationError,
    MissingDependencyError,
    SessionConflictError,
    StorageError,
)
from serverless_sessions.ttl import ttl_seconds

if TYPE_CHECKING:
    from serverless_sessions.adapters.cache.postgres.pool import Database

__all__ = ["Cache"]


def _database(settings: PostgresSettings, sql: Statements) -> Database:
    with MissingDependencyError.on_import(feature="the postgres cache", extra="postgres"):
        from serverless_sessions.adapters.cache.postgres.pool import Database
    return Database(settings, sql)


async def _round_trip(connection: Any) -> float:
    started = time.perf_counter()
    await connection.fetchval("SELECT 1")
    return time.perf_counter() - started


def _entry(value: bytes, version: int, expires_at: float | None) -> Entry:
    return Entry(bytes(value), int(version), expires_at)


class Cache(CacheBase, IndexedCache, ScannableCache, PingableCache):
    """Sessions' bytes in PostgreSQL tables, listed by index tables, purged by an expiry index."""

    backend = "postgres"

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: PostgresSettings | None = None,
        namespace: str | None = None,
        **overrides: object,
    ) -> None:
        """Give exactly one of ``url`` or ``settings``; ``overrides`` replace single settings."""
        super().__init__(namespace=namespace)
        if url is not None and settings is None:
            settings = parse_url(url, **overrides)
        elif settings is not None and url is None:
            settings = settings.with_overrides(**overrides)
        else:
            raise ConfigurationError("postgres.Cache needs exactly one of url= or settings=")
        self.settings = settings
        self._sql = Statements(self.settings.schema)
        self._db = _database(self.settings, self._sql)

    @classmethod
    def from_url(cls, url: str, *, namespace: str | None = None, **overrides: object) -> Self:
        """A cache for ``postgresql://[user[:password]@]host[:port]/db[?query]`` (see :mod:`.config`)."""
        return cls(settings=parse_url(url, **overrides), namespace=namespace)

    def __repr__(self) -> str:
        return f"postgres.Cache({self.settings.describe()!r}, namespace={self.namespace!r})"

    async def close(self) -> None:
        """Close the pool once running calls finish; later calls raise ClosedError."""
        if self.closed:
            return
        await super().close()
        await self._db.close()

    # -- CacheBase -----------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        """The bytes at ``key``, or ``default`` if missing or expired (one indexed read)."""
        entry = await self.get_entry(key, namespace=namespace)
        return default if entry is None else entry.value

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        """Store ``value`` atomically; a live key's version grows by one and keeps its indexes."""
        await self._write("set", key, bytes(value), None, ttl_seconds(ttl), False, (), namespace)

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete ``key`` and its index memberships in one statement; ``False`` if not live."""
        outcome, _ = await self._delete("delete", key, None, namespace)
        return bool(outcome == "deleted")

    async def exists(self, key: str, namespace: str | None = None) -> bool:
        """Whether ``key`` holds a live value; an expired row counts as absent."""
        self._check_open()
        ns = self._namespace(namespace)
        found = await self._db.run("exists", key, lambda c: c.fetchval(self._sql.exists, ns, key))
        return bool(found)

    # -- AtomicCache ---------------------------------------------------------------------------

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        """The live entry at ``key`` with its version and expiry, or ``None``."""
        self._check_open()
        ns = self._namespace(namespace)
        row = await self._db.run("get_entry", key, lambda c: c.fetchrow(self._sql.get_entry, ns, key))
        return None if row is None else _entry(row[0], row[1], row[2])

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        """Live entries for ``keys`` in order, from one statement (one snapshot, one round trip)."""
        self._check_open()
        ns = self._namespace(namespace)
        wanted = list(keys)
        target = wanted[0] if len(wanted) == 1 else None
        rows = await self._db.run("get_entries", target, lambda c: c.fetch(self._sql.get_entries, ns, wanted))
        found = {row[0]: _entry(row[1], row[2], row[3]) for row in rows}
        return [found.get(key) for key in wanted]

    async def compare_and_set(
        self,
        key: str,
        value: bytes,
        *,
        expected_version: int,
        ttl: TTLArg,
        indexes: Sequence[str] = (),
        namespace: str | None = None,
    ) -> Entry:
        """Write if the live version is ``expected_version``, atomically across processes.

        The version check, the row and its index memberships are one statement on the server;
        on a mismatch nothing is written and SessionConflictError is raised.
        """
        data = bytes(value)
        keep = ttl is KEEP_TTL
        seconds = None if ttl is KEEP_TTL else ttl_seconds(ttl)
        wanted = tuple(dict.fromkeys(indexes))
        outcome, version, expires_at, stored = await self._write(
            "compare_and_set", key, data, expected_version, seconds, keep, wanted, namespace
        )
        if outcome != "ok":
            check_same_indexes(key, stored or (), wanted, expected=expected_version, actual=version)
            raise SessionConflictError(key, expected_version, version)
        return _entry(data, version, expires_at)

    async def _write(
        self,
        operation: str,
        key: str,
        value: bytes,
        expected: int | None,
        ttl: float | None,
        keep_ttl: bool,
        indexes: tuple[str, ...],
        namespace: str | None,
    ) -> Any:
        """``(outcome, version, expires_at, stored indexes)`` of one ``write_entry`` call."""
        self._check_open()
        args = (self._namespace(namespace), key, value, expected, ttl, keep_ttl, list(indexes))
        return await self._db.run(operation, key, lambda c: c.fetchrow(self._sql.write, *args))

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        """Delete ``key`` and its index memberships if ``expected_version`` matches (``None``: any)."""
        outcome, version = await self._delete("compare_and_delete", key, expected_version, namespace)
        if outcome == "conflict" and expected_version is not None:
            raise SessionConflictError(key, expected_version, version)
        return bool(outcome == "deleted")

    async def _delete(self, operation: str, key: str, expected: int | None, namespace: str | None) -> Any:
        """``(outcome, version)`` of one ``delete_entry`` call: deleted, absent or conflict."""
        self._check_open()
        ns = self._namespace(namespace)
        return await self._db.run(operation, key, lambda c: c.fetchrow(self._sql.delete, ns, key, expected))

    # -- IndexedCache --------------------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        """Live keys of ``index``, sorted: a range read of the membership table's primary key."""
        self._check_open()
        ns = self._namespace(namespace)
        sql = self._sql.index_members
        rows = await self._db.run("index_members", index, lambda c: c.fetch(sql, ns, index))
        return [row[0] for row in rows]

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        """Delete up to ``limit`` expired keys of the namespace, oldest expiry first.

        One statement driven by the expiry index: cost grows with the expired rows only. Their
        memberships go in the same statement; rows locked by a writer are left to it.
        """
        self._check_open()
        ns = self._namespace(namespace)
        bound = None if limit is None else max(limit, 0)
        rows = await self._db.run("purge_expired", None, lambda c: c.fetch(self._sql.purge, ns, bound))
        return [row[0] for row in rows]

    # -- ScannableCache / PingableCache --------------------------------------------------------

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        """Yield live keys in key order, one ``batch_size`` page per statement.

        Pages resume after the last key seen (keyset pagination on the primary key), so keys
        written or deleted during the scan neither repeat nor shift later pages.
        """
        self._check_open()
        ns = self._namespace(namespace)
        size = max(batch_size, 1)
        after: str | None = None
        while True:
            self._check_open()
            page = await self._page(ns, after, size)
            for key in page:
                yield key
            if len(page) < size:
                return
            after = page[-1]

    async def _page(self, ns: str, after: str | None, size: int) -> list[str]:
        if after is None:
            first = self._sql.first_page
            rows = await self._db.run("scan_keys", None, lambda c: c.fetch(first, ns, size))
        else:
            rest = self._sql.next_page
            rows = await self._db.run("scan_keys", after, lambda c: c.fetch(rest, ns, after, size))
        return [row[0] for row in rows]

    async def ping(self) -> float:
        """Seconds for one ``SELECT 1`` round trip on a pooled connection.

        The first call also connects and checks the schema (not timed); an unreachable server
        raises StorageUnavailableError within ``timeout``.
        """
        self._check_open()
        return await self._db.run("ping", None, _round_trip)

    async def health(self) -> dict[str, Any]:
        """Backend, address, availability, latency, server and schema versions, rows, pool.

        A storage failure is reported as ``available: False`` with the error, not raised.
        """
        self._check_open()
        report: dict[str, Any] = {"backend": self.backend, "address": self.settings.describe()}
        try:
            latency = await self.ping()
            server, rows = await self._db.run("health", None, self._server_stats)
        except StorageError as exc:
            return {**report, "available": False, "error": str(exc)}
        return {
            **report,
            "available": True,
            "latency_ms": round(latency * 1000.0, 3),
            "server_version": server,
            "schema": self.settings.schema,
            "schema_version": self._db.schema_version,
            "rows_estimate": rows,
            "pool": self._db.pool_stats(),
        }

    async def _server_stats(self, connection: Any) -> tuple[str, int]:
        version = connection.get_server_version()
        rows = await connection.fetchval(self._sql.row_estimate)
        return f"{version.major}.{version.minor}", int(rows or 0)
