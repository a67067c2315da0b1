"""What every case module receives: the mode's sizes, a scratch directory and the Redis to use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sizes:
    """Work per repetition and population sizes; ``--smoke`` shrinks all of them."""

    reps: int
    ladder_reps: int
    warmup: bool
    codec_ops: int
    brotli_ops: int
    memory_ops: int
    sqlite_ops: int
    redis_ops: int
    redis_serial_ops: int
    in_flight: int
    list_small: int
    list_large: int
    list_huge: int
    list_reps: int
    cleanup_small: int
    cleanup_large: int
    cleanup_fixed_expired: int
    bulk_ops: int
    bulk_in_flight: int
    rtt_ops: int
    coldstart_reps: int


FULL = Sizes(
    reps=11,
    ladder_reps=7,
    warmup=True,
    codec_ops=200,
    brotli_ops=6,
    memory_ops=1000,
    sqlite_ops=200,
    redis_ops=1500,
    redis_serial_ops=300,
    in_flight=50,
    list_small=1_000,
    list_large=100_000,
    list_huge=1_000_000,
    list_reps=10,
    cleanup_small=10_000,
    cleanup_large=100_000,
    cleanup_fixed_expired=100,
    bulk_ops=1000,
    bulk_in_flight=100,
    rtt_ops=200,
    coldstart_reps=11,
)

SMOKE = Sizes(
    reps=1,
    ladder_reps=1,
    warmup=False,
    codec_ops=5,
    brotli_ops=1,
    memory_ops=20,
    sqlite_ops=10,
    redis_ops=50,
    redis_serial_ops=10,
    in_flight=10,
    list_small=100,
    list_large=300,
    list_huge=500,
    list_reps=2,
    cleanup_small=200,
    cleanup_large=400,
    cleanup_fixed_expired=2,
    bulk_ops=20,
    bulk_in_flight=10,
    rtt_ops=5,
    coldstart_reps=1,
)


@dataclass(frozen=True)
class Context:
    """Shared by every case module for one run."""

    sizes: Sizes
    smoke: bool
    tmp: Path
    redis_url: str
    token: str
    only: tuple[str, ...] = ()

    @classmethod
    def create(cls, *, smoke: bool, tmp: Path, redis_url: str, only: tuple[str, ...] = ()) -> Context:
        return cls(
            sizes=SMOKE if smoke else FULL,
            smoke=smoke,
            tmp=tmp,
            redis_url=redis_url,
            token=f"bench-{uuid.uuid4().hex[:10]}",
            only=only,
        )

    def wants(self, *case_ids: str) -> bool:
        """Whether any of ``case_ids`` is selected (``--only`` prefixes; none = all)."""
        return not self.only or any(c.startswith(p) for c in case_ids for p in self.only)

    def namespace(self, name: str) -> str:
        """A namespace unique to this run (cache namespaces allow ``A-Za-z0-9_.-``)."""
        return f"{self.token}-{name}"
