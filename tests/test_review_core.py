"""Review of the core (issue 2): one test per defect found, on real parts only.

Each test names the behaviour that must hold; most fail on the reviewed tree. Storage tests run
on every adapter of ``tests/cache_factories``; the Redis URL tests use the shared server at
127.0.0.1:6379 database 14.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serverless_sessions import (
    ACBCacheStorage,
    ConfigurationError,
    CorruptSessionError,
    InvalidSessionError,
    InvalidSessionUpdateError,
    ServerlessSessionManager,
    SessionConflictError,
    SessionError,
    SessionState,
    StorageSettings,
    create_session_storage,
)
from serverless_sessions.adapters.cache import memory, redis, sqlite
from serverless_sessions.codec import MAGIC, Codec, Compression
from serverless_sessions.factory import open_cache
from tests.cache_factories import ADAPTERS, factory

REDIS_DB14 = "redis://127.0.0.1:6379/14"


def _ns() -> str:
    return f"rv-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=ADAPTERS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ACBCacheStorage]:
    async with factory(str(request.param)).make_cache(tmp_path, _ns()) as cache:
        yield ACBCacheStorage(cache, namespace=_ns())


def memory_manager(max_lifetime_hours: float | None = None) -> ServerlessSessionManager:
    return ServerlessSessionManager(
        create_session_storage(cache=memory.Cache()), max_lifetime_hours=max_lifetime_hours
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    import os

    for name in list(os.environ):
        if name.startswith("SERVERLESS_SESSIONS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    yield monkeypatch


# -- manager: lifetimes ------------------------------------------------------------------------


async def test_update_without_ttl_keeps_remaining_ttl_under_absolute_lifetime() -> None:
    """manager._ttl returns the whole remaining lifetime when idle is None: a 1 s idle TTL
    becomes ~1 h after an update that names no TTL (BACKGROUND §2, first defect, again)."""
    async with memory_manager(max_lifetime_hours=1) as manager:
        session_id = await manager.create_session("u", "p", ttl_hours=10 / 3600)
        storage = manager.storage
        before = await storage.load_session(session_id)
        await manager.update_session(session_id, {"metadata": {"step": 2}})
        after = await storage.load_session(session_id)
        assert before is not None and after is not None
        assert before.expires_at is not None and after.expires_at is not None
        assert after.expires_at <= before.expires_at + 1.0


async def test_updates_cannot_lift_or_extend_the_absolute_lifetime() -> None:
    """absolute_expires_at is in MUTABLE_FIELDS, so any caller (an MCP tool, say) removes it."""
    async with memory_manager(max_lifetime_hours=1) as manager:
        session_id = await manager.create_session("u", "p")
        with pytest.raises(InvalidSessionUpdateError):
            await manager.update_session(session_id, {"absolute_expires_at": None})
        state = await manager.get_session(session_id)
        assert state is not None and state.absolute_expires_at is not None


async def test_create_cannot_set_a_lifetime_beyond_the_managers_maximum() -> None:
    async with memory_manager(max_lifetime_hours=1) as manager:
        try:
            session_id = await manager.create_session(
                "u", "p", fields={"absolute_expires_at": "2999-01-01T00:00:00+00:00"}
            )
        except InvalidSessionUpdateError:
            return
        state = await manager.get_session(session_id)
        assert state is not None and state.absolute_expires_at is not None
        assert state.absolute_expires_at <= datetime.now(UTC) + timedelta(hours=1, seconds=5)


async def test_touch_without_ttl_restarts_the_sessions_own_idle_timeout() -> None:
    """touch() defaults to 24 h whatever idle timeout the session was created with."""
    async with memory_manager() as manager:
        session_id = await manager.create_session("u", "p", ttl_hours=10 / 3600)
        await manager.touch(session_id)
        stored = await manager.storage.load_session(session_id)
        assert stored is not None and stored.expires_at is not None
        assert stored.expires_at - time.time() <= 11


# -- manager: inputs -----------------------------------------------------------------------------


async def test_create_with_a_timestamp_field_is_not_a_raw_type_error() -> None:
    """created_at/last_activity pass _check_update_fields, then collide with the explicit
    keyword arguments: TypeError escapes the error tree."""
    async with memory_manager() as manager:
        try:
            await manager.create_session("u", "p", fields={"created_at": "2020-01-01T00:00:00+00:00"})
        except Exception as exc:
            assert isinstance(exc, SessionError), f"{type(exc).__name__}: {exc}"


async def test_a_mutator_returning_something_else_is_not_silently_ignored() -> None:
    async with memory_manager() as manager:
        session_id = await manager.create_session("u", "p")
        with pytest.raises((InvalidSessionUpdateError, TypeError)):
            await manager.mutate(session_id, lambda state: {"metadata": {"x": 1}})  # type: ignore[arg-type,return-value]


async def test_validation_errors_do_not_echo_secret_values() -> None:
    """pydantic's message carries input_value=..., so an API key reaches logs and MCP clients."""
    async with memory_manager() as manager:
        session_id = await manager.create_session("u", "p")
        secret = "sk-" + uuid.uuid4().hex[:10]  # short: pydantic elides the middle of long inputs
        with pytest.raises(InvalidSessionUpdateError) as caught:
            await manager.update_session(
                session_id, {"llm_provider_configs": {"key": secret, "t": float("nan")}}
            )
        assert secret not in str(caught.value)


