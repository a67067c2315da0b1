"""Behaviour every legacy storage shares, proven on local files, real Redis and the moto server.

Also home of the helpers the per-backend legacy tests use: :func:`open_legacy` builds a storage
on a private directory / key prefix / bucket, and :func:`original_document` is a session dict
exactly as the original module wrote it (naive ISO timestamps, no revision).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions.errors import (
    ClosedError,
    ConfigurationError,
    InvalidSessionIdError,
    SessionConflictError,
)
from serverless_sessions.model import SessionState
from serverless_sessions.storage.legacy import LocalFileStorage, RedisStorage, S3Storage
from serverless_sessions.storage.legacy._common import LegacyStorage
from tests import s3_server
from tests.cache_factories.redis import delete_prefix

KINDS = ["local", "redis", "s3"]
REDIS_DB = 10
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
NAIVE_STAMP = "2025-10-28T09:30:00.123456"


def original_document(session_id: str, user_id: str = "alice", project_id: str = "proj-1") -> dict[str, Any]:
    """A session dict as the original ``SessionState.to_dict()`` produced it."""
    return {
        "session_id": session_id,
        "user_id": user_id,
        "project_id": project_id,
        "created_at": NAIVE_STAMP,
        "last_activity": NAIVE_STAMP,
        "permissions": ["read", "write"],
        "conversation_history": [{"role": "user", "content": "héllo"}],
        "reflection_data": {"score": 0.5},
        "app_monitoring_state": {},
        "llm_provider_configs": {"default": "x"},
        "metadata": {"tag": "legacy"},
    }


def original_payload(document: dict[str, Any]) -> bytes:
    """The original module's bytes: gzip of the JSON document."""
    return gzip.compress(json.dumps(document).encode("utf-8"))


def new_state(
    session_id: str | None = None, user_id: str = "alice", project_id: str = "proj-1"
) -> SessionState:
    return SessionState(
        session_id=session_id or f"s-{uuid.uuid4().hex[:12]}",
        user_id=user_id,
        project_id=project_id,
        metadata={"n": 1},
    )


