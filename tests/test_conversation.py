"""Conversations through the manager, on every adapter: appending, reading back a page at a
time, concurrent appenders and whole writes, lifetimes, the size rule, bad input, listing.

Where the cache keeps a message log an append writes only the new messages; elsewhere (S3) it is
a read-modify-write of the whole session. A user sees the same behaviour either way, and these
tests hold both ways to it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from serverless_sessions import (
    ACBCacheStorage,
    CacheBase,
    Codec,
    InvalidSessionError,
    InvalidSessionUpdateError,
    ServerlessSessionManager,
    SessionNotFoundError,
    SessionState,
    SessionTooLargeError,
)
from tests.cache_factories import few_contended_writes
from tests.conftest import unique_namespace

APPENDERS, PER_APPENDER = 20, 50


def said(author: int | str, index: int) -> dict[str, Any]:
    """A chat message that names who appended it and its place in that author's sequence."""
    return {"role": "user", "content": f"{author}/{index}", "tokens": [index, index + 1]}


def conversation(count: int, author: int | str = "a") -> list[dict[str, Any]]:
    return [said(author, index) for index in range(count)]


def storage_on(cache: CacheBase, *, max_size: int | None = None) -> ACBCacheStorage:
    codec = Codec() if max_size is None else Codec(max_size=max_size)
    return ACBCacheStorage(cache, unique_namespace(), codec=codec)


@pytest.fixture
def storage(cache: CacheBase) -> ACBCacheStorage:
    return storage_on(cache)


@pytest.fixture
def manager(storage: ACBCacheStorage) -> ServerlessSessionManager:
    return ServerlessSessionManager(storage)


@pytest.fixture
def slow(adapter_name: str) -> bool:
    """Whether contended tests do less on the adapter's test server (see ``tests/cache_factories``)."""
    return few_contended_writes(adapter_name)


async def append_all(
    manager: ServerlessSessionManager, session_id: str, messages: list[Any], batch: int = 7
) -> None:
    for start in range(0, len(messages), batch):
        await manager.append_messages(session_id, messages[start : start + batch])


async def history(manager: ServerlessSessionManager, session_id: str) -> list[Any]:
    state = await manager.require_session(session_id)
    assert not state.has_partial_history
    return state.conversation_history


def owned_by(messages: list[Any], author: int | str) -> list[Any]:
    return [m for m in messages if m["content"].startswith(f"{author}/")]


# -- appending and reading back --------------------------------------------------------------


async def test_appends_return_the_count_and_the_session_holds_them_in_order(
    manager: ServerlessSessionManager,
) -> None:
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    expected = conversation(25)
    assert await manager.append_messages(session_id, expected[:1]) == 1
    assert await manager.append_messages(session_id, expected[1:4]) == 4
    assert await manager.append_messages(session_id, expected[4:]) == 25

    assert await history(manager, session_id) == expected
    page = await manager.get_messages(session_id)
    assert (page.messages, page.start, page.total, page.next_cursor) == (expected, 0, 25, None)


async def test_a_listing_counts_the_appended_messages_in_a_sessions_size(
    manager: ServerlessSessionManager,
) -> None:
    session_id = await manager.create_session("sized", "p", ttl_hours=1)
    (before,) = (await manager.list_sessions(user_id="sized")).sessions
    messages = conversation(40)
    await manager.append_messages(session_id, messages)
    (after,) = (await manager.list_sessions(user_id="sized")).sessions
    # Each message weighs its JSON, wherever the storage keeps it (value or log).
    weight = sum(len(json.dumps(m, separators=(",", ":"))) for m in messages)
    assert after.size_bytes - before.size_bytes >= weight


