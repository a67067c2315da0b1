"""The DynamoDB adapter's writes: rounds of a consistent read, then a write conditioned on it.

Every write reads the data item (its version, write token and log), decides, and writes on the
condition that the token is unchanged (:func:`~.actions.unchanged`). A round lost to a concurrent
writer runs again from a new read: a write given an expected version then fails with
:class:`~serverless_sessions.errors.SessionConflictError`, one without it (``set``, ``delete``,
an append without ``expected_length``) tries again, a bounded number of rounds.

* :func:`write` — the value, and the log kept or replaced (:class:`~.log.Replacement`). The data
  item's index items go in its transaction when they change (creation, a new expiry); a write
  with nothing else to change is one conditional ``PutItem``.
* :func:`append` — one ``TransactWriteItems``: the data item (version, log length and weight,
  expiry, ``touched_at``), its index items when the expiry moves, and one item per new entry at
  the positions that follow the length read. Concurrent appends each lose rounds to the others
  until they win one, waiting between rounds a full-jitter backoff scaled to how long a round
  took (so contenders spread out on a slow server too), so all of them succeed and each one's
  items stay together and in order. An append whose transaction was resent after a lost answer
  recognises its own items instead of writing them twice (:func:`_landed`).
* :func:`delete` — one transaction of the data item and its index items, then its log items.

The log items a write leaves unnamed (a replaced log, an expired incarnation's) are deleted after
it commits (:func:`~.log.drop`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from serverless_sessions.adapters.cache.base import Appended, Entry, TTLArg, check_same_indexes
from serverless_sessions.adapters.cache.dynamodb import actions
from serverless_sessions.adapters.cache.dynamodb.connection import Connection
from serverless_sessions.adapters.cache.dynamodb.layout import (
    DATA_SK,
    EMPTY_LOG,
    MAX_INDEXES,
    LogState,
    Record,
    check_index,
    data_item,
    data_pk,
    index_item,
    index_pk,
    live,
    log_item,
    log_sk,
    log_stamp,
    new_generation,
)
from serverless_sessions.adapters.cache.dynamodb.log import (
    Replacement,
    check_transaction,
    drop,
    kept,
    restamp,
)
from serverless_sessions.backoff import CONFLICT_BACKOFF, Backoff
from serverless_sessions.errors import (
    InvalidSessionError,
    SessionConflictError,
    SessionNotFoundError,
    SessionTooLargeError,
    StorageError,
)
from serverless_sessions.ttl import expiry_for, now

__all__ = ["ATTEMPTS", "APPEND_ATTEMPTS", "append", "delete", "read_record", "write"]

ATTEMPTS = 16
"""Rounds of read-then-conditional-write before a write gives up (only lost rounds repeat)."""
APPEND_ATTEMPTS = 200
"""Rounds an append without ``expected_length`` may lose to concurrent appends before giving up.

