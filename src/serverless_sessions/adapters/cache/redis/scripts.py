"""Key names, member encodings and Lua scripts of the Redis adapter.

The layout, its disjointness and the hash-slot rules are described in the public module
:mod:`serverless_sessions.adapters.cache.redis`. Here: the exact encodings the scripts and the
Python side share, and the scripts themselves. Python owns the index-list encoding (canonical
JSON); Lua only stores and compares it byte for byte, and concatenates members exactly as
:func:`expiry_member` does.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from redis.exceptions import NoScriptError

from serverless_sessions.errors import StorageError

__all__ = [
    "GENERATION_LENGTH",
    "ExpiryRecord",
    "Commander",
    "KeyLayout",
    "Lua",
    "Runner",
    "WriteRequest",
    "encode_indexes",
    "expiry_member",
    "new_generation",
    "parse_expiry_member",
]

GENERATION_LENGTH = 16
T = TypeVar("T")


def new_generation() -> str:
    """A fresh generation tag for a key being created."""
    return secrets.token_hex(GENERATION_LENGTH // 2)


def encode_indexes(indexes: Sequence[str]) -> str:
    """The canonical text of an index list (the scripts compare it byte for byte)."""
    return json.dumps(list(indexes), ensure_ascii=False, separators=(",", ":"))


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
    """One set (``op="set"``) or delete (``op="del"``) of a key, as the WRITE script takes it.

    ``expected`` is the version the key must have (``None``: any); ``expiry`` is absolute UNIX
    ms, ``"keep"`` or ``"none"``; ``indexes`` apply when the key has none yet.
    """

    op: str
    namespace: str
    key: str
    value: bytes = b""
    expected: int | None = None
    expiry: str = "none"
    indexes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Names of the Redis keys that hold one namespace's data and bookkeeping."""

    prefix: str

    def data(self, namespace: str, key: str) -> str:
        """The hash holding ``key``'s value, version, generation, index list and expiry."""
        return f"{self.prefix}:{namespace}:d:{key}"

    def index(self, namespace: str, name: str) -> str:
        """The zset listing the keys of secondary index ``name``."""
        return f"{self.prefix}:{namespace}:i:{name}"

    def expiry(self, namespace: str) -> str:
        """The zset of every key of the namespace, scored by expiry."""
        return f"{self.prefix}:{namespace}:x"

    def scan_pattern(self, namespace: str) -> str:
        """A ``SCAN MATCH`` pattern for the data keys (glob characters in the prefix escaped)."""
        literal = self.data(namespace, "")
        return "".join("\\" + c if c in "*?[]\\" else c for c in literal) + "*"


# Shared by the scripts that change zsets: make the zset expire `grace` ms after its latest
# member, or persist it while a member never expires. ZRANGE -1 -1 is O(log n).
_FIT = """
local grace = tonumber(ARGV[#ARGV])
local function fit(zset)
  local top = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  if #top == 0 then return end
  if top[2] == 'inf' then redis.call('PERSIST', zset)
  else redis.call('PEXPIREAT', zset, string.format('%.0f', tonumber(top[2]) + grace)) end
end
-- After adding a member scored `score`: raising the expiry (GT) is enough while the zset is
-- volatile; only a zset without expiry (new, or holding a member that never expires) needs
-- the full fit. A zset may so outlive a member whose expiry was shortened, never the reverse.
local function grow(zset, score)
  if score == '+inf' then redis.call('PERSIST', zset); return end
  if redis.call('PEXPIREAT', zset, tonumber(score) + grace, 'GT') == 0
    and redis.call('PTTL', zset) == -1 then fit(zset) end
end
"""

