"""Batch writes and reads: every session gets its own outcome, nothing fails silently."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from serverless_sessions import (
    ACBCacheStorage,
    ConfigurationError,
    InvalidSessionError,
    SessionConflictError,
    SessionState,
    SessionTooLargeError,
)
from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.codec import Codec
from tests.conftest import unique_namespace


@pytest.fixture
async def storage(cache: CacheBase) -> AsyncIterator[ACBCacheStorage]:
    async with ACBCacheStorage(cache, namespace=unique_namespace(), codec=Codec(max_size=4096)) as built:
        yield built


def state(number: int, **fields: object) -> SessionState:
    return SessionState(
        session_id=f"batch-{number:04d}", user_id=f"user-{number % 3}", project_id="p", **fields
    )


async def test_a_batch_stores_every_session_and_reads_them_back_in_order(
    storage: ACBCacheStorage,
) -> None:
    states = [state(n, metadata={"n": n}) for n in range(150)]
    result = await storage.store_sessions(states, ttl_seconds=300, concurrency=16)
    assert result.ok and len(result) == 150
    assert result.stored == [s.session_id for s in states]
    assert [outcome.revision for outcome in result] == [1] * 150
    assert all(s.revision == 1 for s in states)

    wanted = ["batch-0149", "absent", "batch-0000"]
    read = await storage.retrieve_sessions(wanted)
    assert read == [states[149], None, states[0]]
    assert sorted(await storage.list_sessions(user_id="user-0")) == [
        s.session_id for s in states if int(s.session_id[-4:]) % 3 == 0
    ]


async def test_conflicts_and_refusals_are_reported_per_session_and_nothing_else_is_lost(
    storage: ACBCacheStorage,
) -> None:
    first = state(1)
    await storage.store_session(first)
    stale = state(1)  # revision 0: "must not exist yet", but it does
    too_big = state(2, metadata={"blob": "x" * 5000})
    not_json = state(3)
    not_json.metadata["nan"] = float("nan")  # in place: only the write path sees it
    fine = state(4)

    result = await storage.store_sessions([stale, too_big, not_json, fine])

    assert not result.ok
    assert result.stored == ["batch-0004"]
    assert result.conflicts == ["batch-0001"]
    failures = result.failures
    assert list(failures) == ["batch-0001", "batch-0002", "batch-0003"]
    assert isinstance(failures["batch-0001"], SessionConflictError)
    assert isinstance(failures["batch-0002"], SessionTooLargeError)
    assert isinstance(failures["batch-0003"], InvalidSessionError)
    assert [outcome.revision for outcome in result] == [None, None, None, 1]
    # The refused writes left what was stored untouched, and wrote nothing new.
    assert await storage.retrieve_sessions(["batch-0001", "batch-0002", "batch-0003"]) == [
        first,
        None,
        None,
    ]
    with pytest.raises(SessionConflictError) as raised:
        result.raise_for_failures()
    assert "2 more of the batch's 4 sessions were not stored" in str(raised.value.__notes__)


async def test_a_batch_of_updates_keeps_each_ttl_and_compare_and_set(storage: ACBCacheStorage) -> None:
    states = [state(n) for n in range(5)]
    (await storage.store_sessions(states, ttl_seconds=300)).raise_for_failures()
    loaded = [s for s in await storage.retrieve_sessions([s.session_id for s in states]) if s]
    for item in loaded:
        item.metadata["seen"] = True
    result = await storage.store_sessions(loaded)  # ttl None: each keeps the TTL it has left
    assert result.ok and [o.revision for o in result] == [2] * 5
    stored = await storage.load_session("batch-0003")
    assert stored is not None and stored.expires_at is not None
    again = await storage.store_sessions(states)  # still at revision 1: every one conflicts
    assert again.conflicts == [s.session_id for s in states]


async def test_an_empty_batch_and_a_bad_concurrency(storage: ACBCacheStorage) -> None:
    assert (await storage.store_sessions([])).ok
    assert await storage.retrieve_sessions([]) == []
    with pytest.raises(ConfigurationError, match="concurrency must be at least 1, got 0"):
        await storage.store_sessions([state(1)], concurrency=0)
    assert await storage.retrieve_session("batch-0001") is None
