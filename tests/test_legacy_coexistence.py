"""An old config and the config ``config migrate`` makes of it can share one server, bucket or disk.

During a move both are in use: the old config keeps serving the sessions in the original layout
until ``migrate`` has copied them, while new sessions go through the converted one. Neither may
see, break or remove the other's data. For Redis the legacy reader also has to survive keys of
another layout under its own prefix, as written by earlier versions of the conversion.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from serverless_sessions.adapters.cache import redis
from serverless_sessions.config.files import convert_to_new_format
from serverless_sessions.errors import StorageError
from serverless_sessions.factory import open_storage
from serverless_sessions.model import SessionState
from serverless_sessions.storage.base import SessionStorage
from serverless_sessions.storage.cache_storage import ACBCacheStorage
from serverless_sessions.storage.legacy import RedisStorage
from tests import s3_server
from tests.cache_factories.redis import delete_prefix
from tests.test_legacy_contract import new_state, quietly

REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "LEGACY_URL", "PROVIDER", "CONFIG", "NAMESPACE", "PASSWORD", "KEY_PREFIX"):
        monkeypatch.delenv(f"SERVERLESS_SESSIONS_{name}", raising=False)


@pytest.fixture
def owner() -> Iterator[str]:
    """A unique Redis key prefix root in db 13; every key under it (or its ``.v2``) is deleted after."""
    value = f"t-{uuid.uuid4().hex[:12]}"
    yield value


@pytest.fixture
async def redis_keys(owner: str) -> AsyncIterator[str]:
    yield owner
    for prefix in (owner, f"{owner}.v2"):
        await delete_prefix(prefix, REDIS_URL)


async def old_config(kind: str, tmp_path: Path, owner: str) -> dict[str, Any]:
    if kind == "local":
        return {"storage_type": "local", "storage_config": {"storage_dir": str(tmp_path / "sessions")}}
    if kind == "redis":
        config = {"host": "127.0.0.1", "port": 6379, "db": REDIS_DB, "key_prefix": f"{owner}:"}
        return {"storage_type": "redis", "storage_config": config}
    config = {
        "bucket_name": await s3_server.new_bucket("coexist"),
        "region": s3_server.REGION,
        "endpoint_url": s3_server.endpoint_url(),
        "access_key_id": s3_server.ACCESS_KEY_ID,
        "secret_access_key": s3_server.SECRET_ACCESS_KEY,
    }
    return {"storage_type": "s3", "storage_config": config}


def opened(target: Path) -> SessionStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return open_storage(str(target))


async def store(storage: SessionStorage, user_id: str, project_id: str) -> str:
    state = new_state(user_id=user_id, project_id=project_id)
    await storage.store_session(state, ttl_seconds=600)
    return state.session_id


@pytest.mark.parametrize("kind", ["local", "redis", "s3"])
async def test_old_and_converted_configs_share_nothing(
    kind: str, tmp_path: Path, redis_keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The converted S3 config reads the standard AWS credential sources.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.SECRET_ACCESS_KEY)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"serverless": await old_config(kind, tmp_path, redis_keys)}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the S3 keys left out of the new file
        converted = convert_to_new_format(old)
    new = tmp_path / "new.json"
    new.write_text(json.dumps(converted))

    async with opened(old) as legacy, opened(new) as current:
        assert legacy.backend == f"legacy-{kind}" and isinstance(current, ACBCacheStorage)
        kept = await store(legacy, "alice", "pp")
        added = [await store(current, "alice", "pp"), await store(current, "i", "pp")]

        assert await legacy.list_sessions() == [kept]
        assert [session_id async for session_id in legacy.iter_session_ids()] == [kept]
        assert await legacy.list_sessions(user_id="alice") == [kept]
        assert await legacy.list_sessions(project_id="pp") == [kept]
        assert await legacy.cleanup_expired_sessions() == 0
        assert [await legacy.load_session(session_id) for session_id in added] == [None, None]

        assert sorted(await current.list_sessions()) == sorted(added)
        assert await current.list_sessions(user_id="alice") == [added[0]]
        assert await current.load_session(kept) is None
        assert await current.cleanup_expired_sessions() == 0
        assert await legacy.retrieve_session(kept) is not None


async def test_legacy_redis_ignores_keys_of_another_layout_under_its_prefix(redis_keys: str) -> None:
    """The reported failure: new-layout keys at ``{prefix}session:…`` made every listing fail.

    Earlier versions converted ``key_prefix: "P:"`` to the new prefix ``P``, so namespace
    ``session`` wrote ``P:session:d:<id>``, ``P:session:i:project:pp`` and ``P:session:x``, and
    namespace ``index`` wrote under ``P:index:``. Configs converted then still exist.
    """
    prefix = f"{redis_keys}:"
    raw = aioredis.Redis.from_url(REDIS_URL)
    legacy = quietly(RedisStorage, {"host": "127.0.0.1", "port": 6379, "db": REDIS_DB, "key_prefix": prefix})
    async with legacy:
        kept = await store(legacy, "alice", "pp")
        added = []
        for namespace in ("session", "index"):
            cache = redis.Cache.from_url(REDIS_URL, key_prefix=redis_keys)
            async with ACBCacheStorage(cache, namespace, owns_cache=True) as colliding:
                added.append(await store(colliding, "i", "pp"))
                added.append(await store(colliding, "alice", "pp"))
        assert await raw.type(f"{prefix}session:i:project:pp") == b"zset"  # the key of the report
        # Foreign keys of other programs: a sorted set where an index set would be, a
        # non-UTF-8 name among the session keys.
        await raw.zadd(f"{prefix}index:user:mallory", {"x": 1})
        await raw.set(f"{prefix}session:".encode() + b"\xff\xfe", b"not ours")

        assert await legacy.list_sessions() == [kept]
        assert [session_id async for session_id in legacy.iter_session_ids()] == [kept]
        assert await legacy.list_sessions(project_id="pp") == [kept]
        assert await legacy.list_sessions(user_id="mallory") == []
        assert await legacy.load_session("x") is None  # P:session:x, the new expiry zset
        assert await legacy.load_session("r") is None  # P:session:r, the new activity zset
        assert await legacy.load_session("r:user:alice") is None  # an index's activity zset
        assert await legacy.load_session(f"d:{added[0]}") is None  # a new data hash
        assert await legacy.delete_session("x") is False
        assert await legacy.cleanup_expired_sessions() == 0

        with pytest.raises(StorageError, match="refusing to overwrite"):
            await legacy.store_session(SessionState(session_id="x", user_id="u", project_id="p"))
        with pytest.raises(StorageError, match="refusing to overwrite"):
            await legacy.store_session(new_state(user_id="mallory"))
        assert await raw.type(f"{prefix}session:x") == b"zset"
        assert await legacy.list_sessions() == [kept]

    for namespace in ("session", "index"):  # the new layout was not damaged either
        cache = redis.Cache.from_url(REDIS_URL, key_prefix=redis_keys)
        async with ACBCacheStorage(cache, namespace, owns_cache=True) as colliding:
            assert len(await colliding.list_sessions()) == 2
    await raw.aclose()
