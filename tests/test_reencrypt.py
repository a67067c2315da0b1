"""Re-encryption: every session ends under the newest key, no concurrent write is lost, the
remaining TTL is kept, and an interrupted run resumes from its checkpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions.adapters.cache import memory
from serverless_sessions.adapters.cache.base import AtomicCache, CacheBase
from serverless_sessions.encryption import KeyRing, generate_key, key_id_of
from serverless_sessions.errors import (
    CapabilityNotSupportedError,
    ConfigurationError,
    SessionError,
)
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState
from serverless_sessions.operations.reencryption import ReencryptReport, reencrypt
from serverless_sessions.storage.cache_storage import ACBCacheStorage

K0, K1, K2 = generate_key("k0"), generate_key("k1"), generate_key("k2")
NS = "reenc"


def ring(*entries: str) -> KeyRing:
    return KeyRing.from_setting(",".join(entries))


def storage(cache: CacheBase, *keys: str) -> ACBCacheStorage:
    return ACBCacheStorage(cache, NS, encryptor=ring(*keys) if keys else None)


async def populate(cache: CacheBase, keys: tuple[str, ...], count: int, prefix: str) -> list[str]:
    manager = ServerlessSessionManager(storage(cache, *keys))
    return [
        await manager.create_session(
            f"user-{i % 3}",
            "proj",
            {"n": i, "prefix": prefix},
            ttl_hours=1 + i,
            session_id=f"{prefix}-{i:04d}",
        )
        for i in range(count)
    ]


async def raw_entries(cache: CacheBase, ids: list[str]) -> dict[str, Any]:
    assert isinstance(cache, AtomicCache)
    entries = await cache.get_entries(ids, namespace=NS)
    return dict(zip(ids, entries, strict=True))


async def test_rotation_rewrites_old_and_plain_sessions_and_keeps_ttl(
    raw_cache: CacheBase, tmp_path: Path
) -> None:
    old = await populate(raw_cache, (K1,), 110, "old")
    plain = await populate(raw_cache, (), 60, "plain")
    current = await populate(raw_cache, (K1, K2), 40, "cur")
    everything = old + plain + current
    before = await raw_entries(raw_cache, everything)
    rotated = storage(raw_cache, K1, K2)
    seen: list[tuple[int, int]] = []
    checkpoint = tmp_path / "reencrypt.json"

    report = await reencrypt(
        rotated, checkpoint=checkpoint, progress=lambda done, total: seen.append((done, total))
    )

    assert report == ReencryptReport(
        key_id="k2",
        total=210,
        rewritten=170,
        already_current=40,
        vanished=0,
        conflicts=0,
        failed={},
        resumed_after=None,
    )
    assert report.complete
    assert seen == [(i, 210) for i in range(1, 211)]
    assert not checkpoint.exists()
    after = await raw_entries(raw_cache, everything)
    for sid in everything:
        assert key_id_of(after[sid].value) == "k2"
        assert after[sid].expires_at == pytest.approx(before[sid].expires_at, abs=1.0)
        rewritten = not sid.startswith("cur")
        assert after[sid].version == before[sid].version + (1 if rewritten else 0)
    new_only = storage(raw_cache, K2)
    for sid in everything:
        state = await new_only.retrieve_session(sid)
        assert state is not None
        assert state.metadata == {"n": int(sid.rsplit("-", 1)[1]), "prefix": sid.split("-")[0]}
    assert sorted(await new_only.list_sessions(user_id="user-0")) == sorted(
        sid for sid in everything if int(sid.rsplit("-", 1)[1]) % 3 == 0
    )

    again = await reencrypt(rotated)
    assert (again.rewritten, again.already_current) == (0, 210)


class Interrupted(Exception):
    pass


async def test_interrupted_run_resumes_from_its_checkpoint(raw_cache: CacheBase, tmp_path: Path) -> None:
    ids = await populate(raw_cache, (K1,), 250, "s")
    rotated = storage(raw_cache, K1, K2)
    checkpoint = tmp_path / "ckpt.json"

    def stop_at_130(done: int, total: int) -> None:
        if done == 130:
            raise Interrupted

    with pytest.raises(Interrupted):
        await reencrypt(rotated, checkpoint=checkpoint, progress=stop_at_130)
    saved = json.loads(checkpoint.read_text())
    assert saved["last_id"] == ids[129] and saved["key_id"] == "k2"
    assert saved["tally"]["rewritten"] == 130
    assert K2.partition(":")[2] not in checkpoint.read_text()
    halfway = await raw_entries(raw_cache, ids)
    assert [key_id_of(halfway[sid].value) for sid in ids] == ["k2"] * 130 + ["k1"] * 120

    seen: list[int] = []
    report = await reencrypt(rotated, checkpoint=checkpoint, progress=lambda done, total: seen.append(done))
    assert report.resumed_after == ids[129]
    assert (report.rewritten, report.already_current, report.total) == (250, 0, 250)
    assert seen == list(range(131, 251))
    assert not checkpoint.exists()
    done = await raw_entries(raw_cache, ids)
    assert {key_id_of(entry.value) for entry in done.values()} == {"k2"}


async def test_checkpoint_for_an_older_target_is_ignored_and_foreign_one_refused(
    tmp_path: Path,
) -> None:
    cache = memory.Cache()
    await populate(cache, (K0,), 5, "s")
    checkpoint = tmp_path / "ckpt.json"

    def stop(done: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        await reencrypt(storage(cache, K0, K1), checkpoint=checkpoint, progress=stop)
    report = await reencrypt(storage(cache, K0, K1, K2), checkpoint=checkpoint)
    assert report.resumed_after is None and report.rewritten == 5

    with pytest.raises(Interrupted):
        await reencrypt(storage(cache, K0, K1, K2), checkpoint=checkpoint, progress=stop)
    other = ACBCacheStorage(cache, "elsewhere", encryptor=ring(K0, K1, K2))
    with pytest.raises(ConfigurationError, match="belongs to memory namespace 'reenc'"):
        await reencrypt(other, checkpoint=checkpoint)
    checkpoint.write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"re-encryption checkpoint .*: cannot be read"):
        await reencrypt(storage(cache, K1, K2), checkpoint=checkpoint)
    checkpoint.write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigurationError, match=r"re-encryption checkpoint .*: cannot be read"):
        await reencrypt(storage(cache, K1, K2), checkpoint=checkpoint)


async def test_unwritable_checkpoint_fails_before_any_work(tmp_path: Path) -> None:
    cache = memory.Cache()
    ids = await populate(cache, (K1,), 3, "s")
    with pytest.raises(ConfigurationError, match=r"re-encryption checkpoint .*: cannot be written"):
        await reencrypt(storage(cache, K1, K2), checkpoint=tmp_path / "missing-dir" / "c.json")
    entries = await raw_entries(cache, ids)
    assert {key_id_of(entry.value) for entry in entries.values()} == {"k1"}


class RacingCache(memory.Cache):
    """Lets a rival writer update a session just before each first re-encrypting write."""

    def __init__(self) -> None:
        super().__init__()
        self.rival: ServerlessSessionManager | None = None
        self.raced: set[str] = set()

    async def write_with_log(self, key: str, value: bytes, **kwargs: Any) -> Any:
        if self.rival is not None and key not in self.raced:
            self.raced.add(key)
            await self.rival.update_session(key, {"metadata": {"rival": True}})
        return await super().write_with_log(key, value, **kwargs)


async def test_a_concurrent_write_between_read_and_rewrite_is_kept() -> None:
    cache = RacingCache()
    ids = await populate(cache, (K1,), 4, "s")
    cache.rival = ServerlessSessionManager(storage(cache, K1))  # an instance not yet rotated
    report = await reencrypt(storage(cache, K1, K2))
    assert report.conflicts == 4 and report.rewritten == 4 and report.complete
    for sid in ids:
        state = await storage(cache, K2).retrieve_session(sid)
        assert state is not None and state.metadata == {"rival": True}


async def test_live_writers_during_reencryption_lose_nothing(tmp_path: Path) -> None:
    from serverless_sessions.adapters.cache import sqlite

    async with sqlite.Cache(tmp_path / "live.db") as cache:
        ids = await populate(cache, (K1,), 120, "s")
        rotated = storage(cache, K1, K2)
        writer = ServerlessSessionManager(rotated)
        stop = asyncio.Event()
        appended: dict[str, list[int]] = {sid: [] for sid in ids}

        async def keep_writing(worker: int) -> None:
            step = 0
            while not stop.is_set():
                sid = ids[(worker * 7 + step) % len(ids)]
                step += 1

                def add(state: SessionState, sid: str = sid, step: int = step) -> None:
                    state.conversation_history.append({"worker": worker, "step": step})

                await writer.mutate(sid, add)
                appended[sid].append(worker * 1_000_000 + step)

        writers = [asyncio.create_task(keep_writing(w)) for w in range(4)]
        await asyncio.sleep(0)
        report = await reencrypt(rotated)
        stop.set()
        await asyncio.gather(*writers)
        assert report.complete and report.rewritten + report.already_current == 120
        assert report.conflicts + report.rewritten > 0  # the writers really raced the rewrite
        for sid in ids:
            state = await storage(cache, K2).retrieve_session(sid)
            assert state is not None
            history = state.conversation_history
            stored = sorted(item["worker"] * 1_000_000 + item["step"] for item in history)
            assert stored == sorted(appended[sid])
            entry = (await raw_entries(cache, [sid]))[sid]
            assert key_id_of(entry.value) == "k2"


async def test_unreadable_sessions_are_reported_and_skipped(raw_cache: CacheBase) -> None:
    await populate(raw_cache, (K1,), 4, "s")
    lost = await populate(raw_cache, (K0,), 2, "lost")
    await raw_cache.set("s-0003", b"SSE\x01\x02k1" + b"\x00" * 40, ttl=60, namespace=NS)
    report = await reencrypt(storage(raw_cache, K1, K2))
    assert report.rewritten == 3
    assert set(report.failed) == {*lost, "s-0003"}
    assert "'k0', which is not configured" in report.failed[lost[0]]
    assert "authentication failed" in report.failed["s-0003"]
    assert not report.complete
    for reason in report.failed.values():
        for key in (K0, K1, K2):
            assert key.partition(":")[2] not in reason


class DeletingCache(memory.Cache):
    """Deletes one session after the listing, and another just before its rewrite."""

    async def get_with_log(self, key: str, **kwargs: Any) -> Any:
        await self.compare_and_delete("s-0002", namespace=kwargs.get("namespace"))
        return await super().get_with_log(key, **kwargs)

    async def write_with_log(self, key: str, value: bytes, **kwargs: Any) -> Any:
        if key == "s-0001":
            await self.compare_and_delete(key, namespace=kwargs.get("namespace"))
        return await super().write_with_log(key, value, **kwargs)


async def test_sessions_deleted_during_the_run_count_as_vanished() -> None:
    cache = DeletingCache()
    await populate(cache, (K1,), 5, "s")
    report = await reencrypt(storage(cache, K1, K2))
    assert (report.rewritten, report.vanished, report.conflicts) == (3, 2, 1)
    assert report.complete
    assert sorted(await storage(cache, K2).list_sessions()) == ["s-0000", "s-0003", "s-0004"]


async def test_needs_keys_and_a_compare_and_set_cache() -> None:
    with pytest.raises(ConfigurationError, match="needs encryption keys"):
        await reencrypt(ACBCacheStorage(memory.Cache(), NS))

    class DuckCache:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        async def get(self, key: str) -> Any:
            return self.data.get(key)

        async def set(self, key: str, value: Any, ttl: int | None = None) -> None:
            self.data[key] = value

        async def delete(self, key: str) -> bool:
            return self.data.pop(key, None) is not None

        async def exists(self, key: str) -> bool:
            return key in self.data

    with pytest.raises(CapabilityNotSupportedError) as caught:
        await reencrypt(ACBCacheStorage(DuckCache(), NS, encryptor=ring(K1)))
    assert isinstance(caught.value, SessionError)
