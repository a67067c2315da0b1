"""Codec cases: a full encode+decode round trip of one session, 1 KB, 5 KB and 50 KB of JSON.

* the default codec (zstd-3 from 8 KiB up) against pydantic JSON alone: what the content
  checks, compression and the envelope add (``bench/codec_speed.py`` shows the threshold's
  trade-off size by size).
* zstd against msgpack + brotli at its default quality (11), what the first refactoring claimed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import brotli
import msgpack

import notes
from context import Context
from harness import Case, Side, Target, timed_sync
from serverless_sessions import Codec, SessionState
from sessions import make_session, sample_fields

SIZES = {"1k": 1_000, "5k": 5_000, "50k": 50_000}
LABELS = {"1k": "1 KB", "5k": "5 KB", "50k": "50 KB"}
# Below the 8 KiB threshold the codec must stay near JSON alone; at 50 KB zstd is on by design
# (2.4-2.9x smaller), and bounded so that it stays one zstd pass.
COST_TARGETS = {"1k": 1.5, "5k": 1.5, "50k": 3.0}
CASE_IDS = [f"codec-{name}-{vs}" for name in SIZES for vs in ("json", "brotli")]


def _side(label: str, roundtrip: Callable[[], object], ops: int) -> Side:
    async def run() -> float:
        return timed_sync(lambda _: roundtrip(), ops)

    return Side(label, ops, run)


async def cases(ctx: Context) -> AsyncIterator[Case]:
    sizes = ctx.sizes
    codec = Codec()
    for name, size in SIZES.items():
        state = make_session("codec-1", "user-1", "project-1", sample_fields(size))
        json_len = len(state.model_dump_json())
        envelope = codec.encode(state)
        packed = brotli.compress(msgpack.packb(state.model_dump(mode="json")))

        def zstd_roundtrip(state: SessionState = state) -> object:
            return codec.decode(codec.encode(state), key="codec-1")

        def json_roundtrip(state: SessionState = state) -> object:
            return SessionState.model_validate_json(state.model_dump_json())

        def brotli_roundtrip(state: SessionState = state) -> object:
            data = brotli.compress(msgpack.packb(state.model_dump(mode="json")))
            return SessionState.model_validate(msgpack.unpackb(brotli.decompress(data)))

        zstd = _side("Codec default (zstd-3 from 8 KiB)", zstd_roundtrip, sizes.codec_ops)
        sizes_note = (
            f"JSON {json_len:,} B; default envelope {len(envelope):,} B "
            f"({json_len / len(envelope):.1f}x smaller); msgpack+brotli-11 {len(packed):,} B"
        )
        yield Case(
            case_id=f"codec-{name}-json",
            title=f"codec round trip, {LABELS[name]} session: default codec vs JSON alone",
            baseline=_side("pydantic JSON alone", json_roundtrip, sizes.codec_ops),
            candidate=zstd,
            target=Target("cost", COST_TARGETS[name]),
            unit="µs/op",
            notes=[sizes_note],
            on_miss=notes.CODEC_MISS,
        )
        yield Case(
            case_id=f"codec-{name}-brotli",
            title=f"codec round trip, {LABELS[name]} session: default codec vs msgpack+brotli-11",
            baseline=_side("msgpack + brotli (quality 11)", brotli_roundtrip, sizes.brotli_ops),
            candidate=zstd,
            target=Target("speedup", 20.0),
            unit="µs/op",
            notes=[sizes_note],
        )
