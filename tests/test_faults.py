"""Faults on real parts: a SQLite file locked (or half-written) by another process, a full
disk, and a Redis server killed mid-write. In every case the failing operation raises a typed
SessionError, the previous version of the session stays readable, and no torn write is ever
visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions.adapters.cache import redis, sqlite
from serverless_sessions.codec import Codec
from serverless_sessions.errors import SessionError, StorageError, StorageUnavailableError
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from tests.redis_servers import running_redis

ROOT = Path(__file__).resolve().parents[1]
NS = "faults"


def manager_on(cache: Any, max_size: int = 1024 * 1024) -> ServerlessSessionManager:
    return ServerlessSessionManager(ACBCacheStorage(cache, NS, codec=Codec(max_size=max_size)))


async def version_of(manager: ServerlessSessionManager, sid: str) -> int:
    state = await manager.get_session(sid)
    assert state is not None
    return int(state.metadata["v"])


# -- SQLite: another process holds the file -----------------------------------------------------

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
    mode = sys.argv[2]
    if mode == "exclusive":
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("SELECT count(*) FROM entries").fetchall()
    else:
        conn.execute("BEGIN IMMEDIATE")
    if mode == "torn":
        # A big uncommitted rewrite: spills frames into the WAL before the process dies.
        conn.execute("PRAGMA cache_size=10")
        conn.execute("UPDATE entries SET value = randomblob(400000), version = version + 7")
        conn.execute("DELETE FROM index_members")
    print("locked", flush=True)
    sys.stdin.readline()
    """
)


