"""The log items of a key (:mod:`.layout`): reading a range, replacing, re-stamping, deleting.

What one ``TransactWriteItems`` holds bounds what can be atomic: :data:`TRANSACTION_ITEMS`
actions and :data:`TRANSACTION_BYTES` of items (AWS allows 100 and 4 MB; we keep a margin below
4 MiB because our sizes are estimates). So:

* an **append** is one transaction — its data item, its index items (when the expiry moves) and
  one item per appended entry — of at most :data:`MAX_APPEND_ITEMS` entries and
  :data:`TRANSACTION_BYTES` in all; a larger one is refused before anything is written;
* a **replacement** of at most :data:`REPLACE_IN_TRANSACTION` items and
  :data:`REPLACE_IN_TRANSACTION_BYTES` goes in the transaction of its data item; a larger one is
  *staged*: its items are written first under a new generation no data item names yet (invisible
  to every reader), then one transaction switches the data item to that generation. Either way a
  reader sees the old log or the new one, never a mix, and there is no size bound but the
  table's. Items of a log no data item names any more (replaced, deleted, purged, expired, or
  staged by a writer that lost its race) are deleted afterwards, best effort: whatever a crash
  leaves behind carries its native TTL stamp.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.adapters.cache.dynamodb import actions
from serverless_sessions.adapters.cache.dynamodb.connection import Connection
from serverless_sessions.adapters.cache.dynamodb.layout import (
    MAX_INDEXES,
    LogState,
    data_pk,
    item_size,
    log_item,
    log_position,
    log_sk,
    new_generation,
)
from serverless_sessions.errors import CorruptSessionError, InvalidSessionError, StorageError

__all__ = [
    "MAX_APPEND_ITEMS",
    "REPLACE_IN_TRANSACTION",
    "REPLACE_IN_TRANSACTION_BYTES",
    "TRANSACTION_BYTES",
    "TRANSACTION_ITEMS",
    "Replacement",
    "check_transaction",
    "drop",
    "kept",
    "read_range",
    "restamp",
]

logger = logging.getLogger(__name__)

TRANSACTION_ITEMS = 100
TRANSACTION_BYTES = 4_000_000
MAX_APPEND_ITEMS = TRANSACTION_ITEMS - 1 - MAX_INDEXES
"""Entries one append may add: the data item and its index items take the rest."""
REPLACE_IN_TRANSACTION = TRANSACTION_ITEMS - 1 - 2 * MAX_INDEXES
"""Items a replacement writes in its data item's transaction (which may also hold the key's
index items and an expired incarnation's other index items)."""
REPLACE_IN_TRANSACTION_BYTES = TRANSACTION_BYTES - 2 * 400 * 1024
"""Bytes of items a replacement writes in that transaction: the data item and its index items
take at most two items' worth of the rest."""


def check_transaction(key: str, added: int, writes: Sequence[actions.Action]) -> None:
    """Refuse an append of ``added`` entries whose transaction (``writes``) DynamoDB would refuse."""
    if added > MAX_APPEND_ITEMS:
        raise InvalidSessionError(
            f"append of {added} items to {key!r}: the DynamoDB adapter appends at most "
            f"{MAX_APPEND_ITEMS} at once (one TransactWriteItems); append them in smaller calls"
        )
    size = sum(item_size(action["Put"]["Item"]) for action in writes)
    if size > TRANSACTION_BYTES:
        raise InvalidSessionError(
            f"append to {key!r} writes {size} bytes: the DynamoDB adapter appends at most "
            f"{TRANSACTION_BYTES} bytes at once (one TransactWriteItems); append in smaller calls"
        )


async def read_range(
    conn: Connection, ns: str, key: str, log: LogState, start: int, end: int
) -> list[bytes] | None:
    """The items at positions ``start`` to ``end - 1`` of ``log``: one ``Query`` of that range.

    ``None`` when one is missing: the log was replaced or deleted since its data item was read
    (an item of a generation is never rewritten, so the ones found are right).
    """
    if start >= end:
        return []
    if log.generation is None:
        raise CorruptSessionError(key, f"DynamoDB data item counts {log.length} log items, no generation")
    found: list[bytes] = []
    async for page in conn.query(
        "read log",
        ConsistentRead=True,
        KeyConditionExpression="pk = :p AND sk BETWEEN :first AND :last",
        ExpressionAttributeValues={
            ":p": {"S": data_pk(ns, key)},
            ":first": {"S": log_sk(log.generation, start)},
            ":last": {"S": log_sk(log.generation, end - 1)},
        },
    ):
        for item in page:
            value = item.get("v", {}).get("B")
            if not isinstance(value, bytes):
                raise CorruptSessionError(key, f"DynamoDB log item {item['sk']['S']!r} has no binary 'v'")
            if log_position(str(item["sk"]["S"])) != start + len(found):
                return None
            found.append(value)
    return found if len(found) == end - start else None


