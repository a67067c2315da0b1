"""Soak run against Redis: mixed traffic for a few minutes, then an index audit.

    .venv/bin/python bench/soak.py [--minutes 3] [--workers 16] [--out bench/SOAK.md]

Traffic (one client process, ``--workers`` tasks): create (with a long or a few-seconds TTL, so
sessions keep expiring), update via ``mutate`` (concurrent tasks hit the same sessions, so
conflicts and retries happen), get, list a user's page, delete, touch; a cleanup task runs
every 15 s. Once the traffic tracks ``POPULATION`` sessions, creates turn into deletes of the
oldest, so the working set is steady and the client's memory should plateau: growth would be
a leak. Every ``--interval`` seconds it records throughput, p50/p99 latency, errors and the
client's resident memory.

At the end the traffic stops, the run waits for the last short TTL to pass, runs cleanup, and
counts with raw Redis commands: live data keys, entries of every user index, every project
index and the expiry index. Each live session is in exactly one of each, so the four counts
must be equal; an index entry without a live session would be a leak (the original module's
indexes grew without bound).

It uses database 12 of the shared server under a key prefix of this run only, removed at the
end with SCAN + DEL (never FLUSHDB, never KEYS).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from serverless_sessions.adapters.cache import redis
from serverless_sessions.adapters.cache.redis.scripts import KeyLayout
from serverless_sessions.errors import SessionError, SessionNotFoundError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState
from serverless_sessions.storage.cache_storage import ACBCacheStorage

NAMESPACE = "soak"
USERS, PROJECTS = 200, 40
SHORT_TTL = (2.0, 8.0)  # seconds: these sessions expire during the run
POPULATION = 3000  # sessions the traffic keeps track of; past it a create becomes a delete
MIX = {"create": 25, "update": 25, "get": 25, "list": 10, "delete": 8, "touch": 7}


@dataclass
class Interval:
    """What one reporting interval saw."""

    started: float
    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)


@dataclass
class Result:
    """Everything the report shows."""

    prefix: str
    traffic_seconds: float
    ops: Counter[str]
    errors: Counter[str]
    samples: list[dict[str, float]]
    cleaned_during_run: int
    before: dict[str, int]
    purged_at_end: int
    after: dict[str, int]
    listed: int
    peak_rss_mb: float

    @property
    def balanced(self) -> bool:
        """Every count equal: index entries and live sessions match one to one."""
        return len({*self.after.values(), self.listed}) == 1


@dataclass
class Soak:
    """Shared state of the traffic tasks."""

    manager: ServerlessSessionManager
    rng: random.Random
    known: list[str] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    cleaned: int = 0

    def pick(self) -> str | None:
        return self.rng.choice(self.known) if self.known else None

    def forget(self, session_id: str) -> None:
        if session_id in self.known:
            self.known.remove(session_id)


def memory_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_operation(soak: Soak, kind: str) -> str:
    """Run one operation of ``kind`` and return what it did (a create may become a delete).

    A session that vanished (expired, deleted by another task) is forgotten, not an error.
    """
    manager, rng = soak.manager, soak.rng
    if kind == "create" and len(soak.known) >= POPULATION:
        kind = "delete-oldest"  # hold the population steady, so memory should plateau
    if kind == "delete-oldest":
        await manager.delete_session(soak.known.pop(0))
        return kind
    if kind == "create":
        short = rng.random() < 0.4
        ttl_hours = rng.uniform(*SHORT_TTL) / 3600 if short else 1.0
        created = await manager.create_session(
            f"user-{rng.randrange(USERS)}",
            f"project-{rng.randrange(PROJECTS)}",
            {"conversation_history": [{"role": "user", "content": "x" * rng.randint(50, 4000)}]},
            ttl_hours=ttl_hours,
        )
        soak.known.append(created)
        return kind
    if kind == "list":
        await manager.list_sessions(user_id=f"user-{rng.randrange(USERS)}", limit=50)
        return kind
    session_id = soak.pick()
    if session_id is None:
        return kind
    try:
        if kind == "update":

            def append(state: SessionState) -> None:
                state.conversation_history.append({"role": "assistant", "content": "ok"})
                del state.conversation_history[:-20]  # keep sessions bounded

            await manager.mutate(session_id, append)
        elif kind == "get":
            if await manager.get_session(session_id) is None:
                soak.forget(session_id)
        elif kind == "delete":
            await manager.delete_session(session_id)
            soak.forget(session_id)
        else:
            await manager.touch(session_id, ttl_hours=rng.uniform(*SHORT_TTL) / 3600)
    except SessionNotFoundError:
        soak.forget(session_id)
    return kind


async def worker(soak: Soak, stop: asyncio.Event) -> None:
    """Random operations of the mix until ``stop``."""
    kinds, weights = list(MIX), list(MIX.values())
    while not stop.is_set():
        kind = soak.rng.choices(kinds, weights)[0]
        interval = soak.intervals[-1]
        started = time.perf_counter()
        try:
            kind = await one_operation(soak, kind)
        except SessionError as exc:
            interval.errors[f"{kind}: {type(exc).__name__}"] += 1
        interval.latencies.append(time.perf_counter() - started)
        interval.ops[kind] += 1


async def cleaner(soak: Soak, stop: asyncio.Event) -> None:
    """The periodic cleanup a deployment would schedule."""
    while not stop.is_set():
        await asyncio.sleep(15)
        soak.cleaned += await soak.manager.cleanup_sessions()


async def recorder(soak: Soak, stop: asyncio.Event, every: float) -> None:
    """Close an interval every ``every`` seconds and sample throughput, latency, memory."""
    while not stop.is_set():
        await asyncio.sleep(every)
        closing = soak.intervals[-1]
        soak.intervals.append(Interval(time.monotonic()))
        seconds = time.monotonic() - closing.started
        latencies = sorted(closing.latencies) or [0.0]
        sample = {
            "t": round(time.monotonic() - soak.intervals[0].started),
            "ops_per_s": sum(closing.ops.values()) / seconds,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "errors": sum(closing.errors.values()),
            "rss_mb": memory_mb(),
            "known": len(soak.known),
        }
        closing.latencies.clear()  # keep the client's own bookkeeping flat
        soak.samples.append(sample)
        print(
            f"t={sample['t']:>4}s {sample['ops_per_s']:>7.0f} ops/s  p99 {sample['p99_ms']:.1f} ms"
            f"  errors {sample['errors']}  rss {sample['rss_mb']:.1f} MB",
            file=sys.stderr,
            flush=True,
        )


async def audit(client: Redis, layout: KeyLayout) -> dict[str, int]:
    """Raw counts: live data keys and the entries of every index."""

    async def count_keys(pattern: str) -> list[bytes]:
        return [key async for key in client.scan_iter(match=pattern, count=1000)]

    data = await count_keys(layout.data(NAMESPACE, "*"))
    counts = {"live data keys": len(data)}
    for family in ("user", "project"):
        indexes = await count_keys(layout.index(NAMESPACE, f"{family}:*"))
        counts[f"{family}-index entries"] = sum([await client.zcard(key) for key in indexes])
    counts["expiry-index entries"] = int(await client.zcard(layout.expiry(NAMESPACE)))
    return counts


async def soak_run(url: str, minutes: float, workers: int, every: float) -> Result:
    """Traffic for ``minutes``, then the audit; this run's keys are deleted in any case."""
    prefix = f"sssoak.{uuid.uuid4().hex[:10]}"
    layout = KeyLayout(prefix)
    client = Redis.from_url(url)
    try:
        async with redis.Cache.from_url(url, key_prefix=prefix) as cache:
            manager = ServerlessSessionManager(ACBCacheStorage(cache, NAMESPACE))
            soak = Soak(manager, random.Random(20261125), intervals=[Interval(time.monotonic())])
            stop = asyncio.Event()
            tasks = [asyncio.create_task(worker(soak, stop)) for _ in range(workers)]
            tasks += [
                asyncio.create_task(cleaner(soak, stop)),
                asyncio.create_task(recorder(soak, stop, every)),
            ]
            started = time.monotonic()
            await asyncio.sleep(minutes * 60)
            stop.set()
            await asyncio.gather(*tasks[:-2])
            for task in tasks[-2:]:
                task.cancel()
            await asyncio.gather(*tasks[-2:], return_exceptions=True)
            traffic_seconds = time.monotonic() - started
            before = await audit(client, layout)
            await asyncio.sleep(SHORT_TTL[1] + 1)  # every short TTL given so far has passed
            purged = await manager.cleanup_sessions()
            after = await audit(client, layout)
            listed = len([sid async for sid in manager.storage.iter_session_ids()])
        return Result(
            prefix=prefix,
            traffic_seconds=traffic_seconds,
            ops=sum((i.ops for i in soak.intervals), Counter()),
            errors=sum((i.errors for i in soak.intervals), Counter()),
            samples=soak.samples,
            cleaned_during_run=soak.cleaned,
            before=before,
            purged_at_end=purged,
            after=after,
            listed=listed,
            peak_rss_mb=memory_mb("VmHWM"),
        )
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()


