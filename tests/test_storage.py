"""ACBCacheStorage and the manager over every built-in adapter (issue 2's behaviours)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from serverless_sessions import (
    ACBCacheStorage,
    CorruptSessionError,
    InvalidSessionIdError,
    InvalidSessionUpdateError,
    ServerlessSessionManager,
    SessionConflictError,
    SessionNotFoundError,
    SessionState,
)
from serverless_sessions.adapters.cache import memory
from serverless_sessions.adapters.cache.base import CacheBase, IndexedCache
from tests.cache_factories import few_contended_writes
from tests.conftest import unique_namespace


@pytest.fixture
async def storage(cache: CacheBase) -> AsyncIterator[ACBCacheStorage]:
    async with ACBCacheStorage(cache, namespace=unique_namespace()) as built:
        yield built


@pytest.fixture
def manager(storage: ACBCacheStorage) -> ServerlessSessionManager:
    return ServerlessSessionManager(storage)


def make_state(session_id: str, user_id: str = "alice", project_id: str = "proj") -> SessionState:
    return SessionState(
        session_id=session_id,
        user_id=user_id,
        project_id=project_id,
        conversation_history=[{"role": "user", "content": "héllo " * 200}],
        reflection_data={"insights": ["a", "b"], "score": 0.5},
        llm_provider_configs={"openai": {"model": "gpt"}},
        permissions=["read", "write"],
        metadata={"nested": {"deep": [1, 2, {"x": None}]}},
    )


async def test_round_trip_gives_an_equal_session(storage: ACBCacheStorage) -> None:
    state = make_state("round:trip")
    assert await storage.store_session(state, ttl_seconds=60) is True
    assert state.revision == 1
    loaded = await storage.retrieve_session("round:trip")
    assert loaded == state
    assert await storage.retrieve_session("absent") is None


async def test_ids_with_colons_and_unicode_owners_round_trip(storage: ACBCacheStorage) -> None:
    state = make_state("a:b:c", user_id="Jürgen 日本", project_id="proj:x")
    await storage.store_session(state, ttl_seconds=60)
    assert (await storage.retrieve_session("a:b:c")) == state
    assert await storage.list_sessions(user_id="Jürgen 日本") == ["a:b:c"]
    assert await storage.list_sessions(project_id="proj:x") == ["a:b:c"]


async def test_expired_session_is_not_retrievable_listed_or_counted(
    manager: ServerlessSessionManager, storage: ACBCacheStorage
) -> None:
    await storage.store_session(make_state("short"), ttl_seconds=1)
    await storage.store_session(make_state("long"), ttl_seconds=60)
    assert sorted(await storage.list_sessions(user_id="alice")) == ["long", "short"]
    await asyncio.sleep(2)
    assert await storage.retrieve_session("short") is None
    assert await storage.list_sessions(user_id="alice") == ["long"]
    assert await storage.list_sessions() == ["long"]
    assert (await manager.collect_stats())["total_sessions"] == 1
    assert [s.session_id for s in (await manager.list_sessions(user_id="alice")).sessions] == ["long"]


async def test_update_without_ttl_keeps_the_remaining_ttl(
    manager: ServerlessSessionManager, storage: ACBCacheStorage
) -> None:
    session_id = await manager.create_session("alice", "proj", ttl_hours=1 / 3600)
    await manager.update_session(session_id, {"metadata": {"step": 2}})
    stored = await storage.load_session(session_id)
    assert stored is not None and stored.expires_at is not None
    await asyncio.sleep(2)
    assert await manager.get_session(session_id) is None


async def test_update_with_ttl_renews_it(manager: ServerlessSessionManager) -> None:
    session_id = await manager.create_session("alice", "proj", ttl_hours=1 / 3600)
    await manager.update_session(session_id, {"metadata": {"step": 2}}, ttl_hours=1)
    await asyncio.sleep(1.5)
    state = await manager.get_session(session_id)
    assert state is not None and state.metadata == {"step": 2}


async def test_two_hundred_concurrent_stores_are_all_listed(storage: ACBCacheStorage) -> None:
    states = [make_state(f"c-{i}", user_id="many") for i in range(200)]
    await asyncio.gather(*(storage.store_session(s, ttl_seconds=120) for s in states))
    assert sorted(await storage.list_sessions(user_id="many")) == sorted(s.session_id for s in states)


async def test_deleted_sessions_are_never_listed(storage: ACBCacheStorage) -> None:
    for i in range(3):
        await storage.store_session(make_state(f"d{i}"), ttl_seconds=60)
    assert await storage.delete_session("d1") is True
    assert await storage.delete_session("d1") is False
    assert await storage.list_sessions(user_id="alice") == ["d0", "d2"]
    assert await storage.list_sessions(user_id="alice", project_id="proj") == ["d0", "d2"]
    assert await storage.retrieve_session("d1") is None


async def test_revision_grows_and_stale_writes_conflict(storage: ACBCacheStorage) -> None:
    state = make_state("rev")
    await storage.store_session(state, ttl_seconds=60)
    first = await storage.retrieve_session("rev")
    second = await storage.retrieve_session("rev")
    assert first is not None and second is not None
    first.metadata = {"writer": 1}
    await storage.store_session(first)
    assert first.revision == 2
    second.metadata = {"writer": 2}
    with pytest.raises(SessionConflictError):
        await storage.store_session(second)
    latest = await storage.retrieve_session("rev")
    assert latest is not None and latest.metadata == {"writer": 1} and latest.revision == 2
    with pytest.raises(SessionConflictError):
        await storage.store_session(make_state("rev"), ttl_seconds=60)


async def test_concurrent_mutations_lose_nothing(
    manager: ServerlessSessionManager, adapter_name: str
) -> None:
    # Fifty racing read-modify-writes; twenty on a test server that answers one request at a
    # time or slows under contention, where fifty took half a minute (every round still races).
    count = 20 if few_contended_writes(adapter_name) else 50
    session_id = await manager.create_session("alice", "proj", {"seen": []})

    def add(i: int) -> object:
        def apply(state: SessionState) -> None:
            state.metadata["seen"].append(i)

        return apply

    await asyncio.gather(*(manager.mutate(session_id, add(i)) for i in range(count)))  # type: ignore[arg-type]
    state = await manager.get_session(session_id)
    assert state is not None
    assert sorted(state.metadata["seen"]) == list(range(count))
    assert state.revision == count + 1


async def test_cleanup_removes_expired_sessions_and_their_index_entries(
    manager: ServerlessSessionManager, storage: ACBCacheStorage
) -> None:
    await storage.store_session(make_state("old", user_id="u1", project_id="p1"), ttl_seconds=1)
    await storage.store_session(make_state("new", user_id="u1", project_id="p1"), ttl_seconds=60)
    await asyncio.sleep(2)
    assert await manager.cleanup_sessions() == 1
    assert await manager.cleanup_sessions() == 0
    cache = storage.cache
    assert isinstance(cache, IndexedCache)
    assert await cache.index_members("user:u1", namespace=storage.namespace) == ["new"]
    assert await cache.index_members("project:p1", namespace=storage.namespace) == ["new"]


async def test_invalid_ids_are_typed_errors_naming_the_value(storage: ACBCacheStorage) -> None:
    for bad in ["", "../x", "/etc/passwd", "a/b", "nul\x00", "x" * 129, ".hidden"]:
        with pytest.raises(InvalidSessionIdError) as caught:
            await storage.retrieve_session(bad)
        assert repr(bad) in str(caught.value)


async def test_updates_are_validated_and_store_nothing(manager: ServerlessSessionManager) -> None:
    session_id = await manager.create_session("alice", "proj", {"v": 1})
    before = await manager.get_session(session_id)
    for bad in (
        {"created_at": "not-a-date"},
        {"session_id": "renamed"},
        {"user_id": "mallory"},
        {"no_such_field": 1},
        {"metadata": {"x": float("nan")}},
        {"conversation_history": "not a list"},
    ):
        with pytest.raises(InvalidSessionUpdateError):
            await manager.update_session(session_id, bad)
    assert await manager.get_session(session_id) == before


async def test_update_of_a_missing_session_is_not_found(manager: ServerlessSessionManager) -> None:
    with pytest.raises(SessionNotFoundError):
        await manager.update_session("missing", {"metadata": {}})


async def test_corrupt_payload_names_its_key_and_spares_others(storage: ACBCacheStorage) -> None:
    await storage.store_session(make_state("good"), ttl_seconds=60)
    await storage.store_session(make_state("bad"), ttl_seconds=60)
    cache = storage.cache
    assert isinstance(cache, CacheBase)
    await cache.set("bad", b"SSN\x01\x01\x00garbage", ttl=60, namespace=storage.namespace)
    with pytest.raises(CorruptSessionError) as caught:
        await storage.retrieve_session("bad")
    assert "bad" in str(caught.value)
    assert await storage.retrieve_session("good") is not None
    page = await ServerlessSessionManager(storage).list_sessions(user_id="alice")
    assert [s.session_id for s in page.sessions] == ["good"]
    assert page.unreadable == ["bad"]


async def test_pagination_is_newest_activity_first(manager: ServerlessSessionManager) -> None:
    ids = [await manager.create_session("pager", "proj") for _ in range(7)]
    await manager.touch(ids[2])
    seen: list[str] = []
    cursor = None
    while True:
        page = await manager.list_sessions(user_id="pager", limit=3, cursor=cursor)
        seen.extend(s.session_id for s in page.sessions)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 7 and set(seen) == set(ids)
    assert seen[0] == ids[2]
    assert seen[1:] == list(reversed([i for i in ids if i != ids[2]]))


def test_a_read_session_is_at_the_stored_revision() -> None:
    """The storage's version wins over the revision written inside the payload."""
    storage = ACBCacheStorage(memory.Cache(), "revisions")
    state = SessionState(session_id="s1", user_id="u", project_id="p", revision=4)
    data = storage.encode(state)
    assert storage.decode("s1", data, 4).revision == 4
    read = storage.decode("s1", data, 9)
    assert read.revision == 9
    assert read.model_dump(exclude={"revision"}) == state.model_dump(exclude={"revision"})
    assert "revision" in read.model_fields_set
