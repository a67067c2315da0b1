"""SQLite cache: the embedded default backend — one file, shared by several processes, no server.

Why it is built this way:

* **One worker thread per adapter.** Each call is one synchronous function (see
  :mod:`.store`) run on a single-thread executor that owns the connection. File I/O and
  lock waits never block the event loop; calls from concurrent tasks queue in order on the one
  connection; and because a whole transaction is one function, a cancelled caller can never
  leave a transaction open (at worst its result is discarded after it committed).
* **Concurrent writes commit together.** Writes issued while the loop runs other tasks go to
  the worker as one job: one transaction, each write in its own savepoint (a write that fails
  undoes only itself and gets its own error), one commit. A commit costs far more than a row,
  so many writes in flight (``store_sessions``, a busy server) cost a fraction of as many
  transactions; a write alone still runs in a transaction of its own.
* **``BEGIN IMMEDIATE`` for every write.** The write lock is taken before the version is read,
  so compare-and-set, appends, deletes, purges and index updates are atomic across processes
  sharing the file, not only across tasks.
* **A log as rows.** A session's messages are rows keyed by position next to its entry row,
  which holds the log's length and weight: an append inserts only its items, a read of the last
  items is one range read, whatever the log's length (:mod:`.schema`).
* **WAL journal.** Readers never wait for the writer; a writer waits up to ``timeout`` seconds
  for another writer, then the call fails with
  :class:`~serverless_sessions.errors.StorageUnavailableError`. WAL shares memory between the
  processes, so they must run on one host: the file must not sit on a network file system.
* **Lazy connect.** Nothing touches the file until the first call, so building a cache is cheap
  and cannot fail on I/O.

Every ``sqlite3`` exception is translated at this boundary (:mod:`.errors`): busy/locked/
unopenable → ``StorageUnavailableError``; anything else → ``StorageError``. A path that cannot
work (its directory is missing, it is a directory, permission denied) is a
``ConfigurationError`` from the first call, in the user's words.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

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
)
from serverless_sessions.adapters.cache.sqlite.config import (
    DEFAULT_TIMEOUT,
    checked_path,
    checked_timeout,
    default_path,
    parse_url,
)
from serverless_sessions.adapters.cache.sqlite.errors import about, translate_error
from serverless_sessions.adapters.cache.sqlite.store import SqliteStore
from serverless_sessions.errors import InvalidSessionError, StorageError
from serverless_sessions.ttl import ttl_seconds

__all__ = ["DEFAULT_TIMEOUT", "Cache", "default_path"]

P = ParamSpec("P")
T = TypeVar("T")


def _checked_ttl(ttl: TTLArg) -> TTLArg:
    """``ttl`` validated before the call is queued, so a bad one never takes the write lock."""
    return KEEP_TTL if ttl is KEEP_TTL else ttl_seconds(ttl)


@dataclass(frozen=True, slots=True)
class _Queued:
    """A write waiting for its group, and where its caller waits for the outcome."""

    operation: str
    target: str | None
    write: Callable[[SqliteStore], Any]
    done: asyncio.Future[Any]


def _one(store: SqliteStore, writes: list[Callable[[SqliteStore], Any]]) -> list[Any]:
    """A group of one: its own transaction, exactly as a write alone would run."""
    return [writes[0](store)]


class Cache(CacheBase, RecentCache, AppendableCache, ScannableCache, PingableCache):
    """Sessions in one SQLite file, safe for several processes; the library's default cache.

    ``path=None`` uses :func:`default_path` (its directory is created mode 0700). A path given
    by the caller must be in an existing directory (else the first call raises
    ConfigurationError naming it). A new database file is created mode 0600. ``timeout`` bounds
    how long opening the file or a write waits for other connections' locks.
    """

    backend = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        namespace: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(namespace=namespace)
        self.timeout = checked_timeout(timeout)
        self._private_dir = path is None
        self.path = default_path() if path is None else checked_path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sessions-sqlite")
        self._store: SqliteStore | None = None  # touched only on the worker thread
        self._queued: list[_Queued] = []  # writes waiting for the next group (see _write)

    @classmethod
    def from_url(cls, url: str, *, namespace: str | None = None, timeout: float | None = None) -> Cache:
        """Build from ``sqlite:///absolute/path.db[?timeout=SECONDS]``; a ``timeout`` given wins.

        Relative or empty paths, hosts, fragments and unknown or repeated query parameters are
        refused with :class:`~serverless_sessions.errors.ConfigurationError` naming the value.
        """
        path, from_query = parse_url(url)
        return cls(path, namespace=namespace, timeout=from_query if timeout is None else timeout)

    def __repr__(self) -> str:
        return f"sqlite.Cache(path={str(self.path)!r}, namespace={self.namespace!r})"

    # -- the worker-thread boundary ------------------------------------------------------------

    def _in_worker(
        self, fn: Callable[Concatenate[SqliteStore, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if self._store is None:
            self._store = SqliteStore.open(self.path, timeout=self.timeout, private_dir=self._private_dir)
        return fn(self._store, *args, **kwargs)

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    async def _submit(self, operation: str, target: str | None, call: Callable[[], T]) -> T:
        """Run ``call`` on the worker thread, translating backend exceptions at this boundary."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except (sqlite3.Error, UnicodeEncodeError) as exc:
            raise self._translated(exc, operation, target) from exc

    def _translated(self, exc: BaseException, operation: str, target: str | None) -> BaseException:
        """The library's error for a backend exception; others pass through unchanged."""
        if isinstance(exc, sqlite3.Error):
            error: BaseException = translate_error(exc, operation=operation, target=target, path=self.path)
        elif isinstance(exc, UnicodeEncodeError):
            # Lone surrogates are valid in a Python str but cannot be stored as SQLite text.
            error = InvalidSessionError(
                f"sqlite {operation}{about(target)}: keys and index names must be valid UTF-8 ({exc})"
            )
        else:
            return exc
        error.__cause__ = exc
        return error

    async def _write(
        self,
        operation: str,
        target: str | None,
        fn: Callable[Concatenate[SqliteStore, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Queue a write; the writes queued while the loop runs other tasks commit together."""
        self._check_open()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append(_Queued(operation, target, lambda store: fn(store, *args, **kwargs), done))
        return cast(T, await done)

    def _flush(self) -> None:
        """Send the queued writes to the worker as one job: one transaction for all of them."""
        queued, self._queued = self._queued, []
        if not queued:
            return
        writes = [each.write for each in queued]
        call = functools.partial(self._in_worker, _one if len(writes) == 1 else SqliteStore.together, writes)
        loop = asyncio.get_running_loop()
        try:
            job = loop.run_in_executor(self._executor, call)
        except RuntimeError as exc:  # the executor is shut down: the cache closed meanwhile
            job = loop.create_future()
            job.set_exception(exc)
        job.add_done_callback(functools.partial(self._deliver, queued))

    def _deliver(self, queued: list[_Queued], job: asyncio.Future[list[Any]]) -> None:
        """Hand each caller its own outcome, translated at this boundary like any call's."""
        if job.cancelled():  # the loop is going away
            for each in queued:
                each.done.cancel()
            return
        failure = job.exception()
        outcomes: list[Any] = [failure] * len(queued) if failure else job.result()
        for each, outcome in zip(queued, outcomes, strict=True):
            if each.done.done():
                continue  # its caller was cancelled; the write may still have committed
            if isinstance(outcome, BaseException):
                each.done.set_exception(self._translated(outcome, each.operation, each.target))
            else:
                each.done.set_result(outcome)

    async def _run(
        self,
        operation: str,
        target: str | None,
        fn: Callable[Concatenate[SqliteStore, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        # No await before the submit: a close() cannot slip in between the check and the queue.
        self._check_open()
        return await self._submit(operation, target, functools.partial(self._in_worker, fn, *args, **kwargs))

    # -- CacheBase -----------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        """The bytes at ``key``, or ``default`` if missing or expired (a single read)."""
        entry = await self._run("get", key, SqliteStore.get_entry, self._namespace(namespace), key)
        return default if entry is None else entry.value

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        """Store ``value`` atomically; a live key's version grows by one and keeps its indexes."""
        ns = self._namespace(namespace)
        seconds = ttl_seconds(ttl)
        await self._write("set", key, SqliteStore.set, ns, key, bytes(value), seconds)

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete ``key``, its log and index memberships in one transaction; ``False`` if not live."""
        return await self._write("delete", key, SqliteStore.delete, self._namespace(namespace), key, None)

    async def exists(self, key: str, namespace: str | None = None) -> bool:
        """Whether ``key`` holds a live value; an expired row counts as absent."""
        return await self._run("exists", key, SqliteStore.exists, self._namespace(namespace), key)

    async def close(self) -> None:
        """Close the connection once queued calls finish; later calls raise ClosedError."""
        if self.closed:
            return
        self._flush()  # queued writes go before the close, on the connection they were meant for
        await super().close()
        try:
            await self._submit("close", None, self._close_store)
        finally:
            self._executor.shutdown(wait=False)

    # -- AtomicCache ---------------------------------------------------------------------------

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        """The live entry at ``key`` with its version and expiry, or ``None``."""
        return await self._run("get_entry", key, SqliteStore.get_entry, self._namespace(namespace), key)

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        """Live entries for ``keys`` in order, from one consistent snapshot, one worker call."""
        ns = self._namespace(namespace)
        target = keys[0] if len(keys) == 1 else None
        return await self._run("get_entries", target, SqliteStore.get_entries, ns, list(keys))

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

        The version check, the row and its index rows share one ``BEGIN IMMEDIATE`` transaction;
        on a mismatch nothing is written and SessionConflictError is raised. The log is kept.
        """
        return await self.write_with_log(
            key,
            value,
            log=None,
            value_weight=len(value),
            expected_version=expected_version,
            ttl=ttl,
            indexes=indexes,
            namespace=namespace,
            activity=activity,
        )

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        """Delete ``key``, its log and index rows if ``expected_version`` matches (``None``: any)."""
        return await self._write(
            "compare_and_delete",
            key,
            SqliteStore.delete,
            self._namespace(namespace),
            key,
            expected_version,
        )

    # -- AppendableCache -----------------------------------------------------------------------

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
        """Compare-and-set that also replaces the log (or keeps it, ``log=None``), in one transaction.

        The old log's rows are deleted and the new ones inserted with the entry row, so a reader
        sees the old log or the new one. Past ``limit`` nothing is written.
        """
        return await self._write(
            "write_with_log",
            key,
            SqliteStore.write_with_log,
            self._namespace(namespace),
            key,
            bytes(value),
            log=None if log is None else [bytes(item) for item in log],
            value_weight=value_weight,
            log_weight=log_weight,
            limit=limit,
            expected_version=expected_version,
            ttl=_checked_ttl(ttl),
            indexes=tuple(dict.fromkeys(indexes)),
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
        """Insert ``items`` after the last position in one ``BEGIN IMMEDIATE`` transaction.

        Holding the write lock from the length check to the commit is what keeps concurrent
        appends, from tasks or processes, from taking the same positions.
        """
        return await self._write(
            "append",
            key,
            SqliteStore.append,
            self._namespace(namespace),
            key,
            [bytes(item) for item in items],
            weight=weight,
            limit=limit,
            expected_length=expected_length,
            ttl=_checked_ttl(ttl),
            touched_at=touched_at,
        )

    async def get_with_log(
        self,
        key: str,
        *,
        last: int | None = None,
        before: int | None = None,
        namespace: str | None = None,
    ) -> tuple[Entry, LogSlice] | None:
        """The live entry and the asked log items, from one snapshot; reads only those rows."""
        return await self._run(
            "get_with_log", key, SqliteStore.get_with_log, self._namespace(namespace), key, last, before
        )

    # -- IndexedCache, RecentCache ---------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        """Live keys of ``index``, sorted: a range read of the index table, no table scan."""
        return await self._run(
            "index_members", index, SqliteStore.index_members, self._namespace(namespace), index
        )

    async def recent(
        self,
        index: str | None,
        *,
        limit: int,
        before: tuple[float, str] | None = None,
        namespace: str | None = None,
    ) -> list[tuple[str, float]] | None:
        """A page of keys, newest activity first: a range read of an activity index, no sort."""
        return await self._run(
            "recent", index, SqliteStore.recent, self._namespace(namespace), index, limit, before
        )

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        """Delete up to ``limit`` expired keys of the namespace with their logs and index rows.

        One transaction driven by the expiry index: cost grows with the expired rows only.
        """
        return await self._run(
            "purge_expired", None, SqliteStore.purge_expired, self._namespace(namespace), limit
        )

    # -- ScannableCache / PingableCache --------------------------------------------------------

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        """Yield live keys in key order, one ``batch_size`` page per worker call.

        Pages resume after the last key seen, so keys written or deleted during the scan neither
        repeat nor shift later pages; a key added behind the cursor is simply not seen.
        """
        ns = self._namespace(namespace)
        size = max(batch_size, 1)
        after: str | None = None
        while True:
            page = await self._run("scan_keys", after, SqliteStore.scan_page, ns, after, size)
            for key in page:
                yield key
            if len(page) < size:
                return
            after = page[-1]

    async def ping(self) -> float:
        """Seconds for one read of the file; StorageUnavailableError if it cannot be opened now.

        A path that cannot work (missing directory...) raises ConfigurationError instead.
        """
        started = time.perf_counter()
        await self._run("ping", None, SqliteStore.ping)
        return time.perf_counter() - started

    async def health(self) -> dict[str, Any]:
        """Backend, availability, latency, file, schema version, row count and journal mode.

        A storage failure is reported as ``available: False`` with the error, not raised.
        """
        report: dict[str, Any] = {"backend": self.backend, "path": str(self.path)}
        started = time.perf_counter()
        try:
            stats = await self._run("health", None, SqliteStore.stats)
        except StorageError as exc:
            return {**report, "available": False, "error": str(exc)}
        latency_ms = (time.perf_counter() - started) * 1000.0
        return {**report, "available": True, "latency_ms": round(latency_ms, 3), **stats}
