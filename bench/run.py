"""Run the benchmark suite and write the results file and chart.

    .venv/bin/python bench/run.py [--smoke] [--out bench/RESULTS.md] [--only PREFIX,...] [--list]

``--smoke`` runs every case with tiny sizes and one repetition (CI keeps the suite alive with
it); the full run takes a few minutes on 2 cores. The exit status is 1 if any case could not
run (a missed target is a result, not an error).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from context import Context
from findings import findings
from harness import Case, Result, Side, Target, measure
from machine import load_average, machine_facts
from profiling import pyinstrument_summary
from redis_env import SHARED_URL, server_version, unlink_token
from report import write_chart, write_markdown

ROOT = Path(__file__).resolve().parent.parent
MODULES = (
    "cases_codec",
    "cases_memory",
    "cases_sqlite",
    "cases_redis",
    "cases_scale",
    "cases_bulk",
    "cases_coldstart",
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in MODULES]


def all_case_ids() -> list[str]:
    """Every case id the suite reports, in table order."""
    return [case_id for module in _modules() for case_id in module.CASE_IDS]


def _error_result(case_id: str, error: str) -> Result:
    async def never() -> float:
        raise RuntimeError(error)

    side = Side("—", 1, never)
    case = Case(case_id, "(did not run)", side, side, Target("speedup", 1.0))
    return Result(case=case, error=error)


async def _run_module(module: ModuleType, ctx: Context) -> list[Result]:
    results: list[Result] = []
    wanted = [case_id for case_id in module.CASE_IDS if ctx.wants(case_id)]
    if not wanted:
        return results
    try:
        async for case in module.cases(ctx):
            if not ctx.wants(case.case_id):
                continue
            print(f"[bench] {case.case_id} ...", file=sys.stderr, flush=True)
            result = await measure(case, ctx.sizes.reps, warmup=ctx.sizes.warmup)
            if not result.passed and not ctx.smoke:
                profile = case.profile or (lambda run=case.candidate.run: pyinstrument_summary(run))
                result.profile = await profile()
            print(
                f"[bench]   {result.ratio:.2f}x target {case.target.text()} "
                f"{result.status} ({result.seconds:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    except Exception as exc:  # report the failure as rows; the other modules still run
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
        done = {result.case.case_id for result in results}
        results += [_error_result(case_id, error) for case_id in wanted if case_id not in done]
    return results


def _command() -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    return shlex.join([python, *sys.argv])


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--only", default="", help="comma-separated case-id prefixes")
    parser.add_argument("--list", action="store_true", help="print the case ids and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(all_case_ids()))
        return 0
    only = [prefix for prefix in args.only.split(",") if prefix]
    load_before = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ctx = Context.create(smoke=args.smoke, tmp=Path(tmp), redis_url=SHARED_URL, only=tuple(only))
        versions = {"Redis server (shared, db 13)": await server_version(SHARED_URL)}
        results: list[Result] = []
        try:
            for module in _modules():
                results += await _run_module(module, ctx)
            print("[bench] findings ...", file=sys.stderr, flush=True)
            found = await findings(ctx, results) if not only else ["(skipped: --only)"]
        finally:
            removed = await unlink_token(SHARED_URL, ctx.token)
            print(f"[bench] removed {removed} keys of {ctx.token}", file=sys.stderr)
    order = {case_id: i for i, case_id in enumerate(all_case_ids())}
    results.sort(key=lambda result: order.get(result.case.case_id, len(order)))
    elapsed = time.perf_counter() - started
    mode = "smoke (tiny sizes, 1 repetition)" if args.smoke else "full"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    passed = sum(result.passed for result in results)
    header = [
        f"Run {stamp}; mode: {mode}; wall time {elapsed:.0f} s; {passed} of {len(results)} targets met. "
        f"Load average (1/5/15 min) at start {load_before}, at end {load_average()}, on "
        f"{os.cpu_count()} cores: other work shared this machine (see the per-repetition ranges)."
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    chart = args.out.parent / f"{args.out.stem.lower()}.png"
    drawn = write_chart(chart, results, title=f"serverless-sessions benchmark ({mode}, {stamp})")
    write_markdown(
        args.out,
        results,
        command=_command(),
        header=header,
        findings=found,
        facts=machine_facts(ROOT, versions),
        chart=chart if drawn else None,
    )
    print(f"[bench] wrote {args.out} in {elapsed:.1f} s", file=sys.stderr)
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
