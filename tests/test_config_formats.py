"""The three config formats load to the right settings; old ones warn with the new equivalent."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from serverless_sessions.config.files import convert_to_new_format
from serverless_sessions.config.settings import StorageSettings, load_settings

SECRET = "pa:ss/w@rd-never-shown"


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def load_quietly(*paths: Path, **overrides: Any) -> StorageSettings:
    """Load, failing on any warning (the new format must not warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_settings(list(paths), **overrides)


def load_deprecated(path: Path) -> tuple[StorageSettings, str]:
    with pytest.warns(DeprecationWarning) as caught:
        settings = load_settings(path)
    assert len(caught) == 1
    return settings, str(caught[0].message)


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "PASSWORD", "HOST", "PROVIDER", "NAMESPACE", "DEFAULT_TTL", "LEGACY_URL"):
        monkeypatch.delenv(f"SERVERLESS_SESSIONS_{name}", raising=False)


# -- new format ----------------------------------------------------------------------------


def test_plan_after_example_in_mcp_json(tmp_path: Path) -> None:
    mcp = write(
        tmp_path / ".mcp.json",
        {
            "mcpServers": {"sessions": {"command": "serverless-sessions"}},
            "acb": {
                "cache": {
                    "provider": "redis",
                    "host": "localhost",
                    "port": 6379,
                    "password": SECRET,
                    "db": 0,
                    "default_ttl": 86400,
                    "ssl_enabled": True,
                    "ssl_cert_path": "/path/to/cert.pem",
                }
            },
        },
    )
    settings = load_quietly(mcp)
    assert settings.url_value() == (
        "rediss://:pa%3Ass%2Fw%40rd-never-shown@localhost:6379/0?ssl_ca_certs=/path/to/cert.pem"
    )
    assert settings.default_ttl == 86400
    assert settings.legacy_url is None
    assert SECRET not in repr(settings) and SECRET not in str(settings.public_dict())


@pytest.mark.parametrize(
    ("section", "url"),
    [
        ({"provider": "memory"}, "memory://"),
        ({"provider": "sqlite", "path": "/data/s.db"}, "sqlite:///data/s.db"),
        ({"provider": "sqlite"}, None),
        ({"provider": "redis"}, "redis://localhost:6379/0"),
        ({"provider": "redis", "host": "::1", "db": 3, "username": "app"}, "redis://app@[::1]:6379/3"),
        (
            {
                "provider": "s3",
                "bucket": "archive",
                "prefix": "/team/a/",
                "region": "eu-west-1",
                "endpoint_url": "http://127.0.0.1:9000",
            },
            "s3://archive/team/a?region=eu-west-1&endpoint_url=http://127.0.0.1:9000",
        ),
        ({"provider": "s3", "bucket": "archive"}, "s3://archive/"),
        ({"provider": "postgres"}, "postgresql://localhost:5432/postgres"),
        (
            {
                "provider": "postgres",
                "host": "db.internal",
                "port": 6432,
                "database": "app db",
                "username": "app",
                "password": "p@ss",
                "ssl_enabled": True,
                "ssl_cert_path": "/ca.pem",
            },
            "postgresql://app:p%40ss@db.internal:6432/app%20db?sslmode=verify-full&sslrootcert=/ca.pem",
        ),
        (
            {"provider": "postgres", "ssl_enabled": True},
            "postgresql://localhost:5432/postgres?sslmode=require",
        ),
        (
            {"provider": "dynamodb", "table": "sessions", "region": "eu-west-1"},
            "dynamodb://sessions?region=eu-west-1",
        ),
        (
            {"provider": "dynamodb", "table": "t", "endpoint_url": "http://127.0.0.1:8000", "region": "x"},
            "dynamodb://t?region=x&endpoint_url=http://127.0.0.1:8000",
        ),
        ({"url": "redis://cache:6380/2", "password": "pw"}, "redis://:pw@cache:6380/2"),
        ({"url": "redis://cache:6380/2", "provider": "redis"}, "redis://cache:6380/2"),
    ],
)
def test_new_format_providers_map_to_urls(tmp_path: Path, section: dict[str, Any], url: str | None) -> None:
    settings = load_quietly(write(tmp_path / "c.json", {"acb": {"cache": section}}))
    assert settings.url_value() == url


