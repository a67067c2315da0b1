"""DynamoDB cache adapter: one item per key, index items and log items beside it, one table.

The item layout is drawn in :mod:`.layout`. What each operation costs and guarantees:

* **Reads** (``get``, ``exists``, ``get_entry``, ``get_entries``) are strongly consistent
  ``GetItem``/``BatchGetItem`` calls. An item whose ``exp`` has passed is invisible to every
  read, listing and write: native TTL deletes it only later (within days on AWS).
* **Writes** (:mod:`.writes`) read the data item, then write on the condition that its write
  token is unchanged; a live key is always in its indexes, and never lingers in them after it
  is deleted.
* **The log** (:mod:`.log`): ``get_with_log`` reads the data item, then its items in the asked
  range with one ``Query``: O(items returned). Consistency: log items are keyed by the log's
  generation and position, and an item is written once and never changed, so the items at
  positions below the length the data item showed are exactly that log's — unless the log was
  replaced or deleted meanwhile, which deletes them: then an item is missing and the read starts
  again (bounded, with backoff). A reader therefore sees a log as of its read of the data item,
  never part of an append or a mix of two logs. ``append`` is one ``TransactWriteItems``.
* **Listing and purging** (:mod:`.listing`) query, never scan; purging is O(expired).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Self

from pydantic import SecretStr

from serverless_sessions.adapters.cache.base import (
    AppendableCache,
    Appended,
    CacheBase,
    Entry,
    IndexedCache,
    LogSlice,
    PingableCache,
    ScannableCache,
    TTLArg,
)
from serverless_sessions.adapters.cache.dynamodb import listing, writes
from serverless_sessions.adapters.cache.dynamodb.config import DynamoDBSettings, DynamoDBTimeouts, parse_url
from serverless_sessions.adapters.cache.dynamodb.connection import Connection
from serverless_sessions.adapters.cache.dynamodb.layout import (
    DATA_SK,
    LogState,
    Record,
    check_index,
    check_key,
    data_pk,
    live,
)
from serverless_sessions.adapters.cache.dynamodb.log import Replacement, read_range
from serverless_sessions.adapters.cache.urls import secret
from serverless_sessions.backoff import CONFLICT_BACKOFF
from serverless_sessions.errors import ConfigurationError, StorageError
from serverless_sessions.ttl import now, ttl_seconds

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

__all__ = ["Cache"]


class Cache(CacheBase, IndexedCache, AppendableCache, ScannableCache, PingableCache):
    """Cache over one DynamoDB table; see the module docstring for costs and guarantees."""

    backend = "dynamodb"

    def __init__(
        self,
        *,
        table: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        access_key_id: str | SecretStr | None = None,
        secret_access_key: str | SecretStr | None = None,
        namespace: str | None = None,
        timeouts: DynamoDBTimeouts | None = None,
        create_table: bool | None = None,
        client: DynamoDBClient | None = None,
    ) -> None:
        """Configure the adapter; nothing connects until first use.

        ``create_table``: create a missing table on first use (``None``: only on a loopback
        endpoint). ``client``: an aiobotocore DynamoDB client to use instead of creating one;
        :meth:`close` leaves it open.
        """
        super().__init__(namespace=namespace)
        settings = DynamoDBSettings(
            table=table,
            region=region,
            endpoint_url=endpoint_url,
            access_key_id=secret(access_key_id),
            secret_access_key=secret(secret_access_key),
            timeouts=timeouts or DynamoDBTimeouts(),
            create_table=create_table,
        )
        self._conn = Connection(settings, backend=self.backend, client=client)

    @classmethod
    def from_url(cls, url: str, *, namespace: str | None = None, **overrides: Any) -> Self:
        """Build from ``dynamodb://TABLE?region=...&endpoint_url=...``; ``overrides`` win.

        Query parameters: ``region``, ``endpoint_url``, ``create_table``, ``connect_timeout``,
        ``read_timeout``, ``max_attempts``, ``table_wait``. Credentials never go in the URL:
        pass ``access_key_id``/``secret_access_key`` or use the standard AWS chain.
        """
        return cls(**{**parse_url(url), **overrides}, namespace=namespace)

    @property
    def settings(self) -> DynamoDBSettings:
        """Connection settings (secrets masked in ``repr``)."""
        return self._conn.settings

    def __repr__(self) -> str:
        return (
            f"dynamodb.Cache(table={self.settings.table!r}, region={self.settings.region!r}, "
            f"namespace={self.namespace!r}, endpoint={self.settings.endpoint_url!r})"
        )

    async def ensure_table(self) -> dict[str, Any]:
        """Create the table if it is missing (whatever ``create_table`` says) and check it.

        What an ``init`` command calls; needs ``dynamodb:CreateTable`` and
        ``dynamodb:UpdateTimeToLive`` only when the table is missing.
        """
        self._check_open()
        described = await self._conn.ensure_table(create=True)
        return {
            "table": self.settings.table,
            "status": described.get("TableStatus"),
            "indexes": sorted(index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])),
        }

    # -- reads -------------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        entry = await self.get_entry(key, namespace=namespace)
        return default if entry is None else entry.value

    async def exists(self, key: str, namespace: str | None = None) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        return live(await writes.read_record(self._conn, ns, check_key(key))) is not None

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        self._check_open()
        ns = self._namespace(namespace)
        item = await self._conn.get(data_pk(ns, check_key(key)), DATA_SK, key=key)
        found = _live(item, key)
        return None if found is None else found[0]

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        self._check_open()
        ns = self._namespace(namespace)
        pks = [data_pk(ns, check_key(key)) for key in keys]
        items = await self._conn.get_many([(pk, DATA_SK) for pk in pks])
        at = now()
        found = [_live(items.get(pk), key, at) for pk, key in zip(pks, keys, strict=True)]
        return [None if live_item is None else live_item[0] for live_item in found]

    async def get_with_log(
        self,
        key: str,
        *,
        last: int | None = None,
        before: int | None = None,
        namespace: str | None = None,
    ) -> tuple[Entry, LogSlice] | None:
        """The data item, then one ``Query`` of the asked items (see the module docstring)."""
        self._check_open()
        ns = self._namespace(namespace)
        pk = data_pk(ns, check_key(key))
        for attempt in range(writes.ATTEMPTS):
            found = _live(await self._conn.get(pk, DATA_SK, key=key), key)
            if found is None:
                return None
            entry, log = found
            end = log.length if before is None else max(0, min(before, log.length))
            start = 0 if last is None else max(0, end - last)
            items = await read_range(self._conn, ns, key, log, start, end)
            if items is not None:
                return entry, LogSlice(items, start, log.length, log.weight)
            await CONFLICT_BACKOFF.wait(attempt)
        raise StorageError(
            f"dynamodb read of key {key!r} in table {self.settings.table!r} gave up: its log was "
            f"replaced or deleted during each of {writes.ATTEMPTS} reads"
        )

    # -- writes ------------------------------------------------------------------------------

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        self._check_open()
        ns = self._namespace(namespace)
        await writes.write(
            self._conn,
            ns,
            check_key(key),
            value,
            expected=None,
            ttl=ttl_seconds(ttl),
            indexes=(),
            value_weight=len(value),
        )

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
        return await self.write_with_log(
            key,
            value,
            log=None,
            value_weight=len(value),
            expected_version=expected_version,
            ttl=ttl,
            indexes=indexes,
            namespace=namespace,
        )

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
        """See :mod:`.log` for how a new log is written atomically, whatever its size."""
        self._check_open()
        ns = self._namespace(namespace)
        check_key(key)
        return await writes.write(
            self._conn,
            ns,
            key,
            value,
            expected=expected_version,
            ttl=ttl,
            indexes=indexes,
            value_weight=value_weight,
            replacement=None if log is None else Replacement(self._conn, ns, key, log, log_weight),
            limit=limit,
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
        """One ``TransactWriteItems`` (:func:`.writes.append`).

        At most :data:`~.log.MAX_APPEND_ITEMS` items and :data:`~.log.TRANSACTION_BYTES` per call.
        """
        self._check_open()
        ns = self._namespace(namespace)
        return await writes.append(
            self._conn,
            ns,
            check_key(key),
            items,
            weight=weight,
            limit=limit,
            expected_length=expected_length,
            ttl=ttl,
            touched_at=touched_at,
        )

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        return await self.compare_and_delete(key, namespace=namespace)

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        return await writes.delete(self._conn, ns, check_key(key), expected_version)

    async def close(self) -> None:
        await self._conn.close()
        await super().close()

    # -- IndexedCache / ScannableCache / PingableCache ---------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        self._check_open()
        return await listing.index_members(self._conn, self._namespace(namespace), check_index(index))

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        self._check_open()
        return await listing.purge_expired(self._conn, self._namespace(namespace), limit)

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        self._check_open()
        async for key in listing.scan_keys(self._conn, self._namespace(namespace), batch_size):
            yield key

    async def ping(self) -> float:
        self._check_open()
        return await self._conn.ping()

    async def health(self) -> dict[str, Any]:
        self._check_open()
        report: dict[str, Any] = {"backend": self.backend, **self.settings.public()}
        try:
            latency = await self.ping()
        except (StorageError, ConfigurationError) as exc:
            return {**report, "available": False, "error": str(exc)}
        return {**report, "available": True, "latency_ms": round(latency * 1000, 3)}


def _live(item: dict[str, Any] | None, key: str, at: float | None = None) -> tuple[Entry, LogState] | None:
    """The entry and log a data item holds, if it exists and has not expired."""
    if item is None:
        return None
    record = live(Record.parse(item, key), at)
    if record is None:
        return None
    entry = Entry(
        Record.value(item, key), record.version, record.expires_at, record.touched_at, record.log.weight
    )
    return entry, record.log
