"""Deprecated storages that read and write the original module's layouts (quarantined here).

``LocalFileStorage``, ``RedisStorage`` and ``S3Storage`` exist so data written by the original
``serverless_mode.py`` stays usable during the move to ``ACBCacheStorage``; each warns with a
``DeprecationWarning`` naming its replacement. Each class is imported on first access, so
``LocalFileStorage`` never pays for redis-py or aiobotocore.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serverless_sessions.storage.legacy.local import LocalFileStorage
    from serverless_sessions.storage.legacy.redis import RedisStorage
    from serverless_sessions.storage.legacy.s3 import S3Storage

__all__ = ["LocalFileStorage", "RedisStorage", "S3Storage"]

_MODULES = {"LocalFileStorage": "local", "RedisStorage": "redis", "S3Storage": "s3"}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
