"""Manager behaviour beyond storage: ids, lifetimes, sliding expiry, lifecycle, stats."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from serverless_sessions import (
    ClosedError,
    ConfigurationError,
    InvalidSessionIdError,
    InvalidSessionUpdateError,
    ServerlessSessionManager,
    SessionTooLargeError,
    create_session_storage,
)
from serverless_sessions.adapters.cache import memory
from serverless_sessions.factory import override_cache


def memory_manager(**kwargs: object) -> ServerlessSessionManager:
    return ServerlessSessionManager(create_session_storage(cache=memory.Cache()), **kwargs)  # type: ignore[arg-type]


async def test_new_ids_carry_at_least_128_random_bits() -> None:
    async with memory_manager() as manager:
        ids = {await manager.create_session("u", "p") for _ in range(200)}
    assert len(ids) == 200
    for session_id in ids:
        assert len(bytes.fromhex(session_id)) * 8 >= 128


async def test_caller_given_ids_are_validated() -> None:
    async with memory_manager() as manager:
        assert await manager.create_session("u", "p", session_id="my-id:1") == "my-id:1"
        with pytest.raises(InvalidSessionIdError, match=re.escape("'../etc'")):
            await manager.create_session("u", "p", session_id="../etc")
        with pytest.raises(InvalidSessionIdError, match="user id"):
            await manager.create_session("   ", "p")


async def test_session_data_fields_are_validated() -> None:
    async with memory_manager() as manager:
        session_id = await manager.create_session(
            "u", "p", {"conversation_history": [{"role": "user"}], "permissions": ["read"]}
        )
        state = await manager.get_session(session_id)
        assert state is not None and state.permissions == ["read"]
        with pytest.raises(InvalidSessionUpdateError, match="unknown field 'colour'"):
            await manager.create_session("u", "p", {"colour": "red"})
        with pytest.raises(InvalidSessionUpdateError, match="immutable field 'revision'"):
            await manager.create_session("u", "p", {"revision": 9})


async def test_touch_slides_the_idle_expiry() -> None:
    async with memory_manager() as manager:
        session_id = await manager.create_session("u", "p", ttl_hours=1.5 / 3600)
        for _ in range(3):
            await asyncio.sleep(0.8)
            await manager.touch(session_id, ttl_hours=1.5 / 3600)
        assert await manager.get_session(session_id) is not None
        await asyncio.sleep(2)
        assert await manager.get_session(session_id) is None


async def test_absolute_lifetime_caps_renewals() -> None:
    async with memory_manager(max_lifetime_hours=1.5 / 3600) as manager:
        session_id = await manager.create_session("u", "p", ttl_hours=1)
        state = await manager.get_session(session_id)
        assert state is not None and state.absolute_expires_at is not None
        await asyncio.sleep(0.8)
        await manager.touch(session_id, ttl_hours=1)
        await asyncio.sleep(1.2)
        assert await manager.get_session(session_id) is None
        assert (await manager.list_sessions(user_id="u")).sessions == []


async def test_too_large_session_is_refused_before_writing() -> None:
    storage = create_session_storage(cache=memory.Cache(), max_session_bytes=4096, compression="none")
    async with ServerlessSessionManager(storage) as manager:
        with pytest.raises(SessionTooLargeError):
            await manager.create_session("u", "p", {"metadata": {"blob": "x" * 10_000}})
        assert await manager.list_user_sessions("u") == []
        session_id = await manager.create_session("u", "p")
        with pytest.raises(SessionTooLargeError):
            await manager.update_session(session_id, {"metadata": {"blob": "x" * 10_000}})
        state = await manager.get_session(session_id)
        assert state is not None and state.metadata == {}


async def test_another_process_delete_is_seen_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    async with (
        ServerlessSessionManager(create_session_storage(url=url)) as first,
        ServerlessSessionManager(create_session_storage(url=url)) as second,
    ):
        session_id = await first.create_session("u", "p")
        assert await first.get_session(session_id) is not None
        assert await second.delete_session(session_id) is True
        assert await first.get_session(session_id) is None


async def test_closed_manager_refuses_use() -> None:
    manager = memory_manager()
    await manager.close()
    with pytest.raises(ClosedError):
        await manager.create_session("u", "p")


async def test_override_cache_injects_into_the_factory() -> None:
    injected = memory.Cache()
    with override_cache(injected):
        storage = create_session_storage()
    assert storage.cache is injected
    async with ServerlessSessionManager(storage) as manager:
        session_id = await manager.create_session("u", "p")
    assert not injected.closed  # an injected cache belongs to whoever made it
    assert await injected.exists(session_id, namespace="session")


async def test_unknown_storage_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'mongo'"):
        ServerlessSessionManager(storage_type="mongo")  # type: ignore[arg-type]


async def test_stats_describe_the_backend_without_secrets(tmp_path: Path) -> None:
    storage = create_session_storage(url=f"sqlite:///{tmp_path / 'x.db'}")
    async with ServerlessSessionManager(storage) as manager:
        await manager.create_session("u", "p")
        stats = await manager.get_session_stats()
    assert stats["backend"] == "sqlite"
    assert stats["total_sessions"] == 1
    assert stats["available"] is True
