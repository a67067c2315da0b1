"""SQLite's message log: files from before the log, processes appending at once, query plans.

The contract itself (windows, limits, expiry, deletes) is proven on every adapter in
tests/contract/test_log_contract.py; here is what only a file shared by processes can show.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions import ACBCacheStorage, ServerlessSessionManager
from serverless_sessions.adapters.cache import memory, sqlite
from serverless_sessions.adapters.cache.base import Entry, LogSlice
from serverless_sessions.adapters.cache.sqlite.schema import SCHEMA_VERSION
from serverless_sessions.adapters.cache.sqlite.statements import LOG_RANGE
from serverless_sessions.errors import ConfigurationError, SessionTooLargeError
from serverless_sessions.ttl import now
from tests.test_sqlite_adapter import Trace, read_line, start_child

# The layout of schema version 1, as the release before the log created it (copied, not
# imported: the code's own idea of "version 1" must not be what the upgrade is tested against).
VERSION_1_LAYOUT = (
    "PRAGMA journal_mode = WAL",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE entries (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        version INTEGER NOT NULL,
        expires_at REAL,
        PRIMARY KEY (namespace, key)
    )""",
    "CREATE INDEX entries_by_expiry ON entries (namespace, expires_at)",
    """CREATE TABLE index_members (
        namespace TEXT NOT NULL,
        index_name TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (namespace, index_name, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX index_members_by_key ON index_members (namespace, key)",
    "INSERT INTO meta (name, value) VALUES ('schema_version', '1')",
)

# Each child connects, says "ready", waits for "go", then runs its appenders concurrently, each
# appending its items one call at a time, and prints nothing more.
APPENDERS = """
import asyncio, sys
from serverless_sessions.adapters.cache.sqlite import Cache

async def main(path, first, count, items):
    async with Cache(path, namespace="procs", timeout=30) as cache:
        await cache.ping()
        print("ready", flush=True)
        sys.stdin.readline()

        async def appender(who):
            for i in range(items):
                item = f"{who}:{i}".encode()
                await cache.append("log", [item], weight=len(item), ttl=600, touched_at=1.0)

        await asyncio.gather(*(appender(who) for who in range(first, first + count)))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
"""


def version_1_file(path: Path, rows: list[tuple[str, str, bytes, int, float | None]]) -> Path:
    """A database as the release before the log left it, holding ``rows`` of ``entries``."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in VERSION_1_LAYOUT:
            conn.execute(statement)
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()
    return path


