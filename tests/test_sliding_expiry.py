"""Sliding idle expiry on real backends: writes keep a session alive, reads do not, and the
absolute deadline ends it whatever the writes.

Real time on the SQLite file and the shared Redis; the idle timeout is a few seconds and writes
come well inside it, so a busy machine delays the test instead of failing it.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from serverless_sessions import (
    ACBCacheStorage,
    ServerlessSessionManager,
    SessionNotFoundError,
    SessionState,
)
from tests.conftest import unique_namespace

IDLE = 2.0  # seconds of idle timeout
STEP = 0.4  # seconds between writes: a fifth of the idle timeout


@pytest.fixture(params=["sqlite", "redis"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ACBCacheStorage]:
    factory = importlib.import_module(f"tests.cache_factories.{request.param}")
    async with (
        factory.make_cache(tmp_path, unique_namespace()) as cache,
        ACBCacheStorage(cache, namespace=unique_namespace()) as built,
    ):
        yield built


async def expiry_of(manager: ServerlessSessionManager, session_id: str) -> float:
    stored = await manager.load_session(session_id)
    assert stored is not None and stored.expires_at is not None
    return stored.expires_at


async def test_writes_keep_an_idle_session_alive_past_its_first_expiry(storage: ACBCacheStorage) -> None:
    manager = ServerlessSessionManager(storage)
    session_id = await manager.create_session("u", "p", ttl_hours=IDLE / 3600)
    first_expiry = previous = await expiry_of(manager, session_id)

    def count(state: SessionState) -> None:
        state.metadata["n"] = state.metadata.get("n", 0) + 1

    writes: list[Callable[[], Awaitable[object]]] = [
        lambda: manager.update_session(session_id, {"reflection_data": {"seen": True}}),
        lambda: manager.mutate(session_id, count),
        lambda: manager.touch(session_id),
    ]
    done = 0
    while time.time() < first_expiry + IDLE / 2 or done < len(writes):
        await asyncio.sleep(STEP)
        await writes[done % len(writes)]()
        done += 1
        expiry = await expiry_of(manager, session_id)
        assert expiry > previous, f"write {done} did not restart the idle timeout"
        previous = expiry

    state = await manager.get_session(session_id)
    assert state is not None, "a session written every STEP seconds expired"
    assert state.reflection_data == {"seen": True} and state.metadata["n"] >= 1
    assert state.last_activity > state.created_at

    await asyncio.sleep(IDLE + 1)  # no writes any more: the idle timeout runs out
    assert await manager.get_session(session_id) is None


async def test_reads_do_not_extend_the_idle_timeout(storage: ACBCacheStorage) -> None:
    manager = ServerlessSessionManager(storage)
    session_id = await manager.create_session("u", "p", ttl_hours=IDLE / 3600)
    created = await manager.load_session(session_id)
    assert created is not None and created.expires_at is not None

    for _ in range(3):
        await asyncio.sleep(STEP)
        assert await manager.get_session(session_id) is not None
        assert await manager.require_session(session_id)
        assert await manager.load_session(session_id) is not None
        assert [s.session_id for s in (await manager.list_sessions(user_id="u")).sessions] == [session_id]
        assert await manager.list_user_sessions("u") == [session_id]
        assert (await manager.collect_stats())["total_sessions"] == 1
        manager.get_session_stats()

    after = await manager.load_session(session_id)
    assert after is not None and after.expires_at is not None
    assert after.state.revision == created.state.revision
    assert after.state.last_activity == created.state.last_activity
    assert after.expires_at <= created.expires_at + 0.05

    await asyncio.sleep(max(0.0, created.expires_at - time.time()) + 1)
    assert await manager.get_session(session_id) is None


async def test_the_absolute_deadline_caps_every_renewal(storage: ACBCacheStorage) -> None:
    manager = ServerlessSessionManager(storage, max_lifetime_hours=3 / 3600)
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    created = await manager.require_session(session_id)
    assert created.absolute_expires_at is not None
    deadline = created.absolute_expires_at.timestamp()

    renewals = 0
    for _ in range(40):  # 16 s at most; the deadline comes after about 3 s
        await asyncio.sleep(STEP)
        try:
            if renewals % 2:
                await manager.update_session(session_id, {"metadata": {"r": renewals}}, ttl_hours=1)
            else:
                await manager.touch(session_id, ttl_hours=1)
        except SessionNotFoundError:
            break
        renewals += 1
        stored = await manager.load_session(session_id)
        assert stored is None or (stored.expires_at is not None and stored.expires_at <= deadline + 0.05)
    else:
        pytest.fail("hourly renewals kept the session alive past its 3 s absolute lifetime")

    assert renewals >= 2
    assert await manager.get_session(session_id) is None
    assert await manager.load_session(session_id) is None
    assert (await manager.list_sessions(user_id="u")).sessions == []
