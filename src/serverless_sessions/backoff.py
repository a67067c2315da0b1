"""Exponential backoff with full jitter: the one wait between retries, for every retry loop.

The n-th retry waits a uniform random time in ``[0, min(cap, base * 2**n)]`` (redis-py's
``FullJitterBackoff``; the core cannot import redis-py, so it is written here once). The jitter
keeps many clients that failed together from retrying together. Used by the Redis adapter's
retries of transient failures and by every compare-and-set loop that re-reads after a conflict
(:meth:`~serverless_sessions.ServerlessSessionManager.mutate`, re-encryption).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

__all__ = ["CONFLICT_BACKOFF", "Backoff"]

_MAX_DOUBLINGS = 1000
"""Beyond this ``2**failures`` no longer converts to a float; the cap has long won anyway."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: ``base`` seconds doubled per failure, at most ``cap``."""

    base: float
    cap: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        return random.uniform(0.0, min(self.cap, self.base * 2 ** min(failures, _MAX_DOUBLINGS)))

    async def wait(self, failures: int) -> None:
        """Sleep :meth:`delay` seconds."""
        await asyncio.sleep(self.delay(failures))


CONFLICT_BACKOFF = Backoff(base=0.001, cap=0.05)
"""After a compare-and-set conflict: a few milliseconds, so contenders take turns quickly."""
