"""Open any session storage from one URL — ours, or the original module's layouts.

``migrate`` and the CLI take a source and a destination as text, so both kinds of storage need
a URL:

* ``memory://``, ``sqlite:///abs.db``, ``redis://``, ``rediss://``, ``redis+sentinel://``,
  ``unix://``, ``s3://bucket/prefix``: an :class:`~serverless_sessions.ACBCacheStorage` built
  by :func:`~serverless_sessions.factory.create_session_storage` (the other settings, such as
  namespace and compression, come from the environment as usual);
* ``legacy+local:///abs/dir``, ``legacy+redis://[:pw@]host:port/db?key_prefix=...``,
  ``legacy+s3://bucket/prefix?region=...&endpoint_url=...``: the legacy storage reading the
  original layout, built from the original config dict
  (:mod:`serverless_sessions.config.legacy`).

The caller owns the storage returned and closes it (``async with open_storage(url) as s:``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from serverless_sessions.config.legacy import parse_legacy_url
from serverless_sessions.errors import ConfigurationError
from serverless_sessions.factory import create_session_storage
from serverless_sessions.settings import StorageSettings
from serverless_sessions.storage.base import SessionStorage

__all__ = ["open_configured_storage", "open_legacy_storage", "open_storage"]


def open_legacy_storage(kind: str, config: dict[str, Any]) -> SessionStorage:
    """The deprecated storage of the original module, ``kind`` local, redis or s3."""
    # Imported here: the legacy package pulls in redis-py or aiobotocore for its backends.
    from serverless_sessions.storage import legacy

    classes: dict[str, Callable[[dict[str, Any]], SessionStorage]] = {
        "local": legacy.LocalFileStorage,
        "redis": legacy.RedisStorage,
        "s3": legacy.S3Storage,
    }
    if kind not in classes:
        raise ConfigurationError(f"unknown legacy storage {kind!r}: use 'local', 'redis' or 's3'")
    return classes[kind](config)


def _legacy_storage(url: str) -> SessionStorage:
    config = parse_legacy_url(url)
    return open_legacy_storage(config.kind, config.config())


def open_configured_storage(settings: StorageSettings) -> SessionStorage:
    """The storage the settings name.

    While an old-format config points at the original layout (``legacy_url``), that legacy
    storage keeps serving its sessions until ``serverless-sessions migrate`` moves them.
    """
    legacy_url = settings.legacy_url_value()
    if legacy_url is not None:
        return _legacy_storage(legacy_url)
    return create_session_storage(settings)


def open_storage(url: str) -> SessionStorage:
    """The storage ``url`` names; a bad URL raises ConfigurationError (password masked)."""
    if urlsplit(url).scheme.lower().startswith("legacy+"):
        return _legacy_storage(url)
    return create_session_storage(url=url)