WRITE = (
    _FIT
    + """
-- Compare-and-set or delete one key.
-- KEYS: data hash [, expiry zset, index zsets...]  (zsets only on a single server)
-- ARGV: 1 op set|del, 2 key, 3 expected version ('' = any), 4 value, 5 expiry ms|keep|none,
--       6 generation for a new key, 7 index list (the caller's guess),
--       8 cluster bound: '' on a single server, else the score pre-written for this write,
--       9 grace ms
-- Returns {'ok', version, expiry|false, generation, index list}, {'conflict', version}
-- or {'stale', index list, generation} when the caller must retry with the stored index list.
local cur = redis.call('HMGET', KEYS[1], 'n', 'e', 'g', 'i')
local ver = tonumber(cur[1]) or 0
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= ver then return {'conflict', ver} end
local cluster = ARGV[8] ~= ''
local gen, idx = ARGV[6], ARGV[7]
if ver > 0 then
  if cluster and cur[3] ~= gen then return {'stale', cur[4], cur[3]} end
  gen = cur[3]
  if ARGV[1] == 'del' or cur[4] ~= '[]' then idx = cur[4] end
end
if idx ~= ARGV[7] then return {'stale', cur[4], gen} end
if ARGV[1] == 'del' then
  if ver == 0 then return {'ok', 0, false, gen, idx} end
  redis.call('DEL', KEYS[1])
  for j = 3, #KEYS do redis.call('ZREM', KEYS[j], gen .. ARGV[2]); fit(KEYS[j]) end
  if #KEYS > 1 then redis.call('ZREM', KEYS[2], gen .. idx .. ARGV[2]); fit(KEYS[2]) end
  return {'ok', ver, cur[2], gen, idx}
end
local exp = ARGV[5]
if exp == 'keep' then exp = (ver > 0 and cur[2]) or 'none' end
if cluster and ARGV[8] ~= 'inf' and (exp == 'none' or tonumber(exp) > tonumber(ARGV[8])) then
  return {'stale', cur[4], cur[3]}
end
if exp == 'none' then
  redis.call('HSET', KEYS[1], 'v', ARGV[4], 'n', ver + 1, 'g', gen, 'i', idx)
  if cur[2] then redis.call('HDEL', KEYS[1], 'e'); redis.call('PERSIST', KEYS[1]) end
else
  redis.call('HSET', KEYS[1], 'v', ARGV[4], 'n', ver + 1, 'g', gen, 'i', idx, 'e', exp)
  redis.call('PEXPIREAT', KEYS[1], exp)
end
if #KEYS > 1 then
  local score = (exp == 'none') and '+inf' or exp
  for j = 3, #KEYS do redis.call('ZADD', KEYS[j], score, gen .. ARGV[2]); grow(KEYS[j], score) end
  if ver > 0 and cur[4] ~= idx then redis.call('ZREM', KEYS[2], gen .. cur[4] .. ARGV[2]) end
  redis.call('ZADD', KEYS[2], score, gen .. idx .. ARGV[2]); grow(KEYS[2], score)
end
return {'ok', ver + 1, (exp ~= 'none') and exp or false, gen, idx}
"""
)

ZSET = (
    _FIT
    + """
-- Change one zset. KEYS: the zset. ARGV: 1 op add|drop, 2 score (add) or bound (drop),
-- 3.. members, last grace ms. 'add' raises scores only (ZADD GT: a pre-written entry never
-- ends before its key); 'drop' removes members scored <= bound ('inf' = all), returns them.
local removed = {}
if ARGV[1] == 'add' then
  for j = 3, #ARGV - 1 do redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[j]) end
else
  local bound = tonumber(ARGV[2])
  for j = 3, #ARGV - 1 do
    local score = redis.call('ZSCORE', KEYS[1], ARGV[j])
    if score and tonumber(score) <= bound then
      redis.call('ZREM', KEYS[1], ARGV[j]); removed[#removed + 1] = ARGV[j]
    end
  end
end
fit(KEYS[1])
return removed
"""
)

RANGE = """
-- Members of one zset relative to the server's clock. KEYS: the zset.
-- ARGV: 1 live|expired, 2 limit (expired only). Returns {now ms, members}.
local t = redis.call('TIME')
local now = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000))
if ARGV[1] == 'live' then return {now, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')} end
return {now, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[2])}
"""


class Runner(Protocol):
    """The cache's guarded call: retries transient errors, translates backend errors."""

    def __call__(
        self, operation: str, key: str | None, call: Callable[[Any], Awaitable[T]]
    ) -> Awaitable[T]: ...


class Commander(Protocol):
    """The cache's guarded single command (auto-pipelined outside a cluster)."""

    def __call__(self, operation: str, key: str | None, *args: Any) -> Awaitable[Any]: ...


@dataclass(frozen=True, slots=True)
class _Script:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> _Script:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())  # Redis names scripts by SHA-1


_SCRIPTS = {name: _Script.of(source) for name, source in (("write", WRITE), ("zset", ZSET), ("range", RANGE))}


class Lua:
    """The three scripts, sent by ``EVALSHA`` through the cache's guarded command.

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
        expected = "" if request.expected is None else request.expected
        argv = [request.op, request.key, expected, request.value, request.expiry, generation,
                index_list, bound, self._grace]  # fmt: skip
        return list(await self._eval("write", keys, argv, request.op, request.key))

    async def add(self, zset: str, score: str, member: str, *, operation: str, key: str) -> None:
        """Add ``member`` to ``zset`` at ``score`` unless it is already scored higher."""
        await self._eval("zset", [zset], ["add", score, member, self._grace], operation, key)

    async def drop(
        self, zset: str, members: Sequence[str | bytes], *, bound: str, operation: str
    ) -> list[bytes]:
        """Remove ``members`` scored at or below ``bound`` from ``zset``; return those removed."""
        if not members:
            return []
        argv = ["drop", bound, *members, self._grace]
        return list(await self._eval("zset", [zset], argv, operation, None))

    async def members(
        self, zset: str, *, expired: bool, limit: int = 0, operation: str
    ) -> tuple[str, list[bytes]]:
        """``(server now in ms, members)``: the live ones, or up to ``limit`` expired ones."""
        argv = ["expired", limit] if expired else ["live"]
        now, found = await self._eval("range", [zset], argv, operation, None)
        return bytes(now).decode(), list(found)
