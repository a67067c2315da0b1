"""The Redis Cluster side of the adapter: multi-slot writes and verified index reads.

In a cluster one script cannot span a key and its indexes (they live in different slots), so
a write (a set, an append, a delete) is three steps, ordered so that a live key is never missing
from its indexes:

1. read the key's version, generation, index list and expiry (a conflict stops here, having
   written nothing);
2. pre-write the index and expiry entries with ``ZADD GT`` at the score the write will give
   (scores only grow, so concurrent writers leave the highest);
3. run the ``WRITE`` script on the data key alone; it refuses (``stale``) if the key's
   generation, index list or expiry no longer match what step 2 wrote, and the caller retries.

A lost race can leave index entries for a key that does not carry them (a "ghost"); they are
removed at once when they carry the loser's fresh generation, readers ignore them otherwise
(:func:`verify_members` checks each listed key's hash), and purging removes them once their
score passes. Only a process crash between steps 2 and 3 of a key *without expiry* can leave a
ghost that stays until the index itself is deleted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from serverless_sessions.adapters.cache.base import check_same_indexes
from serverless_sessions.adapters.cache.redis.scripts import (
    GENERATION_LENGTH,
    Commander,
    KeyLayout,
    Lua,
    Runner,
    WriteRequest,
    encode_indexes,
    expiry_member,
    new_tag,
)

__all__ = ["mutate", "verify_members"]


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8")


async def mutate(command: Commander, lua: Lua, layout: KeyLayout, request: WriteRequest) -> list[Any]:
    """One attempt of ``request`` in a cluster; same replies as the ``WRITE`` script."""
    op, ns, key = request.op, request.namespace, request.key
    data = layout.data(ns, key)
    raw = await command(op, key, "HMGET", data, "n", "e", "g", "i")
    version, stored_expiry, stored_gen, stored_list = (int(raw[0] or 0), *map(_text, raw[1:]))
    if request.expected is not None and version != request.expected:
        return [b"conflict", version]
    if op == "append" and version == 0:
        return [b"missing"]  # what the script would say, with no entry pre-written for nothing
    fresh = version == 0 or stored_gen is None
    generation = new_tag() if fresh else str(stored_gen)
    keep_list = stored_list is not None and not fresh and (op == "del" or stored_list != "[]")
    index_list = str(stored_list) if keep_list else encode_indexes(request.indexes)
    if op == "set" and keep_list:  # a key's index names never change (as on one server)
        stored = tuple(json.loads(index_list))
        check_same_indexes(key, stored, request.indexes, expected=request.expected or 0, actual=None)
    members = {layout.index(ns, name): generation + key for name in json.loads(index_list)}
    members[layout.expiry(ns)] = expiry_member(generation, index_list, key)
    bound = "inf"
    if op != "del":
        bound = {"keep": stored_expiry or "inf", "none": "inf"}.get(request.expiry, request.expiry)
        await asyncio.gather(*(lua.add(z, bound, m, operation=op, key=key) for z, m in members.items()))
    reply = await lua.write(request, [data], generation, index_list, bound)
    stale_entries: dict[str, str] = {}
    if reply[0] == b"ok" and op == "del" and reply[1]:
        stale_entries = members
    elif reply[0] == b"ok" and stored_list is not None and stored_list != index_list:
        stale_entries = {layout.expiry(ns): expiry_member(generation, stored_list, key)}
    elif reply[0] != b"ok" and op == "set" and fresh:
        stale_entries = members  # our own fresh generation: nobody else can use these entries
    await asyncio.gather(*(lua.drop(z, [m], bound="inf", operation=op) for z, m in stale_entries.items()))
    return reply


async def verify_members(
    run: Runner, layout: KeyLayout, namespace: str, index: str, members: Sequence[bytes]
) -> list[str]:
    """The keys of ``members`` (of ``index``) whose live hash has that generation and index."""
    listed = [(m[:GENERATION_LENGTH].decode(), m[GENERATION_LENGTH:].decode("utf-8")) for m in members]

    async def fetch(client: Any) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for _, key in listed:
            pipe.hmget(layout.data(namespace, key), ["g", "i"])
        return list(await pipe.execute())

    replies = await run("index_members", None, fetch) if listed else []
    return [
        key
        for (generation, key), (gen, index_list) in zip(listed, replies, strict=True)
        if _text(gen) == generation and index in json.loads(index_list or b"[]")
    ]
