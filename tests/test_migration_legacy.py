"""5,000 sessions from a legacy local directory (the original layout) to Redis: interrupted
halfway, resumed, verified equal, remaining TTLs kept, expired sessions left behind.

The source files are written by hand as the original module wrote them: ``{dir}/{id}.json.gz``,
gzip JSON with naive timestamps and no revision. Some carry an expiry in the gzip header (the
legacy storage's extension); files of the original module carry none and never expire.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from serverless_sessions.factory import open_storage
from serverless_sessions.operations.migration import MigrationProgress, migrate, session_digest
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.storage.legacy.local import gzip_with_expiry
from tests.cache_factories.redis import delete_prefix

REDIS_DB11 = "redis://127.0.0.1:6379/11"
TOTAL = 5_000
EXPIRED = 40
WITH_TTL = 400  # expiring in 1-48 hours
INTERRUPT_AFTER = 2_500


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of a migration."""


def original_document(index: int) -> tuple[str, dict[str, object]]:
    session_id = hashlib.sha256(f"user-{index % 37}:project-{index % 11}:{index}".encode()).hexdigest()[:16]
    stamp = f"2025-10-{1 + index % 28:02d}T12:{index % 60:02d}:00.{index:06d}"
    return session_id, {
        "session_id": session_id,
        "user_id": f"user-{index % 37}",
        "project_id": f"project-{index % 11}",
        "created_at": stamp,
        "last_activity": stamp,
        "permissions": ["read", "write"][: index % 3],
        "conversation_history": [{"role": "user", "content": f"message {index} — ünïcode ✓"}],
        "reflection_data": {"score": index / 7, "tags": ["a", "b"]},
        "app_monitoring_state": {},
        "llm_provider_configs": {"provider": "x", "temperature": 0.5},
        "metadata": {"index": index, "nested": {"deep": [1, 2.5, None, True]}},
    }


def write_legacy_directory(directory: Path) -> dict[str, float | None]:
    """The fixture files; returns each id's expiry (UNIX seconds, None = never)."""
    directory.mkdir()
    expiries: dict[str, float | None] = {}
    now = time.time()
    for index in range(TOTAL):
        session_id, document = original_document(index)
        body = json.dumps(document).encode()
        if index < EXPIRED:
            expiry: float | None = now - 60
        elif index < EXPIRED + WITH_TTL:
            expiry = now + 3600 * (1 + index % 48)
        else:
            expiry = None
        data = gzip.compress(body) if expiry is None else gzip_with_expiry(body, expiry)
        (directory / f"{session_id}.json.gz").write_bytes(data)
        expiries[session_id] = expiry
    assert len(expiries) == TOTAL, "fixture ids must be distinct"
    return expiries


async def stored_sessions(storage: SessionStorage) -> AsyncIterator[tuple[str, StoredSession]]:
    ids: list[str] = [session_id async for session_id in storage.iter_session_ids()]
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        for session_id, stored in zip(batch, await storage.load_sessions(batch), strict=True):
            assert stored is not None
            yield session_id, stored


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"sstest.mig-{uuid.uuid4().hex[:12]}"
    yield prefix
    await delete_prefix(prefix, url=REDIS_DB11)


@pytest.mark.slow
async def test_5000_legacy_local_sessions_to_redis_interrupted_and_resumed(
    tmp_path: Path, redis_prefix: str
) -> None:
    expiries = write_legacy_directory(tmp_path / "sessions")
    live = {session_id for session_id, expiry in expiries.items() if expiry is None or expiry > time.time()}
    assert len(live) == TOTAL - EXPIRED
    checkpoint = tmp_path / "migration.checkpoint"
    source_url = f"legacy+local://{tmp_path / 'sessions'}"
    destination_url = f"{REDIS_DB11}?key_prefix={redis_prefix}"

    def crash_halfway(progress: MigrationProgress) -> None:
        if progress.phase == "copy" and progress.done >= INTERRUPT_AFTER:
            raise Interrupted

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy storage says it is deprecated
        source = open_storage(source_url)
    async with source, open_storage(destination_url) as destination:
        # A dry run first: counts and bytes, nothing written anywhere.
        dry = await migrate(source, destination, dry_run=True, checkpoint=checkpoint)
        # Expired files are not even listed by the legacy storage.
        assert (dry.scanned, dry.migrated, dry.skipped_expired) == (len(live), len(live), 0)
        assert dry.bytes > 0 and dry.verified == 0
        assert not checkpoint.exists()
        assert [i async for i in destination.iter_session_ids()] == []

        started = time.perf_counter()
        with pytest.raises(Interrupted):
            await migrate(source, destination, checkpoint=checkpoint, progress=crash_halfway)
        done_before = checkpoint.read_text().splitlines()[1:]
        copied_before = {i async for i in destination.iter_session_ids()}
        assert INTERRUPT_AFTER <= len(done_before) < TOTAL - 1000
        assert copied_before == set(done_before), "the checkpoint names exactly what was copied"

        seen: list[MigrationProgress] = []
        report = await migrate(source, destination, checkpoint=checkpoint, progress=seen.append)
        elapsed = time.perf_counter() - started

        assert report.resumed == len(done_before)
        assert report.migrated + report.already_present == len(live) - len(done_before)
        assert report.scanned == len(live)
        assert report.verified == len(live)
        assert report.mismatches == [] and report.failed == {}
        assert not checkpoint.exists(), "a verified migration removes its checkpoint"
        assert {p.phase for p in seen} == {"copy", "verify"}
        assert seen[-1].done == seen[-1].total == len(live)

        # Independent check: same ids, same content digests, same expiries, revision reset.
        copies = {session_id: stored async for session_id, stored in stored_sessions(destination)}
        assert set(copies) == live
        async for session_id, original in stored_sessions(source):
            copy = copies[session_id]
            assert session_digest(copy.state) == session_digest(original.state)
            assert copy.state.revision == 1
            if original.expires_at is None:
                assert copy.expires_at is None
            else:
                assert copy.expires_at == pytest.approx(original.expires_at, abs=2.0)
        assert sum(stored.expires_at is not None for stored in copies.values()) == WITH_TTL
    print(f"\nmigrated {len(live)} sessions legacy-local -> redis in {elapsed:.1f} s (incl. verify)")
