"""Key names, member encodings and the script runner of the Redis adapter.

The layout, its disjointness and the hash-slot rules are described in the public module
:mod:`serverless_sessions.adapters.cache.redis`. Here: the exact encodings the scripts and the
Python side share, and :class:`Lua`, which sends the scripts (their source is in :mod:`.lua`).
Python owns the index-list encoding (canonical JSON); Lua only stores and compares it byte for
byte, and concatenates members exactly as :func:`expiry_member` does.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from redis.exceptions import NoScriptError

from serverless_sessions.adapters.cache.base import KEEP_TTL, Entry, TTLArg
from serverless_sessions.adapters.cache.redis.lua import RANGE, READ, RECENT, WRITE, ZSET
from serverless_sessions.errors import CorruptSessionError, StorageError
from serverless_sessions.ttl import expiry_for, now

__all__ = [
    "GENERATION_LENGTH",
    "RECENT_BUDGET",
    "ExpiryRecord",
    "Commander",
    "KeyLayout",
    "Lua",
    "Runner",
    "WriteRequest",
    "activity_member",
    "decode_entry",
    "encode_indexes",
    "expiry_arg",
    "expiry_member",
    "new_tag",
    "parse_expiry_member",
]

GENERATION_LENGTH = 16
RECENT_BUDGET = 2000
"""Members one ``RECENT`` script examines at most: a listing skipping many expired members
(not purged yet) takes several short scripts, never one long one."""
T = TypeVar("T")


def new_tag() -> str:
    """A fresh random tag: the generation of a key being created, or the id of an append.

    Tags must differ, not be secret: the process's Mersenne Twister (seeded from the OS, and
    again in a forked child) instead of a system call per write.
    """
    return f"{random.getrandbits(GENERATION_LENGTH * 4):0{GENERATION_LENGTH}x}"


def encode_indexes(indexes: Sequence[str]) -> str:
    """The canonical text of an index list (the scripts compare it byte for byte)."""
    return _index_text(tuple(indexes))


@functools.lru_cache(maxsize=4096)
def _index_text(indexes: tuple[str, ...]) -> str:
    # Every write sends its list; the same few (a user's, a project's) recur.
    return json.dumps(list(indexes), ensure_ascii=False, separators=(",", ":"))


def expiry_arg(ttl: TTLArg) -> str:
    """The WRITE script's expiry argument: absolute ms, ``keep`` or ``none``."""
    if ttl is KEEP_TTL:
        return "keep"
    expires_at = expiry_for(ttl, current=None, at=now())
    return "none" if expires_at is None else str(round(expires_at * 1000))


def decode_entry(
    key: str, value: bytes | None, version: Any, expiry: Any, touched: Any = None, log_weight: Any = None
) -> Entry:
    """``key``'s entry from its hash fields ``v``, ``n``, ``e`` (ms), ``t`` and ``lw`` (see ``WRITE``).

    ``t`` is ``<version>:<touched_at>``; stamped with an older version, a write of the value
    came after that append, so the entry has no ``touched_at``. Every write sets ``v`` with
    ``n``: a hash with a version and no value was changed by hand, and is reported corrupt.
    """
    if value is None:
        raise CorruptSessionError(key, "its Redis hash has a version but no value")
    stamp, _, touched_at = (touched or b"").partition(b":")
    return Entry(
        bytes(value),
        int(version),
        None if expiry is None else int(expiry) / 1000,
        float(touched_at) if stamp and int(stamp) == int(version) else None,
        int(log_weight or 0),
    )


def activity_member(generation: str, key: str) -> str:
    """The activity-zset member of a key; built identically by the ``WRITE`` script.

    The key first, so that keys tied on activity are in key order (exactly, for keys without
    NUL characters, which session ids never have).
    """
    return f"{key}\0{generation}"


def expiry_member(generation: str, index_list: str, key: str) -> str:
    """The expiry-zset member of a key; built identically by the ``WRITE`` script."""
    return generation + index_list + key


@dataclass(frozen=True, slots=True)
class ExpiryRecord:
    """One decoded expiry-zset member."""

    member: bytes
    generation: str
    indexes: tuple[str, ...]
    key: str


