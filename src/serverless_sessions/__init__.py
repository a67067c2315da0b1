"""serverless-sessions: session state for stateless (serverless) MCP / AI-assistant servers.

The public names live here; implementation modules are private to their layer. Importing this
package imports no backend library: the legacy ``RedisStorage``/``S3Storage``/``LocalFileStorage``
and the original ``ServerlessConfigManager`` are loaded on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serverless_sessions.adapters.cache.base import KEEP_TTL, CacheBase
from serverless_sessions.codec import Codec
from serverless_sessions.errors import (
    CapabilityNotSupportedError,
    ClosedError,
    ConfigurationError,
    CorruptSessionError,
    DecryptionError,
    InvalidSessionError,
    InvalidSessionIdError,
    InvalidSessionUpdateError,
    MissingDependencyError,
    SessionConflictError,
    SessionError,
    SessionNotFoundError,
    SessionTooLargeError,
    StorageError,
    StorageUnavailableError,
)
from serverless_sessions.factory import create_session_storage, open_cache, override_cache
from serverless_sessions.manager import ServerlessSessionManager
from serverless_sessions.model import SessionState
from serverless_sessions.pages import SessionPage, SessionSummary
from serverless_sessions.settings import StorageSettings, load_settings
from serverless_sessions.storage.base import SessionStorage, StoredSession
from serverless_sessions.storage.cache_storage import ACBCacheStorage

if TYPE_CHECKING:
    from serverless_sessions.config.compat import ServerlessConfigManager
    from serverless_sessions.storage.legacy import LocalFileStorage, RedisStorage, S3Storage

__all__ = [
    "ACBCacheStorage",
    "KEEP_TTL",
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
    "LocalFileStorage",
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
    "override_cache",
]

# Deprecated names from the original module, loaded on first access so that importing the
# package stays free of their dependencies.
_DEPRECATED = {
    "LocalFileStorage": "serverless_sessions.storage.legacy",
    "RedisStorage": "serverless_sessions.storage.legacy",
    "S3Storage": "serverless_sessions.storage.legacy",
    "ServerlessConfigManager": "serverless_sessions.config.compat",
}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        import importlib

        return getattr(importlib.import_module(_DEPRECATED[name]), name)
    raise AttributeError(f"module 'serverless_sessions' has no attribute {name!r}")
