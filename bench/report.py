"""The results file: the command first, the table, misses with profiles, case notes and the
machine; then the findings, which are prose maintained by hand and kept across runs."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from harness import TIMES, Result

FINDINGS_MARK = "<!-- Findings: maintained by hand; bench/run.py keeps everything below this line. -->"
PACKAGES: tuple[str, ...] = ("serverless-sessions", "pydantic", "pydantic-core", "zstandard", "redis")
PACKAGES += ("hiredis", "asyncpg", "psycopg", "litestar")
_SCALES = {"s": 1.0, "ms": 1e3, "µs": 1e6}


def absolute(per_op: float, unit: str) -> str:
    """A per-operation time in the case's unit (a rate for ``*/s`` units)."""
    if math.isnan(per_op):
        return "—"
    if unit.endswith("/s"):
        return f"{1 / per_op:,.0f} {unit}"
    value = per_op * _SCALES[unit.split("/")[0]]
    return f"{value:,.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def _row(result: Result) -> str:
    case = result.case
    low, high = result.ratio_range
    ratio = "—" if result.error else f"**{result.ratio:.2f}{TIMES}**"
    if result.reps > 1:
        ratio += f" ({low:.2f} to {high:.2f})"
    cells = [
        f"`{case.case_id}` {case.title}",
        f"{case.baseline.label}: {absolute(result.baseline_s, case.unit)}",
        f"{case.candidate.label}: {absolute(result.candidate_s, case.unit)}",
        ratio,
        case.target.text(),
        {"pass": "pass", "miss": "**MISS**", "error": "**ERROR**"}[result.status],
        "; ".join(f"{label}: {value:.2f}{TIMES}" for label, value in result.peers),
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _misses(results: Sequence[Result]) -> list[str]:
    lines = []
    for result in (r for r in results if r.status != "pass"):
        case = result.case
        lines += [f"### `{case.case_id}`: {result.status}", ""]
        if result.error:
            lines += [f"Could not run: `{result.error}`", ""]
            continue
        measured = f"{result.ratio:.2f}{TIMES}"
        if case.target.kind == "limit":  # the bound is on the candidate's own figure
            measured = f"{absolute(result.candidate_s, case.unit)} ({measured} the baseline)"
        lines += [f"Measured {measured} against {case.target.text()}.", ""]
        lines += [case.on_miss, ""] if case.on_miss else []
        if result.profile:
            lines += ["Profile of the candidate:", "", "```text", result.profile, "```", ""]
    return ["## Misses and errors", "", *(lines or ["None: every target was met in this run.", ""])]


def _details(results: Sequence[Result]) -> list[str]:
    lines = ["## Case details", ""]
    for result in results:
        case = result.case
        lines.append(
            f"- `{case.case_id}`: {result.reps} rotating repetitions per side ({case.baseline.ops:,} "
            f"baseline / {case.candidate.ops:,} candidate operations each), {result.seconds:.1f} s."
        )
        lines += [f"  {note}" for note in case.notes]
    return [*lines, ""]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(root: Path, servers: dict[str, str]) -> dict[str, str]:
    """CPU, cores, OS, Python, the git commit, the servers and the measured packages' versions."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True).stdout
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "git commit": commit.strip() + (" (uncommitted changes)" if dirty.strip() else ""),
        **servers,
        **{name: _version(name) for name in PACKAGES},
    }


def kept_findings(path: Path) -> str:
    """The maintained part of ``path`` (from the mark on), or an empty findings section."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    _, mark, rest = text.partition(FINDINGS_MARK)
    return mark + rest if mark else f"{FINDINGS_MARK}\n\n## Findings\n\n(none recorded yet)\n"


def write_markdown(
    path: Path, results: Sequence[Result], *, command: str, header: str, facts: dict[str, str], findings: str
) -> None:
    """Write the results file: generated sections, then ``findings`` unchanged."""
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{command}`",
        "",
        header,
        "",
        "Every ratio compares two sides measured in this run, in rotating repetitions, using the "
        "median time per operation of each side. For `≥` targets the ratio is baseline time / "
        "candidate time (higher is better); for `≤` targets candidate time / baseline time "
        "(lower is better); a `≤ N µs` target bounds the candidate's own figure. Brackets: the "
        "spread of the per-repetition ratios. Peers are other systems doing the same work, "
        "measured in the same rotation, as ratios to the same baseline. Absolute figures are "
        "this machine's and are not targets.",
        "",
        "| case | baseline | candidate | ratio | target | result | peers (same run) |",
        "|---|---|---|---|---|---|---|",
        *(_row(result) for result in results),
        "",
        *_misses(results),
        *_details(results),
        "## Machine",
        "",
        "| what | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in facts.items()),
        "",
        findings,
    ]
    path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
