"""serverless-sessions: session state for stateless (serverless) MCP / AI-assistant servers.

The public names live here; implementation modules are private to their layer. Importing this
package imports no backend library: the legacy ``RedisStorage``/``S3Storage``/``LocalFileStorage``
are loaded on first access.
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
    "RedisStorage",
    "S3Storage",
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

_LEGACY = {"LocalFileStorage", "RedisStorage", "S3Storage"}


def __getattr__(name: str) -> Any:
    if name in _LEGACY:
        from serverless_sessions.storage import legacy

        return getattr(legacy, name)
    raise AttributeError(f"module 'serverless_sessions' has no attribute {name!r}")