def quietly(factory: type[LegacyStorage], config: dict[str, Any]) -> Any:
    """Build a legacy storage without letting its DeprecationWarning reach the test output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return factory(config)


def local_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"storage_dir": str(tmp_path / "sessions"), **extra}


def redis_config(prefix: str, **extra: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": 6379, "db": REDIS_DB, "key_prefix": prefix, **extra}


def s3_config(bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "bucket_name": bucket,
        "region": s3_server.REGION,
        "key_prefix": "sessions/",
        "access_key_id": s3_server.ACCESS_KEY_ID,
        "secret_access_key": s3_server.SECRET_ACCESS_KEY,
        "endpoint_url": s3_server.endpoint_url(),
        **extra,
    }


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[str]:
    """A private key prefix in db 10 (``t-<hex>:session_mgmt:``); its keys are deleted after."""
    owner = f"t-{uuid.uuid4().hex[:12]}"
    try:
        yield f"{owner}:session_mgmt:"
    finally:
        await delete_prefix(owner, REDIS_URL)


@asynccontextmanager
async def open_legacy(kind: str, tmp_path: Path, **extra: Any) -> AsyncIterator[Any]:
    """A fresh legacy storage of ``kind`` on a private directory / key prefix / bucket."""
    if kind == "local":
        async with quietly(LocalFileStorage, local_config(tmp_path, **extra)) as storage:
            yield storage
    elif kind == "redis":
        async with redis_prefix() as prefix, quietly(RedisStorage, redis_config(prefix, **extra)) as storage:
            yield storage
    else:
        async with quietly(S3Storage, s3_config(await s3_server.new_bucket("legacy"), **extra)) as storage:
            yield storage


@pytest.fixture(params=KINDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with open_legacy(request.param, tmp_path) as built:
        yield built


# -- construction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "config", "replacement"),
    [
        (LocalFileStorage, {"storage_dir": "/tmp/never-used"}, "sqlite.Cache"),
        (RedisStorage, {"host": "127.0.0.1", "password": "pw"}, "redis.Cache"),
        (S3Storage, {"bucket_name": "some-bucket"}, "s3.Cache"),
    ],
)
def test_each_warns_naming_its_replacement(
    factory: type[LegacyStorage], config: dict[str, Any], replacement: str
) -> None:
    with pytest.warns(DeprecationWarning, match=rf"use ACBCacheStorage\({replacement}") as caught:
        factory(config)
    assert caught[0].filename == __file__  # points at the caller, not at our code


@pytest.mark.parametrize(
    ("factory", "config", "field"),
    [
        (LocalFileStorage, {"storage_dirr": "/tmp/x"}, "storage_dirr"),
        (LocalFileStorage, {"default_ttl_seconds": -5}, "default_ttl_seconds"),
        (RedisStorage, {"port": "not-a-port", "password": "hunter2"}, "port"),
        (RedisStorage, {"key_prefx": "x:"}, "key_prefx"),
        (S3Storage, {}, "bucket_name"),
        (S3Storage, {"bucket_name": "Bad_Bucket"}, "bucket"),
        (S3Storage, {"bucket_name": "b-1", "access_key_id": "only-id"}, "together"),
    ],
)
def test_bad_config_is_a_configuration_error_naming_the_field(
    factory: type[LegacyStorage], config: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError, match=field) as caught:
        quietly(factory, config)
    assert "hunter2" not in str(caught.value)


def test_local_storage_imports_no_redis_or_boto() -> None:
    code = (
        "import sys\n"
        "from serverless_sessions.storage.legacy import LocalFileStorage\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'aiobotocore', 'botocore'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- behaviour -----------------------------------------------------------------------------


async def test_round_trip_listing_and_delete(storage: Any) -> None:
    state = new_state("round:trip.1", user_id="ü-user", project_id="p/1")
    other = new_state(user_id="bob", project_id="p/1")
    assert await storage.store_session(state, ttl_seconds=60) is True
    assert state.revision == 1
    await storage.store_session(other, ttl_seconds=60)
    loaded = await storage.retrieve_session("round:trip.1")
    assert loaded is not None and loaded.to_dict() == state.to_dict()
    assert sorted(await storage.list_sessions()) == sorted([state.session_id, other.session_id])
    assert await storage.list_sessions(user_id="ü-user") == [state.session_id]
    assert sorted(await storage.list_sessions(project_id="p/1")) == sorted(
        [state.session_id, other.session_id]
    )
    assert await storage.list_sessions(user_id="bob", project_id="p/1") == [other.session_id]
    assert await storage.list_sessions(user_id="bob", project_id="nope") == []
    assert sorted([sid async for sid in storage.iter_session_ids()]) == sorted(
        [state.session_id, other.session_id]
    )
    assert await storage.delete_session(state.session_id) is True
    assert await storage.delete_session(state.session_id) is False
    assert await storage.retrieve_session(state.session_id) is None
    assert await storage.list_sessions(user_id="ü-user") == []


async def test_stale_revisions_are_conflicts(storage: Any) -> None:
    state = new_state()
    await storage.store_session(state, ttl_seconds=60)
    stale = state.model_copy(update={"revision": 0})
    with pytest.raises(SessionConflictError):
        await storage.store_session(stale)
    state.metadata = {"n": 2}
    await storage.store_session(state)
    assert state.revision == 2
    with pytest.raises(SessionConflictError):
        await storage.store_session(state.model_copy(update={"revision": 1}))
    loaded = await storage.retrieve_session(state.session_id)
    assert loaded is not None and loaded.metadata == {"n": 2} and loaded.revision == 2


async def test_concurrent_writers_of_one_revision_have_one_winner(storage: Any) -> None:
    state = new_state()
    await storage.store_session(state, ttl_seconds=60)

    async def attempt(i: int) -> bool:
        copy = state.model_copy(update={"metadata": {"writer": i}})
        try:
            await storage.store_session(copy)
        except SessionConflictError:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(8)))
    assert results.count(True) == 1
    loaded = await storage.retrieve_session(state.session_id)
    assert loaded is not None and loaded.revision == 2


async def test_ttl_expires_sessions_and_cleanup_removes_them(storage: Any) -> None:
    short, long = new_state(), new_state()
    await storage.store_session(short, ttl_seconds=0.4)
    await storage.store_session(long, ttl_seconds=60)
    await asyncio.sleep(0.7)
    assert await storage.retrieve_session(short.session_id) is None
    assert await storage.list_sessions() == [long.session_id]
    assert await storage.list_sessions(user_id="alice") == [long.session_id]
    assert await storage.cleanup_expired_sessions() == 1
    assert await storage.cleanup_expired_sessions() == 0
    assert await storage.retrieve_session(long.session_id) is not None
    assert await storage.delete_session(short.session_id) is False


async def test_update_without_ttl_keeps_the_remaining_ttl(storage: Any) -> None:
    state = new_state()
    await storage.store_session(state, ttl_seconds=120)
    first = await storage.load_session(state.session_id)
    assert first is not None and first.expires_at is not None
    assert first.expires_at == pytest.approx(time.time() + 120, abs=2)
    await asyncio.sleep(0.2)
    state.metadata = {"n": 2}
    await storage.store_session(state)
    second = await storage.load_session(state.session_id)
    assert second is not None and second.expires_at == pytest.approx(first.expires_at, abs=0.5)


async def test_new_session_without_ttl_gets_the_default(storage: Any) -> None:
    state = new_state()
    await storage.store_session(state)
    stored = await storage.load_session(state.session_id)
    assert stored is not None and stored.expires_at == pytest.approx(time.time() + 86400, abs=5)


@pytest.mark.parametrize("kind", KINDS)
async def test_no_default_ttl_means_no_expiry(kind: str, tmp_path: Path) -> None:
    async with open_legacy(kind, tmp_path, default_ttl_seconds=None) as storage:
        state = new_state()
        await storage.store_session(state)
        stored = await storage.load_session(state.session_id)
        assert stored is not None and stored.expires_at is None


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a\x00b", "a/b", "..", ".hidden", "", "x" * 200])
async def test_unsafe_ids_are_refused_everywhere(storage: Any, bad: str) -> None:
    with pytest.raises(InvalidSessionIdError):
        await storage.retrieve_session(bad)
    with pytest.raises(InvalidSessionIdError):
        await storage.delete_session(bad)
    forged = SessionState.model_construct(
        **{**new_state().model_dump(), "session_id": bad}  # bypasses the model's own check
    )
    with pytest.raises(InvalidSessionIdError):
        await storage.store_session(forged, ttl_seconds=60)
    assert await storage.list_sessions() == []


async def test_available_described_without_secrets_and_closed(storage: Any) -> None:
    assert await storage.is_available() is True
    description = storage.describe()
    assert description["deprecated"] is True and description["backend"].startswith("legacy-")
    assert s3_server.SECRET_ACCESS_KEY not in repr(description)
    await storage.close()
    assert await storage.is_available() is False
    with pytest.raises(ClosedError):
        await storage.retrieve_session("abc")
