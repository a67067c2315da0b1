"""Where compression pays: codec round trips with and without zstd, 1 KB / 5 KB / 50 KB.

Run: ``.venv/bin/python bench/codec_speed.py``. Each size alternates the variants five times
and prints medians (µs per round trip) and sizes; ``Codec(threshold=...)`` is set from this.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from serverless_sessions.codec import Codec
from serverless_sessions.model import SessionState
from sessions import make_session, sample_fields


def _per_op_us(run: Callable[[], object], ops: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(ops):
        run()
    return (time.perf_counter() - start) / ops * 1e6


def main() -> None:
    plain, zstd = Codec(compression="none"), Codec(threshold=0)
    for size in (1_000, 5_000, 50_000):
        state = make_session("codec-1", "user-1", "project-1", sample_fields(size))
        variants: dict[str, Callable[[], object]] = {
            "json alone": lambda s=state: SessionState.model_validate_json(s.model_dump_json()),
            "codec, no zstd": lambda s=state: plain.decode(plain.encode(s), key="k"),
            "codec, zstd-3": lambda s=state: zstd.decode(zstd.encode(s), key="k"),
        }
        ops = max(200, 2_000_000 // size)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(5):
            for name, run in variants.items():
                times[name].append(_per_op_us(run, ops))
        medians = {name: statistics.median(found) for name, found in times.items()}
        base = medians["json alone"]
        shown = ", ".join(f"{name} {us:.1f} µs ({us / base:.2f}x)" for name, us in medians.items())
        print(f"{len(state.model_dump_json()):>6,} B JSON -> {len(zstd.encode(state)):>6,} B zstd: {shown}")


if __name__ == "__main__":
    main()
