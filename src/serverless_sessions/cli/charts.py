"""The ``stats`` charts: horizontal bars in the terminal, or a PNG drawn by matplotlib.

matplotlib is imported only when a PNG is asked for (it costs ~0.4 s to import), with the
non-interactive Agg backend so it works on servers without a display.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from serverless_sessions.cli.stats import Distribution, SessionStats
from serverless_sessions.cli.views import human_duration, human_size, render_mapping
from serverless_sessions.errors import MissingDependencyError

__all__ = ["render_stats", "write_png"]

_BAR_WIDTH = 40
_SHOWN_IDS = 5


def _bars(console: Console, title: str, distribution: Distribution) -> None:
    table = Table(title=title, show_header=False, title_justify="left", box=None)
    table.add_column(justify="right", style="cyan", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right")
    peak = max((bucket.count for bucket in distribution.buckets), default=0)
    for bucket in distribution.buckets:
        width = round(_BAR_WIDTH * bucket.count / peak) if peak else 0
        bar = "█" * width or ("▏" if bucket.count else "")
        table.add_row(bucket.label, f"[green]{bar}[/]", str(bucket.count))
    console.print(table)


def _unreadable(ids: list[str]) -> str:
    """A count, with the first few ids (the JSON output has them all)."""
    if not ids:
        return "0"
    shown = ", ".join(ids[:_SHOWN_IDS]) + (", ..." if len(ids) > _SHOWN_IDS else "")
    return f"{len(ids)} (corrupt or undecryptable: {shown})"


def render_stats(console: Console, stats: SessionStats, backend: dict[str, object]) -> None:
    """Counts, then a bar chart per distribution."""
    sizes, ttls = stats.size_distribution, stats.ttl_distribution
    render_mapping(
        console,
        "Sessions",
        {
            **backend,
            "sessions": stats.total,
            "users": len(stats.users),
            "projects": len(stats.projects),
            "without expiry": stats.no_expiry,
            "unreadable": _unreadable(stats.unreadable),
            "median size": None if sizes.median is None else human_size(sizes.median),
            "median TTL left": None if ttls.median is None else human_duration(ttls.median),
        },
    )
    if stats.total:
        _bars(console, "Stored size", sizes)
        _bars(console, "Remaining TTL", ttls)


def write_png(stats: SessionStats, path: Path) -> None:
    """Histograms of sizes (KiB) and remaining TTLs (hours) side by side, saved to ``path``."""
    with MissingDependencyError.on_import(feature="stats --plot", extra="plot"):
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4), layout="constrained")
    try:
        left.hist([size / 1024 for size in stats.sizes], bins=30, color="tab:blue")
        left.set(title="Stored size", xlabel="KiB", ylabel="sessions")
        right.hist([ttl / 3600 for ttl in stats.ttls], bins=30, color="tab:green")
        right.set(title="Remaining TTL", xlabel="hours", ylabel="sessions")
        figure.suptitle(f"{stats.total} sessions")
        figure.savefig(path, dpi=100, format="png")  # whatever the file name ends with
    finally:
        pyplot.close(figure)