async def test_paging_back_to_the_start_returns_every_message_once_in_order(
    manager: ServerlessSessionManager,
) -> None:
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    other = await manager.create_session("u", "p", ttl_hours=1)
    expected = conversation(23)
    await append_all(manager, session_id, expected)

    newest = await manager.get_messages(session_id, last=5)
    assert (newest.messages, newest.start, newest.total) == (expected[18:], 18, 23)
    pages = [newest.messages]
    cursor = newest.next_cursor
    while cursor is not None:
        # Messages added while paging go after the ones being read: the pages do not shift,
        # whether they are appended or the conversation is written whole again.
        late = said("late", len(pages))
        if len(pages) % 2:
            await manager.append_messages(session_id, [late])
        else:

            def add_late(state: SessionState, late: dict[str, Any] = late) -> None:
                state.conversation_history.append(late)

            await manager.mutate(session_id, add_late)
        page = await manager.get_messages(session_id, last=5, before=cursor)
        pages.append(page.messages)
        cursor = page.next_cursor
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [message for page in reversed(pages) for message in page] == expected

    assert newest.next_cursor is not None
    with pytest.raises(InvalidSessionError, match="not issued for session"):
        await manager.get_messages(other, before=newest.next_cursor)
    with pytest.raises(SessionNotFoundError):
        await manager.get_messages("no-such-session", last=5)


