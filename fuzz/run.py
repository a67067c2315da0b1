"""Long fuzz run (not part of CI): ``python fuzz/run.py --minutes N``.

Runs the cases of :mod:`cases` against in-process, SQLite and (optionally) Redis storages until
the time is up, then writes ``fuzz/RESULTS.md``: how many cases were tried, of which kind, how
they ended, and every broken promise with the seed that replays it::

    python fuzz/run.py --replay stored-bytes:memory 1234567

Redis uses database 12 of ``--redis-url`` under a key prefix of this run, deleted at the end
(by SCAN over the prefix, never FLUSHDB). Each case is bounded by a timeout, so a hang counts as
a failure instead of stalling the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cases import CASES, CURSOR_USER, NS, RING, Broken, Target
from redis.asyncio import Redis

from serverless_sessions.adapters.cache import memory, redis, sqlite
from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.cache_storage import ACBCacheStorage

CASE_TIMEOUT = 30.0
RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass
class Tally:
    """Counts of one run; ``failures`` keeps the first few of each distinct message."""

    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    failures: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def fail(self, label: str, seed: int, message: str) -> None:
        self.outcomes[(label.split(":")[0], label.split(":")[1], "BROKEN")] += 1
        seen = self.failures.setdefault(message.splitlines()[0][:200], [])
        if len(seen) < 3:
            seen.append((label, seed))


@asynccontextmanager
async def open_targets(names: list[str], redis_url: str) -> AsyncIterator[dict[str, Target]]:
    """The storages to fuzz, each with a few sessions for the cursor cases."""
    async with AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-")))
        prefix = f"ssfuzz.{uuid.uuid4().hex[:10]}"
        caches: dict[str, Callable[[], CacheBase]] = {
            "memory": lambda: memory.Cache(max_entries=10_000),
            "memory-encrypted": lambda: memory.Cache(max_entries=10_000),
            "sqlite": lambda: sqlite.Cache(directory / "fuzz.db"),
            "redis": lambda: redis.Cache.from_url(redis_url, key_prefix=prefix),
        }
        targets: dict[str, Target] = {}
        for name in names:
            cache = await stack.enter_async_context(caches[name]())
            if name == "redis":
                stack.push_async_callback(_delete_prefix, redis_url, prefix)
            encryptor = RING if name.endswith("encrypted") else None
            storage = ACBCacheStorage(cache, NS, encryptor=encryptor)
            manager = ServerlessSessionManager(storage)
            for n in range(3):
                await manager.create_session(CURSOR_USER, "p", session_id=f"page-{n}")
            targets[name] = Target(name, storage, manager)
        yield targets


async def _delete_prefix(redis_url: str, prefix: str) -> None:
    connection = Redis.from_url(redis_url)
    try:
        keys = [key async for key in connection.scan_iter(match=f"{prefix}:*")]
        for start in range(0, len(keys), 500):
            await connection.delete(*keys[start : start + 500])
    finally:
        await connection.aclose()


async def run_case(target: Target, kind: str, seed: int) -> str:
    """One case; a broken promise or a hang raises Broken."""
    case, _ = CASES[kind]
    try:
        return await asyncio.wait_for(case(target, random.Random(seed)), CASE_TIMEOUT)
    except TimeoutError as exc:
        raise Broken(f"no answer within {CASE_TIMEOUT}s") from exc


async def fuzz(minutes: float, seed: int, names: list[str], redis_url: str) -> Tally:
    """Run random cases against ``names`` for ``minutes``; print progress every 10 s."""
    master = random.Random(seed)
    kinds = list(CASES)
    weights = [CASES[kind][1] for kind in kinds]
    tally = Tally()
    async with open_targets(names, redis_url) as targets:
        deadline = time.monotonic() + minutes * 60
        next_report = time.monotonic() + 10
        while time.monotonic() < deadline:
            kind = master.choices(kinds, weights)[0]
            target = targets[master.choice(names)]
            case_seed = master.getrandbits(63)
            label = f"{kind}:{target.name}"
            try:
                outcome = await run_case(target, kind, case_seed)
            except Broken as exc:
                tally.fail(label, case_seed, str(exc))
            except Exception as exc:  # a harness bug must not end the run silently
                tally.fail(label, case_seed, f"harness: {type(exc).__name__}: {exc}")
            else:
                tally.outcomes[(kind, target.name, outcome)] += 1
            if time.monotonic() >= next_report:
                next_report += 10
                broken = sum(n for key, n in tally.outcomes.items() if key[2] == "BROKEN")
                print(f"{tally.total} cases, {broken} broken", file=sys.stderr, flush=True)
    return tally


def code_version() -> str:
    """The commit the code under test is based on, and whether the work tree differs."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=RESULTS.parent)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" with uncommitted changes" if git("status", "--porcelain", "src") else "")


def write_results(tally: Tally, *, seconds: float, seed: int, names: list[str], version: str) -> str:
    """RESULTS.md: totals, the breakdown, and every distinct failure with replay seeds."""
    lines = [
        "# Fuzz results",
        "",
        f"Command: `python fuzz/run.py {' '.join(sys.argv[1:])}` on commit {version}  ",
        f"Seed {seed}; {seconds / 60:.1f} min on Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; targets: {', '.join(names)}.",
        "",
        f"**{tally.total} cases tried** ({tally.total / max(seconds, 1e-9):.0f}/s), "
        f"**{sum(len(v) and 1 for v in tally.failures.values())} distinct failures**.",
        "",
        "| case | target | outcome | count |",
        "|---|---|---|---:|",
    ]
    for (kind, target, outcome), count in sorted(tally.outcomes.items()):
        lines.append(f"| {kind} | {target} | {outcome} | {count} |")
    lines += ["", "## Failures", ""]
    if not tally.failures:
        lines.append("None: every case round-tripped exactly or raised a SessionError subclass.")
    for message, examples in tally.failures.items():
        replays = ", ".join(f"`--replay {label} {case_seed}`" for label, case_seed in examples)
        lines.append(f"- {message.replace('|', '/')} — {replays}")
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text, encoding="utf-8")
    return text


async def replay(label: str, seed: int, redis_url: str) -> None:
    """Run one recorded case again and show how it ends."""
    kind, _, name = label.partition(":")
    async with open_targets([name], redis_url) as targets:
        print(await run_case(targets[name], kind, seed))


def main() -> None:
    """Parse the command line; fuzz (writing RESULTS.md) or replay one case."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--targets",
        default="memory,memory-encrypted,sqlite",
        help="comma-separated: memory, memory-encrypted, sqlite, redis",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--replay", nargs=2, metavar=("KIND:TARGET", "SEED"))
    args = parser.parse_args()
    if args.replay:
        asyncio.run(replay(args.replay[0], int(args.replay[1]), args.redis_url))
        return
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    version = code_version()  # what this process imported, not what is there at the end
    started = time.monotonic()
    tally = asyncio.run(fuzz(args.minutes, seed, names, args.redis_url))
    seconds = time.monotonic() - started
    print(write_results(tally, seconds=seconds, seed=seed, names=names, version=version))


if __name__ == "__main__":
    main()