@contextmanager
def locked_by_another_process(path: Path, mode: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``path`` until the block ends (then it exits, or is killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "locked\n", (
            process.stderr.read() if process.stderr else ""
        )
        yield process
    finally:
        if process.poll() is None:
            with suppress(BrokenPipeError):
                assert process.stdin is not None
                process.stdin.write("done\n")
                process.stdin.flush()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_sqlite_write_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    async with sqlite.Cache(path, timeout=0.3) as cache:
        manager = manager_on(cache)
        sid = await manager.create_session("u", "p", {"v": 1}, session_id="victim")
        with locked_by_another_process(path, "write"):
            assert await version_of(manager, sid) == 1  # WAL: readers never wait for a writer
            with pytest.raises(StorageUnavailableError, match=r"locked\.db"):
                await manager.update_session(sid, {"metadata": {"v": 2}})
            with pytest.raises(StorageUnavailableError):
                await manager.create_session("u", "p", session_id="newcomer")
            assert await version_of(manager, sid) == 1
            assert await manager.list_user_sessions("u") == ["victim"]
        await manager.update_session(sid, {"metadata": {"v": 2}})
        assert await version_of(manager, sid) == 2


async def test_sqlite_exclusively_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "exclusive.db"
    async with sqlite.Cache(path, timeout=0.3) as cache:
        manager = manager_on(cache)
        sid = await manager.create_session("u", "p", {"v": 1}, session_id="victim")
    async with sqlite.Cache(path, timeout=0.3) as cache:  # a fresh connection, as a new process
        manager = manager_on(cache)
        with locked_by_another_process(path, "exclusive"):
            with pytest.raises(StorageUnavailableError):
                await manager.get_session(sid)
            with pytest.raises(StorageUnavailableError):
                await manager.update_session(sid, {"metadata": {"v": 2}})
            assert await manager.storage.is_available() is False
        assert await version_of(manager, sid) == 1
        await manager.update_session(sid, {"metadata": {"v": 2}})
        assert await version_of(manager, sid) == 2


async def test_sqlite_writer_killed_mid_transaction_leaves_no_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "torn.db"
    async with sqlite.Cache(path, timeout=2) as cache:
        manager = manager_on(cache)
        for n in range(5):
            await manager.create_session("u", "p", {"v": n}, session_id=f"s{n}")
        with locked_by_another_process(path, "torn") as locker:
            locker.send_signal(signal.SIGKILL)
            locker.wait(timeout=10)
        assert (tmp_path / "torn.db-wal").stat().st_size > 400_000  # the dead writer's frames
        for n in range(5):
            state = await manager.get_session(f"s{n}")
            assert state is not None and state.metadata == {"v": n} and state.revision == 1
        assert await manager.list_user_sessions("u") == [f"s{n}" for n in range(5)]
        await manager.update_session("s0", {"metadata": {"v": 10}})
        assert await version_of(manager, "s0") == 10


# -- disk full ------------------------------------------------------------------------------------


def fill_filesystem(filler: Path, *, leave: int) -> None:
    """Grow ``filler`` until the filesystem is full, then give back ``leave`` bytes."""
    with filler.open("wb") as handle, suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    os.truncate(filler, max(0, filler.stat().st_size - leave))


async def fill_until_refused(directory: Path) -> dict[str, Any]:
    """Grow one session with incompressible data until the disk refuses a write.

    Returns what was acknowledged and what is read back afterwards, through the same cache
    and through a fresh one.
    """
    path = directory / "sessions.db"
    async with sqlite.Cache(path, timeout=2) as cache:
        manager = manager_on(cache, max_size=4 * 1024 * 1024)
        sid = await manager.create_session("u", "p", {"v": 0}, session_id="victim")
        acknowledged, error = 0, None
        rng = random.Random(7)
        for v in range(1, 200):
            blob = rng.randbytes(40_000 * v).hex()
            try:
                await manager.update_session(sid, {"metadata": {"v": v, "blob": blob}})
            except SessionError as exc:
                error = exc
                break
            acknowledged = v
        assert error is not None, "the disk never filled up"
        assert isinstance(error, StorageError), repr(error)
        state = await manager.get_session(sid)
        assert state is not None
        same_cache = int(state.metadata["v"])
        tokens_ok = len(state.metadata.get("blob", "")) == 80_000 * same_cache
    async with sqlite.Cache(path, timeout=2) as cache:
        fresh = await version_of(manager_on(cache, max_size=4 * 1024 * 1024), sid)
    return {
        "acknowledged": acknowledged,
        "error": f"{type(error).__name__}: {error}",
        "read_same_cache": same_cache,
        "read_fresh_cache": fresh,
        "blob_intact": tokens_ok,
    }


def run_with_file_size_limit(directory: Path, limit: int) -> dict[str, Any]:
    """:func:`fill_until_refused` in a child process whose files may not exceed ``limit``."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.test_faults", "--fsize-limit", str(limit), str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path | None]:
    """A 2 MB tmpfs (needs root); ``None`` where mounting is not allowed."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        if mount_point.is_mount():
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def check_previous_version_survived(result: dict[str, Any]) -> None:
    assert result["acknowledged"] >= 1, result
    assert result["read_same_cache"] == result["acknowledged"], result
    assert result["read_fresh_cache"] == result["acknowledged"], result
    assert result["blob_intact"], result


async def test_disk_full_keeps_the_previous_version(small_filesystem: Path | None, tmp_path: Path) -> None:
    if small_filesystem is None:  # not root: the same scenario under a file-size limit
        check_previous_version_survived(run_with_file_size_limit(tmp_path, 1_500_000))
        return
    filler = small_filesystem / "filler"
    await asyncio.to_thread(fill_filesystem, filler, leave=300_000)
    result = await fill_until_refused(small_filesystem)
    check_previous_version_survived(result)
    assert "SQLITE_FULL" in result["error"] or "full" in result["error"], result
    filler.unlink()  # space comes back: writing works again
    async with sqlite.Cache(small_filesystem / "sessions.db") as cache:
        manager = manager_on(cache)
        await manager.update_session("victim", {"metadata": {"v": 999}})
        assert await version_of(manager, "victim") == 999


async def test_file_size_limit_keeps_the_previous_version(tmp_path: Path) -> None:
    check_previous_version_survived(run_with_file_size_limit(tmp_path, 1_500_000))


# -- Redis killed mid-write -----------------------------------------------------------------------


async def test_redis_killed_mid_write_keeps_the_previous_version(tmp_path: Path) -> None:
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    with running_redis(tmp_path / "redis", *durable) as server:
        cache = redis.Cache.from_url(server.url, key_prefix="faults", retry_attempts=0, socket_timeout=2)
        async with cache:
            manager = manager_on(cache)
            ids = [f"s{n}" for n in range(6)]
            for sid in ids:
                await manager.create_session("u", "p", {"v": 0}, session_id=sid)
            acknowledged = dict.fromkeys(ids, 0)
            failures: list[BaseException] = []
            rng = random.Random(3)
            warmed_up = asyncio.Event()  # every writer has landed a few writes

            async def keep_writing(sid: str) -> None:
                while True:
                    v = acknowledged[sid] + 1
                    blob = rng.randbytes(100_000).hex()

                    def write(state: SessionState, v: int = v, blob: str = blob) -> None:
                        state.metadata = {"v": v, "blob": blob, "tokens": list(range(v))}

                    try:
                        await manager.mutate(sid, write)
                    except Exception as exc:
                        failures.append(exc)
                        return
                    acknowledged[sid] = v
                    if min(acknowledged.values()) >= 5:
                        warmed_up.set()

            writers = [asyncio.create_task(keep_writing(sid)) for sid in ids]
            await asyncio.wait_for(warmed_up.wait(), timeout=30)
            await asyncio.to_thread(server.stop, signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*writers), timeout=30)

            assert len(failures) == len(ids)
            assert all(isinstance(exc, StorageUnavailableError) for exc in failures), failures
            with pytest.raises(StorageUnavailableError):
                await manager.get_session("s0")
            assert await manager.storage.is_available() is False

            await asyncio.to_thread(server.start)  # same port and directory: replays the AOF
            for sid in ids:
                state = await manager.get_session(sid)
                assert state is not None
                v = int(state.metadata["v"])
                # The write in flight at the kill may or may not have landed, never half of it.
                assert v in (acknowledged[sid], acknowledged[sid] + 1), (sid, v, acknowledged)
                assert state.metadata["tokens"] == list(range(v))
                assert len(state.metadata["blob"]) == 200_000
                assert state.revision == 1 + v
            assert await manager.list_user_sessions("u") == ids
            await manager.update_session("s0", {"metadata": {"v": -1}})
            assert await version_of(manager, "s0") == -1


def child_main() -> None:
    """Entry point of the file-size-limited child process (see run_with_file_size_limit)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--fsize-limit", type=int, required=True)
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # exceeding the limit -> EFBIG, not death
    resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, args.fsize_limit))
    print(json.dumps(asyncio.run(fill_until_refused(args.directory))), flush=True)


if __name__ == "__main__":
    child_main()
