"""Open any session storage from one URL or config file — ours, or the original module's layouts.

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

Text without ``://`` names a config file instead, in any format, opened exactly as ``--config
FILE`` opens it (environment included): an old-format file opens the legacy storage it still
reads, a new-format file its cache storage. So ``migrate --from old.json --to new.json`` moves
the sessions one config reads to the storage the other reads, and passwords stay in the files
rather than on a command line.

The caller owns the storage returned and closes it (``async with open_storage(url) as s:``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from serverless_sessions.config.legacy import parse_legacy_url
from serverless_sessions.errors import ConfigurationError, MissingDependencyError
from serverless_sessions.factory import create_session_storage
from serverless_sessions.settings import StorageSettings, load_settings
from serverless_sessions.storage.base import SessionStorage

__all__ = ["open_configured_storage", "open_legacy_storage", "open_storage"]


# Legacy storage -> (class name, the extra that installs its client library, if any).
_LEGACY_CLASSES: dict[str, tuple[str, str | None]] = {
    "local": ("LocalFileStorage", None),
    "redis": ("RedisStorage", "redis"),
    "s3": ("S3Storage", "s3"),
}


def open_legacy_storage(kind: str, config: dict[str, Any]) -> SessionStorage:
    """The deprecated storage of the original module, ``kind`` local, redis or s3.

    A bad ``kind`` or config key, or a missing client library (the message names the extra to
    install), raises :class:`ConfigurationError`.
    """
    if kind not in _LEGACY_CLASSES:
        raise ConfigurationError(f"unknown legacy storage {kind!r}: use 'local', 'redis' or 's3'")
    name, extra = _LEGACY_CLASSES[kind]
    # Imported on demand: the legacy Redis and S3 storages pull in redis-py or aiobotocore.
    from serverless_sessions.storage import legacy

    guard = (
        nullcontext()
        if extra is None
        else MissingDependencyError.on_import(feature=f"the legacy {kind} storage", extra=extra)
    )
    with guard:
        storage_class: Callable[[dict[str, Any]], SessionStorage] = getattr(legacy, name)
    return storage_class(config)


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
    """The storage ``url`` (or the config file ``url`` names, see module) reads.

    A bad URL or file raises ConfigurationError (passwords masked).
    """
    if "://" not in url:
        return open_configured_storage(load_settings(Path(url)))
    if urlsplit(url).scheme.lower().startswith("legacy+"):
        return _legacy_storage(url)
    return create_session_storage(url=url)
