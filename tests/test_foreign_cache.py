"""A foreign duck-typed cache (the shape of an ACB or aiocache cache) under ACBCacheStorage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from serverless_sessions import (
    ACBCacheStorage,
    CapabilityNotSupportedError,
    CorruptSessionError,
    ServerlessSessionManager,
    SessionConflictError,
    SessionState,
    StorageError,
)


class DictCache:
    """get/set/delete/exists with an int TTL, and nothing else: no namespace, no bytes promise."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[Any, float | None]] = {}
        self.fail = False

    async def get(self, key: str, default: Any = None) -> Any:
        if self.fail:
            raise OSError("backend down")
        value, expires = self.data.get(key, (default, None))
        if expires is not None and expires <= time.time():
            return default
        return value

    async def set(self, key: str, value: Any, ttl: int | None = None) -> bool:
        assert ttl is None or isinstance(ttl, int)
        self.data[key] = (value, None if ttl is None else time.time() + ttl)
        return True

    async def delete(self, key: str) -> int:
        return 1 if self.data.pop(key, None) is not None else 0

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None


def state(session_id: str = "s1") -> SessionState:
    return SessionState(session_id=session_id, user_id="u", project_id="p", metadata={"k": "v"})


async def test_round_trip_with_prefixed_keys_and_bytes() -> None:
    foreign = DictCache()
    storage = ACBCacheStorage(foreign, namespace="tenant")
    original = state()
    await storage.store_session(original, ttl_seconds=60)
    assert list(foreign.data) == ["tenant:s1"]
    assert isinstance(foreign.data["tenant:s1"][0], bytes)
    assert await storage.retrieve_session("s1") == original
    assert await storage.delete_session("s1") is True
    assert await storage.retrieve_session("s1") is None


async def test_revision_checks_and_kept_ttl() -> None:
    storage = ACBCacheStorage(DictCache(), namespace="tenant")
    manager = ServerlessSessionManager(storage)
    session_id = await manager.create_session("u", "p", ttl_hours=1 / 3600)
    stale = await manager.get_session(session_id)
    await manager.update_session(session_id, {"metadata": {"x": 1}})
    assert stale is not None
    with pytest.raises(SessionConflictError):
        await storage.store_session(stale)
    await asyncio.sleep(2.1)
    assert await manager.get_session(session_id) is None


async def test_listing_and_cleanup_say_what_is_missing() -> None:
    storage = ACBCacheStorage(DictCache())
    with pytest.raises(CapabilityNotSupportedError, match="DictCache"):
        await storage.list_sessions(user_id="u")
    with pytest.raises(CapabilityNotSupportedError, match="index"):
        await storage.cleanup_expired_sessions()


async def test_foreign_failures_are_translated_not_swallowed() -> None:
    foreign = DictCache()
    storage = ACBCacheStorage(foreign)
    foreign.fail = True
    with pytest.raises(StorageError) as caught:
        await storage.retrieve_session("s1")
    assert isinstance(caught.value.__cause__, OSError)
    assert await storage.is_available() is False


async def test_altered_values_are_reported_as_corrupt() -> None:
    foreign = DictCache()
    storage = ACBCacheStorage(foreign, namespace="tenant")
    foreign.data["tenant:s1"] = ({"not": "bytes"}, None)
    with pytest.raises(CorruptSessionError, match="tenant:s1"):
        await storage.retrieve_session("s1")
