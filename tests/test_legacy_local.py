"""LocalFileStorage: the original ``{storage_dir}/{id}.json.gz`` files, read and written safely."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
import zlib
from pathlib import Path

import pytest

from serverless_sessions.errors import (
    CorruptSessionError,
    InvalidSessionIdError,
    SessionTooLargeError,
    StorageError,
    StorageUnavailableError,
)
from serverless_sessions.model import SessionState
from serverless_sessions.storage.legacy import LocalFileStorage
from serverless_sessions.storage.legacy.local import gzip_with_expiry, read_expiry
from tests.test_legacy_contract import (
    local_config,
    new_state,
    original_document,
    original_payload,
    quietly,
)


@pytest.fixture
def storage(tmp_path: Path) -> LocalFileStorage:
    storage: LocalFileStorage = quietly(LocalFileStorage, local_config(tmp_path))
    storage.storage_dir.mkdir(parents=True)
    return storage


def tree(root: Path) -> list[str]:
    return sorted(str(path) for path in root.rglob("*"))


def write_original(directory: Path, session_id: str, **owners: str) -> Path:
    path = directory / f"{session_id}.json.gz"
    path.write_bytes(original_payload(original_document(session_id, **owners)))
    return path


async def test_reads_files_written_by_the_original_module(storage: LocalFileStorage) -> None:
    write_original(storage.storage_dir, "0123456789abcdef")
    write_original(storage.storage_dir, "fedcba9876543210", user_id="bob", project_id="proj-2")
    stored = await storage.load_session("0123456789abcdef")
    assert stored is not None
    assert stored.expires_at is None  # the original recorded no expiry
    state = stored.state
    assert state.revision == 1
    assert state.created_at.isoformat() == "2025-10-28T09:30:00.123456+00:00"  # naive read as UTC
    assert state.conversation_history == [{"role": "user", "content": "héllo"}]
    assert sorted(await storage.list_sessions()) == ["0123456789abcdef", "fedcba9876543210"]
    assert await storage.list_sessions(user_id="bob") == ["fedcba9876543210"]
    assert await storage.list_sessions(project_id="proj-1") == ["0123456789abcdef"]
    # An update of an original file keeps its (absent) expiry and stays readable by gzip alone.
    state.metadata = {"updated": True}
    await storage.store_session(state)
    path = storage.storage_dir / "0123456789abcdef.json.gz"
    document = json.loads(gzip.decompress(path.read_bytes()))
    assert document["metadata"] == {"updated": True} and document["revision"] == 2
    assert read_expiry(path.read_bytes(), key="k") is None


async def test_written_files_are_the_original_layout_plus_an_expiry_header(
    storage: LocalFileStorage,
) -> None:
    state = new_state("layout-1")
    await storage.store_session(state, ttl_seconds=60)
    names = os.listdir(storage.storage_dir)
    assert names == ["layout-1.json.gz"]  # no temp or lock files left
    data = (storage.storage_dir / "layout-1.json.gz").read_bytes()
    document = json.loads(gzip.decompress(data))
    assert document == {**state.to_dict(), "revision": 1}
    assert read_expiry(data, key="k") == pytest.approx(time.time() + 60, abs=2)
    assert zlib.decompress(data, wbits=31) == gzip.decompress(data)


def test_gzip_expiry_header_round_trips() -> None:
    for expiry in (None, 1234567890.25):
        data = gzip_with_expiry(b'{"a": 1}', expiry)
        assert gzip.decompress(data) == b'{"a": 1}'
        assert read_expiry(data, key="k") == expiry
    assert read_expiry(gzip.compress(b"x"), key="k") is None
    broken = gzip_with_expiry(b"x", 5.0).replace(b'"expires_at"', b'"expires_ax"')
    with pytest.raises(CorruptSessionError, match="k"):
        read_expiry(broken, key="k")


@pytest.mark.parametrize("bad", ["../escape", "/tmp/abs", "a\x00b", "a/b", "..", "sub/../../x"])
async def test_nothing_is_written_outside_the_storage_dir(tmp_path: Path, bad: str) -> None:
    storage: LocalFileStorage = quietly(LocalFileStorage, local_config(tmp_path))
    before = tree(tmp_path)
    forged = SessionState.model_construct(**{**new_state().model_dump(), "session_id": bad})
    with pytest.raises(InvalidSessionIdError):
        await storage.store_session(forged, ttl_seconds=60)
    with pytest.raises(InvalidSessionIdError):
        await storage.delete_session(bad)
    assert tree(tmp_path) == before
    assert "abs.json.gz" not in os.listdir("/tmp")


async def test_expired_files_are_invisible_and_cleanup_removes_them_and_old_temp_files(
    storage: LocalFileStorage,
) -> None:
    directory = storage.storage_dir
    (directory / "gone.json.gz").write_bytes(
        gzip_with_expiry(json.dumps(original_document("gone")).encode(), 1.0)
    )
    write_original(directory, "kept")
    stale_temp = directory / ".kept.json.gz.abc123.tmp"
    stale_temp.write_bytes(b"partial")
    os.utime(stale_temp, (time.time() - 7200, time.time() - 7200))
    fresh_temp = directory / ".kept.json.gz.def456.tmp"
    fresh_temp.write_bytes(b"in flight")
    (directory / "notes.txt").write_text("not a session")
    assert await storage.retrieve_session("gone") is None
    assert await storage.list_sessions() == ["kept"]
    assert await storage.cleanup_expired_sessions() == 1
    assert sorted(os.listdir(directory)) == [".kept.json.gz.def456.tmp", "kept.json.gz", "notes.txt"]


async def test_corrupt_file_is_a_typed_error_naming_it(storage: LocalFileStorage) -> None:
    (storage.storage_dir / "broken.json.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(CorruptSessionError, match=r"broken\.json\.gz"):
        await storage.retrieve_session("broken")
    (storage.storage_dir / "other.json.gz").write_bytes(original_payload(original_document("someone-else")))
    with pytest.raises(CorruptSessionError, match="belongs to session 'someone-else'"):
        await storage.retrieve_session("other")
    assert await storage.delete_session("broken") is True  # corrupt data can still be removed


async def test_a_held_lock_times_out_and_a_stale_one_is_broken(tmp_path: Path) -> None:
    storage: LocalFileStorage = quietly(
        LocalFileStorage, local_config(tmp_path, lock_timeout=0.2, stale_lock_seconds=5)
    )
    state = new_state("locked")
    storage.storage_dir.mkdir(parents=True)
    lock = storage.storage_dir / ".locked.lock"
    lock.write_bytes(b"")
    with pytest.raises(StorageUnavailableError, match="locked"):
        await storage.store_session(state, ttl_seconds=60)
    os.utime(lock, (time.time() - 60, time.time() - 60))  # its writer died a minute ago
    await storage.store_session(state, ttl_seconds=60)
    assert not lock.exists()


async def test_os_errors_are_storage_errors_and_make_it_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    storage: LocalFileStorage = quietly(LocalFileStorage, {"storage_dir": str(blocker)})
    with pytest.raises(StorageError, match="file-not-dir") as caught:
        await storage.store_session(new_state(), ttl_seconds=60)
    assert isinstance(caught.value.__cause__, OSError)
    assert await storage.is_available() is False


def test_default_directory_is_the_original_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    storage: LocalFileStorage = quietly(LocalFileStorage, {})
    assert storage.storage_dir == tmp_path / ".claude" / "data" / "sessions"
    assert not storage.storage_dir.exists()  # nothing is created before the first write


async def test_file_io_runs_off_the_event_loop(
    storage: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    seen: list[int | None] = []
    original = Path.read_bytes

    def spy(self: Path) -> bytes:
        seen.append(threading.get_ident())
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    await storage.store_session(new_state("threads"), ttl_seconds=60)
    await storage.retrieve_session("threads")
    assert seen and loop_thread not in seen


async def test_a_write_the_reader_would_refuse_is_not_stored(storage: LocalFileStorage) -> None:
    state = new_state("grows-too-big")
    await storage.store_session(state, ttl_seconds=60)
    state.metadata = {"blob": "x" * (70 * 1024 * 1024)}  # gzips to a few KB, decodes to 70 MB
    with pytest.raises(SessionTooLargeError):
        await storage.store_session(state, ttl_seconds=60)
    kept = await storage.retrieve_session("grows-too-big")
    assert kept is not None and kept.revision == 1 and kept.metadata == {"n": 1}