def test_new_format_settings_beyond_the_connection(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {
            "acb": {
                "cache": {
                    "provider": "memory",
                    "namespace": "team-a",
                    "compression": "none",
                    "max_lifetime": 3600,
                    "cleanup_interval": 600,
                }
            }
        },
    )
    settings = load_quietly(path)
    assert (settings.namespace, settings.compression) == ("team-a", "none")
    assert (settings.max_lifetime, settings.cleanup_interval) == (3600, 600)


# -- the plan's "before" format ---------------------------------------------------------------


def test_before_format_reads_the_legacy_layout_and_shows_the_new_config(tmp_path: Path) -> None:
    path = write(
        tmp_path / ".mcp.json",
        {
            "serverless": {
                "storage_type": "redis",
                "storage_config": {"host": "localhost", "port": 6379, "password": SECRET, "db": 0},
            }
        },
    )
    settings, message = load_deprecated(path)
    assert settings.legacy_url_value() == (
        "legacy+redis://:pa%3Ass%2Fw%40rd-never-shown@localhost:6379/0?key_prefix=session_mgmt:"
    )
    assert settings.url_value() == (
        "redis://:pa%3Ass%2Fw%40rd-never-shown@localhost:6379/0?key_prefix=session_mgmt.v2"
    )
    assert SECRET not in message and "pa%3Ass" not in message
    assert str(path) in message and '"before" format' in message
    shown = json.loads(message[message.index("{") : message.rindex("}") + 1])
    assert shown == {
        "acb": {
            "cache": {
                "provider": "redis",
                "host": "localhost",
                "port": 6379,
                "db": 0,
                "key_prefix": "session_mgmt.v2",
                "password": "***",
            }
        }
    }
    assert "legacy+redis://:***@localhost:6379/0" in message


def test_before_format_acb_storage_type_is_a_new_section(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {"serverless": {"storage_type": "acb", "storage_config": {"provider": "memory"}}},
    )
    settings, message = load_deprecated(path)
    assert settings.url_value() == "memory://"
    assert settings.legacy_url is None
    assert '"provider": "memory"' in message and "original layout" not in message


# -- the original serverless_config.json ------------------------------------------------------


def test_original_format_redis_backend(tmp_path: Path) -> None:
    path = write(
        tmp_path / "serverless_config.json",
        {
            "storage_backend": "redis",
            "session_ttl_hours": 12,
            "cleanup_interval_hours": 6,
            "backends": {
                "redis": {
                    "host": "r.example",
                    "port": 6380,
                    "db": 2,
                    "password": SECRET,
                    "key_prefix": "app:",
                },
                "s3": {"bucket_name": "unused-bucket"},
                "local": {"storage_dir": "/unused"},
            },
        },
    )
    settings, message = load_deprecated(path)
    assert settings.default_ttl == 12 * 3600
    assert settings.cleanup_interval == 6 * 3600
    assert settings.url_value() == "redis://:pa%3Ass%2Fw%40rd-never-shown@r.example:6380/2?key_prefix=app.v2"
    assert settings.legacy_url_value() == (
        "legacy+redis://:pa%3Ass%2Fw%40rd-never-shown@r.example:6380/2?key_prefix=app:"
    )
    assert SECRET not in message and "pa%3Ass" not in message
    assert '"default_ttl": 43200' in message and '"cleanup_interval": 21600' in message
    assert "original serverless_config.json format" in message


def test_original_format_local_backend_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings, message = load_deprecated(write(tmp_path / "c.json", {"storage_backend": "local"}))
    sessions = tmp_path / ".claude" / "data" / "sessions"
    assert settings.legacy_url_value() == f"legacy+local://{sessions}"
    assert settings.url_value() == f"sqlite://{sessions}.db"
    assert settings.default_ttl == 86400  # the original default of 24 hours is also ours
    assert f'"path": "{sessions}.db"' in message


