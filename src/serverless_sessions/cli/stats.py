"""Session statistics: counts, and the distributions of stored sizes and remaining TTLs.

Pure computation over what :meth:`ServerlessSessionManager.iter_sessions` yields, so the terminal
chart, the JSON output and the PNG plot all show the same numbers. Buckets have fixed, readable
edges (powers of four in bytes; minutes to days in time) rather than data-dependent ones, so two
runs can be compared by eye.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from serverless_sessions.cli.views import human_duration, human_size
from serverless_sessions.storage.base import StoredSession

__all__ = ["Bucket", "Distribution", "SessionStats"]

_SIZE_EDGES = (256, 1024, 4096, 16384, 65536, 262144, 1048576)
_TTL_EDGES = (60, 600, 3600, 6 * 3600, 86400, 7 * 86400)
_TOP = 10


@dataclass(frozen=True, slots=True)
class Bucket:
    """Values ``low <= v < high`` (``high=None``: no upper bound), labelled for people."""

    label: str
    low: float
    high: float | None
    count: int


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary numbers and fixed buckets of one measure; all ``None`` when there is no value."""

    count: int
    minimum: float | None
    median: float | None
    p95: float | None
    maximum: float | None
    buckets: list[Bucket]

    @classmethod
    def of(
        cls, values: Sequence[float], edges: Sequence[float], show: Callable[[float], str]
    ) -> Distribution:
        """Summarize ``values`` into buckets bounded by ``edges``, labelled with ``show``."""
        ordered = sorted(values)
        bounds = [0.0, *edges]
        buckets = []
        for index, low in enumerate(bounds):
            high = edges[index] if index < len(edges) else None
            count = sum(1 for v in ordered if v >= low and (high is None or v < high))
            if index == 0:
                label = f"< {show(edges[0])}"
            else:
                label = f"≥ {show(low)}" if high is None else f"{show(low)} - {show(high)}"
            buckets.append(Bucket(label, low, high, count))
        if not ordered:
            return cls(0, None, None, None, None, buckets)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return cls(len(ordered), ordered[0], statistics.median(ordered), p95, ordered[-1], buckets)


@dataclass(slots=True)
class SessionStats:
    """Accumulates sessions one by one (so a progress bar can follow the count).

    ``unreadable`` collects the ids of sessions that could not be decoded; they are not in
    ``total`` or any distribution, since nothing about them can be read.
    """

    now: float
    total: int = 0
    no_expiry: int = 0
    users: Counter[str] = field(default_factory=Counter)
    projects: Counter[str] = field(default_factory=Counter)
    sizes: list[float] = field(default_factory=list)
    ttls: list[float] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def add(self, stored: StoredSession) -> None:
        """Count one session."""
        self.total += 1
        self.users[stored.state.user_id] += 1
        self.projects[stored.state.project_id] += 1
        self.sizes.append(stored.size)
        if stored.expires_at is None:
            self.no_expiry += 1
        else:
            self.ttls.append(max(0.0, stored.expires_at - self.now))

    @property
    def size_distribution(self) -> Distribution:
        """Stored (encoded) sizes in bytes."""
        return Distribution.of(self.sizes, _SIZE_EDGES, human_size)

    @property
    def ttl_distribution(self) -> Distribution:
        """Remaining seconds to expiry of sessions that expire."""
        return Distribution.of(self.ttls, _TTL_EDGES, human_duration)

    def summary(self) -> dict[str, object]:
        """The JSON form: counts, unreadable ids, top users/projects, both distributions."""
        return {
            "total_sessions": self.total,
            "without_expiry": self.no_expiry,
            "unreadable": self.unreadable,
            "distinct_users": len(self.users),
            "distinct_projects": len(self.projects),
            "top_users": dict(self.users.most_common(_TOP)),
            "top_projects": dict(self.projects.most_common(_TOP)),
            "size_bytes": self.size_distribution,
            "remaining_ttl_seconds": self.ttl_distribution,
        }