def report(result: Result, args: argparse.Namespace) -> str:
    """SOAK.md: totals, the time series, and the index audit."""
    total = sum(result.ops.values())
    seconds = result.traffic_seconds
    errors = result.errors
    rss = [s["rss_mb"] for s in result.samples]
    half = len(rss) // 2
    lines = [
        "# Soak run (Redis)",
        "",
        f"Command: `python bench/soak.py {' '.join(sys.argv[1:])}` — {args.workers} tasks in one "
        f"client process, Redis at `{args.url}` (key prefix `{result.prefix}`, removed after).",
        "",
        f"**{total} operations in {seconds:.0f} s** ({total / seconds:.0f} ops/s); mix: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(result.ops.items()))}.  ",
        f"Errors: {sum(errors.values())}"
        + (f" ({', '.join(f'{k} x{v}' for k, v in errors.items())})" if errors else "")
        + f"; sessions removed by the periodic cleanup: {result.cleaned_during_run}.",
        "",
        "## Throughput, latency and client memory over time",
        "",
        "| t (s) | ops/s | p50 ms | p99 ms | errors | client RSS MB | sessions known |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result.samples:
        lines.append(
            f"| {s['t']:.0f} | {s['ops_per_s']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{s['errors']:.0f} | {s['rss_mb']:.1f} | {s['known']:.0f} |"
        )
    if half:
        lines += [
            "",
            f"Client RSS: first half mean {statistics.mean(rss[:half]):.1f} MB, second half mean "
            f"{statistics.mean(rss[half:]):.1f} MB, peak {result.peak_rss_mb:.1f} MB.",
        ]
    lines += [
        "",
        "## Index entries vs live sessions",
        "",
        "| count | when traffic stopped | after the last TTL passed and cleanup |",
        "|---|---:|---:|",
    ]
    for name, count in result.after.items():
        lines.append(f"| {name} | {result.before[name]} | {count} |")
    lines += [
        f"| sessions listed by the library (scan) | - | {result.listed} |",
        "",
        f"Final cleanup removed {result.purged_at_end} expired sessions. "
        + (
            "**Balanced**: every index entry belongs to a live session and every live session "
            "is in its user, project and expiry index."
            if result.balanced
            else "**NOT balanced**: index entries and live sessions differ (a leak or a loss)."
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the soak, write the report, exit 1 if the index audit is not balanced."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("SOAK.md"))
    args = parser.parse_args()
    result = asyncio.run(soak_run(args.url, args.minutes, args.workers, args.interval))
    text = report(result, args)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    sys.exit(0 if result.balanced else 1)


if __name__ == "__main__":
    main()
