"""Listing and purging in the DynamoDB adapter: only ``Query`` calls, never a ``Scan``.

* An index is one partition: one consistent ``Query``; the expiry copied on each index item lets
  it drop expired keys without reading them.
* ``scan_keys`` and ``purge_expired`` query the two listing indexes, :data:`~.layout.SHARDS`
  partitions per namespace. Global secondary indexes are eventually consistent (typically well
  under a second on AWS): a key created a moment ago may be missing from a ``scan_keys``, and one
  that just expired may wait for the next purge.
* Purging is O(expired): ``ss_by_expiry`` holds only items that expire, in expiry order, so the
  query reads only expired ones. Each is read again (consistently) and deleted with its index
  items in one transaction on the condition that it is unchanged — a key rewritten since is left
  alone — then its log items go (:func:`~.log.drop`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.adapters.cache.dynamodb import actions
from serverless_sessions.adapters.cache.dynamodb.connection import Connection
from serverless_sessions.adapters.cache.dynamodb.layout import (
    BY_EXPIRY,
    BY_KEY,
    DATA_SK,
    SHARDS,
    data_pk,
    index_pk,
    listed,
    live,
    number,
    shard_pk,
)
from serverless_sessions.adapters.cache.dynamodb.log import drop
from serverless_sessions.adapters.cache.dynamodb.writes import read_record
from serverless_sessions.ttl import is_expired, now

__all__ = ["index_members", "purge_expired", "scan_keys"]


async def index_members(conn: Connection, ns: str, index: str) -> list[str]:
    """The live keys ``index`` lists, in key order."""
    members: list[str] = []
    async for page in conn.query(
        "index",
        ConsistentRead=True,
        KeyConditionExpression="#p = :p",
        ProjectionExpression="#s, #e",
        ExpressionAttributeNames={"#p": "pk", "#s": "sk", "#e": "exp"},
        ExpressionAttributeValues={":p": {"S": index_pk(ns, index)}},
    ):
        at = now()
        for item in page:
            expires_at = float(item["exp"]["N"]) if "exp" in item else None
            if not is_expired(expires_at, at):
                members.append(str(item["sk"]["S"]))
    return members


async def purge_expired(conn: Connection, ns: str, limit: int | None) -> list[str]:
    """Remove the expired keys of ``ns`` (at most ``limit``) with their index and log items."""
    at = now()
    purged: list[str] = []
    if limit is not None and limit < 1:
        return purged
    for shard in range(SHARDS):
        async for page in conn.query(
            "purge",
            IndexName=BY_EXPIRY,
            KeyConditionExpression="gp = :g AND #e <= :now",
            ExpressionAttributeNames={"#e": "exp"},
            ExpressionAttributeValues={":g": {"S": shard_pk(ns, shard)}, ":now": number(at)},
        ):
            due = [key for key, expires_at in map(listed, page) if is_expired(expires_at, at)]
            if limit is not None:
                due = due[: limit - len(purged)]
            calls = [partial(_purge_one, conn, ns, key, at) for key in due]
            done = await gather_bounded(calls, conn.settings.max_pool_connections)
            purged.extend(key for key, ok in zip(due, done, strict=True) if ok)
            if limit is not None and len(purged) >= limit:
                return purged
    return purged


async def _purge_one(conn: Connection, ns: str, key: str, at: float) -> bool:
    """Delete ``key`` with its index and log items if it is still expired (else it was rewritten)."""
    current = await read_record(conn, ns, key)
    if current is None or live(current, at) is not None:
        return False
    table = conn.table
    primary = actions.delete(table, data_pk(ns, key), DATA_SK, **actions.unchanged(current, live_at=None))
    others = [actions.delete(table, index_pk(ns, i), key) for i in current.indexes]
    if not await conn.commit(primary, others, key=key):
        return False
    await drop(conn, ns, key, current.log)
    return True


async def scan_keys(conn: Connection, ns: str, batch_size: int) -> AsyncIterator[str]:
    """Every live key of ``ns`` once, ``batch_size`` per page of each shard."""
    for shard in range(SHARDS):
        async for page in conn.query(
            "scan",
            page_size=min(max(batch_size, 1), 1000),
            IndexName=BY_KEY,
            KeyConditionExpression="gp = :g",
            ExpressionAttributeValues={":g": {"S": shard_pk(ns, shard)}},
        ):
            at = now()
            for key, expires_at in map(listed, page):
                if not is_expired(expires_at, at):
                    yield key
