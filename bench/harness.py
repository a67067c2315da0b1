"""The one measurement harness every case uses.

A :class:`Case` pairs a baseline :class:`Side` with a candidate :class:`Side`. Each side's ``run``
performs ``ops`` operations and returns the seconds its measured part took (set-up that must not
be timed happens inside ``run``, before its clock starts). :func:`measure` runs the two sides in
alternating order (B C, C B, B C, ...) so drift and noise on this 2-core machine hit both, and
compares the medians of the per-operation times.

Ratios always compare the same amount of work:

* ``speedup`` targets: ratio = baseline time / candidate time (= candidate ops/s / baseline ops/s);
  the target is a lower bound.
* ``cost`` targets: ratio = candidate time / baseline time; the target is an upper bound.
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
TIMES = "\u00d7"  # the multiplication sign of "2.5x" ratios in the results file
Profiler = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class Target:
    """A bound on a ratio: ``speedup`` must reach ``bound``, ``cost`` must not exceed it."""

    kind: Literal["speedup", "cost"]
    bound: float

    def text(self) -> str:
        return f"≥ {self.bound:g}{TIMES}" if self.kind == "speedup" else f"≤ {self.bound:g}{TIMES}"

    def ratio(self, baseline: float, candidate: float) -> float:
        return baseline / candidate if self.kind == "speedup" else candidate / baseline

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.kind == "speedup" else ratio <= self.bound

    def headroom(self, ratio: float) -> float:
        """How far past the bound (>1 passes, <1 misses), for the chart."""
        return ratio / self.bound if self.kind == "speedup" else self.bound / ratio


@dataclass(frozen=True)
class Side:
    """One side of a comparison: ``run`` does ``ops`` operations and returns measured seconds."""

    label: str
    ops: int
    run: Runner


@dataclass
class Case:
    """A row of the results table."""

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
    profile: str = ""
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and self.case.target.met(self.ratio)

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "pass" if self.passed else "miss"


async def alternate(sides: Sequence[Side], reps: int, *, warmup: bool) -> list[list[float]]:
    """Run every side ``reps`` times, rotating the order each round; per-operation seconds.

    With two sides the rounds go A B, B A, A B, ...; with more, each round starts one side
    later, so no side always runs first (or always after the same neighbour).
    """
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
    """Alternate baseline and candidate ``reps`` times each; compare per-operation medians.

    ``case.reps``, when set, overrides ``reps`` (cases whose repetitions are cheap or costly).
    """
    reps = case.reps or reps
    started = time.perf_counter()
    base, cand = await alternate([case.baseline, case.candidate], reps, warmup=warmup)
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
    )


async def ladder(title: str, steps: Sequence[Side], reps: int, *, warmup: bool) -> str:
    """A cost decomposition: each step adds one layer; median µs per operation of each.

    Returned as one markdown line for a case's notes, e.g. ``SET 70 µs → script 75 µs``.
    """
    times = await alternate(steps, reps, warmup=warmup)
    parts = [
        f"{side.label} {statistics.median(per_op) * 1e6:,.0f} µs"
        for side, per_op in zip(steps, times, strict=True)
    ]
    return f"{title} (median per operation, {reps} rotating repetitions): " + " → ".join(parts)


def clock() -> float:
    """Wall time: for anything that waits on I/O (Redis, SQLite, files, child processes)."""
    return time.perf_counter()


def cpu_clock() -> float:
    """This thread's CPU time: for in-process CPU-only work (codec, memory adapter).

    Other processes on this shared 2-core machine steal wall time unevenly from one repetition
    to the next; they cannot add CPU time to ours (they still share caches, so some noise stays).
    """
    return time.thread_time()


async def timed_loop(op: Callable[[int], Awaitable[object]], ops: int) -> float:
    """Seconds to await ``op(i)`` for ``i`` in ``range(ops)``, one after another."""
    start = clock()
    for i in range(ops):
        await op(i)
    return clock() - start


def timed_sync(op: Callable[[int], object], ops: int) -> float:
    """CPU seconds to call ``op(i)`` for ``i`` in ``range(ops)`` (CPU-only work)."""
    start = cpu_clock()
    for i in range(ops):
        op(i)
    return cpu_clock() - start


async def timed_concurrent(op: Callable[[int], Awaitable[object]], ops: int, in_flight: int) -> float:
    """Seconds to run ``op(i)`` for ``i`` in ``range(ops)`` with ``in_flight`` tasks at once.

    Each worker task takes the next index when its previous operation finishes, so exactly
    ``in_flight`` operations are outstanding until the tail (the redis-benchmark model).
    """
    indexes: Iterable[int] = iter(range(ops))

    async def worker() -> None:
        for i in indexes:
            await op(i)

    start = clock()
    await asyncio.gather(*(worker() for _ in range(min(in_flight, ops))))
    return clock() - start