def test_original_format_s3_backend_keeps_keys_in_the_legacy_url_only(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {
            "storage_backend": "s3",
            "backends": {
                "s3": {
                    "bucket_name": "archive",
                    "region": "eu-west-1",
                    "key_prefix": "sessions/",
                    "access_key_id": "AKIDEXAMPLE",
                    "secret_access_key": SECRET,
                }
            },
        },
    )
    settings, message = load_deprecated(path)
    assert settings.url_value() == "s3://archive/sessions?region=eu-west-1"
    assert settings.legacy_url_value() == (
        "legacy+s3://AKIDEXAMPLE:pa%3Ass%2Fw%40rd-never-shown@archive/sessions/?region=eu-west-1"
    )
    assert SECRET not in message and "pa%3Ass" not in message
    assert "AWS_ACCESS_KEY_ID" in message
    public = settings.public_dict()
    assert public["legacy_url"] == "legacy+s3://AKIDEXAMPLE:***@archive/sessions/?region=eu-west-1"


# -- several formats in one document, and conversion -----------------------------------------


def test_new_section_overrides_an_old_one_in_the_same_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        {
            "storage_backend": "local",
            "backends": {"local": {"storage_dir": "/old"}},
            "acb": {"cache": {"default_ttl": 60}},
        },
    )
    settings, _ = load_deprecated(path)
    assert settings.default_ttl == 60
    assert settings.legacy_url_value() == "legacy+local:///old"
    path = write(path, {**json.loads(path.read_text()), "acb": {"cache": {"provider": "memory"}}})
    settings, _ = load_deprecated(path)
    assert settings.url_value() == "memory://"
    assert settings.legacy_url is None, "a new storage replaces the old one, legacy pointer too"


@pytest.mark.parametrize(
    "document",
    [
        {
            "storage_backend": "redis",
            "session_ttl_hours": 1,
            "backends": {"redis": {"password": SECRET, "key_prefix": "x:"}},
        },
        {"storage_backend": "local", "backends": {"local": {"storage_dir": "/srv/sessions"}}},
        {"storage_backend": "s3", "backends": {"s3": {"bucket_name": "b-1", "endpoint_url": "http://h:1"}}},
        {
            "mcpServers": {"x": {}},
            "acb": {"other": 1},
            "serverless": {"storage_type": "redis", "storage_config": {"host": "h", "password": SECRET}},
        },
        {"serverless": {"storage_type": "acb", "storage_config": {"provider": "sqlite", "path": "/a.db"}}},
    ],
)
def test_converted_file_loads_to_the_same_storage_without_warning(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    old = write(tmp_path / "old.json", document)
    with pytest.warns(DeprecationWarning):
        before = load_settings(old)
    converted = convert_to_new_format(old)
    assert not {"serverless", "storage_backend", "backends"} & set(converted)
    assert converted.get("mcpServers") == document.get("mcpServers")
    assert converted["acb"].get("other") == document.get("acb", {}).get("other")
    after = load_quietly(write(tmp_path / "new.json", converted))
    assert after.url_value() == before.url_value()
    assert after.default_ttl == before.default_ttl
    assert after.legacy_url is None
    if SECRET in json.dumps(document):
        assert converted["acb"]["cache"]["password"] == SECRET, "secrets are kept for the user's file"


def test_converting_a_new_format_file_changes_nothing(tmp_path: Path) -> None:
    document = {"mcpServers": {}, "acb": {"cache": {"provider": "redis", "password": SECRET}}}
    assert convert_to_new_format(write(tmp_path / "c.json", document)) == document


def test_converting_s3_keys_warns_that_they_are_dropped(tmp_path: Path) -> None:
    old = write(
        tmp_path / "c.json",
        {
            "storage_backend": "s3",
            "backends": {"s3": {"bucket_name": "bkt", "access_key_id": "AK", "secret_access_key": SECRET}},
        },
    )
    with pytest.warns(UserWarning, match="AWS_ACCESS_KEY_ID") as caught:
        converted = convert_to_new_format(old)
    assert SECRET not in str(caught[0].message)
    assert converted["acb"]["cache"] == {
        "provider": "s3",
        "bucket": "bkt",
        "prefix": "sessions",
        "region": "us-east-1",
    }
