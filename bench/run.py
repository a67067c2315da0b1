"""Run the benchmark suite and write the results file.

    .venv/bin/python bench/run.py [--smoke] [--out bench/RESULTS.md] [--only PREFIX,...] [--list]

``--smoke`` runs every case with tiny sizes and one repetition (the test suite and CI keep the
bench alive with it); a full run takes a few minutes on 2 cores. The findings part of the
results file (from its mark on) is maintained by hand and carried over from ``bench/RESULTS.md``.
The exit status is 1 if any case could not run (a missed target is a result, not an error).
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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(1, str(ROOT))  # the tests' private-server helpers: tests/redis_servers.py, ...

from context import Context  # noqa: E402
from harness import Case, Result, Side, Target, measure  # noqa: E402
from profiling import pyinstrument_summary  # noqa: E402
from redis_env import SHARED_URL, server_version, unlink_token  # noqa: E402
from report import kept_findings, machine_facts, write_markdown  # noqa: E402

ORDER = ("cases_codec", "cases_redis", "cases_postgres", "cases_listing", "cases_bulk", "cases_coldstart")


def _modules() -> list[ModuleType]:
    """The case modules: those in ``ORDER`` first, then any other ``cases_*.py``."""
    found = sorted(path.stem for path in BENCH.glob("cases_*.py"))
    names = [name for name in ORDER if name in found] + [name for name in found if name not in ORDER]
    return [importlib.import_module(name) for name in names]


def all_case_ids() -> list[str]:
    """Every case id the suite reports, in table order."""
    return [case_id for module in _modules() for case_id in module.CASE_IDS]


def _error_result(case_id: str, error: str) -> Result:
    async def never() -> float:
        raise RuntimeError(error)

    side = Side("—", 1, never)
    return Result(case=Case(case_id, "(did not run)", side, side, Target("speedup", 1.0)), error=error)


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
                f"[bench]   {result.ratio:.2f}x target {case.target.text()} {result.status} "
                f"({result.seconds:.1f} s)",
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--only", default="", help="comma-separated case-id prefixes")
    parser.add_argument("--list", action="store_true", help="print the case ids and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(all_case_ids()))
        return 0
    load_before = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        only = tuple(prefix for prefix in args.only.split(",") if prefix)
        ctx = Context.create(smoke=args.smoke, tmp=Path(tmp), redis_url=SHARED_URL, only=only)
        servers = {"Redis server (shared, db 13)": await server_version(SHARED_URL)}
        results: list[Result] = []
        try:
            for module in _modules():
                results += await _run_module(module, ctx)
        finally:
            removed = await unlink_token(SHARED_URL, ctx.token)
            print(f"[bench] removed {removed} keys of {ctx.token}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    load_after = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; mode: {'smoke' if args.smoke else 'full'}; wall time "
        f"{elapsed:.0f} s; {sum(r.passed for r in results)} of {len(results)} targets met. Load average "
        f"(1/5/15 min) at start {load_before}, at end {load_after}, on {os.cpu_count()} cores."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    findings = kept_findings(BENCH / "RESULTS.md")
    facts = machine_facts(ROOT, servers)
    write_markdown(args.out, results, command=_command(), header=header, facts=facts, findings=findings)
    print(f"[bench] wrote {args.out} in {elapsed:.1f} s", file=sys.stderr)
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
