"""Migration between real storages (a SQLite file into every adapter of tests/cache_factories,
memory, the legacy local layout): dry run, lifetimes, resuming after a crash at any point,
mismatches, unreadable sessions, checkpoints."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions import ACBCacheStorage, CacheBase, SessionState, StorageError, StoredSession
from serverless_sessions.factory import open_storage
from serverless_sessions.operations.migration import (
    MigrationError,
    MigrationVerificationError,
    migrate,
    session_digest,
)
from serverless_sessions.storage.base import SessionStorage
from tests.cache_factories import ADAPTERS, factory


def state(index: int, **extra: Any) -> SessionState:
    return SessionState(
        session_id=f"s-{index:04d}",
        user_id=f"u{index % 3}",
        project_id="p",
        created_at=datetime(2025, 10, 28, 9, 0, tzinfo=UTC),
        last_activity=datetime(2025, 10, 28, 9, 30, 0, 123456, tzinfo=UTC),
        metadata={"index": index, **extra},
    )


async def fill(storage: ACBCacheStorage, count: int, ttl: float | None = 3600.0) -> None:
    for index in range(count):
        if ttl is None:
            await storage.write(state(index), ttl=None)
        else:
            await storage.store_session(state(index), ttl_seconds=ttl + index)


async def ids_of(storage: SessionStorage) -> set[str]:
    return {session_id async for session_id in storage.iter_session_ids()}


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[SessionStorage]:
    async with open_storage(f"sqlite://{tmp_path}/source.db") as storage:
        assert isinstance(storage, ACBCacheStorage)
        yield storage


@pytest.fixture(params=ADAPTERS)
async def destination(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStorage]:
    """Every adapter as the destination (the source is a SQLite file)."""
    namespace = f"mig-{uuid.uuid4().hex[:10]}"
    made = factory(str(request.param)).make_cache(tmp_path, namespace)
    async with made as cache, ACBCacheStorage(cache, namespace) as storage:
        yield storage


async def test_dry_run_reports_counts_and_bytes_and_writes_nothing(
    source: ACBCacheStorage, destination: SessionStorage, tmp_path: Path
) -> None:
    await fill(source, 30)
    await destination.store_session(state(0), ttl_seconds=60)  # already there, same content
    checkpoint = tmp_path / "cp"
    report = await migrate(source, destination, dry_run=True, checkpoint=checkpoint)
    assert report.dry_run
    assert (report.scanned, report.migrated, report.already_present) == (30, 29, 1)
    assert report.mismatches == []
    sizes = [
        stored.size
        for stored in await source.load_sessions([f"s-{i:04d}" for i in range(1, 30)])
        if stored is not None
    ]
    assert report.bytes == sum(sizes) > 0
    assert await ids_of(destination) == {"s-0000"}
    assert not checkpoint.exists()


async def test_lifetimes_are_kept_and_revisions_reset(
    source: ACBCacheStorage, destination: SessionStorage
) -> None:
    await fill(source, 5)
    forever = state(99)
    await source.write(forever, ttl=None)
    await source.store_session(forever)  # revision 2 now, still without expiry
    report = await migrate(source, destination)
    assert (report.migrated, report.verified) == (6, 6)
    for index in [*range(5), 99]:
        original = await source.load_session(f"s-{index:04d}")
        copy = await destination.load_session(f"s-{index:04d}")
        assert original is not None and copy is not None
        assert copy.state.revision == 1
        assert session_digest(copy.state) == session_digest(original.state)
        if index == 99:
            assert copy.expires_at is None
        else:
            assert copy.expires_at == pytest.approx(original.expires_at, abs=2.0)


async def test_a_session_expiring_during_the_run_is_skipped(
    source: ACBCacheStorage, destination: SessionStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(source, 4)
    real = source.load_sessions

    async def one_just_expired(ids: Sequence[str]) -> list[StoredSession | None]:
        loaded = await real(ids)
        return [
            StoredSession(s.state, time.time() - 1, s.size) if s and s.state.session_id == "s-0002" else s
            for s in loaded
        ]

    monkeypatch.setattr(source, "load_sessions", one_just_expired)
    monkeypatch.setattr(source, "load_session", lambda sid: _first(one_just_expired([sid])))
    report = await migrate(source, destination)
    assert (report.migrated, report.skipped_expired, report.verified) == (3, 1, 3)
    assert await ids_of(destination) == {"s-0000", "s-0001", "s-0003"}


async def _first(loaded: Any) -> StoredSession | None:
    return (await loaded)[0]  # type: ignore[no-any-return]


async def test_resume_after_a_write_that_landed_but_was_not_checkpointed(
    source: ACBCacheStorage, destination: ACBCacheStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(source, 50)
    checkpoint = tmp_path / "cp"
    real_write = destination.write
    writes = 0
    unanswered: list[str] = []

    async def times_out_after_the_37th_write(session: SessionState, **kwargs: Any) -> Any:
        nonlocal writes
        writes += 1
        number = writes  # writes run concurrently: count before awaiting
        entry = await real_write(session, **kwargs)
        if number == 37:  # the server applied it, but the answer never came back
            unanswered.append(session.session_id)
            raise StorageError("timed out (simulated)")
        return entry

    monkeypatch.setattr(destination, "write", times_out_after_the_37th_write)
    with pytest.raises(StorageError, match="simulated"):
        await migrate(source, destination, checkpoint=checkpoint, batch_size=20)
    checkpointed = set(checkpoint.read_text().splitlines()[1:])
    assert len(checkpointed) == 39, "the other writes of the failed batch are recorded"
    assert await ids_of(destination) - checkpointed == set(unanswered)

    monkeypatch.setattr(destination, "write", real_write)
    report = await migrate(source, destination, checkpoint=checkpoint, batch_size=20)
    assert (report.resumed, report.already_present, report.migrated) == (39, 1, 10)
    assert report.verified == 50 and not checkpoint.exists()


async def test_a_different_session_in_the_destination_is_a_mismatch_never_overwritten(
    source: ACBCacheStorage, destination: SessionStorage
) -> None:
    await fill(source, 10)
    squatter = state(4, changed=True)
    await destination.store_session(squatter, ttl_seconds=600)
    with pytest.raises(MigrationVerificationError, match="s-0004") as caught:
        await migrate(source, destination)
    report = caught.value.report
    assert report is not None
    assert [m.session_id for m in report.mismatches] == ["s-0004"]
    assert report.verified == 9 and report.migrated == 9
    kept = await destination.load_session("s-0004")
    assert kept is not None and kept.state.metadata["changed"] is True


async def test_a_session_missing_after_copy_fails_verification(
    source: ACBCacheStorage, destination: SessionStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(source, 3)

    async def lost_write(session_state: SessionState, ttl_seconds: float | None = None) -> bool:
        return True  # a backend that acknowledges and drops the write

    monkeypatch.setattr(destination, "store_session", lost_write)
    monkeypatch.setattr(destination, "write", lambda *a, **k: lost_write(*a))
    with pytest.raises(MigrationVerificationError, match="missing in the destination"):
        await migrate(source, destination)


async def test_an_unreadable_source_session_is_reported_and_the_rest_migrated(
    source: ACBCacheStorage, destination: SessionStorage, tmp_path: Path
) -> None:
    await fill(source, 8)
    assert isinstance(source.cache, CacheBase)
    await source.cache.set("s-0003", b"SSN\x01\x00not json", ttl=600, namespace=source.namespace)
    checkpoint = tmp_path / "cp"
    report = await migrate(source, destination, checkpoint=checkpoint)
    assert list(report.failed) == ["s-0003"] and "corrupt" in report.failed["s-0003"]
    assert (report.migrated, report.verified) == (7, 7)
    assert checkpoint.exists(), "kept so a re-run retries only what failed"


async def test_checkpoint_of_another_migration_is_refused(source: ACBCacheStorage, tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp"
    await fill(source, 3)
    async with open_storage("memory://") as memory:
        with pytest.raises(MigrationError, match="checkpoint"):
            await migrate(source, memory, checkpoint=checkpoint, progress=_stop)
    async with open_storage(f"sqlite://{tmp_path}/other.db") as other:
        with pytest.raises(MigrationError, match="belongs to another migration"):
            await migrate(source, other, checkpoint=checkpoint)


def _stop(progress: Any) -> None:
    raise MigrationError("checkpoint test: stop after the first batch")


async def test_a_torn_checkpoint_line_is_cut_and_the_session_found_present(
    source: ACBCacheStorage, destination: SessionStorage, tmp_path: Path
) -> None:
    await fill(source, 6)
    checkpoint = tmp_path / "cp"
    with pytest.raises(MigrationError):
        await migrate(source, destination, checkpoint=checkpoint, progress=_stop)
    lines = checkpoint.read_text().splitlines()
    checkpoint.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:3])  # crash mid-append
    report = await migrate(source, destination, checkpoint=checkpoint)
    assert (report.resumed, report.already_present, report.verified) == (5, 1, 6)


async def test_a_corrupt_checkpoint_names_the_line(
    source: ACBCacheStorage, destination: SessionStorage, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "cp"
    with pytest.raises(MigrationError):
        await fill(source, 1)
        await migrate(source, destination, checkpoint=checkpoint, progress=_stop)
    checkpoint.write_text(checkpoint.read_text() + "../../etc/passwd\n")
    with pytest.raises(MigrationError, match="line 3"):
        await migrate(source, destination, checkpoint=checkpoint)


async def test_back_to_the_legacy_layout(source: ACBCacheStorage, tmp_path: Path) -> None:
    await fill(source, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy = open_storage(f"legacy+local://{tmp_path}/legacy")
    async with legacy:
        report = await migrate(source, legacy, batch_size=5)
        assert report.verified == 12
        assert sorted(p.name for p in (tmp_path / "legacy").glob("*.json.gz"))[:2] == [
            "s-0000.json.gz",
            "s-0001.json.gz",
        ]
        copy = await legacy.load_session("s-0011")
        assert copy is not None and copy.expires_at == pytest.approx(time.time() + 3611, abs=5)


def test_digest_ignores_revision_and_key_order() -> None:
    one = state(1)
    two = SessionState.model_validate({**one.model_dump(), "revision": 7})
    assert session_digest(one) == session_digest(two)
    assert session_digest(one) != session_digest(state(1, other=1))


async def test_batch_size_must_be_positive(source: ACBCacheStorage, destination: SessionStorage) -> None:
    with pytest.raises(MigrationError, match="batch_size"):
        await migrate(source, destination, batch_size=0)
