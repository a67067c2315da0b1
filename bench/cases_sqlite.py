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
from harness import Case, Side, Target, clock, ladder
from serverless_sessions import ACBCacheStorage, Codec
from serverless_sessions.adapters.cache import sqlite
from sessions import SessionFactory

CASE_IDS = ["sqlite-store"]


def _write_file(directory: Path, name: str, data: bytes, *, durable: bool = False) -> None:
    temp = directory / f".{name}.tmp"
    with open(temp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temp, directory / f"{name}.json")
    if durable:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _file_side(
    label: str, factory: SessionFactory, codec: Codec, directory: Path, ops: int, *, durable: bool
) -> Side:
    async def run() -> float:
        states = factory.batch(ops)
        start = clock()
        for state in states:
            data = codec.encode(state)
            await asyncio.to_thread(_write_file, directory, state.session_id, data, durable=durable)
        return clock() - start

    return Side(label, ops, run)


async def cases(ctx: Context) -> AsyncIterator[Case]:
    ops = ctx.sizes.sqlite_ops
    factory = SessionFactory("sql", 5_000)
    codec = Codec()
    files = ctx.tmp / "session-files"
    files.mkdir()
    cache = sqlite.Cache(ctx.tmp / "store.db")
    async with ACBCacheStorage(cache, ctx.namespace("sqlite"), codec=codec, owns_cache=True) as st:

        async def candidate() -> float:
            states = factory.batch(ops)
            start = clock()
            for state in states:
                await st.store_session(state)
            return clock() - start

        case = Case(
            case_id="sqlite-store",
            title="SQLite default store, 5 KB session, one at a time",
            baseline=_file_side(
                "one file per session (temp + rename)", factory, codec, files, ops, durable=False
            ),
            candidate=Side("ACBCacheStorage over sqlite.Cache", ops, candidate),
            target=Target("speedup", 2.0),
            unit="sessions/s",
            on_miss=notes.SQLITE_MISS,
        )
        yield case
        durable = _file_side(
            "file with fsync of file and directory",
            factory,
            codec,
            files,
            max(1, ops // 4),
            durable=True,
        )
        steps = [case.baseline, durable, case.candidate]
        case.notes.append(await ladder("For reference", steps, ctx.sizes.ladder_reps, warmup=False))
