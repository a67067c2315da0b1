"""``legacy+...`` URLs round-trip the original config dicts; ``open_storage`` opens any URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from serverless_sessions import ACBCacheStorage, ConfigurationError
from serverless_sessions.config.legacy import LegacyLocal, LegacyRedis, LegacyS3, parse_legacy_url
from serverless_sessions.factory import open_storage


@pytest.mark.parametrize(
    ("legacy", "url", "config"),
    [
        (
            LegacyLocal(storage_dir=Path("/srv/my sessions")),
            "legacy+local:///srv/my%20sessions",
            {"storage_dir": "/srv/my sessions"},
        ),
        (
            LegacyRedis(),
            "legacy+redis://localhost:6379/0?key_prefix=session_mgmt:",
            {"host": "localhost", "port": 6379, "db": 0, "key_prefix": "session_mgmt:"},
        ),
        (
            LegacyRedis(host="::1", port=7000, db=3, password=SecretStr("p@ss:/"), key_prefix="a b&c"),
            "legacy+redis://:p%40ss%3A%2F@[::1]:7000/3?key_prefix=a+b%26c",
            {"host": "::1", "port": 7000, "db": 3, "password": "p@ss:/", "key_prefix": "a b&c"},
        ),
        (
            LegacyS3(bucket_name="bkt"),
            "legacy+s3://bkt/sessions/?region=us-east-1",
            {"bucket_name": "bkt", "region": "us-east-1", "key_prefix": "sessions/"},
        ),
        (
            LegacyS3(
                bucket_name="bkt",
                key_prefix="",
                access_key_id="AK",
                secret_access_key=SecretStr("S/K"),
                endpoint_url="http://127.0.0.1:9000",
            ),
            "legacy+s3://AK:S%2FK@bkt/?region=us-east-1&endpoint_url=http://127.0.0.1:9000",
            {
                "bucket_name": "bkt",
                "region": "us-east-1",
                "key_prefix": "",
                "access_key_id": "AK",
                "secret_access_key": "S/K",
                "endpoint_url": "http://127.0.0.1:9000",
            },
        ),
    ],
)
def test_legacy_urls_round_trip(legacy: Any, url: str, config: dict[str, Any]) -> None:
    assert legacy.url() == url
    assert legacy.config() == config
    parsed = parse_legacy_url(url)
    assert parsed == legacy
    assert parsed.config() == config


def test_short_legacy_urls_take_the_original_defaults() -> None:
    assert parse_legacy_url("legacy+s3://bkt").config()["key_prefix"] == "sessions/"
    assert parse_legacy_url("legacy+redis://h").config() == {
        "host": "h",
        "port": 6379,
        "db": 0,
        "key_prefix": "session_mgmt:",
    }


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("legacy+ftp://x", "not a legacy storage URL"),
        ("local:///x", "not a legacy storage URL"),
        ("legacy+local://relative/dir", "absolute directory"),
        ("legacy+local:///dir?key_prefix=x", "'key_prefix'"),
        ("legacy+redis://h:0/0", "port"),
        ("legacy+redis://h:6379/x", "db"),
        ("legacy+redis://user:pw@h/0", "no user name"),
        ("legacy+redis://h/0?key_prefix=a&key_prefix=b", "repeated"),
        ("legacy+s3://b/p?colour=1", "'colour'"),
        ("legacy+s3://ab", "bucket_name"),
        ("legacy+s3://bkt/p#frag", "fragment"),
    ],
)
def test_bad_legacy_urls_name_the_part(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_legacy_url(url)


async def test_open_storage_builds_cache_storages(tmp_path: Path) -> None:
    async with open_storage("memory://") as memory:
        assert isinstance(memory, ACBCacheStorage) and memory.backend == "memory"
    async with open_storage(f"sqlite://{tmp_path}/s.db") as sqlite:
        assert sqlite.backend == "sqlite" and await sqlite.is_available()
    with pytest.raises(ConfigurationError, match="'ftp'"):
        open_storage("ftp://host/x")
