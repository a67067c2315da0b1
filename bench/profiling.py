"""Profile summaries for the results file: where a missed candidate spends its time."""

from __future__ import annotations

from harness import Runner

_MAX_LINES = 40


async def pyinstrument_summary(run: Runner, *, repeat: int = 2) -> str:
    """Run ``run`` under pyinstrument; return its call tree, frames under 3 % pruned.

    The tree is the text form of a flame graph: each line's share of the profiled wall time
    includes its callees, and ``[self]`` lines are time spent in the function's own code.
    """
    from pyinstrument import Profiler  # only needed when a target is missed

    profiler = Profiler(interval=0.0002, async_mode="enabled")
    profiler.start()
    try:
        for _ in range(repeat):
            await run()
    finally:
        profiler.stop()
    text = profiler.output_text(time="percent_of_total", processor_options={"filter_threshold": 0.03})
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Profile at")), -1)
    body = [line.rstrip() for line in lines[start + 1 :] if line.strip()]
    if len(body) > _MAX_LINES:
        body = [*body[:_MAX_LINES], f"... ({len(body) - _MAX_LINES} more lines)"]
    return "\n".join(body)
