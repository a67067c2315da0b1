"""The original ``ServerlessConfigManager`` works as callers used it, deprecated and never silent.

Its three static methods keep their kinds (``load_config`` and ``create_storage_backend``
synchronous, ``test_storage_backends`` a coroutine), arguments and result shapes; what changed
is that a broken file or an unreachable backend now says so instead of looking like defaults or
a bare ``False``.
"""

from __future__ import annotations

import inspect
import json
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions.config.compat import BackendCheck, ServerlessConfigManager
from serverless_sessions.errors import ConfigurationError
from serverless_sessions.storage.legacy import LocalFileStorage, RedisStorage, S3Storage
from tests.cache_factories.redis import delete_prefix

REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
SECRET = "pw-never-shown"


def quiet(call: Any, *args: Any) -> Any:
    """Call a deprecated method, checking that it warns exactly once, with its replacement."""
    with pytest.warns(DeprecationWarning, match="ServerlessConfigManager.* is deprecated; use ") as caught:
        result = call(*args)
    assert len(caught) == 1, [str(warning.message) for warning in caught]
    return result


def test_the_methods_keep_their_original_kinds() -> None:
    for name in ("load_config", "create_storage_backend", "test_storage_backends"):
        assert isinstance(inspect.getattr_static(ServerlessConfigManager, name), staticmethod), name
    assert not inspect.iscoroutinefunction(ServerlessConfigManager.load_config)
    assert not inspect.iscoroutinefunction(ServerlessConfigManager.create_storage_backend)
    assert inspect.iscoroutinefunction(ServerlessConfigManager.test_storage_backends)


def test_load_config_without_a_file_gives_the_original_defaults(tmp_path: Path) -> None:
    for path in (None, tmp_path / "absent.json", str(tmp_path / "absent.json")):
        config = quiet(ServerlessConfigManager.load_config, path)
        assert config["storage_backend"] == "local"
        assert (config["session_ttl_hours"], config["cleanup_interval_hours"]) == (24, 6)
        assert config["backends"]["redis"] == {
            "host": "localhost",
            "port": 6379,
            "db": 0,
            "key_prefix": "session_mgmt:",
        }
        assert config["backends"]["s3"]["key_prefix"] == "sessions/"
        assert config["backends"]["local"]["storage_dir"] == str(Path.home() / ".claude/data/sessions")


def test_load_config_updates_the_defaults_with_the_file_top_level_keys(tmp_path: Path) -> None:
    path = tmp_path / "serverless_config.json"
    backends = {"redis": {"host": "r.example", "password": SECRET, "key_prefix": "app:"}}
    path.write_text(json.dumps({"storage_backend": "redis", "session_ttl_hours": 2, "backends": backends}))
    config = quiet(ServerlessConfigManager.load_config, str(path))
    assert config == {
        "storage_backend": "redis",
        "session_ttl_hours": 2,
        "cleanup_interval_hours": 6,
        "backends": backends,  # replaces the default backends, as the original's dict.update did
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"backends": {"redis": {"port": "sixthousand"}}}', "backends.redis.port"),
        ('{"storage_backend": "memcached"}', "storage_backend"),
        ('{"backends": {"redis": {"hots": "x"}}}', "backends.redis.hots"),
        ('{"storage_backend": "local", "backends": []}', "backends"),
    ],
)
def test_load_config_refuses_a_broken_file_naming_the_field(tmp_path: Path, text: str, problem: str) -> None:
    """The original returned the defaults here: a typo silently moved every session elsewhere."""
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=problem) as raised:
        quiet(ServerlessConfigManager.load_config, path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("backend", "expected"),
    [("local", LocalFileStorage), ("redis", RedisStorage), ("s3", S3Storage)],
)
async def test_create_storage_backend_builds_the_selected_legacy_storage(
    tmp_path: Path, backend: str, expected: type
) -> None:
    config = quiet(ServerlessConfigManager.load_config, None)
    config["storage_backend"] = backend
    config["backends"]["local"]["storage_dir"] = str(tmp_path / "sessions")
    async with quiet(ServerlessConfigManager.create_storage_backend, config) as storage:
        assert type(storage) is expected and storage.describe()["deprecated"] is True


def test_create_storage_backend_refuses_an_unknown_backend_or_key() -> None:
    with pytest.raises(ConfigurationError, match="'memcached'") as raised:
        quiet(ServerlessConfigManager.create_storage_backend, {"storage_backend": "memcached"})
    assert isinstance(raised.value, ValueError), "the original raised ValueError"
    config = {"storage_backend": "redis", "backends": {"redis": {"prot": 1}}}
    with pytest.raises(ConfigurationError, match="prot"):
        quiet(ServerlessConfigManager.create_storage_backend, config)


async def test_the_original_caller_reads_its_sessions(tmp_path: Path) -> None:
    """load_config -> create_storage_backend -> ServerlessSessionManager, as the original server did."""
    from serverless_sessions import ServerlessSessionManager

    path = tmp_path / "serverless_config.json"
    path.write_text(json.dumps({"backends": {"local": {"storage_dir": str(tmp_path / "sessions")}}}))
    config = quiet(ServerlessConfigManager.load_config, path)
    storage = quiet(ServerlessConfigManager.create_storage_backend, config)
    async with ServerlessSessionManager(storage) as manager:
        session_id = await manager.create_session("alice", "proj", ttl_hours=1)
    assert (tmp_path / "sessions" / f"{session_id}.json.gz").is_file()


async def test_test_storage_backends_reports_each_backend_and_why_it_failed(tmp_path: Path) -> None:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    config = {
        "storage_backend": "redis",
        "backends": {
            "redis": {"host": "127.0.0.1", "port": 6379, "db": REDIS_DB, "key_prefix": f"{prefix}:"},
            "local": {"storage_dir": str(tmp_path / "sessions")},
            "s3": {"bucket_name": "no-such-bucket", "endpoint_url": "http://127.0.0.1:1", "region": "x"},
            "acb": {"cache_type": "memory"},
        },
    }
    down = {"host": "127.0.0.1", "port": 1, "password": SECRET, "socket_timeout": 1}
    typo = {"host": "127.0.0.1", "prot": 6379}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the one DeprecationWarning is expected; nothing else
        warnings.filterwarnings("ignore", "ServerlessConfigManager", DeprecationWarning)
        results = await ServerlessConfigManager.test_storage_backends(config)
        more = await ServerlessConfigManager.test_storage_backends({"backends": {"down": down}})
        broken = await ServerlessConfigManager.test_storage_backends(
            {"backends": {"redis": down, "local": typo}}
        )
    await delete_prefix(prefix, REDIS_URL)

    assert list(results) == ["redis", "local", "s3", "acb"]
    assert all(isinstance(check, BackendCheck) for check in results.values())
    assert results["redis"] and results["local"] and results["redis"].error is None
    assert not results["s3"] and "legacy-s3" in (results["s3"].error or "")
    assert not results["acb"] and "unknown legacy storage 'acb'" in (results["acb"].error or "")
    assert not all(results.values())
    assert not more["down"] and "unknown legacy storage 'down'" in (more["down"].error or "")
    assert not broken["redis"] and "127.0.0.1:1" in (broken["redis"].error or "")
    assert not broken["local"] and "prot" in (broken["local"].error or "")
    assert SECRET not in repr(results) + repr(more) + repr(broken)
