"""``ServerlessConfigManager``: the original module's config helper, for callers that still use it.

Deprecated — :func:`~serverless_sessions.config.settings.load_settings` reads the same file (and the
two newer formats), :func:`~serverless_sessions.factory.open_configured_storage` opens
what it names. Every call warns with a :class:`DeprecationWarning` naming its replacement.

The three methods keep the original's names, signatures, kinds and result shapes — all static;
``load_config`` and ``create_storage_backend`` synchronous, ``test_storage_backends`` a
coroutine — but none of its silent failures:

* ``load_config(config_path=None)``: the original's defaults updated, top-level key by key, with
  the file's keys (a file's ``backends`` replaces the default ``backends``, as it did). No path,
  or a path where no file exists, gives the defaults, as it did (the file is optional). A file
  that exists but is not a valid config — bad JSON, a port of ``"sixthousand"``, an unknown
  backend — raises :class:`~serverless_sessions.errors.ConfigurationError` naming the file and
  the field; the original silently returned the defaults.
* ``create_storage_backend(config)``: the deprecated legacy storage of
  ``config["storage_backend"]`` (default ``local``), built from ``config["backends"][kind]``;
  an unknown backend or a bad key raises ``ConfigurationError`` (a ``ValueError``, as the
  original's was). ``session_ttl_hours`` and ``cleanup_interval_hours`` stay the caller's to
  use, as before.
* ``test_storage_backends(config)``: ``{backend name: BackendCheck}`` for every entry of
  ``config["backends"]``, checked concurrently, each storage closed afterwards. A
  :class:`BackendCheck` is truthy exactly when the backend answered, so ``if results["redis"]``
  and ``all(results.values())`` read as they did; where the original gave a bare ``False`` (and
  swallowed the reason), ``error`` says why — unreachable, refused, a bad config key, an
  unknown backend, a missing extra — without secrets.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serverless_sessions.backends import open_legacy_storage
from serverless_sessions.config.documents import load_documents
from serverless_sessions.config.formats import interpret
from serverless_sessions.errors import ConfigurationError
from serverless_sessions.storage.base import SessionStorage

__all__ = ["BackendCheck", "ServerlessConfigManager"]


def _deprecated(method: str, replacement: str) -> None:
    # stacklevel 3: this helper, the method, then the caller to blame.
    warnings.warn(
        f"ServerlessConfigManager.{method} is deprecated; use {replacement}",
        DeprecationWarning,
        stacklevel=3,
    )


def _defaults() -> dict[str, Any]:
    """The original's defaults (built per call: the home directory is read when asked)."""
    return {
        "storage_backend": "local",
        "session_ttl_hours": 24,
        "cleanup_interval_hours": 6,
        "backends": {
            "redis": {"host": "localhost", "port": 6379, "db": 0, "key_prefix": "session_mgmt:"},
            "s3": {"bucket_name": "session-mgmt-mcp", "region": "us-east-1", "key_prefix": "sessions/"},
            "local": {"storage_dir": str(Path.home() / ".claude" / "data" / "sessions")},
        },
    }


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{what} must be a dict, got {type(value).__name__}")
    return value


def _legacy_storage(kind: Any, backend_config: Any) -> SessionStorage:
    """The legacy storage ``kind``; its own DeprecationWarning is left out (the method warned)."""
    config = dict(_mapping(backend_config, f"backends.{kind}"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return open_legacy_storage(kind, config)


@dataclass(frozen=True, slots=True)
class BackendCheck:
    """Whether one backend answered; truthy exactly when it did, ``error`` saying why not."""

    available: bool
    error: str | None = None

    def __bool__(self) -> bool:
        return self.available


async def _check(name: str, backend_config: Any) -> BackendCheck:
    try:
        storage = _legacy_storage(name, backend_config)
    except ConfigurationError as exc:  # bad key, unknown backend, missing extra: say which
        return BackendCheck(False, str(exc))
    async with storage:
        report = await storage.health()
    return BackendCheck(bool(report["available"]), report.get("error"))


class ServerlessConfigManager:
    """The original module's configuration helper (deprecated; see the module docstring)."""

    @staticmethod
    def load_config(config_path: str | Path | None = None) -> dict[str, Any]:
        """The original config dict: defaults, updated with the file's top-level keys."""
        _deprecated("load_config", "serverless_sessions.load_settings(path)")
        config = _defaults()
        if config_path is None or not Path(config_path).exists():
            return config
        document = load_documents([Path(config_path)])
        interpret(document)  # every value checked as load_settings checks it; errors name the field
        config.update(document.data)
        return config

    @staticmethod
    def create_storage_backend(config: dict[str, Any]) -> SessionStorage:
        """The legacy storage ``config["storage_backend"]`` names, from its ``backends`` entry."""
        _deprecated(
            "create_storage_backend",
            "serverless_sessions.factory.open_configured_storage(load_settings(path))",
        )
        kind = _mapping(config, "config").get("storage_backend", "local")
        return _legacy_storage(kind, _mapping(config.get("backends", {}), "backends").get(kind, {}))

    @staticmethod
    async def test_storage_backends(config: dict[str, Any]) -> dict[str, BackendCheck]:
        """Check every configured backend: ``{name: BackendCheck}`` (truthy = it answered)."""
        _deprecated("test_storage_backends", "await storage.health() on the configured storage")
        backends = _mapping(_mapping(config, "config").get("backends", {}), "backends")
        checks = await asyncio.gather(*(_check(name, value) for name, value in backends.items()))
        return dict(zip(backends, checks, strict=True))
