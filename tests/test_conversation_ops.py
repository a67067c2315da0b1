"""Conversations under the operations around them: encryption at rest, key rotation and
re-encryption, migration between engines, deletion, expiry and erasure, and sessions stored
by the version before the message log (their messages inside the session itself).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from serverless_sessions import (
    ACBCacheStorage,
    CacheBase,
    Codec,
    DecryptionError,
    ServerlessSessionManager,
    SessionState,
    SessionTooLargeError,
)
from serverless_sessions.adapters.cache import memory
from serverless_sessions.adapters.cache.base import KEEP_TTL, AppendableCache, AtomicCache
from serverless_sessions.encryption import KeyRing, generate_key, key_id_of
from serverless_sessions.operations.migration import migrate
from serverless_sessions.operations.reencryption import reencrypt
from serverless_sessions.storage.cache_storage import project_index, user_index
from tests.conftest import unique_namespace
from tests.test_conversation import conversation, history, owned_by, said

K1, K2 = generate_key("k1"), generate_key("k2")


def ring(*entries: str) -> KeyRing:
    return KeyRing.from_setting(",".join(entries))


def storage_on(cache: CacheBase, namespace: str, *keys: str, codec: Codec | None = None) -> ACBCacheStorage:
    return ACBCacheStorage(cache, namespace, codec=codec, encryptor=ring(*keys) if keys else None)


async def sealed_parts(storage: ACBCacheStorage, session_id: str) -> tuple[bytes, list[bytes]]:
    """The stored bytes of a session: its value and the items of its message log (if it has one)."""
    log = storage.message_log
    if log is None:
        assert isinstance(storage.cache, AtomicCache)
        entry = await storage.cache.get_entry(session_id, namespace=storage.namespace)
        assert entry is not None
        return entry.value, []
    found = await log.get_with_log(session_id, namespace=storage.namespace)
    assert found is not None
    entry, window = found
    return entry.value, window.items


async def key_ids(storage: ACBCacheStorage, session_id: str) -> set[str | None]:
    value, items = await sealed_parts(storage, session_id)
    return {key_id_of(part) for part in (value, *items)}


def appendable(cache: CacheBase) -> AppendableCache:
    assert isinstance(cache, AppendableCache), f"{type(cache).__name__} keeps no message log"
    return cache


# -- encryption ------------------------------------------------------------------------------


async def test_messages_are_sealed_one_by_one_and_bound_to_their_place(raw_cache: CacheBase) -> None:
    log = appendable(raw_cache)
    storage = storage_on(raw_cache, "enc", K1)
    manager = ServerlessSessionManager(storage)
    session_id = await manager.create_session("alice", "proj", ttl_hours=1)
    victim = await manager.create_session("alice", "proj", ttl_hours=1)
    secret = [{"role": "user", "content": f"very-private-{index}"} for index in range(6)]
    for message in secret:
        await manager.append_messages(session_id, [message])
    await manager.append_messages(victim, [said("v", 0)])

    value, items = await sealed_parts(storage, session_id)
    assert len(items) == 6
    assert {key_id_of(part) for part in (value, *items)} == {"k1"}
    assert not any(b"very-private" in part or b"alice" in part for part in (value, *items))
    assert await history(manager, session_id) == secret

    found = await log.get_with_log(session_id, namespace="enc")
    assert found is not None
    entry, window = found
    await log.write_with_log(
        session_id,
        entry.value,
        log=[items[1], items[0], *items[2:]],
        value_weight=len(entry.value),
        log_weight=window.weight,
        expected_version=entry.version,
        ttl=KEEP_TTL,
        namespace="enc",
    )
    with pytest.raises(DecryptionError, match=f"'enc:{session_id}#0'"):
        await manager.get_messages(session_id)
    with pytest.raises(DecryptionError, match=f"'enc:{session_id}#0'"):
        await manager.get_session(session_id)

    # A message carried into another session's log is refused there too.
    await log.append(victim, [items[2]], weight=1, ttl=KEEP_TTL, touched_at=time.time(), namespace="enc")
    with pytest.raises(DecryptionError, match=f"'enc:{victim}#1'"):
        await manager.get_messages(victim, last=1)


async def test_encrypted_concurrent_appenders_all_land(raw_cache: CacheBase) -> None:
    """Sealed messages are bound to their positions, so racing appends conflict and retry."""
    storage = storage_on(raw_cache, "enc", K1)
    manager = ServerlessSessionManager(storage)
    session_id = await manager.create_session("u", "p", ttl_hours=1)

    async def appender(author: int) -> None:
        for index in range(20):
            await manager.append_messages(session_id, [said(author, index)])

    await asyncio.gather(*(appender(author) for author in range(10)))

    messages = await history(manager, session_id)
    assert len(messages) == 200
    for author in range(10):
        assert owned_by(messages, author) == conversation(20, author)
    assert await key_ids(storage, session_id) == {"k1"}


# -- re-encryption ---------------------------------------------------------------------------


async def test_reencrypt_rewrites_messages_left_under_the_old_key(cache: CacheBase) -> None:
    """Messages under the old key behind a value under the new one are found and rewritten.

    A touch under the new key rewrites the session's value alone: the messages appended before
    stay under the old key.
    """
    namespace = unique_namespace()
    old = ServerlessSessionManager(storage_on(cache, namespace, K1))
    plain = ServerlessSessionManager(storage_on(cache, namespace))
    rotated_storage = storage_on(cache, namespace, K1, K2)
    rotated = ServerlessSessionManager(rotated_storage)
    expected = {
        "touched": conversation(12, "t"),
        "appended": [*conversation(5, "a"), said("a", 5)],
        "plain": conversation(4, "p"),
    }
    for session_id, messages in expected.items():
        writer = plain if session_id == "plain" else old
        await writer.create_session("u", "p", ttl_hours=1, session_id=session_id)
        await writer.append_messages(session_id, messages[:5] if session_id == "appended" else messages)
    await rotated.touch("touched")
    await rotated.append_messages("appended", expected["appended"][5:])
    has_log = rotated_storage.message_log is not None
    if has_log:  # the cases this test is about: parts of one session under both keys
        value, items = await sealed_parts(rotated_storage, "touched")
        assert (key_id_of(value), {key_id_of(item) for item in items}) == ("k2", {"k1"})
        assert await key_ids(rotated_storage, "appended") == {"k1", "k2"}

    report = await reencrypt(rotated_storage)

    assert report.complete and report.total == 3
    # Without a log the touch and the append rewrote their whole sessions under the new key.
    assert report.rewritten == (3 if has_log else 1)
    newest_only = ServerlessSessionManager(storage_on(cache, namespace, K2))
    for session_id, messages in expected.items():
        assert await key_ids(rotated_storage, session_id) == {"k2"}
        assert await history(newest_only, session_id) == messages
    again = await reencrypt(rotated_storage)
    assert (again.rewritten, again.already_current) == (0, 3)


# -- migration -------------------------------------------------------------------------------


MIGRATED = {"empty": 0, "one": 1, "forty": 40, "long": 150, "mixed": 30}
"""Conversations of the migration source, by session id: how many messages each holds."""


@pytest.fixture
async def log_source() -> AsyncIterator[ACBCacheStorage]:
    """A storage with a message log holding conversations of several lengths.

    Their messages were appended, except the first ten of ``mixed``: stored with the session.
    """
    async with memory.Cache() as cache:
        storage = storage_on(cache, "source")
        manager = ServerlessSessionManager(storage)
        for session_id, length in MIGRATED.items():
            stored = 10 if session_id == "mixed" else 0
            await manager.create_session(
                "u",
                "p",
                {"length": length},
                ttl_hours=1,
                session_id=session_id,
                fields={"conversation_history": conversation(stored)},
            )
            for start in range(stored, length, 20):
                await manager.append_messages(session_id, conversation(length)[start : start + 20])
        yield storage


async def test_migration_to_any_engine_and_back_keeps_every_message_in_order(
    log_source: ACBCacheStorage, cache: CacheBase
) -> None:
    destination = storage_on(cache, unique_namespace())
    report = await migrate(log_source, destination)
    assert (report.migrated, report.verified) == (len(MIGRATED), len(MIGRATED))

    async with memory.Cache() as back_cache:
        back = storage_on(back_cache, "back")
        assert (await migrate(destination, back)).verified == len(MIGRATED)
        for storage in (destination, back):
            manager = ServerlessSessionManager(storage)
            for session_id, length in MIGRATED.items():
                assert await history(manager, session_id) == conversation(length)
            page = await manager.get_messages("long", last=10)
            assert (page.messages, page.start, page.total) == (conversation(150)[140:], 140, 150)
        assert await ServerlessSessionManager(back).append_messages("long", [said("a", 150)]) == 151


async def test_a_conversation_filled_to_the_limit_migrates_to_any_engine(cache: CacheBase) -> None:
    """What one engine accepted, another with the same ``max_session_bytes`` accepts too."""
    codec = Codec(max_size=2048)
    async with memory.Cache() as source_cache:
        source = storage_on(source_cache, "source", codec=codec)
        manager = ServerlessSessionManager(source)
        session_id = await manager.create_session("u", "p", ttl_hours=1)
        accepted: list[Any] = []
        while True:
            try:
                await manager.append_messages(session_id, [f"m{len(accepted)}"])
            except SessionTooLargeError:
                break
            accepted.append(f"m{len(accepted)}")
        destination = storage_on(cache, unique_namespace(), codec=codec)

        assert (await migrate(source, destination)).verified == 1

    assert await history(ServerlessSessionManager(destination), session_id) == accepted


# -- removal ---------------------------------------------------------------------------------


async def test_deleted_expired_and_erased_sessions_take_their_messages_with_them(cache: CacheBase) -> None:
    storage = storage_on(cache, unique_namespace())
    manager = ServerlessSessionManager(storage)
    for session_id, user, hours in (
        ("deleted", "stayer", 1.0),
        ("expiring", "stayer", 1 / 3600),
        ("erased-1", "leaver", 1.0),
        ("erased-2", "leaver", 1.0),
    ):
        await manager.create_session(user, "p", ttl_hours=hours, session_id=session_id)
        await manager.append_messages(session_id, conversation(8, session_id))

    assert await manager.delete_session("deleted")
    assert (await manager.erase_user("leaver")).count == 2
    await asyncio.sleep(1.2)
    await manager.cleanup_sessions()

    for session_id in ("deleted", "expiring", "erased-1", "erased-2"):
        if storage.message_log is not None:
            assert await storage.message_log.get_with_log(session_id, namespace=storage.namespace) is None
        await manager.create_session("newcomer", "p", ttl_hours=1, session_id=session_id)
        assert await history(manager, session_id) == []
        assert (await manager.get_messages(session_id)).total == 0
        assert await manager.append_messages(session_id, [said("new", 0)]) == 1
        assert await history(manager, session_id) == [said("new", 0)]


# -- sessions stored before the message log --------------------------------------------------


async def store_old_layout(storage: ACBCacheStorage, session_id: str, messages: list[Any]) -> None:
    """Write a session the way the previous version did: one value holding its messages."""
    state = SessionState(
        session_id=session_id,
        user_id="u",
        project_id="p",
        metadata={"old": True},
        conversation_history=messages,
        idle_ttl_seconds=3600,
    )
    assert isinstance(storage.cache, AtomicCache)
    await storage.cache.compare_and_set(
        session_id,
        storage.encode(state),
        expected_version=0,
        ttl=3600,
        indexes=(user_index("u"), project_index("p")),
        namespace=storage.namespace,
    )


@pytest.mark.parametrize("keys", [(), (K1,)], ids=["plain", "sealed"])
async def test_a_session_from_before_the_log_reads_pages_and_grows(
    cache: CacheBase, keys: tuple[str, ...]
) -> None:
    storage = storage_on(cache, unique_namespace(), *keys)
    manager = ServerlessSessionManager(storage)
    old = conversation(12, "old")
    await store_old_layout(storage, "appended", old)
    await store_old_layout(storage, "updated", old)

    assert await history(manager, "appended") == old
    recent = await manager.get_session("appended", history_limit=3)
    assert recent is not None and recent.conversation_history == old[9:] and recent.has_partial_history
    pages: list[list[Any]] = []
    cursor: str | None = None
    while not pages or cursor is not None:
        page = await manager.get_messages("appended", last=5, before=cursor)
        assert page.total == 12
        pages.append(page.messages)
        cursor = page.next_cursor
    assert [message for page in reversed(pages) for message in page] == old

    async def appender(author: int) -> None:
        for index in range(4):
            await manager.append_messages("appended", [said(author, index)])

    value, _ = await sealed_parts(storage, "appended")
    await asyncio.gather(*(appender(author) for author in range(5)))
    messages = await history(manager, "appended")
    assert messages[:12] == old and len(messages) == 12 + 5 * 4
    for author in range(5):
        assert owned_by(messages, author) == conversation(4, author)
    if storage.message_log is not None:  # the appends wrote their messages alone
        after, items = await sealed_parts(storage, "appended")
        assert after == value and len(items) == 5 * 4

    await manager.touch("updated")
    await manager.update_session("updated", {"metadata": {"old": False}})
    updated = await manager.require_session("updated")
    assert updated.conversation_history == old and updated.metadata == {"old": False}
    assert sorted(await manager.list_user_sessions("u")) == ["appended", "updated"]