def parse_expiry_member(member: bytes) -> ExpiryRecord:
    """Decode ``<generation><index-list JSON><key>``: the JSON ends where the key begins."""
    text = member.decode("utf-8")
    decoded, end = json.JSONDecoder().raw_decode(text, GENERATION_LENGTH)
    return ExpiryRecord(member, text[:GENERATION_LENGTH], tuple(decoded), text[end:])


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One set (``op="set"``), append (``op="append"``) or delete (``op="del"``) of a key.

    ``expected`` is the version the key must have (``None``: any); ``expiry`` is absolute UNIX
    ms, ``"keep"`` or ``"none"``; ``indexes`` apply when the key has none yet.

    The log fields make a *logged* request (``write_with_log``, ``append``); a plain set
    (``compare_and_set``, ``set``) leaves them unset, keeps the log, and weighs the value by its
    length. ``items`` replaces the log of a set (``None`` keeps it) or is what an append adds;
    ``weight`` is the replacing log's weight, or the appended items'. ``expected_length``
    (append) is the log length the key must have (``None``: any); ``append_id`` (16
    characters, fresh per append) lets the script recognise a retry of an append that landed.
    ``activity`` (UNIX seconds) places the key in the activity zsets; an append passes its
    ``touched_at``.
    """

    op: str
    namespace: str
    key: str
    value: bytes = b""
    expected: int | None = None
    expiry: str = "none"
    indexes: tuple[str, ...] = ()
    value_weight: int | None = None
    items: tuple[bytes, ...] | None = None
    weight: int = 0
    limit: int | None = None
    expected_length: int | None = None
    touched_at: float | None = None
    append_id: str = ""
    activity: float | None = None

    @property
    def logged(self) -> bool:
        """Whether the script takes the log path (and its extra arguments)."""
        return self.op == "append" or self.value_weight is not None


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Names of the Redis keys that hold one namespace's data and bookkeeping."""

    prefix: str

    def data(self, namespace: str, key: str) -> str:
        """The hash holding ``key``'s value, version, generation, index list, expiry and log."""
        return f"{self.prefix}:{namespace}:d:{key}"

    def index(self, namespace: str, name: str) -> str:
        """The zset listing the keys of secondary index ``name``."""
        return f"{self.prefix}:{namespace}:i:{name}"

    def expiry(self, namespace: str) -> str:
        """The zset of every key of the namespace, scored by expiry."""
        return f"{self.prefix}:{namespace}:x"

    def activity(self, namespace: str, index: str | None = None) -> str:
        """The zset of every key of the namespace (or of index ``index``), scored by activity."""
        return f"{self.prefix}:{namespace}:r" if index is None else f"{self.prefix}:{namespace}:r:{index}"

    def scan_pattern(self, namespace: str) -> str:
        """A ``SCAN MATCH`` pattern for the data keys (glob characters in the prefix escaped)."""
        literal = self.data(namespace, "")
        return "".join("\\" + c if c in "*?[]\\" else c for c in literal) + "*"


class Runner(Protocol):
    """The cache's guarded call: retries transient errors, translates backend errors."""

    def __call__(
        self, operation: str, key: str | None, call: Callable[[Any], Awaitable[T]]
    ) -> Awaitable[T]: ...


class Commander(Protocol):
    """The cache's guarded single command (auto-pipelined, per master on a cluster)."""

    def __call__(self, operation: str, key: str | None, *args: Any) -> Awaitable[Any]: ...


@dataclass(frozen=True, slots=True)
class _Script:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> _Script:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())  # Redis names scripts by SHA-1


_SCRIPTS = {
    name: _Script.of(source)
    for name, source in (
        ("write", WRITE),
        ("read", READ),
        ("zset", ZSET),
        ("range", RANGE),
        ("recent", RECENT),
    )
}


