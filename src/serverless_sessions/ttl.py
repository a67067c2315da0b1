"""Time-to-live arithmetic, in one place.

Every backend without native expiry stores an absolute UTC expiry (UNIX seconds) and every read
path compares it with :func:`now`; every TTL given by a caller passes through
:func:`ttl_seconds`, so a ``timedelta`` of two days is 172800 seconds (not ``.seconds`` == 0).
"""

from __future__ import annotations

import enum
import math
import time
from datetime import timedelta

from serverless_sessions.errors import InvalidSessionError

__all__ = ["KEEP_TTL", "KeepTTL", "TTLArg", "expiry_for", "is_expired", "now", "ttl_seconds"]


class KeepTTL(enum.Enum):
    """Marker type: keep the expiry the key already has."""

    KEEP_TTL = "keep-ttl"


KEEP_TTL = KeepTTL.KEEP_TTL
"""Pass as ``ttl`` to keep a key's current expiry (a missing key gets no expiry)."""

TTLArg = float | None | KeepTTL
"""Seconds until expiry (> 0), ``None`` for no expiry, or :data:`KEEP_TTL`."""


def now() -> float:
    """Current UNIX time in seconds (a function so tests and adapters share one clock)."""
    return time.time()


def ttl_seconds(ttl: float | timedelta | None, *, what: str = "ttl") -> float | None:
    """Validate a caller's TTL and return it in seconds (``None`` means no expiry)."""
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidSessionError(f"{what} must be a number of seconds, got {ttl!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidSessionError(f"{what} must be a positive, finite number of seconds, got {ttl!r}")
    return float(seconds)


def expiry_for(ttl: TTLArg, *, current: float | None, at: float) -> float | None:
    """Absolute expiry for a write at time ``at``: ``KEEP_TTL`` keeps ``current``."""
    if ttl is KEEP_TTL:
        return current
    seconds = ttl_seconds(ttl)
    return None if seconds is None else at + seconds


def is_expired(expires_at: float | None, at: float | None = None) -> bool:
    """Whether an absolute expiry has passed."""
    return expires_at is not None and expires_at <= (now() if at is None else at)
