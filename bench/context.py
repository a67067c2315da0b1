"""What every case module receives: the mode's sizes, a scratch directory and the Redis to use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Sizes:
    """Work per repetition and population sizes of a full run; ``--smoke`` shrinks all of them."""

    reps: int = 11
    warmup: bool = True
    codec_ops: int = 200
    brotli_ops: int = 6
    redis_ops: int = 1500
    redis_serial_ops: int = 300
    in_flight: int = 50
    cpu_ops: int = 1000
    list_small: int = 1_000
    list_large: int = 100_000
    list_ops: int = 2
    list_reps: int = 5
    bulk_ops: int = 1000
    bulk_in_flight: int = 100
    rtt_ops: int = 200
    coldstart_reps: int = 11
    pg_ops: int = 1000


FULL = Sizes()
SMOKE = replace(
    FULL,
    reps=1,
    warmup=False,
    codec_ops=5,
    brotli_ops=1,
    redis_ops=40,
    redis_serial_ops=10,
    in_flight=10,
    cpu_ops=20,
    list_small=60,
    list_large=120,
    list_ops=1,
    list_reps=1,
    bulk_ops=20,
    bulk_in_flight=10,
    rtt_ops=5,
    coldstart_reps=1,
    pg_ops=40,
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
        sizes = SMOKE if smoke else FULL
        return cls(sizes, smoke, tmp, redis_url, f"bench-{uuid.uuid4().hex[:10]}", only)

    def wants(self, *case_ids: str) -> bool:
        """Whether any of ``case_ids`` is selected (``--only`` prefixes; none = all)."""
        return not self.only or any(c.startswith(p) for c in case_ids for p in self.only)

    def namespace(self, name: str) -> str:
        """A namespace unique to this run (cache namespaces allow ``A-Za-z0-9_.-``)."""
        return f"{self.token}-{name}"
