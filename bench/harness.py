"""The one measurement harness every case uses.

A :class:`Case` pairs a baseline :class:`Side` with a candidate :class:`Side` (and optionally
peers: other systems doing the same work). Each side's ``run`` performs ``ops`` operations and
returns the seconds its measured part took (untimed set-up happens inside ``run`` before its
clock starts). :func:`measure` runs all sides in rotating order (B C, C B, B C, ...) so drift and
noise on this 2-core machine hit every side, and compares the medians of per-operation times.

* ``speedup`` targets: ratio = baseline time / candidate time (candidate ops/s ÷ baseline
  ops/s); the bound is a lower bound.
* ``cost`` targets: ratio = candidate time / baseline time; the bound is an upper bound.
* ``limit`` targets: an upper bound on the candidate's own per-operation figure (in seconds);
  the ratio is reported as for ``cost``.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Runner = Callable[[], Awaitable[float]]
Profiler = Callable[[], Awaitable[str]]
TIMES = "\u00d7"


@dataclass(frozen=True)
class Target:
    """What a case must reach (see the module docstring for the three kinds)."""

    kind: Literal["speedup", "cost", "limit"]
    bound: float

    def text(self) -> str:
        if self.kind == "limit":
            return f"≤ {self.bound * 1e6:g} µs"
        return f"{'≥' if self.kind == 'speedup' else '≤'} {self.bound:g}{TIMES}"

    def ratio(self, baseline: float, candidate: float) -> float:
        return baseline / candidate if self.kind == "speedup" else candidate / baseline

    def met(self, ratio: float, candidate: float) -> bool:
        if self.kind == "limit":
            return candidate <= self.bound
        return ratio >= self.bound if self.kind == "speedup" else ratio <= self.bound


@dataclass(frozen=True)
class Side:
    """One side of a comparison: ``run`` does ``ops`` operations and returns measured seconds."""

    label: str
    ops: int
    run: Runner


@dataclass
class Case:
    """A row of the results table; ``peers`` are measured in the same rotation, reported beside."""

    case_id: str
    title: str
    baseline: Side
    candidate: Side
    target: Target
    unit: str = "ops/s"
    notes: list[str] = field(default_factory=list)
    on_miss: str = ""
    profile: Profiler | None = None
    reps: int | None = None
    peers: list[Side] = field(default_factory=list)


@dataclass
class Result:
    """What a case measured; ``error`` is set (and the numbers are NaN) if it could not run."""

    case: Case
    baseline_s: float = float("nan")
    candidate_s: float = float("nan")
    ratio: float = float("nan")
    ratio_range: tuple[float, float] = (float("nan"), float("nan"))
    reps: int = 0
    seconds: float = 0.0
    peers: list[tuple[str, float]] = field(default_factory=list)
    profile: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.case.target.met(self.ratio, self.candidate_s)

    @property
    def status(self) -> str:
        return "error" if self.error else "pass" if self.passed else "miss"


async def alternate(sides: Sequence[Side], reps: int, *, warmup: bool) -> list[list[float]]:
    """Run every side ``reps`` times, each round starting one side later; per-operation seconds."""
    if warmup:
        for side in sides:
            await side.run()
    times: list[list[float]] = [[] for _ in sides]
    for rep in range(reps):
        for offset in range(len(sides)):
            index = (rep + offset) % len(sides)
            gc.collect()  # garbage of the previous run must not be collected inside this one
            times[index].append(await sides[index].run() / sides[index].ops)
    return times


async def measure(case: Case, reps: int, *, warmup: bool) -> Result:
    """Rotate baseline, candidate and peers ``reps`` times each (``case.reps`` overrides)."""
    reps = case.reps or reps
    started = time.perf_counter()
    base, cand, *peers = await alternate([case.baseline, case.candidate, *case.peers], reps, warmup=warmup)
    paired = [case.target.ratio(b, c) for b, c in zip(base, cand, strict=True)]
    baseline_s, candidate_s = statistics.median(base), statistics.median(cand)
    return Result(
        case=case,
        baseline_s=baseline_s,
        candidate_s=candidate_s,
        ratio=case.target.ratio(baseline_s, candidate_s),
        ratio_range=(min(paired), max(paired)),
        reps=reps,
        seconds=time.perf_counter() - started,
        peers=[
            (side.label, case.target.ratio(baseline_s, statistics.median(times)))
            for side, times in zip(case.peers, peers, strict=True)
        ],
    )


def clock() -> float:
    """Wall time: for anything that waits on I/O (Redis, PostgreSQL, files, child processes)."""
    return time.perf_counter()


def cpu_clock() -> float:
    """This thread's CPU time: for in-process CPU-only work, which other processes cannot inflate."""
    return time.thread_time()


def timed_sync(op: Callable[[int], object], ops: int) -> float:
    """CPU seconds to call ``op(i)`` for ``i`` in ``range(ops)`` (CPU-only work)."""
    start = cpu_clock()
    for i in range(ops):
        op(i)
    return cpu_clock() - start


async def timed_concurrent(op: Callable[[int], Awaitable[object]], ops: int, in_flight: int) -> float:
    """Seconds to run ``op(i)`` for ``i`` in ``range(ops)`` with ``in_flight`` outstanding at once.

    Each worker takes the next index when its previous operation finishes, so exactly
    ``in_flight`` operations are outstanding until the tail (the redis-benchmark model);
    ``in_flight=1`` is one at a time.
    """
    indexes: Iterable[int] = iter(range(ops))

    async def worker() -> None:
        for i in indexes:
            await op(i)

    start = clock()
    await asyncio.gather(*(worker() for _ in range(min(in_flight, ops))))
    return clock() - start