class Lua:
    """The scripts, sent by ``EVALSHA`` through the cache's guarded (auto-pipelined) command.

    A server that does not know a script yet (new, restarted, failed over) answers
    ``NOSCRIPT``; the script is then loaded and the call made once more.
    """

    def __init__(self, command: Commander, run: Runner, grace_ms: str) -> None:
        self._command = command
        self._run = run
        self._grace = grace_ms

    async def _eval(
        self, name: str, keys: Sequence[str], argv: Sequence[Any], operation: str, key: str | None
    ) -> Any:
        script = _SCRIPTS[name]
        args = ("EVALSHA", script.sha, len(keys), *keys, *argv)
        try:
            return await self._command(operation, key, *args)
        except StorageError as exc:
            if not isinstance(exc.__cause__, NoScriptError):
                raise
        await self._run(operation, key, lambda client: client.script_load(script.source))
        return await self._command(operation, key, *args)

    async def write(
        self, request: WriteRequest, keys: list[str], generation: str, index_list: str, bound: str
    ) -> list[Any]:
        """Run ``WRITE`` (see its header for ``keys``, ``bound`` and the replies)."""
        expected = request.expected_length if request.op == "append" else request.expected
        argv: list[Any] = [request.op, request.key, "" if expected is None else expected,
                           request.value, request.expiry, generation, index_list, bound,
                           "" if request.activity is None else repr(request.activity)]  # fmt: skip
        if request.logged:
            argv += [
                "" if request.value_weight is None else request.value_weight,
                "" if request.items is None and request.op == "set" else request.weight,
                "" if request.limit is None else request.limit,
                "" if request.touched_at is None else repr(request.touched_at),
                request.append_id,
                *(request.items or ()),
            ]
        argv.append(self._grace)
        return list(await self._eval("write", keys, argv, request.op, request.key))

    async def read(self, data: str, *, last: int | None, before: int | None, key: str) -> list[Any] | None:
        """Run ``READ`` on the data hash ``data`` (see its header for the reply)."""
        argv = ["" if last is None else last, "" if before is None else before]
        found = await self._eval("read", [data], argv, "get_with_log", key)
        return None if found is None else list(found)

    async def add(self, zset: str, score: str, member: str, *, operation: str, key: str) -> None:
        """Add ``member`` to ``zset`` at ``score`` unless it is already scored higher."""
        await self._eval("zset", [zset], ["add", score, member, self._grace], operation, key)

    async def drop(
        self,
        zset: str,
        members: Sequence[str | bytes],
        *,
        bound: str,
        operation: str,
        mirror: tuple[str, Sequence[str]] | None = None,
    ) -> list[bytes]:
        """Remove ``members`` scored at or below ``bound`` from ``zset``; return those removed.

        ``mirror`` is ``zset``'s activity zset and the member there of each of ``members``:
        those go from it in the same step.
        """
        if not members:
            return []
        if mirror is None:
            keys, listed = [zset], list(members)
        else:
            keys = [zset, mirror[0]]
            listed = [member for pair in zip(members, mirror[1], strict=True) for member in pair]
        return list(await self._eval("zset", keys, ["drop", bound, *listed, self._grace], operation, None))

    async def recent(
        self, zset: str, partner: str, data_prefix: str, *, limit: int, before: tuple[float, str] | None
    ) -> list[tuple[str, float]] | None:
        """``(key, activity)`` newest first, ``None`` if unordered (see ``RECENT``).

        Runs the script again from where its budget ran out, until ``limit`` keys or the end.
        """
        bound: tuple[str | bytes, str | bytes] = ("", "") if before is None else (repr(before[0]), before[1])
        rows: list[tuple[str, float]] = []
        while len(rows) < limit:
            argv = [data_prefix, limit - len(rows), RECENT_BUDGET, *bound]
            reply = await self._eval("recent", [zset, partner], argv, "recent", None)
            if reply is None:
                return None
            found, resume = reply
            rows += [(bytes(found[j]).decode(), float(found[j + 1])) for j in range(0, len(found), 2)]
            if resume is None:
                break
            member, activity = resume
            bound = (activity, member)
        return rows

    async def members(
        self, zset: str, *, expired: bool, limit: int = 0, operation: str
    ) -> tuple[str, list[bytes]]:
        """``(server now in ms, members)``: the live ones, or up to ``limit`` expired ones."""
        argv = ["expired", limit] if expired else ["live"]
        now, found = await self._eval("range", [zset], argv, operation, None)
        return bytes(now).decode(), list(found)