async def drop(conn: Connection, ns: str, key: str, log: LogState) -> None:
    """Delete the items of a log no data item names any more (best effort, logged)."""
    if log.generation is None or log.length == 0:
        return
    pk = data_pk(ns, key)
    try:
        await conn.write_many(deletes=[(pk, log_sk(log.generation, p)) for p in range(log.length)])
    except StorageError as exc:
        logger.warning(
            "dynamodb: %d log items of key %r left behind (their native TTL removes them): %s",
            log.length,
            key,
            exc,
        )


def kept(log: LogState, expires_at: float | None, stamp: int | None) -> LogState:
    """``log`` as a write expiring at ``expires_at`` keeps it; :func:`restamp` makes it so.

    Its items' stamps must outlast the key: raised to ``stamp`` when the key's new expiry would
    pass them, removed when the key gets no expiry.
    """
    if log.length == 0 or expires_at is None:
        return replace(log, stamp=None)
    if log.stamp is not None and log.stamp < math.ceil(expires_at):
        return replace(log, stamp=stamp)
    return log


async def restamp(
    conn: Connection, ns: str, key: str, before: LogState, after: LogState, *, concurrency: int
) -> None:
    """Give ``before``'s items the stamps :func:`kept` decided (``after``): one update per item.

    Stamps only ever move away from now — raised, or removed — and are never added to an item
    without one, so a writer that loses its race afterwards has left them safe for whichever
    write won. (An item written while its key had no expiry therefore keeps none: delete and
    purge remove it, native TTL does not.)
    """
    if before.generation is None or before.length == 0 or before.stamp == after.stamp:
        return
    params: dict[str, Any] = {"ExpressionAttributeNames": {"#t": "ttl"}}
    if after.stamp is None:
        params |= {"UpdateExpression": "REMOVE #t", "ConditionExpression": "attribute_exists(#t)"}
    else:
        params |= {
            "UpdateExpression": "SET #t = :s",
            "ConditionExpression": "#t < :s",
            "ExpressionAttributeValues": {":s": {"N": str(after.stamp)}},
        }
    pk = data_pk(ns, key)
    calls = [
        partial(conn.update, pk, log_sk(before.generation, position), key=key, **params)
        for position in range(before.length)
    ]
    await gather_bounded(calls, concurrency)


class Replacement:
    """A whole new log for a key, written in its data item's transaction or staged before it.

    :meth:`prepare` is called once per round of the write; :meth:`discard` removes staged items
    when the write is known to have lost.
    """

    def __init__(self, conn: Connection, ns: str, key: str, items: Sequence[bytes], weight: int) -> None:
        self._conn, self._ns, self._key = conn, ns, key
        self.items = [bytes(item) for item in items]
        self.weight = weight
        self.generation = new_generation()
        self.staged: LogState | None = None
        self.in_transaction = len(self.items) <= REPLACE_IN_TRANSACTION and (
            sum(map(len, self.items)) <= REPLACE_IN_TRANSACTION_BYTES
        )

    def _items(self, stamp: int | None) -> list[dict[str, Any]]:
        return [
            log_item(self._ns, self._key, self.generation, position, value, stamp)
            for position, value in enumerate(self.items)
        ]

    async def prepare(
        self, table: str, expires_at: float | None, stamp: int | None, *, concurrency: int
    ) -> tuple[LogState, list[actions.Action]]:
        """The log state to commit and the writes to add to the commit's transaction.

        Stages the items on the first call if they do not fit in that transaction.
        """
        if not self.items:
            return LogState(None, 0, self.weight, None), []
        if self.in_transaction:
            state = LogState(self.generation, len(self.items), self.weight, stamp)
            return state, [actions.put(table, item) for item in self._items(stamp)]
        if self.staged is None:
            items = self._items(stamp)  # every size checked before the first write
            self.staged = LogState(self.generation, len(items), self.weight, stamp)
            await self._conn.write_many(puts=items)
        state = kept(self.staged, expires_at, stamp)
        await restamp(self._conn, self._ns, self._key, self.staged, state, concurrency=concurrency)
        self.staged = state
        return state, []

    async def discard(self) -> None:
        """Delete the staged items (the write lost: no data item will ever name them)."""
        if self.staged is not None:
            await drop(self._conn, self._ns, self._key, self.staged)
            self.staged = None
