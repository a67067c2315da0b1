"""Manager behaviour beyond storage: ids, lifetimes, sliding expiry, lifecycle, stats."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serverless_sessions import (
    ClosedError,
    ConfigurationError,
    InvalidSessionIdError,
    InvalidSessionUpdateError,
    ServerlessSessionManager,
    SessionState,
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


async def test_session_data_is_stored_as_metadata_whatever_its_keys() -> None:
    """The original module's meaning: migrating callers pass free-form data."""
    data = {"colour": "red", "revision": 9, "metadata": {"x": 1}, "nested": [{"deep": None}]}
    async with memory_manager() as manager:
        session_id = await manager.create_session("u", "p", data)
        state = await manager.require_session(session_id)
    assert state.metadata == data
    assert state.revision == 1 and state.conversation_history == []


async def test_fields_set_other_fields_at_creation_and_are_validated() -> None:
    async with memory_manager() as manager:
        session_id = await manager.create_session(
            "u",
            "p",
            {"note": "free-form"},
            fields={"conversation_history": [{"role": "user"}], "permissions": ["read"]},
        )
        state = await manager.require_session(session_id)
        assert state.permissions == ["read"] and state.conversation_history == [{"role": "user"}]
        assert state.metadata == {"note": "free-form"}
        with pytest.raises(InvalidSessionUpdateError, match="unknown field 'colour'"):
            await manager.create_session("u2", "p", fields={"colour": "red"})
        with pytest.raises(InvalidSessionUpdateError, match="immutable field 'revision'"):
            await manager.create_session("u2", "p", fields={"revision": 9})
        with pytest.raises(InvalidSessionUpdateError, match="metadata"):
            await manager.create_session("u2", "p", {"a": 1}, fields={"metadata": {"b": 2}})
        with pytest.raises(InvalidSessionUpdateError, match="session_data must be a JSON object"):
            await manager.create_session("u2", "p", ["not", "an", "object"])  # type: ignore[arg-type]
        with pytest.raises(InvalidSessionUpdateError, match="metadata"):
            await manager.create_session("u2", "p", {"v": float("nan")})
        assert await manager.list_user_sessions("u2") == []  # nothing half-written


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
            await manager.create_session("u", "p", {"blob": "x" * 10_000})
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


async def test_collect_stats_counts_live_sessions(tmp_path: Path) -> None:
    storage = create_session_storage(url=f"sqlite:///{tmp_path / 'x.db'}")
    async with ServerlessSessionManager(storage) as manager:
        await manager.create_session("u", "p")
        stats = await manager.collect_stats()
    assert stats["backend"] == "sqlite"
    assert stats["total_sessions"] == 1
    assert stats["available"] is True


async def test_session_stats_are_synchronous_like_the_original_and_hide_secrets(tmp_path: Path) -> None:
    secret = "pw-" + uuid.uuid4().hex
    managers = [
        ServerlessSessionManager(create_session_storage(url=f"redis://:{secret}@127.0.0.1:6379/9")),
        ServerlessSessionManager(create_session_storage(url=f"sqlite:///{tmp_path / 'x.db'}")),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        managers.append(
            ServerlessSessionManager(
                storage_type="redis",
                storage_config={"host": "127.0.0.1", "port": 6379, "db": 9, "password": secret},
            )
        )
    for manager, backend in zip(managers, ["redis", "sqlite", "legacy-redis"], strict=True):
        async with manager:
            stats = manager.get_session_stats()  # no await: a plain dict, no I/O
            assert stats["cached_sessions"] == 0
            assert stats["storage_backend"] == backend
            assert stats["storage_config"]["backend"] == backend
            assert secret not in json.dumps(stats, default=str)


async def test_load_session_caps_the_expiry_at_the_absolute_deadline() -> None:
    """A session stored with a TTL beyond its deadline (by another writer) still shows the deadline."""
    async with memory_manager() as manager:
        deadline = datetime.now(UTC) + timedelta(hours=1)
        state = SessionState(session_id="s", user_id="u", project_id="p", absolute_expires_at=deadline)
        await manager.storage.store_session(state, ttl_seconds=86400)
        stored = await manager.load_session("s")
        assert stored is not None and stored.expires_at == deadline.timestamp()
        [summary] = (await manager.list_sessions(user_id="u")).sessions
        assert summary.expires_at == deadline
        assert await manager.load_session("missing") is None
