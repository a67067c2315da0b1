"""Batches of writes: many compare-and-sets in flight at once, one outcome per session.

A batch is not a transaction: each session is its own compare-and-set, so some may be stored
while others conflict or fail. Nothing is hidden for that: :class:`BatchStoreResult` holds one
:class:`StoreOutcome` per session, in input order, with the stored revision or the
:class:`~serverless_sessions.errors.SessionError` that refused it, and
:meth:`BatchStoreResult.raise_for_failures` turns any failure back into an exception.

The writes run concurrently (at most ``concurrency`` at a time) rather than through a
backend-specific bulk command, so every storage gets batching for free and an adapter that
pipelines concurrent calls (Redis) sends them to the server together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.errors import ConfigurationError, SessionConflictError, SessionError
from serverless_sessions.model import SessionState

__all__ = ["DEFAULT_CONCURRENCY", "BatchStoreResult", "StoreOutcome", "store_each"]

DEFAULT_CONCURRENCY = 64
"""Writes in flight at once: enough to fill a pipeline, few enough for any connection pool."""


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What happened to one session of a batch: stored at ``revision``, or refused by ``error``."""

    session_id: str
    revision: int | None
    error: SessionError | None

    @property
    def stored(self) -> bool:
        """Whether this session was written."""
        return self.error is None

    @property
    def conflicted(self) -> bool:
        """Whether the write lost a compare-and-set (its revision was stale)."""
        return isinstance(self.error, SessionConflictError)


@dataclass(frozen=True, slots=True)
class BatchStoreResult:
    """One outcome per session, in the order given; iterate it or use the summaries."""

    outcomes: tuple[StoreOutcome, ...]

    def __iter__(self) -> Iterator[StoreOutcome]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def ok(self) -> bool:
        """Whether every session was stored."""
        return all(outcome.stored for outcome in self.outcomes)

    @property
    def stored(self) -> list[str]:
        """Ids of the sessions written."""
        return [outcome.session_id for outcome in self.outcomes if outcome.stored]

    @property
    def conflicts(self) -> list[str]:
        """Ids whose revision was stale: re-read them and try again."""
        return [outcome.session_id for outcome in self.outcomes if outcome.conflicted]

    @property
    def failures(self) -> dict[str, SessionError]:
        """Every session not stored (conflicts included), with the error that refused it."""
        return {outcome.session_id: outcome.error for outcome in self.outcomes if outcome.error is not None}

    def raise_for_failures(self) -> None:
        """Raise the first failure's own error (noting how many others failed), if any."""
        failures = list(self.failures.values())
        if failures:
            first = failures[0]
            if len(failures) > 1:
                first.add_note(
                    f"{len(failures) - 1} more of the batch's {len(self)} sessions were not stored"
                )
            raise first


async def store_each(
    writes: Sequence[tuple[SessionState, Callable[[], Awaitable[object]]]],
    concurrency: int = DEFAULT_CONCURRENCY,
) -> BatchStoreResult:
    """Run each write (a compare-and-set of its session), ``concurrency`` at a time.

    A :class:`SessionError` becomes that session's outcome; anything else (a bug, a
    cancellation) propagates once every write has ended.
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency!r}")

    def attempt(
        state: SessionState, write: Callable[[], Awaitable[object]]
    ) -> Callable[[], Awaitable[StoreOutcome]]:
        async def run() -> StoreOutcome:
            try:
                await write()
            except SessionError as exc:
                return StoreOutcome(state.session_id, None, exc)
            return StoreOutcome(state.session_id, state.revision, None)

        return run

    outcomes = await gather_bounded([attempt(state, write) for state, write in writes], concurrency)
    return BatchStoreResult(tuple(outcomes))
