"""Namespace isolation: two storages on one store (the same Redis, SQLite file, S3 bucket...,
or memory cache: every adapter whose factory offers ``make_pair``) with the same session ids
never see, list, count, clean up or delete each other's sessions. Each side has its own client,
as two deployments would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from serverless_sessions.config.selection import configured_settings
from serverless_sessions.config.settings import load_settings
from serverless_sessions.errors import ConfigurationError, SessionConflictError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from tests.cache_factories import factory, offering

IDS = ["shared-1", "shared:2", "shared.3"]


@pytest.fixture(params=offering("make_pair"))
async def managers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ServerlessSessionManager, ServerlessSessionManager]]:
    """Two managers, each with its own client, over ONE store (for memory, one object)."""
    async with factory(str(request.param)).make_pair(tmp_path) as (first, second):
        yield (
            ServerlessSessionManager(ACBCacheStorage(first, "alpha")),
            ServerlessSessionManager(ACBCacheStorage(second, "beta")),
        )


async def fill(manager: ServerlessSessionManager, side: str, ttl_hours: float = 1) -> None:
    for sid in IDS:
        await manager.create_session("same-user", "same-project", {"side": side}, ttl_hours, session_id=sid)


async def test_same_ids_in_two_namespaces_stay_apart(
    managers: tuple[ServerlessSessionManager, ServerlessSessionManager],
) -> None:
    alpha, beta = managers
    await fill(alpha, "alpha")
    await fill(beta, "beta")
    for manager, side in ((alpha, "alpha"), (beta, "beta")):
        for sid in IDS:
            state = await manager.get_session(sid)
            assert state is not None and state.metadata == {"side": side}
        assert await manager.list_user_sessions("same-user") == sorted(IDS)
        assert await manager.list_project_sessions("same-project") == sorted(IDS)
        assert sorted([s async for s in manager.storage.iter_session_ids()]) == sorted(IDS)
        assert (await manager.collect_stats())["total_sessions"] == len(IDS)
        page = await manager.list_sessions(user_id="same-user")
        assert {s.session_id for s in page.sessions} == set(IDS) and page.unreadable == []

    # Revisions are per namespace: alpha's writes never conflict with beta's.
    await alpha.update_session("shared-1", {"metadata": {"side": "alpha", "n": 1}})
    await alpha.update_session("shared-1", {"metadata": {"side": "alpha", "n": 2}})
    state = await beta.get_session("shared-1")
    assert state is not None and state.revision == 1
    await beta.update_session("shared-1", {"metadata": {"side": "beta", "n": 1}})
    with pytest.raises(SessionConflictError):
        await beta.storage.store_session(state)  # stale in beta, whatever alpha did

    # Deleting in one namespace leaves the other's session with the same id.
    assert await alpha.delete_session("shared:2") is True
    assert await alpha.get_session("shared:2") is None
    assert await alpha.delete_session("shared:2") is False
    survivor = await beta.get_session("shared:2")
    assert survivor is not None and survivor.metadata == {"side": "beta"}
    assert "shared:2" in await beta.list_user_sessions("same-user")
    assert "shared:2" not in await alpha.list_user_sessions("same-user")


async def test_cleanup_in_one_namespace_never_touches_the_other(
    managers: tuple[ServerlessSessionManager, ServerlessSessionManager],
) -> None:
    alpha, beta = managers
    await fill(alpha, "alpha", ttl_hours=0.8 / 3600)  # expire in 0.8 s
    await fill(beta, "beta", ttl_hours=0.8 / 3600)
    await beta.create_session("same-user", "same-project", session_id="beta-lives", ttl_hours=1)
    await alpha.create_session("same-user", "same-project", session_id="alpha-lives", ttl_hours=1)
    await asyncio.sleep(1.3)

    assert await alpha.cleanup_sessions() == len(IDS)
    assert await alpha.cleanup_sessions() == 0
    # Beta's expired sessions were still there for beta's own cleanup (reads would also drop
    # them lazily on some backends, so nothing reads beta before this).
    assert await beta.cleanup_sessions() == len(IDS)
    assert await beta.list_user_sessions("same-user") == ["beta-lives"]
    assert await alpha.list_user_sessions("same-user") == ["alpha-lives"]
    assert [s async for s in alpha.storage.iter_session_ids()] == ["alpha-lives"]
    assert [s async for s in beta.storage.iter_session_ids()] == ["beta-lives"]


def test_a_redis_key_prefix_given_at_run_time_is_kept_or_refused() -> None:
    """Two deployments told (e.g. by the MCP tool ``configure_serverless_storage``) to use
    different Redis key prefixes must not silently share one keyspace: the prefix is carried
    into the storage URL or refused with a ConfigurationError, never dropped."""
    current = load_settings(url="memory://")
    updates = {"host": "127.0.0.1", "port": 6379, "key_prefix": "tenant-a"}
    try:
        settings = configured_settings(current, "redis", updates)
    except ConfigurationError:
        return
    assert "key_prefix=tenant-a" in (settings.url_value() or ""), settings.masked_url()