def test_session_repr_hides_provider_credentials() -> None:
    secret = "sk-live-" + uuid.uuid4().hex
    state = SessionState(
        session_id="s", user_id="u", project_id="p", llm_provider_configs={"openai": {"api_key": secret}}
    )
    assert secret not in repr(state)
    assert secret not in str(state)


# -- manager: listing --------------------------------------------------------------------------


class CountingStorage(ACBCacheStorage):
    decodes = 0

    def decode(self, session_id: str, data: bytes, version: int) -> SessionState:
        CountingStorage.decodes += 1
        return super().decode(session_id, data, version)


async def test_iter_sessions_survives_one_corrupt_session() -> None:
    """list_sessions reports unreadable sessions; so does iter_sessions when asked to go on."""
    cache = memory.Cache()
    storage = ACBCacheStorage(cache, namespace="it")
    async with ServerlessSessionManager(storage) as manager:
        good = await manager.create_session("u", "p")
        bad = await manager.create_session("u", "p")
        await cache.set(bad, b"SSN\x01\x00not json", ttl=60, namespace="it")
        unreadable: list[str] = []
        seen = [stored.state.session_id async for stored in manager.iter_sessions(unreadable=unreadable)]
        assert seen == [good]
        assert unreadable == [bad]
        with pytest.raises(CorruptSessionError, match=bad):
            [stored async for stored in manager.iter_sessions()]


# -- storage: revisions and owners -------------------------------------------------------------


async def test_store_refuses_to_change_the_owner_of_an_existing_session(storage: ACBCacheStorage) -> None:
    """Index names are fixed by the first write and never compared: a revision-1 state with
    another user_id overwrites the session, which stays listed under the old user only."""
    await storage.store_session(SessionState(session_id="x", user_id="alice", project_id="p"), ttl_seconds=60)
    hijack = SessionState(session_id="x", user_id="mallory", project_id="q", revision=1)
    with pytest.raises((SessionConflictError, InvalidSessionError)):
        await storage.store_session(hijack)
    stored = await storage.retrieve_session("x")
    assert stored is not None and stored.user_id == "alice"


async def test_in_place_non_json_edits_are_refused_not_silently_changed() -> None:
    """In-place edits bypass validate_assignment; the codec then stores NaN as null and an int
    key as a string, so what is read back differs from what was stored."""
    storage = ACBCacheStorage(memory.Cache(), namespace="inplace")
    state = SessionState(session_id="x", user_id="u", project_id="p")
    state.metadata["ratio"] = float("nan")
    with pytest.raises(InvalidSessionError):
        await storage.store_session(state, ttl_seconds=60)
    assert await storage.retrieve_session("x") is None


