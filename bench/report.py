"""The results file: a markdown table, per-case notes, misses with profiles, machine facts; a chart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from harness import TIMES, Result

_SCALES = {"s": 1.0, "ms": 1e3, "µs": 1e6}


def absolute(per_op: float, unit: str) -> str:
    """A per-operation time in the case's unit (a rate for ``*/s`` units)."""
    if math.isnan(per_op):
        return "—"
    if unit.endswith("/s"):
        return f"{1 / per_op:,.0f} {unit}"
    value = per_op * _SCALES[unit.split("/")[0]]
    return f"{value:,.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def _ratio(result: Result) -> str:
    if result.error:
        return "—"
    low, high = result.ratio_range
    spread = f" ({low:.2f} to {high:.2f})" if result.reps > 1 else ""
    return f"**{result.ratio:.2f}{TIMES}**{spread}"


def _row(result: Result) -> str:
    case = result.case
    cells = [
        f"`{case.case_id}` {case.title}",
        f"{case.baseline.label}: {absolute(result.baseline_s, case.unit)}",
        f"{case.candidate.label}: {absolute(result.candidate_s, case.unit)}",
        _ratio(result),
        case.target.text(),
        {"pass": "pass", "miss": "**MISS**", "error": "**ERROR**"}[result.status],
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _details(results: Sequence[Result]) -> list[str]:
    lines = ["## Case details", ""]
    for result in results:
        case = result.case
        lines.append(
            f"- `{case.case_id}`: {result.reps} alternating repetitions per side "
            f"({case.baseline.ops:,} baseline / {case.candidate.ops:,} candidate operations "
            f"each), {result.seconds:.1f} s."
        )
        lines.extend(f"  {note}" for note in case.notes)
    return [*lines, ""]


def _misses(results: Sequence[Result]) -> list[str]:
    missed = [r for r in results if r.status != "pass"]
    if not missed:
        return ["## Misses", "", "None: every target was met in this run.", ""]
    lines = ["## Misses and errors", ""]
    for result in missed:
        case = result.case
        lines.append(f"### `{case.case_id}` — {result.status}")
        lines.append("")
        if result.error:
            lines.extend([f"Could not run: `{result.error}`", ""])
            continue
        lines.append(f"Measured {result.ratio:.2f}{TIMES} against a target of {case.target.text()}.")
        lines.extend(["", case.on_miss or "No analysis recorded for this case.", ""])
        if result.profile:
            lines.extend(["Profile of the candidate:", ""])
            lines.extend(["```text", result.profile, "```", ""])
    return lines


def write_markdown(
    path: Path,
    results: Sequence[Result],
    *,
    command: str,
    header: Sequence[str],
    findings: Sequence[str],
    facts: dict[str, str],
    chart: Path | None,
) -> None:
    """Write the results file."""
    lines = ["# Benchmark results", "", *header, "", f"Command: `{command}`", ""]
    lines += [
        "Every ratio compares two sides measured in this run, in alternating repetitions, "
        "using the median time per operation of each side. For `≥` targets the ratio is "
        "baseline time / candidate time (candidate ops/s ÷ baseline ops/s, higher is better); "
        "for `≤` targets it is candidate time / baseline time (lower is better). The range in "
        "brackets is the spread of the per-repetition ratios. Absolute figures are this "
        "machine's and are not targets.",
        "",
        "| case | baseline | candidate | ratio | target | result |",
        "|---|---|---|---|---|---|",
        *(_row(result) for result in results),
        "",
    ]
    if chart is not None:
        lines += [f"![ratio against target per case]({chart.name})", ""]
    lines += _misses(results)
    lines += ["## Proposed src fixes", "", *findings, ""]
    lines += _details(results)
    lines += ["## Machine", "", "| what | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in facts.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_chart(path: Path, results: Sequence[Result], *, title: str) -> bool:
    """A bar per case: how far past (green) or short of (red) its target; log scale."""
    import matplotlib  # the plot extra is only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if not r.error]
    if not measured:
        return False
    names = [r.case.case_id for r in measured]
    headroom = [r.case.target.headroom(r.ratio) for r in measured]
    colors = ["#2a9d4b" if r.passed else "#d1495b" for r in measured]
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(measured) + 1.6))
    ax.barh(names, headroom, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.invert_yaxis()
    for y, result in enumerate(measured):
        label = f" {result.ratio:.2f}{TIMES} (target {result.case.target.text()})"
        ax.text(headroom[y], y, label, va="center", fontsize=8)
    ax.set_xlabel("ratio ÷ target bound (≥ 1 meets the target; log scale)")
    ax.set_title(title, fontsize=10)
    right = max(max(headroom) * 3, 2.0)
    ax.set_xlim(min(min(headroom) / 1.5, 0.5), right)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