async def head_then_appended(
    manager: ServerlessSessionManager, in_value: int, appended: int
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """A session whose stored value holds ``in_value`` messages, then ``appended`` appended."""
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    head, tail = conversation(in_value, "head"), conversation(appended, "tail")
    await manager.update_session(session_id, {"conversation_history": head})
    await manager.append_messages(session_id, tail)
    return session_id, head, tail


async def test_a_window_ending_where_the_stored_value_ends_is_still_partial(
    manager: ServerlessSessionManager, storage: ACBCacheStorage
) -> None:
    session_id, head, tail = await head_then_appended(manager, 3, 2)

    window = await storage.load_conversation(session_id, before=3)
    assert window is not None and window.state.conversation_history == head
    assert window.state.has_partial_history and window.message_count == 5
    whole = await storage.load_conversation(session_id)
    assert whole is not None and whole.state.conversation_history == head + tail
    assert not whole.state.has_partial_history


async def test_a_wrong_guess_of_the_messages_in_the_value_still_reads_the_right_window(
    manager: ServerlessSessionManager, storage: ACBCacheStorage
) -> None:
    # A cursor's guess of how many messages the stored value holds may be stale (the session
    # was stored whole since): the window is the same, at the price of a second read.
    session_id, head, tail = await head_then_appended(manager, 3, 4)
    everything = head + tail

    for guess in (0, 3, 6):
        window = await storage.load_conversation(session_id, last=2, before=5, messages_in_head=guess)
        assert window is not None, guess
        assert window.state.conversation_history == everything[3:5], guess
        assert (window.history_start, window.message_count) == (3, 7), guess
        assert window.state.has_partial_history


async def test_a_history_limit_reads_the_last_messages_and_that_session_cannot_be_stored_whole(
    manager: ServerlessSessionManager, storage: ACBCacheStorage
) -> None:
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    expected = conversation(30)
    await append_all(manager, session_id, expected)

    partial = await manager.get_session(session_id, history_limit=5)
    assert partial is not None and partial.has_partial_history
    assert partial.conversation_history == expected[25:]
    stored = await manager.load_session(session_id, history_limit=5)
    assert stored is not None and (stored.history_start, stored.message_count) == (25, 30)
    nothing = await manager.get_session(session_id, history_limit=0)
    assert nothing is not None and nothing.conversation_history == [] and nothing.has_partial_history
    enough = await manager.get_session(session_id, history_limit=30)
    assert enough is not None and enough.conversation_history == expected
    assert not enough.has_partial_history

    revision = partial.revision
    partial.metadata["edited"] = True
    with pytest.raises(InvalidSessionUpdateError, match="only part of its conversation"):
        await storage.store_session(partial)
    after = await manager.require_session(session_id)
    assert after.conversation_history == expected
    assert after.revision == revision and after.metadata == {}


# -- concurrency -----------------------------------------------------------------------------


async def test_twenty_concurrent_appenders_all_land_each_in_its_order(
    manager: ServerlessSessionManager, slow: bool
) -> None:
    """The issue's test: 20 appenders x 50 messages on one session end with exactly 1,000.

    One message per append, except on a slow test server, where every lost round of a contended
    append is another transaction on a server answering one request at a time (moto's cost grows
    with the items a transaction writes): there 10 appenders add 50 messages each, 25 per
    append, twenty appends racing (20 x 50 in appends of 25 took a minute and a half).
    """
    appenders, per_appender, batch = (10, 50, 25) if slow else (APPENDERS, PER_APPENDER, 1)
    session_id = await manager.create_session("u", "p", ttl_hours=1)

    async def appender(author: int) -> None:
        for start in range(0, per_appender, batch):
            await manager.append_messages(
                session_id, [said(author, index) for index in range(start, start + batch)]
            )

    await asyncio.gather(*(appender(author) for author in range(appenders)))

    messages = await history(manager, session_id)
    assert len(messages) == appenders * per_appender
    for author in range(appenders):
        assert owned_by(messages, author) == conversation(per_appender, author)
    assert (await manager.get_messages(session_id, last=1)).total == appenders * per_appender


async def test_whole_writes_racing_appends_lose_no_message(
    manager: ServerlessSessionManager, slow: bool
) -> None:
    """Mutators that rewrite the history, metadata updates and touches, all during appends.

    The mutators only add at the end, so a message keeps the position it landed at. The count
    an append returns holds its message: when a whole write landed between the append's read
    and its write, the count is read again and may include later messages too.
    """
    appends, writes = (5, 3) if slow else (15, 8)
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    await append_all(manager, session_id, conversation(40, "before"))
    counted: list[tuple[int, dict[str, Any]]] = []

    async def appender(author: int) -> None:
        for index in range(appends):
            message = said(author, index)
            counted.append((await manager.append_messages(session_id, [message]), message))
            await asyncio.sleep(0)  # a turn's other work: lets the others in, even in memory

    async def rewriter(author: str) -> None:
        for index in range(writes):

            def add_marker(state: SessionState, index: int = index) -> None:
                state.conversation_history.append(said(author, index))

            await manager.mutate(session_id, add_marker)

    async def updater() -> None:
        for index in range(writes):
            await manager.update_session(session_id, {"metadata": {"updates": index + 1}})
            await manager.touch(session_id)

    await asyncio.gather(
        *(appender(author) for author in range(4)), rewriter("marker-1"), rewriter("marker-2"), updater()
    )

    state = await manager.require_session(session_id)
    messages = state.conversation_history
    assert messages[:40] == conversation(40, "before")
    assert len(messages) == 40 + 4 * appends + 2 * writes
    for author in range(4):
        assert owned_by(messages, author) == conversation(appends, author)
    for marker in ("marker-1", "marker-2"):
        assert owned_by(messages, marker) == conversation(writes, marker)
    assert state.metadata == {"updates": writes}
    wrong = [
        (count, message) for count, message in counted if not messages.index(message) < count <= len(messages)
    ]
    assert not wrong, f"{len(wrong)} appends returned a count that does not hold their message"


async def test_a_history_replaced_while_appends_run_keeps_every_append_made_after_it(
    manager: ServerlessSessionManager, slow: bool
) -> None:
    """``update_session(conversation_history=...)`` deliberately drops what came before it.

    Each appender's messages that survive are therefore the tail of its sequence, and that tail
    holds at least every message whose append started after the replacement returned.
    """
    appends = 10 if slow else 30
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    replacement = conversation(3, "summary")
    started: dict[int, list[float]] = {author: [] for author in range(4)}
    replaced_at: list[float] = []
    under_way = asyncio.Event()

    async def appender(author: int) -> None:
        for index in range(appends):
            started[author].append(time.monotonic())
            await manager.append_messages(session_id, [said(author, index)])
            if (author, index) == (0, 2):
                under_way.set()
            await asyncio.sleep(0)  # a turn's other work: lets the others in, even in memory

    async def replacer() -> None:
        await under_way.wait()
        await manager.update_session(session_id, {"conversation_history": replacement})
        replaced_at.append(time.monotonic())

    await asyncio.gather(*(appender(author) for author in range(4)), replacer())

    messages = await history(manager, session_id)
    assert messages[:3] == replacement
    survivors = messages[3:]
    assert said(0, 2) not in survivors  # it landed before the replacement began
    for author in range(4):
        own = owned_by(survivors, author)
        first_kept = appends - len(own)
        assert own == [said(author, index) for index in range(first_kept, appends)]
        after_replacement = [i for i, at in enumerate(started[author]) if at > replaced_at[0]]
        assert not after_replacement or first_kept <= after_replacement[0]
    assert len(survivors) == sum(len(owned_by(survivors, author)) for author in range(4))


async def test_metadata_updates_and_touches_keep_a_long_conversation(
    manager: ServerlessSessionManager,
) -> None:
    session_id = await manager.create_session("u", "p", {"topic": "long"}, ttl_hours=1)
    expected = conversation(300)
    await append_all(manager, session_id, expected, batch=50)

    await manager.update_session(session_id, {"metadata": {"topic": "still long"}})
    touched = await manager.touch(session_id)
    assert touched.metadata == {"topic": "still long"}
    await manager.mutate(session_id, lambda state: state.permissions.append("read"))

    state = await manager.require_session(session_id)
    assert state.conversation_history == expected
    assert (state.metadata, state.permissions) == ({"topic": "still long"}, ["read"])
    assert await manager.append_messages(session_id, [said("a", 300)]) == 301


# -- lifetimes -------------------------------------------------------------------------------


async def expiry_of(manager: ServerlessSessionManager, session_id: str) -> float:
    stored = await manager.load_session(session_id)
    assert stored is not None and stored.expires_at is not None
    return stored.expires_at


async def test_appends_slide_the_idle_timeout_within_the_absolute_deadline(
    storage: ACBCacheStorage,
) -> None:
    idle = ServerlessSessionManager(storage)
    bounded = ServerlessSessionManager(storage, max_lifetime_hours=2.5 / 3600)
    sliding = await idle.create_session("u", "p", ttl_hours=60 / 3600)
    short = await idle.create_session("u", "p", ttl_hours=1 / 3600)
    capped = await bounded.create_session("u", "p", ttl_hours=1)
    deadline = (await bounded.require_session(capped)).absolute_expires_at
    assert deadline is not None
    first = await expiry_of(idle, sliding)

    await asyncio.sleep(1.2)
    assert await idle.append_messages(sliding, [said("a", 0)]) == 1
    slid = await expiry_of(idle, sliding)
    assert slid >= first + 1.0
    assert await bounded.append_messages(capped, [said("a", 0)]) == 1
    assert await expiry_of(bounded, capped) <= deadline.timestamp() + 0.05
    with pytest.raises(SessionNotFoundError):  # its 1-second idle timeout ran out
        await idle.append_messages(short, [said("a", 0)])
    assert await idle.get_session(short) is None
    with pytest.raises(SessionNotFoundError):
        await idle.append_messages("never-created", [said("a", 0)])

    assert await idle.append_messages(sliding, [said("a", 1)], ttl_hours=2) == 2
    renewed = await idle.load_session(sliding)
    assert renewed is not None and renewed.expires_at is not None
    assert renewed.state.idle_ttl_seconds == 7200
    assert renewed.expires_at == pytest.approx(time.time() + 7200, abs=30)

    await asyncio.sleep(max(0.0, deadline.timestamp() - time.time()) + 0.1)
    with pytest.raises(SessionNotFoundError):
        await bounded.append_messages(capped, [said("a", 1)])
    with pytest.raises(SessionNotFoundError):
        await bounded.get_messages(capped)
    assert await history(idle, sliding) == [said("a", 0), said("a", 1)]


# -- the size rule ---------------------------------------------------------------------------


LIMIT = 4096


async def test_a_message_too_large_alone_is_refused_and_nothing_is_stored(cache: CacheBase) -> None:
    manager = ServerlessSessionManager(storage_on(cache, max_size=LIMIT))
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    await manager.append_messages(session_id, [said("a", 0)])
    huge = {"role": "user", "content": "x" * LIMIT}
    with pytest.raises(SessionTooLargeError, match=session_id):
        await manager.append_messages(session_id, [said("a", 1), huge])
    assert await history(manager, session_id) == [said("a", 0)]


async def test_appends_past_the_limit_are_refused_and_what_was_accepted_stays_writable(
    cache: CacheBase,
) -> None:
    """Never stored-then-unwritable: a conversation that appends filled to the limit is rewritable."""
    manager = ServerlessSessionManager(storage_on(cache, max_size=1024))
    session_id = await manager.create_session("u", "p", {"note": "n"}, ttl_hours=1)
    accepted: list[str] = []
    for batch in (10, 1):  # fill it to within one small message of the limit
        while True:
            messages = [f"m{len(accepted) + offset}" for offset in range(batch)]
            try:
                await manager.append_messages(session_id, messages)
            except SessionTooLargeError:
                break
            accepted.extend(messages)
        assert await history(manager, session_id) == accepted
    assert len(accepted) > 50

    def rewrite(state: SessionState) -> None:
        state.conversation_history.reverse()
        state.metadata["note"] = "m"

    await manager.mutate(session_id, rewrite)
    assert await history(manager, session_id) == accepted[::-1]
    await manager.update_session(session_id, {"metadata": {"note": "o"}})
    await manager.touch(session_id)
    assert await history(manager, session_id) == accepted[::-1]
    with pytest.raises(SessionTooLargeError):
        await manager.mutate(session_id, lambda state: state.conversation_history.extend(accepted))
    assert await history(manager, session_id) == accepted[::-1]


# -- bad input -------------------------------------------------------------------------------


SECOND = r"messages\[1\]"
"""The second message of a batch appended to three: named in the batch, whether the storage keeps
a message log or rewrites the whole conversation."""


@pytest.mark.parametrize(
    ("messages", "named"),
    [
        ("hello", "not str"),
        ({"role": "user", "content": "hi"}, "not dict"),
        ([], "at least one"),
        ([said("a", 9), {"role": "user", "score": float("nan")}], rf"{SECOND}\.score: nan"),
        ([said("a", 9), {"a", "set"}], rf"{SECOND}: set is not a JSON value"),
    ],
    ids=["text", "one-message", "empty", "nan", "set"],
)
async def test_bad_messages_are_refused_by_name_and_nothing_is_stored(
    manager: ServerlessSessionManager, messages: Any, named: str
) -> None:
    session_id = await manager.create_session("u", "p", ttl_hours=1)
    await append_all(manager, session_id, conversation(3))
    before = await manager.require_session(session_id)
    with pytest.raises(InvalidSessionError, match=named):
        await manager.append_messages(session_id, messages)
    after = await manager.require_session(session_id)
    assert after.conversation_history == conversation(3)
    assert after.revision == before.revision


# -- listing ---------------------------------------------------------------------------------


async def test_an_append_makes_the_session_the_newest_in_listings(
    manager: ServerlessSessionManager,
) -> None:
    older = await manager.create_session("lister", "p", ttl_hours=1)
    newer = await manager.create_session("lister", "p", ttl_hours=1)
    assert [s.session_id for s in (await manager.list_sessions(user_id="lister")).sessions] == [newer, older]

    before_append = time.time()
    await manager.append_messages(older, [said("a", 0)])

    listed = (await manager.list_sessions(user_id="lister")).sessions
    assert [s.session_id for s in listed] == [older, newer]
    assert listed[0].last_activity.timestamp() >= before_append - 0.001