Each lost round means another append won, so this bounds how many appends to the same key may
overtake this one."""


async def read_record(conn: Connection, ns: str, key: str) -> Record | None:
    """What the data item of ``key`` says (without its value), expired or not; ``None`` if absent."""
    item = await conn.get(data_pk(ns, key), DATA_SK, key=key, attributes=Record.ATTRIBUTES)
    return None if item is None else Record.parse(item, key)


async def write(
    conn: Connection,
    ns: str,
    key: str,
    value: bytes,
    *,
    expected: int | None,
    ttl: TTLArg,
    indexes: Sequence[str],
    value_weight: int,
    replacement: Replacement | None = None,
    limit: int | None = None,
) -> Entry:
    """Read, check ``expected`` (``None``: any version), write conditionally on the read.

    ``replacement=None`` keeps the stored log. Staged items of a replacement are removed when the
    write is known to have lost; not when its outcome is unknown (a timeout): they may be the
    key's log by then.
    """
    value = bytes(value)
    requested = tuple(dict.fromkeys(check_index(index) for index in indexes))
    if len(requested) > MAX_INDEXES:
        raise InvalidSessionError(
            f"{key!r} names {len(requested)} indexes; the DynamoDB adapter allows {MAX_INDEXES}"
        )
    table, concurrency = conn.table, conn.settings.max_pool_connections
    outcome_known = True
    try:
        for _ in range(ATTEMPTS):
            current = await read_record(conn, ns, key)
            at = now()
            found = live(current, at)
            actual = found.version if found else 0
            if expected is not None and actual != expected:
                raise SessionConflictError(key, expected, found.version if found else None)
            if found is not None:
                check_same_indexes(key, found.indexes, requested, expected=expected or 0, actual=actual)
            stored_log = found.log if found else EMPTY_LOG
            log_weight = stored_log.weight if replacement is None else replacement.weight
            if limit is not None and value_weight + log_weight > limit:
                raise SessionTooLargeError(key, value_weight + log_weight, limit)
            expires_at = expiry_for(ttl, current=found.expires_at if found else None, at=at)
            stamp = log_stamp(expires_at, at)
            log_writes: list[actions.Action] = []
            if replacement is None:
                new_log = kept(stored_log, expires_at, stamp)
                await restamp(conn, ns, key, stored_log, new_log, concurrency=concurrency)
            else:
                new_log, log_writes = await replacement.prepare(
                    table, expires_at, stamp, concurrency=concurrency
                )
            names = (found.indexes if found else ()) or requested  # fixed by the first indexed write
            item = data_item(
                ns,
                key,
                value,
                version=actual + 1,
                expires_at=expires_at,
                indexes=names,
                value_weight=value_weight,
                log=new_log,
            )
            others = [*_index_writes(table, ns, key, current, found, names, expires_at), *log_writes]
            primary = actions.put(table, item, **actions.unchanged(current, live_at=now() if found else None))
            staged = replacement is not None and replacement.staged is not None
            outcome_known = False
            committed = await conn.commit(primary, others, key=key, certain=staged)
            outcome_known = True
            if committed:
                if current is not None and current.log.generation != new_log.generation:
                    await drop(conn, ns, key, current.log)  # replaced, or expired with its key
                return Entry(value, actual + 1, expires_at)
        raise await _gave_up(conn, ns, key, expected, "write", ATTEMPTS)
    except Exception:
        if replacement is not None and outcome_known:
            await replacement.discard()
        raise


def _index_writes(
    table: str,
    ns: str,
    key: str,
    current: Record | None,
    found: Record | None,
    names: Sequence[str],
    expires_at: float | None,
) -> list[actions.Action]:
    """The index items a write of ``key`` listed in ``names`` changes.

    Index items carry a copy of the expiry (listings filter expired keys without reading them),
    so they are rewritten on creation, on new names, and when the expiry moves; an expired
    incarnation's (``current`` but not ``found``) other index items go.
    """
    listed_in = found.indexes if found else ()
    writes: list[actions.Action] = []
    if names and (names != listed_in or found is None or found.expires_at != expires_at):
        writes += [actions.put(table, index_item(ns, i, key, expires_at)) for i in names]
    if current is not None and found is None:
        writes += [actions.delete(table, index_pk(ns, i), key) for i in current.indexes if i not in names]
    return writes


async def append(
    conn: Connection,
    ns: str,
    key: str,
    items: Sequence[bytes],
    *,
    weight: int,
    limit: int | None,
    expected_length: int | None,
    ttl: TTLArg,
    touched_at: float,
) -> Appended:
    """Append ``items`` to ``key``'s log (see the module docstring).

    The contract is :meth:`~serverless_sessions.adapters.cache.base.AppendableCache.append`'s.
    """
    added = [bytes(item) for item in items]
    check_transaction(key, len(added), ())
    append_id = secrets.token_hex(8)
    for attempt in range(APPEND_ATTEMPTS):
        started = time.monotonic()
        stored = await conn.get(data_pk(ns, key), DATA_SK, key=key)
        at = now()
        found = None if stored is None else live(Record.parse(stored, key), at)
        if stored is None or found is None:
            raise SessionNotFoundError(key)
        length = found.log.length
        if expected_length is not None and expected_length != length:
            raise SessionConflictError(
                key,
                found.version,
                found.version,
                message=f"{key!r}: expected {expected_length} log items, found {length}",
            )
        value = Record.value(stored, key)
        value_weight = len(value) if found.value_weight is None else found.value_weight
        total = value_weight + found.log.weight + weight
        if limit is not None and total > limit:
            raise SessionTooLargeError(key, total, limit)
        expires_at = expiry_for(ttl, current=found.expires_at, at=at)
        stamp = log_stamp(expires_at, at)
        keeping = kept(found.log, expires_at, stamp)
        generation = found.log.generation or new_generation()
        stamps = [s for s in (keeping.stamp, stamp if added else None) if s is not None]
        lowest = min(stamps, default=None)  # the new items' stamp may be the lower one
        new_log = LogState(generation, length + len(added), found.log.weight + weight, lowest)
        item = data_item(
            ns,
            key,
            value,
            version=found.version + 1,
            expires_at=expires_at,
            indexes=found.indexes,
            value_weight=value_weight,
            log=new_log,
            touched_at=touched_at,
        )
        primary = actions.put(conn.table, item, **actions.unchanged(found, live_at=now()))
        writes = [  # the first item names the append: see _landed
            actions.put(
                conn.table,
                log_item(ns, key, generation, length + i, data, stamp, append_id=None if i else append_id),
            )
            for i, data in enumerate(added)
        ]
        writes += _index_writes(conn.table, ns, key, found, found, found.indexes, expires_at)
        check_transaction(key, len(added), [primary, *writes])
        await restamp(conn, ns, key, found.log, keeping, concurrency=conn.settings.max_pool_connections)
        if await conn.commit(primary, writes, key=key) or (
            added and await _landed(conn, ns, key, log_sk(generation, length), append_id)
        ):
            return Appended(found.version + 1, new_log.length, expires_at)
        await _contention_backoff(time.monotonic() - started).wait(attempt)
    raise await _gave_up(conn, ns, key, None, "append", APPEND_ATTEMPTS)


async def _landed(conn: Connection, ns: str, key: str, first_sk: str, append_id: str) -> bool:
    """Whether the append ``append_id``, refused, had in fact been written already.

    That happens when a transaction's answer is lost and the client sends it again: DynamoDB
    recognises the resent one by its client token, an emulator may not, and then refuses it
    because the first one changed the data item. Its first item says whose it is.
    """
    item = await conn.get(data_pk(ns, key), first_sk, key=key, attributes=("a",))
    return item is not None and item.get("a", {}).get("S") == append_id


def _contention_backoff(round_seconds: float) -> Backoff:
    """:data:`CONFLICT_BACKOFF` stretched to a lost round's time: up to 4 rounds, doubling to 16.

    A round's time grows with the queue of contenders at the server, so this spreads them over
    about as many rounds as there are of them, on a fast server or a slow one; contenders that
    waited less than a round would meet again in the next one, and each lost round costs a
    transaction.
    """
    return Backoff(
        base=max(CONFLICT_BACKOFF.base, 4 * round_seconds), cap=max(CONFLICT_BACKOFF.cap, 16 * round_seconds)
    )


async def delete(conn: Connection, ns: str, key: str, expected_version: int | None) -> bool:
    """Delete ``key``, its index items and its log (see ``compare_and_delete``)."""
    table = conn.table
    for _ in range(ATTEMPTS):
        found = live(await read_record(conn, ns, key))
        actual = found.version if found else 0
        if expected_version is not None and actual != expected_version:
            raise SessionConflictError(key, expected_version, found.version if found else None)
        if found is None:
            return False
        primary = actions.delete(table, data_pk(ns, key), DATA_SK, **actions.unchanged(found, live_at=None))
        others = [actions.delete(table, index_pk(ns, i), key) for i in found.indexes]
        if await conn.commit(primary, others, key=key):
            await drop(conn, ns, key, found.log)
            return True
    raise await _gave_up(conn, ns, key, expected_version, "delete", ATTEMPTS)


async def _gave_up(
    conn: Connection, ns: str, key: str, expected: int | None, operation: str, rounds: int
) -> Exception:
    if expected is None:
        return StorageError(
            f"dynamodb {operation} of key {key!r} in table {conn.table!r} gave up "
            f"after {rounds} rounds of concurrent writers"
        )
    latest = live(await read_record(conn, ns, key))
    return SessionConflictError(key, expected, latest.version if latest else None)
