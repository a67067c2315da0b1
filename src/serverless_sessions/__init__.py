"""serverless-sessions: session state for stateless (serverless) MCP / AI-assistant servers.

The public names live here; implementation modules are private to their layer. Every name is
loaded on first access (module ``__getattr__``), so ``import serverless_sessions`` imports no
backend library, no pydantic-settings, no CLI or MCP framework: a serverless cold start pays
only for what it uses. The deprecated ``RedisStorage``/``S3Storage``/``LocalFileStorage`` and
``ServerlessConfigManager`` of the original module are here too, loaded the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serverless_sessions.lazy import lazy_exports

if TYPE_CHECKING:
    from serverless_sessions.adapters.cache.base import KEEP_TTL, CacheBase
    from serverless_sessions.codec import Codec
    from serverless_sessions.config.compat import ServerlessConfigManager
    from serverless_sessions.config.settings import StorageSettings, load_settings
    from serverless_sessions.conversation import MessagePage
    from serverless_sessions.errors import (
        CapabilityNotSupportedError,
        ClosedError,
        ConfigurationError,
        CorruptSessionError,
        DecryptionError,
        InvalidSessionError,
        InvalidSessionIdError,
        InvalidSessionUpdateError,
        MigrationError,
        MigrationVerificationError,
        MissingDependencyError,
        SessionConflictError,
        SessionError,
        SessionNotFoundError,
        SessionTooLargeError,
        StorageError,
        StorageUnavailableError,
    )
    from serverless_sessions.factory import create_session_storage, open_cache, open_storage, override_cache
    from serverless_sessions.listing import SessionPage, SessionSummary
    from serverless_sessions.manager import ServerlessSessionManager
    from serverless_sessions.model import SessionState
    from serverless_sessions.storage.base import SessionStorage, StoredSession
    from serverless_sessions.storage.cache_storage import ACBCacheStorage
    from serverless_sessions.storage.legacy import LocalFileStorage, RedisStorage, S3Storage

_ERRORS = "serverless_sessions.errors"
_LOCATIONS = {
    "ACBCacheStorage": "serverless_sessions.storage.cache_storage",
    "KEEP_TTL": "serverless_sessions.adapters.cache.base",
    "CacheBase": "serverless_sessions.adapters.cache.base",
    "CapabilityNotSupportedError": _ERRORS,
    "ClosedError": _ERRORS,
    "Codec": "serverless_sessions.codec",
    "ConfigurationError": _ERRORS,
    "CorruptSessionError": _ERRORS,
    "DecryptionError": _ERRORS,
    "InvalidSessionError": _ERRORS,
    "InvalidSessionIdError": _ERRORS,
    "InvalidSessionUpdateError": _ERRORS,
    "LocalFileStorage": "serverless_sessions.storage.legacy",
    "MessagePage": "serverless_sessions.conversation",
    "MigrationError": _ERRORS,
    "MigrationVerificationError": _ERRORS,
    "MissingDependencyError": _ERRORS,
    "RedisStorage": "serverless_sessions.storage.legacy",
    "S3Storage": "serverless_sessions.storage.legacy",
    "ServerlessConfigManager": "serverless_sessions.config.compat",
    "ServerlessSessionManager": "serverless_sessions.manager",
    "SessionConflictError": _ERRORS,
    "SessionError": _ERRORS,
    "SessionNotFoundError": _ERRORS,
    "SessionPage": "serverless_sessions.listing",
    "SessionState": "serverless_sessions.model",
    "SessionStorage": "serverless_sessions.storage.base",
    "SessionSummary": "serverless_sessions.listing",
    "SessionTooLargeError": _ERRORS,
    "StorageError": _ERRORS,
    "StorageSettings": "serverless_sessions.config.settings",
    "StorageUnavailableError": _ERRORS,
    "StoredSession": "serverless_sessions.storage.base",
    "create_session_storage": "serverless_sessions.factory",
    "load_settings": "serverless_sessions.config.settings",
    "open_cache": "serverless_sessions.factory",
    "open_storage": "serverless_sessions.factory",
    "override_cache": "serverless_sessions.factory",
}

__all__ = [
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
]


__getattr__ = lazy_exports(globals(), _LOCATIONS)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
