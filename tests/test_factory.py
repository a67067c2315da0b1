"""Choosing a backend without code: URLs, environment, the SQLite default, masked secrets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serverless_sessions import ConfigurationError, StorageSettings, create_session_storage, load_settings
from serverless_sessions.settings import mask_url


async def test_memory_url() -> None:
    async with create_session_storage(url="memory://") as storage:
        assert storage.backend == "memory"


async def test_sqlite_url_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("SERVERLESS_SESSIONS_URL", f"sqlite:///{db}")
    monkeypatch.setenv("SERVERLESS_SESSIONS_NAMESPACE", "from-env")
    async with create_session_storage() as storage:
        assert storage.backend == "sqlite"
        assert storage.namespace == "from-env"
        assert await storage.is_available()
    assert db.exists()


async def test_nothing_configured_means_the_sqlite_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVERLESS_SESSIONS_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    async with create_session_storage() as storage:
        assert storage.backend == "sqlite"
        assert await storage.is_available()
    databases = await asyncio.to_thread(lambda: list(tmp_path.rglob("*.db")))
    assert databases, "the default database lives under the user data dir"


def test_unknown_scheme_is_a_configuration_error_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="'mongodb'"):
        create_session_storage(url="mongodb://user:hunter2@host/db")


def test_unknown_scheme_error_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_session_storage(url="mongodb://user:hunter2@host/db")
    assert "hunter2" not in str(caught.value)


def test_bad_setting_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_SESSIONS_DEFAULT_TTL", "-5")
    with pytest.raises(ConfigurationError, match="default_ttl"):
        load_settings()


def test_settings_mask_secrets_everywhere() -> None:
    settings = StorageSettings(url="redis://:s3cret-pw@127.0.0.1:6379/0", encryption_keys="k1:AAAA")
    for text in (repr(settings), str(settings), str(settings.public_dict())):
        assert "s3cret-pw" not in text
        assert "AAAA" not in text
    assert settings.masked_url() == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert mask_url("redis://h:1/0") == "redis://h:1/0"
