"""SQLite-specific behaviour: files, processes, locks, URLs and errors, all on real files."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions.adapters.cache import sqlite
from serverless_sessions.adapters.cache.base import Entry
from serverless_sessions.adapters.cache.sqlite.schema import SCHEMA_VERSION
from serverless_sessions.adapters.cache.sqlite.statements import EXPIRED_KEYS, LIVE_INDEX_MEMBERS
from serverless_sessions.errors import (
    ClosedError,
    ConfigurationError,
    InvalidSessionError,
    SessionConflictError,
    StorageError,
    StorageUnavailableError,
)

# Each child connects, says "ready", waits for "go", then increments the shared counter with
# compare-and-set, retrying on conflict, and finally prints how many conflicts it met.
INCREMENTER = """
import asyncio, sys
from serverless_sessions.adapters.cache.sqlite import Cache
from serverless_sessions.errors import SessionConflictError

async def main(path, count):
    async with Cache(path, namespace="procs") as cache:
        await cache.ping()
        print("ready", flush=True)
        sys.stdin.readline()
        done = conflicts = 0
        while done < count:
            entry = await cache.get_entry("counter")
            value = str(int(entry.value) + 1).encode()
            try:
                await cache.compare_and_set(
                    "counter", value, expected_version=entry.version, ttl=None
                )
            except SessionConflictError:
                conflicts += 1
            else:
                done += 1
        print(conflicts, flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

# Holds SQLite's write lock from another process until a line arrives on stdin.
LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[sqlite.Cache]:
    async with sqlite.Cache(tmp_path / "sessions.db", namespace="t") as built:
        yield built


async def start_child(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode().strip()


class Trace:
    """Every statement run by the connections opened while it is active, with its thread.

    The connections are real ones; only ``sqlite3.connect`` is wrapped, to attach SQLite's own
    trace callback, which runs on the thread that executes the statement.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []  # (thread ident, statement); "connect" for opens

    def connect(self, real: Any) -> Any:
        def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            self.calls.append((threading.get_ident(), "connect"))
            conn = real(*args, **kwargs)
            conn.set_trace_callback(lambda statement: self.calls.append((threading.get_ident(), statement)))
            return conn

        return traced

    def count(self, statement: str) -> int:
        return sum(seen == statement for _, seen in self.calls)


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Trace:
    recorder = Trace()
    monkeypatch.setattr(sqlite3, "connect", recorder.connect(sqlite3.connect))
    return recorder


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until ``condition()`` holds; fail after a generous bound naming ``what``."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.005)


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    async with sqlite.Cache(path, namespace="t") as first:
        written = await first.compare_and_set(
            "s:1", b"payload", expected_version=0, ttl=600, indexes=["user:a"]
        )
        await first.set("plain", b"p")
    async with sqlite.Cache(path, namespace="t") as second:
        assert await second.get_entry("s:1") == written
        assert await second.index_members("user:a") == ["s:1"]
        assert await second.get("plain") == b"p"
        assert (await second.compare_and_set("s:1", b"v2", expected_version=1, ttl=60)).version == 2


async def test_set_counts_versions_and_keeps_indexes(cache: sqlite.Cache) -> None:
    await cache.compare_and_set("k", b"v1", expected_version=0, ttl=60, indexes=["user:a"])
    await cache.set("k", b"v2", ttl=60)
    entry = await cache.get_entry("k")
    assert entry is not None and entry.version == 2 and entry.value == b"v2"
    assert await cache.index_members("user:a") == ["k"]
    # A key's indexes are fixed by its first indexed write: moving it is a conflict.
    with pytest.raises(SessionConflictError, match="other indexes"):
        await cache.compare_and_set("k", b"v3", expected_version=2, ttl=60, indexes=["user:b"])
    assert await cache.index_members("user:b") == []


async def test_writing_an_expired_key_starts_a_new_life(cache: sqlite.Cache) -> None:
    await cache.compare_and_set("k", b"old", expected_version=0, ttl=0.2, indexes=["user:a"])
    await asyncio.sleep(0.4)
    await cache.set("k", b"new", ttl=60)
    entry = await cache.get_entry("k")
    assert entry is not None and entry.version == 1
    assert await cache.index_members("user:a") == []
    assert await cache.purge_expired() == []


async def test_purge_respects_limit(cache: sqlite.Cache) -> None:
    for i in range(5):
        await cache.set(f"e{i}", b"v", ttl=0.1 + i * 0.01)
    await cache.set("live", b"v", ttl=60)
    await asyncio.sleep(0.4)
    assert await cache.purge_expired(limit=2) == ["e0", "e1"]
    assert await cache.purge_expired(limit=0) == []
    assert sorted(await cache.purge_expired()) == ["e2", "e3", "e4"]
    assert [key async for key in cache.scan_keys()] == ["live"]


async def test_scan_pages_through_every_key_once(cache: sqlite.Cache) -> None:
    keys = ["", "a:b", "\x00nul", "日本", *(f"k{i:04}" for i in range(250))]
    for key in keys:
        await cache.set(key, b"v")
    await cache.set("other-namespace", b"v", namespace="elsewhere")
    seen = [key async for key in cache.scan_keys(batch_size=10)]
    assert sorted(seen) == sorted(keys)
    assert len(seen) == len(set(seen))


async def test_unencodable_key_is_a_typed_error(cache: sqlite.Cache) -> None:
    with pytest.raises(InvalidSessionError, match="UTF-8"):
        await cache.set("\ud800", b"v")


async def test_two_processes_lose_no_compare_and_set_write(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with sqlite.Cache(path, namespace="procs") as cache:
        await cache.compare_and_set("counter", b"0", expected_version=0, ttl=None)
        children = [await start_child(INCREMENTER, str(path), "100") for _ in range(2)]
        assert [await read_line(child) for child in children] == ["ready", "ready"]
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        for child in children:
            await asyncio.wait_for(child.communicate(), timeout=120)
            assert child.returncode == 0
        entry = await cache.get_entry("counter")
    assert entry is not None
    assert entry.version == 201
    assert entry.value == b"200"


async def test_concurrent_indexed_writes_from_two_adapters(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    async with sqlite.Cache(path) as left, sqlite.Cache(path) as right:
        await asyncio.gather(
            *(
                (left if i % 2 else right).compare_and_set(
                    f"s{i}", b"v", expected_version=0, ttl=60, indexes=["user:many"]
                )
                for i in range(200)
            )
        )
        members = await left.index_members("user:many")
    assert sorted(members) == sorted(f"s{i}" for i in range(200))


async def test_locked_database_fails_within_the_timeout_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    timeout = 0.5
    async with sqlite.Cache(path, timeout=timeout) as cache:
        await cache.set("readable", b"r")
        holder = await start_child(LOCK_HOLDER, str(path))
        try:
            assert await read_line(holder) == "locked"
            started = time.perf_counter()
            write = asyncio.create_task(cache.set("k", b"v"))
            turns = 0
            while not write.done():  # the loop keeps turning while the worker waits for the lock
                turns += 1
                await asyncio.sleep(0.01)
            waited = time.perf_counter() - started
            with pytest.raises(StorageUnavailableError) as caught:
                await write
            assert turns > 1  # a call blocking the loop would have finished before the first turn
            assert timeout * 0.8 <= waited < 4 * timeout + 2  # it waited, but not unboundedly
            assert str(path) in str(caught.value) and "set 'k'" in str(caught.value)
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            # WAL: readers are not blocked by another process's write transaction.
            assert await cache.get("readable") == b"r"
        finally:
            assert holder.stdin is not None
            holder.stdin.write(b"\n")
            await holder.communicate()
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"


async def test_every_sqlite_call_runs_on_the_worker_thread(tmp_path: Path, trace: Trace) -> None:
    loop_thread = threading.get_ident()
    async with sqlite.Cache(tmp_path / "sessions.db", namespace="t") as cache:
        await asyncio.gather(*(cache.set(f"w{i}", b"v", ttl=60) for i in range(100)))
        await cache.compare_and_set("c", b"v", expected_version=0, ttl=0.01, indexes=["u"])
        await cache.get_entries(["w1", "c"])
        assert len([key async for key in cache.scan_keys(batch_size=30)]) == 101
        await cache.index_members("u")
        await cache.purge_expired()
        await cache.delete("w0")
        assert (await cache.health())["available"] is True
    assert trace.count("connect") == 1 and trace.count("SAVEPOINT one_write") + trace.count("COMMIT") >= 103
    assert loop_thread not in {thread for thread, _ in trace.calls}, "sqlite3 ran on the event loop"


async def test_concurrent_writes_commit_together_and_each_gets_its_own_outcome(
    tmp_path: Path, trace: Trace
) -> None:
    async with sqlite.Cache(tmp_path / "sessions.db") as cache:
        await cache.compare_and_set("taken", b"v1", expected_version=0, ttl=None, indexes=["u"])
        writes = [
            cache.compare_and_set(f"k{i}", b"v", expected_version=0, ttl=60, indexes=["u"]) for i in range(50)
        ]
        stale = cache.compare_and_set("taken", b"lost", expected_version=0, ttl=None)
        bad_key = cache.set("\ud800", b"v")
        results = await asyncio.gather(*writes, stale, bad_key, return_exceptions=True)
        assert all(isinstance(entry, Entry) and entry.version == 1 for entry in results[:50])
        assert isinstance(results[50], SessionConflictError)
        assert isinstance(results[51], InvalidSessionError) and "UTF-8" in str(results[51])
        # The failed writes changed nothing; their neighbours all landed, in far fewer commits.
        assert (await cache.get_entry("taken")) is not None
        assert await cache.get("taken") == b"v1"
        assert len(await cache.index_members("u")) == 51
        assert trace.count("COMMIT") < 10
    async with sqlite.Cache(tmp_path / "sessions.db") as reopened:
        assert len([key async for key in reopened.scan_keys()]) == 51


async def test_writes_queued_before_close_are_written_before_it(tmp_path: Path) -> None:
    cache = sqlite.Cache(tmp_path / "sessions.db")
    await cache.get("warm")
    pending = [asyncio.ensure_future(cache.set(f"k{i}", b"v")) for i in range(5)]
    await asyncio.sleep(0)  # the writes are queued, not yet sent
    await cache.close()
    await asyncio.gather(*pending)
    async with sqlite.Cache(tmp_path / "sessions.db") as reopened:
        assert [await reopened.get(f"k{i}") for i in range(5)] == [b"v"] * 5


async def test_opening_waits_for_a_new_files_lock_instead_of_failing(tmp_path: Path, trace: Trace) -> None:
    # Another connection (another process creating the same database, or a second adapter) holds
    # the write lock of a file still in rollback-journal mode. Switching to WAL then meets
    # SQLITE_BUSY at once: SQLite skips the busy handler there to avoid a deadlock.
    path = tmp_path / "sessions.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    async with sqlite.Cache(path, timeout=30) as cache:
        write = asyncio.create_task(cache.set("k", b"v"))
        switches = "PRAGMA journal_mode = WAL"
        await until(lambda: write.done() or trace.count(switches) >= 2, "a retried switch to WAL")
        assert not write.done(), "opening failed while another connection held the lock"
        holder.execute("COMMIT")
        holder.close()
        await write
        assert await cache.get("k") == b"v"
        assert (await cache.health())["journal_mode"] == "wal"


async def test_opening_still_fails_once_the_timeout_is_spent(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        async with sqlite.Cache(path, timeout=0.2) as cache:
            with pytest.raises(StorageUnavailableError, match="SQLITE_BUSY") as caught:
                await cache.get("k")
        assert str(path) in str(caught.value)
    finally:
        holder.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("sqlite://relative.db", "relative.db"),
        ("sqlite:relative.db", "relative.db"),
        ("sqlite://", "''"),
        ("sqlite:///", "'/'"),
        ("sqlite:///tmp/dir/", "/tmp/dir/"),
        ("sqlite:///tmp/x.db?timeout=soon", "soon"),
        ("sqlite:///tmp/x.db?timeout=-1", "-1"),
        ("sqlite:///tmp/x.db?timeout=", "''"),
        ("sqlite:///tmp/x.db?mode=ro", "mode"),
        ("sqlite:///tmp/x.db?timeout=1&timeout=2", "timeout"),
        ("sqlite:///tmp/x.db#frag", "frag"),
        ("redis://localhost/0", "redis://localhost/0"),
    ],
)
def test_from_url_refuses_bad_urls_by_name(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match="sqlite") as caught:
        sqlite.Cache.from_url(url)
    assert named in str(caught.value)


async def test_from_url_builds_a_working_cache(tmp_path: Path) -> None:
    path = tmp_path / "with space.db"
    url = f"sqlite://{str(path).replace(' ', '%20')}?timeout=2.5"
    async with sqlite.Cache.from_url(url, namespace="u") as cache:
        assert cache.path == path and cache.timeout == 2.5 and cache.namespace == "u"
        await cache.set("k", b"v")
    assert path.exists()


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_bad_timeout_is_a_configuration_error(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        sqlite.Cache("/tmp/x.db", timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["", ":memory:"])
def test_path_naming_no_file_is_refused(path: str) -> None:
    with pytest.raises(ConfigurationError, match="names no file"):
        sqlite.Cache(path)


async def test_file_that_is_not_a_database_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the pages you are looking for\n" * 100)
    async with sqlite.Cache(path) as cache:
        with pytest.raises(StorageError, match="SQLITE_NOTADB") as caught:
            await cache.get("k")
    assert str(path) in str(caught.value) and "get 'k'" in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def files_under(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("missing/sessions.db", "SQLite database directory {tmp}/missing does not exist"),
        ("missing/deeper/sessions.db", "SQLite database directory {tmp}/missing/deeper does not exist"),
        ("a-file/sessions.db", "{tmp}/a-file is not a directory"),
        ("a-directory", "SQLite database path {tmp}/a-directory is a directory"),
    ],
    ids=["missing", "missing-deeper", "parent-is-a-file", "is-a-directory"],
)
async def test_unusable_path_is_a_configuration_error_in_plain_words(
    tmp_path: Path, where: str, says: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "a-directory").mkdir()
    before = files_under(tmp_path)
    async with sqlite.Cache.from_url(f"sqlite://{tmp_path / where}") as cache:
        for call in (cache.exists("k"), cache.set("k", b"v")):
            with pytest.raises(ConfigurationError) as caught:
                await call
            assert says.format(tmp=tmp_path) in str(caught.value)
        with pytest.raises(ConfigurationError) as caught:
            [key async for key in cache.scan_keys()]
    assert "scan_keys" not in str(caught.value) and "cannot create" not in str(caught.value)
    assert files_under(tmp_path) == before  # nothing created for a mistyped path


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    async with sqlite.Cache(path) as cache:
        await cache.ping()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.close()
    async with sqlite.Cache(path) as cache:
        with pytest.raises(ConfigurationError, match="schema version 99") as caught:
            await cache.get("k")
    assert str(path) in str(caught.value)


async def test_default_path_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    async with sqlite.Cache() as cache:
        assert cache.path == tmp_path / "data" / "serverless-sessions" / "sessions.db"
        await cache.set("k", b"v")
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600


async def test_health_reports_the_file(cache: sqlite.Cache) -> None:
    await cache.set("k", b"v")
    report = await cache.health()
    assert report["available"] is True
    assert report["backend"] == "sqlite" and report["path"] == str(cache.path)
    assert report["journal_mode"] == "wal"
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["rows"] == 1 and report["latency_ms"] >= 0


async def test_health_reports_an_unusable_file_instead_of_raising(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"x" * 4096)
    async with sqlite.Cache(path) as cache:
        report = await cache.health()
    assert report["available"] is False and str(path) in report["error"]


async def test_every_call_after_close_raises(cache: sqlite.Cache) -> None:
    await cache.set("k", b"v")
    await cache.close()
    await cache.close()
    calls = [
        cache.get("k"),
        cache.set("k", b"v"),
        cache.exists("k"),
        cache.get_entry("k"),
        cache.compare_and_set("k", b"v", expected_version=1, ttl=None),
        cache.index_members("i"),
        cache.purge_expired(),
        cache.ping(),
        cache.health(),
    ]
    for call in calls:
        with pytest.raises(ClosedError):
            await call
    with pytest.raises(ClosedError):
        [key async for key in cache.scan_keys()]


@pytest.mark.parametrize(
    "statement",
    [LIVE_INDEX_MEMBERS, EXPIRED_KEYS],
    ids=["index_members", "purge_expired"],
)
async def test_index_and_purge_queries_never_scan_a_table(cache: sqlite.Cache, statement: str) -> None:
    await cache.set("k", b"v")
    with sqlite3.connect(cache.path) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", ("t", 0, 0))]
    conn.close()
    assert plan and all(step.startswith("SEARCH") for step in plan), plan


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.Error,
        sqlite3.InterfaceError,
        sqlite3.DatabaseError,
        sqlite3.InternalError,
        sqlite3.OperationalError,
        sqlite3.ProgrammingError,
        sqlite3.IntegrityError,
        sqlite3.DataError,
        sqlite3.NotSupportedError,
    ],
)
def test_every_sqlite_exception_class_is_translated(error: type[sqlite3.Error]) -> None:
    translated = sqlite.translate_error(error("boom"), operation="get", target="k", path=Path("/x.db"))
    assert type(translated) is StorageError
    assert "get 'k'" in str(translated) and "/x.db" in str(translated)


@pytest.mark.parametrize(
    ("code", "unavailable"),
    [
        (sqlite3.SQLITE_BUSY, True),
        (sqlite3.SQLITE_BUSY_SNAPSHOT, True),
        (sqlite3.SQLITE_LOCKED, True),
        (sqlite3.SQLITE_CANTOPEN, True),
        (sqlite3.SQLITE_NOTADB, False),
        (sqlite3.SQLITE_CORRUPT, False),
        (sqlite3.SQLITE_FULL, False),
        (sqlite3.SQLITE_READONLY, False),
    ],
)
def test_result_codes_decide_unavailable(code: int, unavailable: bool) -> None:
    exc = sqlite3.OperationalError("boom")
    exc.sqlite_errorcode = code
    translated = sqlite.translate_error(exc, operation="set", target=None, path=Path("/x.db"))
    assert isinstance(translated, StorageUnavailableError) is unavailable
