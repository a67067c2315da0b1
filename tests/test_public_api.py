"""The public surface: every name the README shows keeps importing from where it shows it, and
importing the package stays light."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import serverless_sessions
from serverless_sessions import create_session_storage, load_settings
from serverless_sessions.config.defaults import ORIGINAL_CONFIG_FILE, configured_outside_arguments

# Every public name of the package root. A name leaving this list is a breaking change: make it
# on purpose, here, with a note in the README.
PUBLIC_NAMES = {
    "ACBCacheStorage",
    "CacheBase",
    "CapabilityNotSupportedError",
    "ClosedError",
    "Codec",
    "ConfigurationError",
    "CorruptSessionError",
    "DecryptionError",
    "InvalidSessionError",
    "InvalidSessionIdError",
    "InvalidSessionUpdateError",
    "KEEP_TTL",
    "LocalFileStorage",
    "MessagePage",
    "MigrationError",
    "MigrationVerificationError",
    "MissingDependencyError",
    "RedisStorage",
    "S3Storage",
    "ServerlessConfigManager",
    "ServerlessSessionManager",
    "SessionConflictError",
    "SessionError",
    "SessionNotFoundError",
    "SessionPage",
    "SessionState",
    "SessionStorage",
    "SessionSummary",
    "SessionTooLargeError",
    "StorageError",
    "StorageSettings",
    "StorageUnavailableError",
    "StoredSession",
    "create_session_storage",
    "load_settings",
    "open_cache",
    "open_storage",
    "override_cache",
}

# Imports the README (or a message the library prints) tells users to write: module -> names.
DOCUMENTED_IMPORTS = {
    "serverless_sessions.adapters.cache": ["memory", "redis", "sqlite", "s3", "postgres", "dynamodb"],
    "serverless_sessions.adapters.cache.memory": ["Cache"],
    "serverless_sessions.adapters.cache.sqlite": ["Cache"],
    "serverless_sessions.adapters.cache.redis": ["Cache", "RedisSettings"],
    "serverless_sessions.adapters.cache.s3": ["Cache"],
    "serverless_sessions.adapters.cache.postgres": ["Cache", "PostgresSettings"],
    "serverless_sessions.adapters.cache.base": [
        "KEEP_TTL",
        "AtomicCache",
        "CacheBase",
        "Entry",
        "IndexedCache",
        "PingableCache",
        "ScannableCache",
    ],
    "serverless_sessions.encryption": ["generate_key", "KeyRing"],
    "serverless_sessions.errors": sorted(name for name in PUBLIC_NAMES if name.endswith("Error")),
    "serverless_sessions.operations": ["migrate", "reencrypt", "MigrationReport", "ReencryptReport"],
    "serverless_sessions.factory": ["open_storage", "open_configured_storage", "create_session_storage"],
    "serverless_sessions.storage.legacy": ["LocalFileStorage", "RedisStorage", "S3Storage"],
    "serverless_sessions.config.settings": ["StorageSettings", "load_settings"],
    "serverless_sessions.config.files": ["convert_to_new_format", "read_config_files"],
}


def test_every_public_name_is_still_there() -> None:
    assert set(serverless_sessions.__all__) >= PUBLIC_NAMES
    for name in serverless_sessions.__all__:
        assert getattr(serverless_sessions, name) is not None, name


@pytest.mark.parametrize("module", sorted(DOCUMENTED_IMPORTS))
def test_documented_imports_still_work(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in DOCUMENTED_IMPORTS[module]:
        assert getattr(loaded, name, None) is not None or importlib.import_module(f"{module}.{name}"), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = serverless_sessions.no_such_name  # type: ignore[attr-defined]


def test_seed_names_are_public() -> None:
    for name in (
        "SessionState",
        "SessionStorage",
        "ACBCacheStorage",
        "create_session_storage",
        "ServerlessSessionManager",
        "SessionNotFoundError",
        "SessionConflictError",
        "SessionTooLargeError",
        "InvalidSessionIdError",
        "CorruptSessionError",
        "StorageUnavailableError",
        "ConfigurationError",
        "ServerlessConfigManager",
    ):
        assert name in serverless_sessions.__all__


def test_every_error_shares_one_root() -> None:
    errors = [
        obj
        for name in serverless_sessions.__all__
        if isinstance(obj := getattr(serverless_sessions, name), type) and issubclass(obj, Exception)
    ]
    assert len(errors) >= 14
    assert all(issubclass(error, serverless_sessions.SessionError) for error in errors)


HEAVY = ("redis", "aiobotocore", "botocore", "asyncpg", "mcp", "click", "rich", "brotli", "cryptography")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(','.join(sorted(set(sys.modules))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {name.partition(".")[0] for name in out.stdout.strip().split(",")}


def test_importing_the_package_loads_nothing_heavy() -> None:
    """A cold start pays only for what it uses: not even pydantic for ``import serverless_sessions``."""
    loaded = _loaded_after("import serverless_sessions")
    assert not loaded & {*HEAVY, "pydantic", "pydantic_settings"}, loaded & {*HEAVY, "pydantic"}


def test_a_manager_on_the_memory_adapter_loads_no_backend_library_or_settings() -> None:
    loaded = _loaded_after(
        "from serverless_sessions import ACBCacheStorage, ServerlessSessionManager, SessionState\n"
        "from serverless_sessions.adapters.cache import memory\n"
        "ServerlessSessionManager(ACBCacheStorage(memory.Cache(), 'n'))"
    )
    assert not loaded & {*HEAVY, "pydantic_settings"}, loaded & {*HEAVY, "pydantic_settings"}


def test_the_default_storage_loads_no_backend_library() -> None:
    """``create_session_storage()`` reads settings (so pydantic-settings), never a client library."""
    loaded = _loaded_after("from serverless_sessions import create_session_storage")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def _modules_after(code: str, env: dict[str, str]) -> set[str]:
    probe = f"import sys\n{code}\nprint(','.join(sorted(set(sys.modules))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return set(out.stdout.strip().split(","))


def _bare_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without our variables, and a home without the original config file."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SERVERLESS_SESSIONS_")}
    return {**env, "HOME": str(home), **extra}


SETTINGS_MODULES = {
    "pydantic_settings",
    "serverless_sessions.config.settings",
    "serverless_sessions.config.files",
    "serverless_sessions.config.legacy",
}
OPEN_BY_URL = (
    "from serverless_sessions import create_session_storage\n"
    "create_session_storage(url='memory://', namespace='n')"
)


def test_a_url_with_nothing_else_configured_loads_no_settings_machinery(tmp_path: Path) -> None:
    """Cold start: a URL given outright needs neither pydantic-settings nor the config files."""
    loaded = _modules_after(OPEN_BY_URL, _bare_env(tmp_path))
    assert not loaded & SETTINGS_MODULES, loaded & SETTINGS_MODULES
    configured = _modules_after(OPEN_BY_URL, _bare_env(tmp_path, SERVERLESS_SESSIONS_COMPRESSION="none"))
    assert configured >= SETTINGS_MODULES - {"serverless_sessions.config.legacy"}


def test_the_url_shortcut_builds_what_the_settings_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SERVERLESS_SESSIONS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not configured_outside_arguments()
    for url in ("memory://", f"sqlite:///{tmp_path / 'a.db'}"):
        shortcut = create_session_storage(url=url, namespace="n")
        full = create_session_storage(load_settings(url=url, namespace="n"))
        assert (shortcut.describe(), shortcut.codec) == (full.describe(), full.codec)
        assert type(shortcut.cache) is type(full.cache)
        assert getattr(shortcut.cache, "timeout", None) == getattr(full.cache, "timeout", None)
    # A variable, in any case, or the original module's config file turns the shortcut off.
    monkeypatch.setenv("serverless_sessions_namespace", "from-env")
    assert configured_outside_arguments()
    assert create_session_storage(url="memory://").namespace == "from-env"
    monkeypatch.delenv("serverless_sessions_namespace")
    original = ORIGINAL_CONFIG_FILE.expanduser()
    original.parent.mkdir(parents=True)
    original.write_text(json.dumps({"storage_type": "local"}))
    assert configured_outside_arguments()
