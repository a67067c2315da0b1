"""Choosing a backend without code: URLs, environment, the SQLite default, masked secrets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from serverless_sessions import ConfigurationError, StorageSettings, create_session_storage, load_settings
from serverless_sessions.config.settings import mask_url
from serverless_sessions.errors import MissingDependencyError
from tests.cli_helpers import base_env, without_modules


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


@pytest.mark.parametrize(
    ("blocked", "url", "extra"),
    [
        ("redis", "redis://127.0.0.1:6379/9", "redis"),
        ("redis", "redis+sentinel://127.0.0.1:26379/mymaster", "redis"),
        ("aiobotocore", "s3://bucket/prefix", "s3"),
    ],
)
def test_a_backend_without_its_client_library_names_the_extra(
    blocked: str, url: str, extra: str, tmp_path: Path
) -> None:
    env = without_modules(base_env(tmp_path), tmp_path / "site", blocked)
    code = (
        "from serverless_sessions import create_session_storage\n"
        "from serverless_sessions.errors import MissingDependencyError\n"
        "try:\n"
        f"    create_session_storage(url={url!r})\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc.extra, exc.package, exc, sep='|')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    extra_shown, package, message = done.stdout.strip().split("|")
    assert (extra_shown, package) == (extra, blocked)
    assert message.endswith(f"pip install 'serverless-sessions[{extra}]'")


def test_a_missing_module_of_our_own_is_a_bug_not_a_missing_extra() -> None:
    with pytest.raises(ModuleNotFoundError), MissingDependencyError.on_import(feature="f", extra="x"):
        import serverless_sessions.no_such_module  # noqa: F401


def test_a_package_that_imports_badly_is_named_with_the_reason() -> None:
    guard = MissingDependencyError.on_import(feature="f", extra="x")
    with pytest.raises(MissingDependencyError) as caught, guard:
        from json import no_such_name  # type: ignore[attr-defined]  # noqa: F401
    assert str(caught.value).startswith("f needs a working 'json' package (cannot import name 'no_such_name'")
    assert isinstance(caught.value, ConfigurationError)
