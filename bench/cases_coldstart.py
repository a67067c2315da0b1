"""Cold start: a new Python process that imports, connects and reads one session.

Candidate: ``import serverless_sessions`` + ``create_session_storage(url=redis://...)`` + the
first ``retrieve_session``. Baseline: ``import redis.asyncio`` + ``Redis.from_url`` + the first
``GET`` of the same stored bytes. Each child times that section itself (clock started before its
first import, stopped after the read), so interpreter start-up, common to both, is left out of
the ratio; the whole-process wall time is noted too. Bytecode caches are warm (a warm-up run),
as after ``pip install``: the children may write them even where the environment says
``PYTHONDONTWRITEBYTECODE`` (this machine does), or every run would compile the library anew.
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
    await st.close()
    print(t1 - t0, state is not None)
asyncio.run(main())
"""
_BASELINE = """import redis.asyncio
async def main():
    client = redis.asyncio.Redis.from_url({url!r})
    value = await client.get({key!r})
    t1 = time.perf_counter()
    await client.aclose()
    print(t1 - t0, value is not None)
asyncio.run(main())
"""


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SERVERLESS_SESSIONS_") and k != "PYTHONDONTWRITEBYTECODE"
    }


async def run_child(script: str, *flags: str) -> tuple[float, bool, float, str]:
    """Run ``python [flags] -c script``: (its own timing, whether it found the session, wall
    seconds, stderr)."""
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
    seconds, found = out.decode().split()[-2:]
    return float(seconds), found == "True", wall, stderr


def _import_times(stderr: str) -> dict[str, int]:
    """Module -> self microseconds, from ``python -X importtime`` output."""
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "imported package" not in line:
            own, _, name = line.removeprefix("import time:").split("|", 2)
            times[name.strip()] = int(own)
    return times


def import_diff(baseline_stderr: str, candidate_stderr: str, top: int = 12) -> str:
    """Import time the candidate pays and the baseline does not, by package and own module."""
    base = _import_times(baseline_stderr)
    extra = {name: us for name, us in _import_times(candidate_stderr).items() if name not in base}
    by_package: dict[str, int] = {}
    for name, us in extra.items():
        by_package[name.split(".")[0]] = by_package.get(name.split(".")[0], 0) + us
    own = {name: us for name, us in extra.items() if name.startswith("serverless_sessions")}
    lines = [
        f"{len(extra)} modules imported only by the candidate, {sum(extra.values()) / 1000:.1f} ms "
        "of import self time; by top-level package:"
    ]
    lines += [
        f"  {us / 1000:6.1f} ms  {name}"
        for name, us in sorted(by_package.items(), key=lambda item: -item[1])[:top]
    ]
    lines.append("the library's own modules (self time, not counting what they import):")
    lines += [
        f"  {us / 1000:6.1f} ms  {name}" for name, us in sorted(own.items(), key=lambda item: -item[1])[:top]
    ]
    return "\n".join(lines)


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
                inner, found, wall, _ = await run_child(scripts[which])
                if not found:
                    raise AssertionError(f"the cold-start {which} did not read the session")
                walls[which].append(wall)
                return inner

            return Side(label, 1, run)

        async def profile() -> str:
            *_, base = await run_child(scripts["baseline"], "-X", "importtime")
            *_, cand = await run_child(scripts["candidate"], "-X", "importtime")
            return import_diff(base, cand)

        case = Case(
            case_id="coldstart-redis",
            title="cold start in a new process (Redis)",
            baseline=side("import redis.asyncio + from_url + first GET", "baseline"),
            candidate=side(
                "import serverless_sessions + create_session_storage + first retrieve",
                "candidate",
            ),
            target=Target("cost", 1.3),
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
