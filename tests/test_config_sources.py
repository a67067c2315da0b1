"""Precedence (arguments > environment > files > defaults), deep merge, and errors that name
the file and the field without ever showing a secret."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from serverless_sessions import ConfigurationError
from serverless_sessions.config.settings import StorageSettings, load_settings

SECRET = "hunter2-never-shown"


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def cache_file(path: Path, **section: Any) -> Path:
    return write(path, {"acb": {"cache": section}})


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "URL",
        "PASSWORD",
        "HOST",
        "PORT",
        "PROVIDER",
        "NAMESPACE",
        "DEFAULT_TTL",
        "LEGACY_URL",
        "DB",
    ):
        monkeypatch.delenv(f"SERVERLESS_SESSIONS_{name}", raising=False)


# -- precedence ---------------------------------------------------------------------------


def test_arguments_beat_environment_beat_files_beat_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cache_file(tmp_path / "c.json", namespace="from-file", default_ttl=60, timeout=9)
    monkeypatch.setenv("SERVERLESS_SESSIONS_NAMESPACE", "from-env")
    monkeypatch.setenv("SERVERLESS_SESSIONS_DEFAULT_TTL", "120")
    settings = load_settings(path, namespace="from-argument")
    assert settings.namespace == "from-argument"
    assert settings.default_ttl == 120
    assert settings.timeout == 9
    assert settings.compression == "zstd"  # default
    assert load_settings(path, namespace=None).namespace == "from-env", "None means not given"


def test_environment_password_completes_the_file_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cache_file(tmp_path / "c.json", provider="redis", host="cache.internal", db=4)
    monkeypatch.setenv("SERVERLESS_SESSIONS_PASSWORD", SECRET)
    assert load_settings(path).url_value() == f"redis://:{SECRET}@cache.internal:6379/4"
    url_file = cache_file(tmp_path / "u.json", url="rediss://cache.internal:6380/1")
    assert load_settings(url_file).url_value() == f"rediss://:{SECRET}@cache.internal:6380/1"


def test_a_higher_source_naming_another_storage_replaces_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = cache_file(tmp_path / "c.json", provider="redis", host="h", password=SECRET, default_ttl=5)
    monkeypatch.setenv("SERVERLESS_SESSIONS_URL", "memory://")
    settings = load_settings(path)
    assert settings.url_value() == "memory://"
    assert settings.password is None and settings.host is None
    assert settings.default_ttl == 5, "only the connection group is replaced"
    monkeypatch.delenv("SERVERLESS_SESSIONS_URL")
    settings = load_settings(path, provider="s3", bucket="archive")
    assert settings.url_value() == "s3://archive/"
    assert settings.url_value() == load_settings(path, url="s3://archive/").url_value()


def test_the_same_provider_higher_up_merges_key_by_key(tmp_path: Path) -> None:
    path = cache_file(tmp_path / "c.json", provider="redis", host="h", port=7000)
    assert load_settings(path, provider="redis", db=2).url_value() == "redis://h:7000/2"


# -- deep merge of several files ---------------------------------------------------------------


def test_later_files_win_key_by_key(tmp_path: Path) -> None:
    shared = write(
        tmp_path / ".mcp.json",
        {
            "mcpServers": {},
            "acb": {"cache": {"provider": "redis", "host": "h", "db": 1, "namespace": "team"}},
        },
    )
    secrets = cache_file(tmp_path / "secrets.json", password=SECRET, db=2)
    settings = load_settings([shared, secrets])
    assert settings.url_value() == f"redis://:{SECRET}@h:6379/2"
    assert settings.namespace == "team"
    assert load_settings([secrets, shared]).url_value() == f"redis://:{SECRET}@h:6379/1"


def test_original_format_sections_merge_across_files(tmp_path: Path) -> None:
    base = write(
        tmp_path / "serverless_config.json",
        {"storage_backend": "redis", "backends": {"redis": {"host": "h", "port": 6390}}},
    )
    secrets = write(tmp_path / "secrets.json", {"backends": {"redis": {"password": SECRET}}})
    with pytest.warns(DeprecationWarning) as caught:
        settings = load_settings([base, secrets])
    assert settings.legacy_url_value() == f"legacy+redis://:{SECRET}@h:6390/0?key_prefix=session_mgmt:"
    message = str(caught[0].message)
    assert str(base) in message and str(secrets) in message and SECRET not in message


# -- errors name the file and the field ---------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"acb": {"cache": {"provider": "mongodb"}}}, "acb.cache.provider"),
        ({"acb": {"cache": {"provider": "redis", "port": "six"}}}, "acb.cache.port"),
        ({"acb": {"cache": {"provider": "redis", "port": 70000}}}, "acb.cache.port"),
        ({"acb": {"cache": {"provider": "redis", "hots": "h"}}}, "acb.cache.hots"),
        ({"acb": {"cache": {"default_ttl": "soon"}}}, "acb.cache.default_ttl"),
        ({"acb": {"cache": {"ssl_enabled": "maybe", "provider": "redis"}}}, "acb.cache.ssl_enabled"),
        ({"acb": {"cache": {"provider": "s3", "host": "h", "bucket": "bkt"}}}, "acb.cache.host"),
        ({"acb": {"cache": {"provider": "s3"}}}, "acb.cache.provider"),
        ({"acb": {"cache": {"url": "memory://", "host": "h"}}}, "acb.cache.host"),
        ({"acb": {"cache": {"provider": "redis", "ssl_cert_path": "/ca.pem"}}}, "acb.cache.ssl_cert_path"),
        ({"acb": {"cache": {"host": "h"}}}, "acb.cache.host"),
        ({"acb": {"cache": {"path": "/a.db", "sqlite_path": "/b.db"}}}, "acb.cache.path"),
        ({"acb": {"cache": {"legacy_url": "legacy+ftp://x"}}}, "acb.cache.legacy_url"),
        ({"acb": {"cache": []}}, "acb.cache"),
        ({"acb": "redis"}, "field acb"),
        ({"serverless": {"storage_type": "mongodb"}}, "serverless.storage_type"),
        ({"serverless": {"storage_config": {}}}, "serverless.storage_type"),
        (
            {"serverless": {"storage_type": "redis", "storage_config": {"port": "x"}}},
            "serverless.storage_config.port",
        ),
        ({"serverless": {"storage_type": "redis", "storage_config": []}}, "serverless.storage_config"),
        ({"serverless": {"storage_type": "redis", "extra": 1}}, "serverless.extra"),
        ({"storage_backend": "mongodb"}, "field storage_backend"),
        ({"storage_backend": "redis", "backends": {"redis": {"port": "x"}}}, "backends.redis.port"),
        ({"storage_backend": "local", "backends": {"redis": {"hots": "h"}}}, "backends.redis.hots"),
        ({"storage_backend": "local", "backends": {"mongodb": {}}}, "backends.mongodb"),
        ({"storage_backend": "s3", "backends": {}}, "backends.s3.bucket_name"),
        ({"storage_backend": "s3"}, "backends.s3.bucket_name"),
        ({"session_ttl_hours": -1}, "session_ttl_hours"),
        ({"mcpServers": {}}, "holds no serverless-sessions settings"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_bad_files_name_the_file_and_the_field(tmp_path: Path, document: Any, expected: str) -> None:
    path = write(tmp_path / "bad.json", document)
    with warnings.catch_warnings(), pytest.raises(ConfigurationError) as caught:
        warnings.simplefilter("ignore", DeprecationWarning)
        load_settings(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot read config file .*missing\.json"):
        load_settings(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"acb": {"cache": {"provider": "redis",}}}')
    with pytest.raises(ConfigurationError, match=r"broken.json is not valid JSON.*line 1"):
        load_settings(broken)


def test_environment_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_SESSIONS_PORT", "sixty")
    with pytest.raises(ConfigurationError, match=r"port \(environment SERVERLESS_SESSIONS_PORT\)"):
        load_settings()
    monkeypatch.setenv("SERVERLESS_SESSIONS_PORT", "6379")
    with pytest.raises(ConfigurationError, match=r"need a provider.*port \(environment"):
        load_settings()


def test_argument_errors_name_the_argument() -> None:
    with pytest.raises(ConfigurationError, match=r"colour \(argument colour\)"):
        load_settings(colour="blue")


@pytest.mark.parametrize(
    "section",
    [
        {"provider": "redis", "password": SECRET, "port": "bad"},
        {"provider": "redis", "password": 12345},
        {"provider": "s3", "bucket": "b-1", "password": SECRET},
        {"url": f"redis://:{SECRET}@h/0", "password": SECRET},
        {"url": f"mongodb://:{SECRET}@h/0", "host": "x"},
        {"legacy_url": f"legacy+redis://:{SECRET}@h:0/0"},
        {"legacy_url": f"legacy+redis://:{SECRET}@h/0?colour=1"},
    ],
)
def test_secrets_never_reach_errors(tmp_path: Path, section: dict[str, Any]) -> None:
    path = cache_file(tmp_path / "c.json", **section)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert SECRET not in text and "12345" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_settings_mask_every_secret() -> None:
    settings = StorageSettings(
        provider="redis",
        password=SecretStr(SECRET),
        legacy_url=SecretStr(f"legacy+redis://:{SECRET}@h:1/0"),
    )
    for text in (repr(settings), str(settings), json.dumps(settings.public_dict())):
        assert SECRET not in text
    public = settings.public_dict()
    assert public["password"] == "***"
    assert public["url"] == "redis://:***@localhost:6379/0"
    assert public["legacy_url"] == "legacy+redis://:***@h:1/0"
