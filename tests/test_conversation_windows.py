"""Every window of a conversation reads as the same slice of one list, whatever mix of whole
writes and appends built it (messages in the session's value, then in its log)."""

from __future__ import annotations

import random

import pytest

from serverless_sessions import ACBCacheStorage, ServerlessSessionManager
from serverless_sessions.adapters.cache.base import CacheBase


async def _pages_backwards(manager: ServerlessSessionManager, sid: str, size: int) -> list[object]:
    collected: list[object] = []
    cursor = None
    while True:
        page = await manager.get_messages(sid, last=size, before=cursor)
        collected[:0] = page.messages
        if page.next_cursor is None:
            assert page.start == 0
            return collected
        cursor = page.next_cursor


@pytest.mark.parametrize("seed", range(2))
async def test_windows_match_one_list_after_random_whole_writes_and_appends(
    cache: CacheBase, seed: int
) -> None:
    rng = random.Random(seed)
    manager = ServerlessSessionManager(ACBCacheStorage(cache, "w"))
    expected: list[object] = [{"n": -1}]
    sid = await manager.create_session("u", "p", fields={"conversation_history": list(expected)})
    counter = 0
    for _ in range(25):
        action = rng.random()
        if action < 0.6:
            batch = [{"n": counter + i} for i in range(rng.randint(1, 3))]
            counter += len(batch)
            assert await manager.append_messages(sid, batch) == len(expected) + len(batch)
            expected += batch
        elif action < 0.75:  # a whole write: every message back into the session's value
            await manager.mutate(sid, lambda s: s.conversation_history.append({"w": True}))
            expected.append({"w": True})
        elif action < 0.9:
            await manager.update_session(sid, {"metadata": {"step": counter}})
        else:
            await manager.touch(sid)
        assert (await manager.require_session(sid)).conversation_history == expected
        last = rng.randint(0, len(expected) + 2)
        page = await manager.get_messages(sid, last=last)
        assert page.messages == expected[max(0, len(expected) - last) :]
        assert page.total == len(expected)
        assert await _pages_backwards(manager, sid, rng.randint(1, 4)) == expected
        limited = await manager.get_session(sid, history_limit=last)
        assert limited is not None
        assert limited.conversation_history == expected[max(0, len(expected) - last) :]
        assert limited.has_partial_history == (last < len(expected))
