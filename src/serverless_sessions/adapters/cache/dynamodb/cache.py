"""DynamoDB cache adapter: one item per key, index items beside it, all in one table.

The item layout is drawn in :mod:`.layout`. What each operation costs and guarantees:

* **Reads** (``get``, ``exists``, ``get_entry``, ``get_entries``) are strongly consistent
  ``GetItem``/``BatchGetItem`` calls. An item whose ``exp`` has passed is invisible to every
  read, listing and write: native TTL deletes it only later (within days on AWS).
* **Compare-and-set** reads the item's version and write token, then writes on the condition
  that the token is unchanged (and, for a live key, that it has not expired since). Exactly one
  of concurrent writers on a version wins; the others re-read, see the new version and raise
  :class:`~serverless_sessions.errors.SessionConflictError`. ``set`` and creations retry such a
  lost round, bounded. A write that sets a key's index items — on creation, or when the expiry
  changes (index items carry a copy of it, so listings filter expired keys without reading
  them) — is one ``TransactWriteItems`` of the data item and its index items; any other write is
  one conditional ``PutItem``. Deletes are one transaction of the data item and its index items.
  So a live key is always in its indexes, and a key never lingers in them after it is deleted.
* **Listing** an index is one ``Query`` on its partition (consistent). ``scan_keys`` and
  ``purge_expired`` query the two listing indexes, :data:`~.layout.SHARDS` partitions per
  namespace; no operation ever issues a ``Scan``. Global secondary indexes are eventually
  consistent (typically well under a second on AWS): a key created a moment ago may be missing
  from a ``scan_keys``, and one that just expired may wait for the next purge.
* **Purge** is O(expired): the ``ss_by_expiry`` query reads only items whose expiry has passed.
  Each is deleted with its index items in one transaction, on the condition that it is still
  expired — so a key rewritten since is left alone. Purging and native TTL work side by side:
  native TTL needs no calls, ``purge_expired`` frees storage and index entries at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Self

from pydantic import SecretStr

from serverless_sessions.adapters.cache.base import (
    CacheBase,
    Entry,
    IndexedCache,
    PingableCache,
    ScannableCache,
    TTLArg,
    check_same_indexes,
    gather_bounded,
)
from serverless_sessions.adapters.cache.dynamodb import actions
from serverless_sessions.adapters.cache.dynamodb.config import DynamoDBSettings, DynamoDBTimeouts, parse_url
from serverless_sessions.adapters.cache.dynamodb.connection import Connection
from serverless_sessions.adapters.cache.dynamodb.layout import (
    BY_EXPIRY,
    BY_KEY,
    DATA_SK,
    MAX_INDEXES,
    SHARDS,
    Record,
    check_index,
    check_key,
    data_item,
    data_pk,
    index_item,
    index_pk,
    listed,
    live,
    number,
    shard_pk,
)
from serverless_sessions.adapters.cache.urls import secret
from serverless_sessions.errors import (
    ConfigurationError,
    InvalidSessionError,
    SessionConflictError,
    StorageError,
)
from serverless_sessions.ttl import expiry_for, is_expired, now, ttl_seconds

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

__all__ = ["Cache"]

_ATTEMPTS = 16
"""Rounds of read-then-conditional-write before a write gives up (only lost rounds repeat)."""
_META = ("ver", "tok", "exp", "idx")


class Cache(CacheBase, IndexedCache, ScannableCache, PingableCache):
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

    async def _record(self, ns: str, key: str) -> Record | None:
        item = await self._conn.get(data_pk(ns, key), DATA_SK, key=key, attributes=_META)
        return None if item is None else Record.parse(item, key)

    async def get(self, key: str, default: Any = None, namespace: str | None = None) -> Any:
        entry = await self.get_entry(key, namespace=namespace)
        return default if entry is None else entry.value

    async def exists(self, key: str, namespace: str | None = None) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        return live(await self._record(ns, check_key(key))) is not None

    async def get_entry(self, key: str, *, namespace: str | None = None) -> Entry | None:
        self._check_open()
        ns = self._namespace(namespace)
        item = await self._conn.get(data_pk(ns, check_key(key)), DATA_SK, key=key)
        return _entry(item, key)

    async def get_entries(self, keys: Sequence[str], *, namespace: str | None = None) -> list[Entry | None]:
        self._check_open()
        ns = self._namespace(namespace)
        pks = [data_pk(ns, check_key(key)) for key in keys]
        found = await self._conn.get_many([(pk, DATA_SK) for pk in pks])
        at = now()
        return [_entry(found.get(pk), key, at) for pk, key in zip(pks, keys, strict=True)]

    # -- writes ------------------------------------------------------------------------------

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, namespace: str | None = None
    ) -> None:
        self._check_open()
        await self._write(self._namespace(namespace), key, value, None, ttl_seconds(ttl), ())

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
        self._check_open()
        return await self._write(self._namespace(namespace), key, value, expected_version, ttl, indexes)

    async def _write(
        self, ns: str, key: str, value: bytes, expected: int | None, ttl: TTLArg, indexes: Sequence[str]
    ) -> Entry:
        """Read, check ``expected`` (``None``: any version), write conditionally on the read."""
        check_key(key)
        value = bytes(value)
        requested = tuple(dict.fromkeys(check_index(index) for index in indexes))
        if len(requested) > MAX_INDEXES:
            raise InvalidSessionError(
                f"{key!r} names {len(requested)} indexes; the DynamoDB adapter allows {MAX_INDEXES}"
            )
        table = self.settings.table
        for _ in range(_ATTEMPTS):
            current = await self._record(ns, key)
            at = now()
            found = live(current, at)
            actual = found.version if found else 0
            if expected is not None and actual != expected:
                raise SessionConflictError(key, expected, found.version if found else None)
            if found is not None:
                check_same_indexes(key, found.indexes, requested, expected=expected or 0, actual=actual)
            expires_at = expiry_for(ttl, current=found.expires_at if found else None, at=at)
            # A key's indexes are fixed by its first indexed write.
            listed_in = found.indexes if found else ()
            names = listed_in or requested
            item = data_item(ns, key, value, version=actual + 1, expires_at=expires_at, indexes=names)
            others: list[actions.Action] = []
            if names and (names != listed_in or found is None or found.expires_at != expires_at):
                others += [actions.put(table, index_item(ns, i, key, expires_at)) for i in names]
            if current is not None and found is None:  # an expired incarnation's other indexes
                others += [
                    actions.delete(table, index_pk(ns, i), key) for i in current.indexes if i not in names
                ]
            primary = actions.put(table, item, **actions.unchanged(current, live_at=now() if found else None))
            if await self._conn.commit(primary, others, key=key):
                return Entry(value, actual + 1, expires_at)
        raise await self._gave_up(ns, key, expected, "write")

    async def _gave_up(self, ns: str, key: str, expected: int | None, operation: str) -> Exception:
        if expected is None:
            return StorageError(
                f"dynamodb {operation} of key {key!r} in table {self.settings.table!r} gave up "
                f"after {_ATTEMPTS} rounds of concurrent writers"
            )
        latest = live(await self._record(ns, key))
        return SessionConflictError(key, expected, latest.version if latest else None)

    async def delete(self, key: str, namespace: str | None = None) -> bool:
        return await self.compare_and_delete(key, namespace=namespace)

    async def compare_and_delete(
        self, key: str, *, expected_version: int | None = None, namespace: str | None = None
    ) -> bool:
        self._check_open()
        ns = self._namespace(namespace)
        check_key(key)
        table = self.settings.table
        for _ in range(_ATTEMPTS):
            found = live(await self._record(ns, key))
            actual = found.version if found else 0
            if expected_version is not None and actual != expected_version:
                raise SessionConflictError(key, expected_version, found.version if found else None)
            if found is None:
                return False
            primary = actions.delete(
                table, data_pk(ns, key), DATA_SK, **actions.unchanged(found, live_at=None)
            )
            others = [actions.delete(table, index_pk(ns, i), key) for i in found.indexes]
            if await self._conn.commit(primary, others, key=key):
                return True
        raise await self._gave_up(ns, key, expected_version, "delete")

    async def close(self) -> None:
        await self._conn.close()
        await super().close()

    # -- IndexedCache ------------------------------------------------------------------------

    async def index_members(self, index: str, *, namespace: str | None = None) -> list[str]:
        self._check_open()
        ns = self._namespace(namespace)
        members: list[str] = []
        async for page in self._conn.query(
            "index",
            ConsistentRead=True,
            KeyConditionExpression="#p = :p",
            ProjectionExpression="#s, #e",
            ExpressionAttributeNames={"#p": "pk", "#s": "sk", "#e": "exp"},
            ExpressionAttributeValues={":p": {"S": index_pk(ns, check_index(index))}},
        ):
            at = now()
            for item in page:
                expires_at = float(item["exp"]["N"]) if "exp" in item else None
                if not is_expired(expires_at, at):
                    members.append(str(item["sk"]["S"]))
        return members

    async def purge_expired(self, *, namespace: str | None = None, limit: int | None = None) -> list[str]:
        self._check_open()
        ns = self._namespace(namespace)
        at = now()
        purged: list[str] = []
        if limit is not None and limit < 1:
            return purged
        for shard in range(SHARDS):
            async for page in self._conn.query(
                "purge",
                IndexName=BY_EXPIRY,
                KeyConditionExpression="gp = :g AND #e <= :now",
                ExpressionAttributeNames={"#e": "exp"},
                ExpressionAttributeValues={":g": {"S": shard_pk(ns, shard)}, ":now": number(at)},
            ):
                due = [entry for entry in map(listed, page) if is_expired(entry[1], at)]
                if limit is not None:
                    due = due[: limit - len(purged)]
                calls = [partial(self._purge_one, ns, key, indexes, at) for key, _, indexes in due]
                done = await gather_bounded(calls, self.settings.max_pool_connections)
                purged.extend(key for (key, _, _), ok in zip(due, done, strict=True) if ok)
                if limit is not None and len(purged) >= limit:
                    return purged
        return purged

    async def _purge_one(self, ns: str, key: str, indexes: Sequence[str], at: float) -> bool:
        """Delete ``key`` and its index items if it is still expired (else it was rewritten).

        Deleting an expired key makes every index item of that key garbage, so removing the
        ones the listing index named is right even if that copy is a little stale.
        """
        table = self.settings.table
        primary = actions.delete(table, data_pk(ns, key), DATA_SK, **actions.still_expired(at))
        others = [actions.delete(table, index_pk(ns, i), key) for i in indexes]
        return await self._conn.commit(primary, others, key=key)

    # -- ScannableCache / PingableCache ------------------------------------------------------

    async def scan_keys(self, *, namespace: str | None = None, batch_size: int = 500) -> AsyncIterator[str]:
        self._check_open()
        ns = self._namespace(namespace)
        for shard in range(SHARDS):
            async for page in self._conn.query(
                "scan",
                page_size=min(max(batch_size, 1), 1000),
                IndexName=BY_KEY,
                KeyConditionExpression="gp = :g",
                ExpressionAttributeValues={":g": {"S": shard_pk(ns, shard)}},
            ):
                at = now()
                for key, expires_at, _ in map(listed, page):
                    if not is_expired(expires_at, at):
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


def _entry(item: dict[str, Any] | None, key: str, at: float | None = None) -> Entry | None:
    if item is None:
        return None
    record = live(Record.parse(item, key), at)
    return None if record is None else Entry(Record.value(item, key), record.version, record.expires_at)