# -- codec -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [Compression.ZSTD, Compression.BROTLI])
def test_a_decompression_bomb_is_refused_before_it_inflates(kind: Compression) -> None:
    """BODY_CEILING is checked after the whole body was inflated: a 6 KB zstd payload
    allocates 160 MB (a 1 MB one, many GB) before CorruptSessionError is raised."""
    import brotli
    import zstandard

    zeros = bytes(160 * 1024 * 1024)
    body = (
        zstandard.ZstdCompressor(level=1).compress(zeros)
        if kind == Compression.ZSTD
        else brotli.compress(zeros, quality=1)
    )
    del zeros
    payload = MAGIC + bytes((1, kind)) + body
    tracemalloc.start()
    try:
        with pytest.raises(CorruptSessionError):
            Codec().decode(payload, key="ns:bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB while refusing a bomb"


# -- memory adapter ----------------------------------------------------------------------------


async def test_memory_eviction_drops_expired_entries_before_live_ones() -> None:
    async with memory.Cache(max_entries=2) as cache:
        await cache.set("live", b"1", ttl=60)
        await cache.set("dead", b"2", ttl=0.2)
        await asyncio.sleep(0.3)
        await cache.set("new", b"3", ttl=60)
        assert await cache.get("live") == b"1"
        assert await cache.get("new") == b"3"


def test_memory_bad_max_entries_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        memory.Cache(max_entries=0)


# -- factory and settings ----------------------------------------------------------------------


async def test_timeout_setting_reaches_caches_built_from_urls(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SERVERLESS_SESSIONS_TIMEOUT (README) only reaches the SQLite default (url None)."""
    clean_env.setenv("SERVERLESS_SESSIONS_TIMEOUT", "0.5")
    redis_storage = create_session_storage(url=REDIS_DB14)
    sqlite_storage = create_session_storage(url=f"sqlite:///{tmp_path / 't.db'}")
    try:
        redis_cache, sqlite_cache = redis_storage.cache, sqlite_storage.cache
        assert isinstance(redis_cache, redis.Cache) and isinstance(sqlite_cache, sqlite.Cache)
        assert redis_cache.settings.socket_timeout == 0.5
        assert sqlite_cache.timeout == 0.5
    finally:
        await redis_storage.close()
        await sqlite_storage.close()


async def test_manager_built_from_settings_sources_honours_max_lifetime(
    clean_env: pytest.MonkeyPatch,
) -> None:
    """SERVERLESS_SESSIONS_MAX_LIFETIME (README) is read only when settings= is passed."""
    clean_env.setenv("SERVERLESS_SESSIONS_URL", "memory://")
    clean_env.setenv("SERVERLESS_SESSIONS_MAX_LIFETIME", "60")
    async with ServerlessSessionManager() as from_env:
        assert from_env.max_lifetime == 60
    async with ServerlessSessionManager(
        storage_config={"url": "memory://", "max_lifetime": 120}
    ) as from_config:
        assert from_config.max_lifetime == 120


async def test_factory_does_not_silently_drop_arguments_given_with_settings(
    clean_env: pytest.MonkeyPatch,
) -> None:
    settings = StorageSettings.model_validate({"url": "memory://"})
    try:
        storage = create_session_storage(settings, max_session_bytes=4096)
    except ConfigurationError:
        return
    async with storage:
        assert storage.codec.max_size == 4096


async def test_open_cache_never_shows_a_password_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    """open_cache builds StorageSettings() directly: a raw pydantic ValidationError escapes,
    with the environment's URL (password included) as input_value."""
    clean_env.setenv("SERVERLESS_SESSIONS_URL", "redis://:hunter2-review@127.0.0.1:6379/0")
    clean_env.setenv("SERVERLESS_SESSIONS_PROVIDER", "s3")
    try:
        cache = open_cache("memory://")
    except Exception as exc:
        assert isinstance(exc, ConfigurationError), type(exc)
        assert "hunter2" not in str(exc)
    else:
        await cache.close()
