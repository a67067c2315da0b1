"""PostgreSQL cache: sessions in one schema of a (managed) PostgreSQL database, over asyncpg.

Why it is built this way:

* **One statement per call.** Reads are single ``SELECT`` statements (one snapshot); a write
  is one call of the schema's ``write_entry`` function (:mod:`.schema`), appends and deletes
  are single data-modifying statements (:mod:`.statements`). Each locks the key's row, decides,
  and writes the row with its index memberships and log items — one round trip, one
  transaction, atomic across every process sharing the database. Creating a key and updating
  a live one are tried first as plain statements, cheaper than the function; whatever they
  do not cover (a conflict, an expired key, a log, a limit) takes a second round trip to it.
  Concurrent appends to one key queue on its row lock inside the server: each lands after the
  previous one, none retries.
* **Concurrent calls share a statement.** Log reads, and creates, issued in one turn of the
  event loop go out as one statement (:mod:`.coalesce`): asyncpg's cost is per statement, not
  per row. Each caller still gets its own row, conflict or error.
* **Logs by position.** A key's log is rows of ``log_items`` keyed by position, with its length
  and weight kept on the key's row: an append inserts its items only, and a read of the last
  items is a range read of the primary key — both cost the same at item 10 as at item 10,000.
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

import copy
import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Self

from serverless_sessions.adapters.cache.base import (
    KEEP_TTL,
    AppendableCache,
    Appended,
    CacheBase,
    Entry,
    LogSlice,
    PingableCache,
    RecentCache,
    ScannableCache,
    TTLArg,
    check_same_indexes,
)
from serverless_sessions.adapters.cache.postgres.coalesce import Coalescer
from serverless_sessions.adapters.cache.postgres.config import PostgresSettings, parse_url
from serverless_sessions.adapters.cache.postgres.statements import Statements
from serverless_sessions.errors import (
    ConfigurationError,
    InvalidSessionError,
    MissingDependencyError,
    SessionConflictError,
    SessionError,
    SessionNotFoundError,
    SessionTooLargeError,
    StorageError,
)
from serverless_sessions.ttl import ttl_seconds

if TYPE_CHECKING:
    from serverless_sessions.adapters.cache.postgres.pool import Database

__all__ = ["Cache"]

_LogWindow = tuple[str, str, int | None, int | None]
"""What log reads sharing a statement share: operation, namespace, ``last``, ``before``."""
_Creation = tuple[bytes, float | None, bool, list[str], int, float | None]
"""What a create writes besides its key: value, seconds, keep, indexes, value weight, activity."""


def _database(settings: PostgresSettings, sql: Statements) -> Database:
    with MissingDependencyError.on_import(feature="the postgres cache", extra="postgres"):
        from serverless_sessions.adapters.cache.postgres.pool import Database
    return Database(settings, sql)


def _ttl_arguments(ttl: TTLArg) -> tuple[float | None, bool]:
    """The statements' ``(seconds, keep the live expiry)`` for a caller's TTL."""
    if ttl is KEEP_TTL:
        return None, True
    return ttl_seconds(ttl), False


class Cache(CacheBase, RecentCache, AppendableCache, ScannableCache, PingableCache):
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
        self._reads: Coalescer[_LogWindow, None, Sequence[Any]] = Coalescer(
            self._read_one, self._read_many, self._failed, refused=InvalidSessionError, repeats_share=True
        )
        self._creates: Coalescer[tuple[str, str], _Creation, Sequence[Any]] = Coalescer(
            self._create_one,
            self._create_many,
            self._failed,
            refused=InvalidSessionError,
            repeats_share=False,
        )

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
        """Store ``value`` atomically; a live key's version grows by one and keeps its indexes and log."""
        await self._write("set", key, value, None, ttl, (), namespace, value_weight=len(value))

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete ``key``, its index memberships and its log in one statement; ``False`` if not live."""
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
        return None if row is None else Entry(*row)

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        """Live entries for ``keys`` in order, from one statement (one snapshot, one round trip)."""
        self._check_open()
        ns = self._namespace(namespace)
        wanted = list(keys)
        target = wanted[0] if len(wanted) == 1 else None
        rows = await self._db.run("get_entries", target, lambda c: c.fetch(self._sql.get_entries, ns, wanted))
        found = {row[0]: Entry(*row[1:]) for row in rows}
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
        activity: float | None = None,
    ) -> Entry:
        """Write if the live version is ``expected_version``, atomically across processes.

        :meth:`write_with_log` keeping the log, the value weighing its length. On a mismatch
        nothing is written and SessionConflictError is raised.
        """
        return await self._write(
            "compare_and_set",
            key,
            value,
            expected_version,
            ttl,
            indexes,
            namespace,
            value_weight=len(value),
            activity=activity,
        )

    async def _write(
        self,
        operation: str,
        key: str,
        value: bytes,
        expected: int | None,
        ttl: TTLArg,
        indexes: Sequence[str],
        namespace: str | None,
        *,
        value_weight: int,
        log: Sequence[bytes] | None = None,
        log_weight: int = 0,
        limit: int | None = None,
        activity: float | None = None,
    ) -> Entry:
        """One ``write_entry`` call; ``expected=None`` (``set``) writes whatever the version."""
        self._check_open()
        data = bytes(value)
        seconds, keep = _ttl_arguments(ttl)
        wanted = list(dict.fromkeys(indexes))
        items = None if log is None else [bytes(item) for item in log]
        ns = self._namespace(namespace)
        head = (ns, key, data, expected, seconds, keep, wanted, value_weight)
        if items is None and limit is None and expected is not None:
            quick = await self._quick_write(operation, key, (*head, activity))
            if quick is not None:
                return Entry(data, *quick)
        args = (*head, items, log_weight, limit, activity)
        row = await self._db.run(operation, key, lambda c: c.fetchrow(self._sql.write, *args))
        outcome, version, expires_at, stored, total = row
        if outcome == "too_large":
            raise SessionTooLargeError(key, total, limit or 0)
        if outcome != "ok" and expected is not None:  # set (no expected version) never conflicts
            if outcome == "indexes":
                check_same_indexes(key, stored, wanted, expected=expected, actual=version)
            raise SessionConflictError(key, expected, version)
        return Entry(data, version, expires_at)

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        """Delete ``key``, its memberships and its log if ``expected_version`` matches (``None``: any)."""
        outcome, version = await self._delete("compare_and_delete", key, expected_version, namespace)
        if outcome == "conflict" and expected_version is not None:
            raise SessionConflictError(key, expected_version, version)
        return bool(outcome == "deleted")

    async def _delete(self, operation: str, key: str, expected: int | None, namespace: str | None) -> Any:
        """``(outcome, version)`` of one ``delete_entry`` call: deleted, absent or conflict."""
        self._check_open()
        ns = self._namespace(namespace)
        return await self._db.run(operation, key, lambda c: c.fetchrow(self._sql.delete, ns, key, expected))

    # -- AppendableCache -----------------------------------------------------------------------

    async def _quick_write(self, operation: str, key: str, args: tuple[Any, ...]) -> Any:
        """``(version, expires_at)`` of a create or an update done by a plain statement, or ``None``.

        ``args`` are ``write_entry``'s first eight and the activity; ``None`` means the case was
        not the common one (see :mod:`.statements`) and nothing was written.
        """
        ns, key, data, expected, seconds, keep, wanted, value_weight, activity = args
        if expected == 0:
            creation = (data, seconds, keep, wanted, value_weight, activity)
            return await self._creates.run((operation, ns), key, creation)
        sql = self._sql.update
        return await self._db.run(operation, key, lambda c: c.fetchrow(sql, *args))

    async def _create_one(
        self, where: tuple[str, str], key: str, creation: _Creation
    ) -> Sequence[Any] | None:
        (operation, ns), sql = where, self._sql.create
        row: Sequence[Any] | None = await self._db.run(
            operation, key, lambda c: c.fetchrow(sql, ns, key, *creation)
        )
        return row

    async def _create_many(
        self, where: tuple[str, str], creations: dict[str, _Creation]
    ) -> dict[str, Sequence[Any]]:
        """Several creates in one statement; a key it did not create (it exists) is left out."""
        (operation, ns), sql = where, self._sql.create_many
        columns: list[list[Any]] = [list(creations), *map(list, zip(*creations.values(), strict=True))]
        columns[4] = [json.dumps(indexes) for indexes in columns[4]]
        rows = await self._db.run(operation, None, lambda c: c.fetch(sql, ns, *columns))
        return {key: (1, expires_at) for key, expires_at in rows}

    async def write_with_log(
        self,
        key: str,
        value: bytes,
        *,
        log: Sequence[bytes] | None,
        value_weight: int,
        log_weight: int = 0,
        limit: int | None = None,
        expected_version: int,
        ttl: TTLArg,
        indexes: Sequence[str] = (),
        namespace: str | None = None,
        activity: float | None = None,
    ) -> Entry:
        """Compare-and-set of the value that also replaces the log (``log=None`` keeps it).

        One statement: the version and weight checks, the row, its memberships and the log's
        items. A replaced log is rewritten in place: items that did not change are not written.
        """
        return await self._write(
            "write_with_log",
            key,
            value,
            expected_version,
            ttl,
            indexes,
            namespace,
            value_weight=value_weight,
            log=log,
            log_weight=log_weight,
            limit=limit,
            activity=activity,
        )

    async def append(
        self,
        key: str,
        items: Sequence[bytes],
        *,
        weight: int,
        limit: int | None = None,
        expected_length: int | None = None,
        ttl: TTLArg,
        touched_at: float,
        namespace: str | None = None,
    ) -> Appended:
        """Append ``items`` after the log's last item in one statement (see :mod:`.statements`).

        Concurrent appends queue on the key's row lock in the server; each lands whole after the
        previous one. Refusals (missing key, other length, past ``limit``) write nothing.
        """
        self._check_open()
        seconds, keep = _ttl_arguments(ttl)
        ns, added = self._namespace(namespace), [bytes(item) for item in items]
        args = (ns, key, added, weight, expected_length, limit, seconds, keep, touched_at)
        row = await self._db.run("append", key, lambda c: c.fetchrow(self._sql.append, *args))
        if row is None:
            raise SessionNotFoundError(key)
        version, length, total, new_version, new_length, expires_at = row
        if new_version is not None:
            return Appended(new_version, new_length, expires_at)
        if expected_length is not None and expected_length != length:
            found = f"{key!r}: expected {expected_length} log items, found {length}"
            raise SessionConflictError(key, version, version, message=found)
        raise SessionTooLargeError(key, total, limit or 0)

    async def get_with_log(
        self,
        key: str,
        *,
        last: int | None = None,
        before: int | None = None,
        namespace: str | None = None,
    ) -> tuple[Entry, LogSlice] | None:
        """The live entry and a window of its log from one statement (one snapshot).

        The items are a range read of the log's primary key: cost O(items returned). Reads
        issued together share one statement (:mod:`.coalesce`).
        """
        self._check_open()
        row = await self._reads.run(("get_with_log", self._namespace(namespace), last, before), key, None)
        if row is None:
            return None
        value, version, expires_at, touched_at, length, weight, start, items = row
        return Entry(value, version, expires_at, touched_at, weight), LogSlice(items, start, length, weight)

    async def _read_one(self, window: _LogWindow, key: str, payload: None) -> Sequence[Any] | None:
        _, ns, last, before = window
        sql = self._sql.get_with_log
        row: Sequence[Any] | None = await self._db.run(
            "get_with_log", key, lambda c: c.fetchrow(sql, ns, key, last, before)
        )
        return row

    async def _read_many(self, window: _LogWindow, keys: dict[str, None]) -> dict[str, Sequence[Any]]:
        _, ns, last, before = window
        sql, wanted = self._sql.get_many_with_log, list(keys)
        rows = await self._db.run("get_with_log", None, lambda c: c.fetch(sql, ns, wanted, last, before))
        return {row[0]: tuple(row)[1:] for row in rows}

    def _failed(self, error: Exception, group: tuple[Any, ...], key: str) -> Exception:
        """The error of a shared statement as the call on ``key`` alone would have raised it.

        Every group starts with the operation's name.
        """
        cause = error.__cause__
        if isinstance(error, SessionError) and cause is not None:
            return self._db.error(cause, group[0], key)
        return copy.copy(error)

    # -- IndexedCache --------------------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        """Live keys of ``index``, sorted: a range read of the membership table's primary key."""
        self._check_open()
        ns = self._namespace(namespace)
        sql = self._sql.index_members
        rows = await self._db.run("index_members", index, lambda c: c.fetch(sql, ns, index))
        return [row[0] for row in rows]

    async def recent(
        self,
        index: str | None,
        *,
        limit: int,
        before: tuple[float, str] | None = None,
        namespace: str | None = None,
    ) -> list[tuple[str, float]] | None:
        """A page of keys, newest activity first: a backwards range read of an activity index."""
        self._check_open()
        ns = self._namespace(namespace)
        bound, after = before if before is not None else (float("inf"), "")
        if index is None:
            check, page = self._sql.unordered_entry, self._sql.recent_entries
            scope: tuple[str, ...] = (ns,)
        else:
            check, page, scope = self._sql.unordered_member, self._sql.recent_members, (ns, index)

        async def read(connection: Any) -> list[tuple[str, float]] | None:
            if await connection.fetchval(check, *scope):
                return None
            rows = await connection.fetch(page, *scope, bound, after, limit)
            return [(row[0], row[1]) for row in rows]

        return await self._db.run("recent", index, read)

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        """Delete up to ``limit`` expired keys of the namespace, oldest expiry first.

        One statement driven by the expiry index: cost grows with the expired rows only. Their
        memberships and log items go in the same statement; rows locked by a writer are left to
        it.
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
        return await self._db.ping()

    async def health(self) -> dict[str, Any]:
        """Backend, address, availability, latency, server and schema versions, rows, pool.

        A storage failure is reported as ``available: False`` with the error, not raised.
        """
        self._check_open()
        report: dict[str, Any] = {"backend": self.backend, "address": self.settings.describe()}
        try:
            latency = await self.ping()
            server, rows = await self._db.server_stats()
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
