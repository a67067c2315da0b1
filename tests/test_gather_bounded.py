"""``gather_bounded``: the batch runner under ``store_sessions``, ``migrate`` and ``reencrypt``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from serverless_sessions.adapters.cache.base import gather_bounded
from serverless_sessions.errors import ConfigurationError


def tracked(count: int) -> tuple[list[Callable[[], Awaitable[int]]], list[int], list[int]]:
    """``count`` calls that record how many run at once and the order they start in."""
    running, peaks, started = [0], [0], []

    def call(position: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            started.append(position)
            running[0] += 1
            peaks[0] = max(peaks[0], running[0])
            await asyncio.sleep(0.001 * (position % 3))
            running[0] -= 1
            return position * 10

        return run

    return [call(position) for position in range(count)], peaks, started


async def test_results_in_call_order_with_at_most_limit_running() -> None:
    calls, peaks, started = tracked(25)
    assert await gather_bounded(calls, 4) == [position * 10 for position in range(25)]
    assert peaks[0] == 4
    assert started == sorted(started)  # taken in order


async def test_every_call_ends_then_the_first_error_in_call_order_is_raised() -> None:
    ended: list[int] = []

    def call(position: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            await asyncio.sleep(0.002 if position == 3 else 0)
            ended.append(position)
            if position in (3, 7):
                raise ValueError(f"call {position}")
            return position

        return run

    with pytest.raises(ValueError, match="call 3"):
        await gather_bounded([call(position) for position in range(12)], 3)
    assert sorted(ended) == list(range(12))


async def test_a_cancelled_batch_leaves_no_call_running() -> None:
    active: set[int] = set()

    def call(position: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            active.add(position)
            try:
                await asyncio.sleep(10)
            finally:
                active.discard(position)

        return run

    batch = asyncio.create_task(gather_bounded([call(position) for position in range(20)], 5))
    await asyncio.sleep(0.01)
    assert len(active) == 5
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert active == set()


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ConfigurationError, match=f"limit must be at least 1, got {limit}"):
        await gather_bounded([], limit)
