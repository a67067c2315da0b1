"""Profile summaries for the results file: where a missed candidate spends its time."""

from __future__ import annotations

from harness import Runner

_TOP = 14


async def pyinstrument_summary(run: Runner, *, repeat: int = 2) -> str:
    """Run ``run`` under pyinstrument; return the functions with the most self time.

    The flat self-time view (percent of the profiled wall time) is the text form of a flame
    graph's widest leaves: what to make cheaper.
    """
    from pyinstrument import Profiler  # noqa: PLC0415 - only needed when a target is missed

    profiler = Profiler(interval=0.0002, async_mode="enabled")
    profiler.start()
    try:
        for _ in range(repeat):
            await run()
    finally:
        profiler.stop()
    text = profiler.output_text(flat=True, time="percent_of_total", show_all=False)
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    body = [line for line in lines if "%" in line and not line.lstrip().startswith("Recorded")]
    return "\n".join(body[:_TOP])