def raw(path: Path, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on its own connection (what another program would see)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return conn.execute(statement, args).fetchall()
    finally:
        conn.close()


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Trace:
    recorder = Trace()
    monkeypatch.setattr(sqlite3, "connect", recorder.connect(sqlite3.connect))
    return recorder


async def test_an_old_file_is_upgraded_in_place_and_its_entries_take_appends(tmp_path: Path) -> None:
    later = now() + 3600
    path = version_1_file(
        tmp_path / "old.db",
        [
            ("t", "kept", b"x" * 100, 7, later),
            ("t", "forever", b"f", 1, None),
            ("t", "expired", b"gone", 3, now() - 10),
        ],
    )
    raw(path, "INSERT INTO index_members VALUES ('t', 'user:a', 'kept')")
    async with sqlite.Cache(path, namespace="t") as cache:
        assert await cache.get_entry("kept") == Entry(b"x" * 100, 7, later, None)
        assert await cache.get_with_log("forever") == (Entry(b"f", 1, None), LogSlice([], 0, 0, 0))
        assert await cache.get_with_log("expired") is None
        assert await cache.index_members("user:a") == ["kept"]
        # A value written before weights were kept weighs its length: 100 + 5 > 104.
        with pytest.raises(SessionTooLargeError) as refused:
            await cache.append("kept", [b"hello"], weight=5, limit=104, ttl=60, touched_at=1.0)
        assert refused.value.size == 105
        appended = await cache.append("kept", [b"hello"], weight=5, limit=105, ttl=60, touched_at=2.0)
        assert (appended.version, appended.length) == (8, 1)
        assert await cache.get_with_log("kept") == (
            Entry(b"x" * 100, 8, appended.expires_at, 2.0),
            LogSlice([b"hello"], 0, 1, 5),
        )
        assert await cache.purge_expired() == ["expired"]
        assert (await cache.health())["schema_version"] == SCHEMA_VERSION == 3
    assert raw(path, "SELECT value FROM meta WHERE name = 'schema_version'") == [("3",)]
    async with sqlite.Cache(path, namespace="t") as reopened:  # an upgraded file opens as it is
        found = await reopened.get_with_log("kept", last=1)
        assert found is not None and found[1].items == [b"hello"]


async def test_sessions_stored_before_the_log_read_back_and_grow(tmp_path: Path) -> None:
    # What the release before the log stored: a whole write, the messages inside the value.
    history = [{"role": "user", "content": f"turn {i}"} for i in range(30)]
    async with memory.Cache() as scratch, ServerlessSessionManager(ACBCacheStorage(scratch)) as before:
        session_id = await before.create_session(
            "alice", "proj", {"k": "v"}, fields={"conversation_history": history}
        )
        original = await before.get_session(session_id)
        stored = await scratch.get_entry(session_id, namespace="session")
    assert original is not None and stored is not None
    path = version_1_file(
        tmp_path / "sessions.db", [("session", session_id, stored.value, stored.version, stored.expires_at)]
    )
    for index in ("user:alice", "project:proj"):
        raw(path, "INSERT INTO index_members VALUES ('session', ?, ?)", index, session_id)

    async with sqlite.Cache(path) as cache, ServerlessSessionManager(ACBCacheStorage(cache)) as manager:
        assert await manager.get_session(session_id) == original
        assert await manager.list_user_sessions("alice") == [session_id]
        assert await manager.list_project_sessions("proj") == [session_id]
        added = [{"role": "assistant", "content": "answer"}, {"role": "user", "content": "more"}]
        assert await manager.append_messages(session_id, added) == 32
        page = await manager.get_messages(session_id, last=3)
        assert (page.messages, page.start, page.total) == ([history[-1], *added], 29, 32)
        state = await manager.get_session(session_id)
        assert state is not None and state.conversation_history == [*history, *added]


async def test_two_caches_opening_an_old_file_at_once_upgrade_it_once(tmp_path: Path) -> None:
    path = version_1_file(tmp_path / "old.db", [("", "k", b"v", 1, None)])
    caches = [sqlite.Cache(path, timeout=30) for _ in range(4)]
    try:
        entries = await asyncio.gather(*(cache.get_entry("k") for cache in caches))
        assert entries == [Entry(b"v", 1, None)] * 4
        await asyncio.gather(
            *(
                cache.append("k", [b"%d" % i], weight=1, ttl=None, touched_at=1.0)
                for i, cache in enumerate(caches)
            )
        )
    finally:
        for cache in caches:
            await cache.close()
    assert raw(path, "SELECT log_length, version FROM entries") == [(4, 5)]


@pytest.mark.parametrize("version", [str(SCHEMA_VERSION + 1), "0"])
async def test_a_schema_version_it_cannot_upgrade_from_is_refused(tmp_path: Path, version: str) -> None:
    path = version_1_file(tmp_path / "odd.db", [])
    raw(path, "UPDATE meta SET value = ? WHERE name = 'schema_version'", version)
    async with sqlite.Cache(path) as cache:
        with pytest.raises(ConfigurationError, match=f"schema version {version}") as caught:
            await cache.get("k")
    assert str(path) in str(caught.value)
    assert raw(path, "SELECT value FROM meta") == [(version,)]  # left as it was


async def test_a_key_deleted_by_an_older_library_starts_with_an_empty_log(tmp_path: Path) -> None:
    # During an upgrade an older process still running on the file deletes entries without
    # knowing about log rows; a new entry at that key must not inherit them.
    path = tmp_path / "sessions.db"
    async with sqlite.Cache(path) as cache:
        await cache.write_with_log("k", b"v", log=[b"a", b"b"], value_weight=1, expected_version=0, ttl=None)
        raw(path, "DELETE FROM entries WHERE key = 'k'")
        await cache.compare_and_set("k", b"new", expected_version=0, ttl=None)
        assert await cache.get_with_log("k") == (Entry(b"new", 1, None), LogSlice([], 0, 0, 0))
        assert (await cache.append("k", [b"c"], weight=1, ttl=None, touched_at=1.0)).length == 1
        found = await cache.get_with_log("k")
        assert found is not None and found[1].items == [b"c"]


async def test_processes_appending_at_once_lose_and_reorder_nothing(tmp_path: Path) -> None:
    processes, per_process, items = 4, 5, 50  # 20 appenders x 50 items
    path = tmp_path / "shared.db"
    async with sqlite.Cache(path, namespace="procs") as cache:
        created = await cache.write_with_log(
            "log", b"head", log=[], value_weight=4, expected_version=0, ttl=600
        )
        children = [
            await start_child(APPENDERS, str(path), str(p * per_process), str(per_process), str(items))
            for p in range(processes)
        ]
        assert [await read_line(child) for child in children] == ["ready"] * processes
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        for child in children:
            await asyncio.wait_for(child.communicate(), timeout=300)
            assert child.returncode == 0
        found = await cache.get_with_log("log")
    assert found is not None
    entry, log = found
    total = processes * per_process * items
    assert entry.version == created.version + total
    assert (log.length, len(log.items), len(set(log.items))) == (total, total, total)
    for who in range(processes * per_process):
        mine = [item for item in log.items if item.startswith(b"%d:" % who)]
        assert mine == [b"%d:%d" % (who, i) for i in range(items)]


def plan_of(path: Path, statement: str, *args: Any) -> list[str]:
    return [row[3] for row in raw(path, f"EXPLAIN QUERY PLAN {statement}", *args)]


async def test_reading_the_last_items_is_a_range_read_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    async with sqlite.Cache(path) as cache:
        await cache.write_with_log("k", b"v", log=[b"i"] * 50, value_weight=1, expected_version=0, ttl=None)
    plan = plan_of(path, LOG_RANGE, "", "k", 40, 50)
    assert len(plan) == 1, plan  # no sort step: the primary key's order is the positions'
    assert plan[0].startswith("SEARCH log_items") and "position>? AND position<?" in plan[0], plan


async def test_log_calls_run_on_the_worker_thread(tmp_path: Path, trace: Trace) -> None:
    loop_thread = threading.get_ident()
    async with sqlite.Cache(tmp_path / "sessions.db") as cache:
        await cache.write_with_log("k", b"v", log=[b"a"], value_weight=1, expected_version=0, ttl=60)
        await asyncio.gather(
            *(cache.append("k", [b"b"], weight=1, ttl=60, touched_at=1.0) for _ in range(20))
        )
        await cache.get_with_log("k", last=5)
        await cache.compare_and_set("k", b"w", expected_version=21, ttl=60)
        await cache.compare_and_delete("k")
    assert any("log_items" in statement for _, statement in trace.calls)
    assert loop_thread not in {thread for thread, _ in trace.calls}, "sqlite3 ran on the event loop"
