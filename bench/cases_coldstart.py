"""Cold start: a new Python process that imports, connects and reads one session.

Candidate: ``import serverless_sessions`` + ``create_session_storage(url=redis://...)`` + the
first ``retrieve_session``. Baseline: ``import redis.asyncio`` + ``Redis.from_url`` + the first
``GET`` of the same stored bytes. Each child times that section itself (clock started before its
first import, stopped after the read), so interpreter start-up, common to both, is left out of
the ratio; the whole-process wall time is noted too. Bytecode caches are warm (a warm-up run).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from collections.abc import AsyncIterator

import notes
from backends import open_cache, storage
from context import Context
from harness import Case, Side, Target, clock
from redis_env import raw_client
from sessions import SessionFactory

CASE_IDS = ["coldstart-redis"]

_PRELUDE = "import time\nt0 = time.perf_counter()\nimport asyncio\n"
_CANDIDATE = """import serverless_sessions
async def main():
    st = serverless_sessions.create_session_storage(url={url!r}, namespace={ns!r})
    state = await st.retrieve_session({sid!r})
    t1 = time.perf_counter()
    assert state is not None
    await st.close()
    print(t1 - t0)
asyncio.run(main())
"""
_BASELINE = """import redis.asyncio
async def main():
    client = redis.asyncio.Redis.from_url({url!r})
    value = await client.get({key!r})
    t1 = time.perf_counter()
    assert value is not None
    await client.aclose()
    print(t1 - t0)
asyncio.run(main())
"""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SERVERLESS_SESSIONS_")}


async def run_child(script: str, *flags: str) -> tuple[float, float, str]:
    """Run ``python [flags] -c script``; return (its own timing, wall seconds, stderr)."""
    start = clock()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *flags,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    out, err = await process.communicate()
    wall = clock() - start
    stderr = err.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"cold-start child failed: {stderr[-500:]}")
    return float(out.decode().split()[-1]), wall, stderr


def importtime_summary(stderr: str, top: int = 14) -> str:
    """Imports with the largest cumulative time, from ``python -X importtime`` output.

    Nested imports are shown indented under their importer, as Python prints them; only rows
    above 2 ms cumulative are kept, largest first within the original order's top level.
    """
    rows: list[tuple[int, int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative), int(own), name[1:].rstrip()))
    heavy = [row for row in rows if row[0] >= 2000 and len(row[2]) - len(row[2].lstrip()) <= 4]
    heavy.sort(key=lambda row: -row[0])
    return "\n".join(
        f"{cum / 1000:7.1f} ms cumulative {own / 1000:6.1f} ms self  {name}" for cum, own, name in heavy[:top]
    )


async def cases(ctx: Context) -> AsyncIterator[Case]:
    namespace = ctx.namespace("coldstart")
    raw_key = f"{ctx.token}:coldstart-raw"
    async with open_cache("redis", ctx, "coldstart") as cache, raw_client(ctx.redis_url) as raw:
        st = storage(cache, namespace)
        state = SessionFactory("cold", 5_000).batch(1)[0]
        await st.store_session(state)
        await raw.set(raw_key, st.encode(state))
        scripts = {
            "candidate": _PRELUDE + _CANDIDATE.format(url=ctx.redis_url, ns=namespace, sid=state.session_id),
            "baseline": _PRELUDE + _BASELINE.format(url=ctx.redis_url, key=raw_key),
        }
        walls: dict[str, list[float]] = {"candidate": [], "baseline": []}

        def side(label: str, which: str) -> Side:
            async def run() -> float:
                inner, wall, _ = await run_child(scripts[which])
                walls[which].append(wall)
                return inner

            return Side(label, 1, run)

        async def profile() -> str:
            _, _, stderr = await run_child(scripts["candidate"], "-X", "importtime")
            return importtime_summary(stderr)

        case = Case(
            case_id="coldstart-redis",
            title="cold start in a new process (Redis)",
            baseline=side("import redis.asyncio + from_url + first GET", "baseline"),
            candidate=side(
                "import serverless_sessions + create_session_storage + first retrieve",
                "candidate",
            ),
            target=Target("cost", 1.5),
            unit="ms",
            profile=profile,
            on_miss=notes.COLDSTART_MISS,
            reps=ctx.sizes.coldstart_reps,
        )
        yield case
        case.notes.append(
            "Whole-process wall time (interpreter start-up included), median: baseline "
            f"{statistics.median(walls['baseline']) * 1e3:.0f} ms, candidate "
            f"{statistics.median(walls['candidate']) * 1e3:.0f} ms."
        )
