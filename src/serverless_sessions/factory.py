"""Building storages: ``create_session_storage`` (the plan's factory, without ``acb``) and friends.

What ``create_session_storage`` injects is a cache adapter chosen by URL (or settings) through
the backend table (:mod:`serverless_sessions.backends`); tests and applications replace that
choice with :func:`override_cache`, which is scoped to a context (task-safe) and undone on exit::

    with override_cache(memory.Cache()):
        storage = create_session_storage()

``migrate`` and the CLI take a source and a destination as text, so both kinds of storage also
open from one string (:func:`open_storage`):

* ``memory://``, ``sqlite:///abs.db``, ``redis://``, ``rediss://``, ``redis+sentinel://``,
  ``unix://``, ``s3://bucket/prefix``, ``postgresql://``, ``dynamodb://TABLE``: an
  :class:`~serverless_sessions.ACBCacheStorage` (the other settings, such as namespace and
  compression, come from the environment as usual);
* ``legacy+local:///abs/dir``, ``legacy+redis://[:pw@]host:port/db?key_prefix=...``,
  ``legacy+s3://bucket/prefix?region=...&endpoint_url=...``: the legacy storage reading the
  original layout (:mod:`serverless_sessions.config.legacy`);
* text without ``://``: a config file, in any format, opened exactly as ``--config FILE`` opens
  it (environment included): an old-format file opens the legacy storage it still reads, a
  new-format file its cache storage. So ``migrate --from old.json --to new.json`` moves the
  sessions one config reads to the storage the other reads, and passwords stay in the files.

The caller owns the storage returned and closes it (``async with open_storage(url) as s:``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.backends import BACKENDS, backend_of, open_legacy_storage
from serverless_sessions.codec import Codec
from serverless_sessions.config.defaults import (
    DEFAULT_NAMESPACE,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    configured_outside_arguments,
)
from serverless_sessions.errors import ConfigurationError
from serverless_sessions.ids import validate_namespace
from serverless_sessions.storage.base import SessionStorage
from serverless_sessions.storage.cache_storage import ACBCacheStorage, Encryptor
from serverless_sessions.storage.foreign import ForeignCache

if TYPE_CHECKING:
    # Loaded only where settings are read: a URL with nothing else configured needs neither
    # pydantic-settings nor the config-file readers (see config.defaults).
    from serverless_sessions.config.settings import StorageSettings

__all__ = [
    "create_session_storage",
    "open_cache",
    "open_configured_storage",
    "open_storage",
    "override_cache",
    "storage_of_type",
]

_injected_cache: ContextVar[CacheBase | ForeignCache | None] = ContextVar(
    "serverless_sessions_injected_cache", default=None
)


@contextmanager
def override_cache(cache: CacheBase | ForeignCache) -> Iterator[None]:
    """Make :func:`create_session_storage` use ``cache`` inside this block."""
    token = _injected_cache.set(cache)
    try:
        yield
    finally:
        _injected_cache.reset(token)


def open_cache(url: str | None, settings: StorageSettings | None = None) -> CacheBase:
    """Build the cache adapter a storage URL names; ``None`` means the SQLite default.

    ``settings.timeout`` applies unless the URL sets its own timeout. A backend whose client
    library is not installed raises :class:`MissingDependencyError` naming the extra.
    """
    if settings is None:
        return _open_cache(url, None, None)
    return _open_cache(url, settings.timeout, settings.sqlite_path)


def _open_cache(url: str | None, timeout: float | None, sqlite_path: Path | None) -> CacheBase:
    if url is None:
        from serverless_sessions.adapters.cache import sqlite

        if timeout is None:
            return sqlite.Cache(sqlite_path)
        return sqlite.Cache(sqlite_path, timeout=timeout)
    return BACKENDS[backend_of(url)].open(url, timeout)


def _load_settings(config_file: str | Path | None, **overrides: Any) -> StorageSettings:
    from serverless_sessions.config.settings import load_settings

    return load_settings(config_file, **overrides)


def build_encryptor(settings: StorageSettings) -> Encryptor | None:
    """The encryptor the settings ask for, or ``None``."""
    if settings.encryption_keys is None:
        return None
    from serverless_sessions.encryption import KeyRing

    return KeyRing.from_setting(settings.encryption_keys.get_secret_value())


def create_session_storage(
    settings: StorageSettings | None = None,
    *,
    url: str | None = None,
    cache: CacheBase | ForeignCache | None = None,
    namespace: str | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> ACBCacheStorage:
    """Build an :class:`ACBCacheStorage` from settings, a URL, or an injected cache.

    Order: ``cache`` argument, then a cache set by :func:`override_cache`, then ``url`` /
    settings. A storage built here owns (and closes) a cache it created, never an injected one.
    """
    injected = cache if cache is not None else _injected_cache.get()
    if namespace is not None:
        # Checked before a cache is opened, so a bad namespace leaves nothing to close.
        validate_namespace(namespace)
    only_arguments = settings is None and config_file is None and not overrides
    if only_arguments and (url is None or url.strip()) and not configured_outside_arguments():
        return ACBCacheStorage(
            injected if injected is not None else _open_cache(url, DEFAULT_TIMEOUT, None),
            DEFAULT_NAMESPACE if namespace is None else namespace,
            codec=Codec(),
            default_ttl=DEFAULT_TTL,
            owns_cache=injected is None,
        )
    if settings is None:
        settings = _load_settings(config_file, url=url, namespace=namespace, **overrides)
    elif url is not None or config_file is not None or overrides:
        raise ConfigurationError(
            "give either settings or url/config_file/overrides to create_session_storage, not both"
        )
    codec = Codec(
        compression=settings.compression,
        threshold=settings.compression_threshold,
        zstd_level=settings.zstd_level,
        brotli_quality=settings.brotli_quality,
        max_size=settings.max_session_bytes,
    )
    encryptor = build_encryptor(settings)
    chosen = injected if injected is not None else open_cache(settings.url_value(), settings)
    return ACBCacheStorage(
        chosen,
        namespace if namespace is not None else settings.namespace,
        codec=codec,
        default_ttl=settings.default_ttl,
        encryptor=encryptor,
        owns_cache=injected is None,
        require_encryption=settings.require_encryption,
    )


def _legacy_storage(url: str) -> SessionStorage:
    from serverless_sessions.config.legacy import parse_legacy_url

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
        return open_configured_storage(_load_settings(Path(url)))
    if urlsplit(url).scheme.lower().startswith("legacy+"):
        return _legacy_storage(url)
    return create_session_storage(url=url)


def storage_of_type(
    storage_type: str, storage_config: Mapping[str, Any] | None, settings: StorageSettings | None
) -> tuple[SessionStorage, StorageSettings | None]:
    """The storage ``ServerlessSessionManager(storage_type=..., storage_config=...)`` builds.

    ``"acb"`` is a cache storage from ``settings`` or from ``storage_config`` read as settings;
    ``local``/``redis``/``s3`` the original module's storage from its config dict.
    """
    if storage_type != "acb":
        return open_legacy_storage(storage_type, dict(storage_config or {})), settings
    if settings is not None and storage_config:
        raise ConfigurationError("give either settings or storage_config, not both")
    if settings is None:
        settings = _load_settings(None, **dict(storage_config or {}))
    return open_configured_storage(settings), settings
