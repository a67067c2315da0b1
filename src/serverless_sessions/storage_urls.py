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
from serverless_sessions.factory import create_session_storage
from serverless_sessions.storage.base import SessionStorage

__all__ = ["open_storage"]


def _legacy_storage(url: str) -> SessionStorage:
    config = parse_legacy_url(url)
    # Imported here: the legacy package pulls in redis-py or aiobotocore for its backends.
    from serverless_sessions.storage import legacy

    classes: dict[str, Callable[[dict[str, Any]], SessionStorage]] = {
        "local": legacy.LocalFileStorage,
        "redis": legacy.RedisStorage,
        "s3": legacy.S3Storage,
    }
    return classes[config.kind](config.config())


def open_storage(url: str) -> SessionStorage:
    """The storage ``url`` names; a bad URL raises ConfigurationError (password masked)."""
    if urlsplit(url).scheme.lower().startswith("legacy+"):
        return _legacy_storage(url)
    return create_session_storage(url=url)
