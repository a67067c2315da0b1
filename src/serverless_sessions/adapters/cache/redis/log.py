"""The message log of the Redis adapter (:class:`AppendableCache`), mixed into ``Cache``.

The log lives in the entry's data hash (the layout is in :mod:`.cache`), so every operation is
one script on one key — on one server, behind Sentinel and in a cluster alike — sent through the
cache's auto-pipelined command: ``write_with_log`` and ``append`` are the ``WRITE`` script (with
its index and expiry bookkeeping, and the cluster's pre-written entries, exactly as for
``compare_and_set``), ``get_with_log`` is one ``HGETALL`` for a whole entry, else the
``READ`` script.
"""

from __future__ import annotations

import functools
import json
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from serverless_sessions.adapters.cache.base import AppendableCache, Appended, Entry, LogSlice, TTLArg
from serverless_sessions.adapters.cache.redis.client import Link
from serverless_sessions.adapters.cache.redis.scripts import (
    KeyLayout,
    Lua,
    WriteRequest,
    decode_entry,
    expiry_arg,
    new_tag,
)
from serverless_sessions.errors import (
    CorruptSessionError,
    SessionConflictError,
    SessionError,
    SessionNotFoundError,
    SessionTooLargeError,
)

__all__ = ["LogCommands", "RecentIndexLists", "refusal"]

_REMEMBERED = 4096


class RecentIndexLists:
    """The index list last seen for each recently used key: an append's first guess.

    An append does not name the key's indexes, yet on one server its script must be given
    their keys; guessing from the latest write or read of the key saves the round trip of a
    ``stale`` reply. A wrong guess only costs that round trip. Bounded: the oldest key goes.
    """

    def __init__(self, size: int = _REMEMBERED) -> None:
        self._size = size
        # OrderedDict: dropping the oldest is O(1); a dict's first item is found by scanning
        # past the slots its earlier evictions emptied.
        self._lists: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    def get(self, namespace: str, key: str) -> tuple[str, ...]:
        """The remembered index names of ``key`` (none if it was not seen lately)."""
        found = self._lists.get((namespace, key))
        return () if found is None else _parsed(found)

    def remember(self, namespace: str, key: str, index_list: bytes | None) -> None:
        """Record ``key``'s stored index list (JSON); ``None`` forgets the key."""
        lists, seen = self._lists, (namespace, key)
        if index_list is None:
            lists.pop(seen, None)
            return
        lists[seen] = index_list
        lists.move_to_end(seen)
        if len(lists) > self._size:
            lists.popitem(last=False)


@functools.lru_cache(maxsize=4096)
def _parsed(index_list: bytes) -> tuple[str, ...]:
    # Parsed on every append; the same few lists (a user's, a project's) recur.
    return tuple(json.loads(index_list))


def refusal(request: WriteRequest, reply: list[Any]) -> SessionError:
    """The error a WRITE reply other than ``ok`` or ``stale`` stands for (nothing was written)."""
    key = request.key
    if reply[0] == b"missing":
        return SessionNotFoundError(key)
    if reply[0] == b"too_large":
        return SessionTooLargeError(key, int(reply[1]), int(request.limit or 0))
    version = int(reply[1])
    if request.op == "append":
        message = f"{key!r}: expected {request.expected_length} log items, found {int(reply[2])}"
        return SessionConflictError(key, version, version, message=message)
    return SessionConflictError(key, request.expected or 0, version or None)


def _log_slice(key: str, length: int, weight: int, start: int, items: list[bytes | None]) -> LogSlice:
    if None in items:  # every write is atomic: a hole means the hash was changed by hand
        hole = start + items.index(None)
        raise CorruptSessionError(key, f"its Redis log has no item at position {hole}")
    return LogSlice([bytes(item) for item in items if item is not None], start, length, weight)


def _whole(reply: Any) -> list[Any] | None:
    """An ``HGETALL`` reply in the READ script's reply shape (``None``: no such key).

    A list of fields and values, or a dict where redis-py maps it (the cluster client).
    """
    fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
    if b"n" not in fields:
        return None
    length = int(fields.get(b"ll", 0))
    items = [fields.get(b"l:%d" % position) for position in range(length)]
    found = [fields.get(name) for name in (b"v", b"n", b"e", b"t", b"i")]
    return [*found, length, int(fields.get(b"lw", 0)), 0, items]


class LogCommands(AppendableCache):
    """:class:`AppendableCache` over the cache's WRITE and READ scripts (a ``Cache`` mixin)."""

    _layout: KeyLayout
    _index_lists: RecentIndexLists

    @abstractmethod
    def _namespace(self, namespace: str | None) -> str: ...

    @abstractmethod
    def _connected(self) -> tuple[Link, Lua]: ...

    @abstractmethod
    async def _mutate(self, request: WriteRequest) -> list[Any]: ...

    @abstractmethod
    async def _command(self, operation: str, key: str | None, *args: Any) -> Any: ...

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
        """``compare_and_set``'s script, which also replaces the log (or keeps it)."""
        request = WriteRequest(
            "set", self._namespace(namespace), key, bytes(value), expected_version, expiry_arg(ttl),
            tuple(indexes), value_weight, None if log is None else tuple(map(bytes, log)),
            log_weight, limit, activity=activity,
        )  # fmt: skip
        reply = await self._mutate(request)
        return decode_entry(key, value, reply[1], reply[2])

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
        """One WRITE script: the items go into the entry's hash, its expiry is set as by a write.

        A retry of the script (after a lost reply) carries the same id and is not applied twice.
        """
        request = WriteRequest(
            "append", self._namespace(namespace), key, expiry=expiry_arg(ttl),
            items=tuple(map(bytes, items)), weight=weight, limit=limit,
            expected_length=expected_length, touched_at=touched_at, append_id=new_tag(),
            activity=touched_at,
        )  # fmt: skip
        reply = await self._mutate(request)
        expires_at = None if reply[2] is None else int(reply[2]) / 1000
        return Appended(int(reply[1]), int(reply[5]), expires_at)

    async def get_with_log(
        self,
        key: str,
        *,
        last: int | None = None,
        before: int | None = None,
        namespace: str | None = None,
    ) -> tuple[Entry, LogSlice] | None:
        """One command, auto-pipelined like ``get_entry``; cost O(items returned).

        The whole entry (no ``last``, no ``before``: every read of a session) is one
        ``HGETALL``; a window is the READ script, which picks its items server-side. The
        script's extra cost (its 5 KB value copied into Lua and out again) is a third of a
        whole read's time at one call in flight.
        """
        ns = self._namespace(namespace)
        data = self._layout.data(ns, key)
        if last is None and before is None:
            found = _whole(await self._command("get_with_log", key, "HGETALL", data))
        else:
            found = await self._connected()[1].read(data, last=last, before=before, key=key)
        if found is None:
            return None
        value, version, expiry, touched_at, index_list, length, weight, start, items = found
        self._index_lists.remember(ns, key, index_list)
        entry = decode_entry(key, value, version, expiry, touched_at, weight)
        return entry, _log_slice(key, int(length), int(weight), int(start), list(items))
