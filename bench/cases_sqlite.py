"""SQLite (the default backend) store against one file per session written as temp + rename.

Both sides store the same encoded bytes of a new 5 KB session, one at a time, off the event
loop (SQLite on its worker thread; files on the default executor), and neither forces an fsync
per write (SQLite runs WAL with ``synchronous=NORMAL``; the files are renamed, not fsynced).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import notes
from context import Context
from harness import Case, Side, Target, clock
from serverless_sessions import ACBCacheStorage, Codec
from serverless_sessions.adapters.cache import sqlite
from sessions import SessionFactory

CASE_IDS = ["sqlite-store"]


def _write_file(directory: Path, name: str, data: bytes) -> None:
    temp = directory / f".{name}.tmp"
    with open(temp, "wb") as handle:
        handle.write(data)
    os.replace(temp, directory / f"{name}.json")


async def cases(ctx: Context) -> AsyncIterator[Case]:
    ops = ctx.sizes.sqlite_ops
    factory = SessionFactory("sql", 5_000)
    codec = Codec()
    files = ctx.tmp / "session-files"
    files.mkdir()

    async def baseline() -> float:
        states = factory.batch(ops)
        start = clock()
        for state in states:
            data = codec.encode(state)
            await asyncio.to_thread(_write_file, files, state.session_id, data)
        return clock() - start

    cache = sqlite.Cache(ctx.tmp / "store.db")
    async with ACBCacheStorage(cache, ctx.namespace("sqlite"), codec=codec, owns_cache=True) as st:

        async def candidate() -> float:
            states = factory.batch(ops)
            start = clock()
            for state in states:
                await st.store_session(state)
            return clock() - start

        yield Case(
            case_id="sqlite-store",
            title="SQLite default store, 5 KB session, one at a time",
            baseline=Side("one file per session (temp + rename)", ops, baseline),
            candidate=Side("ACBCacheStorage over sqlite.Cache", ops, candidate),
            target=Target("speedup", 2.0),
            unit="sessions/s",
            on_miss=notes.SQLITE_MISS,
        )
