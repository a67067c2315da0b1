"""``create_session_storage``: the plan's dependency-injection factory, without ``acb``.

What it injects is a cache adapter chosen by URL (or settings); tests and applications replace
that choice with :func:`override_cache`, which is scoped to a context (task-safe) and undone on
exit::

    with override_cache(memory.Cache()):
        storage = create_session_storage()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.codec import Codec
from serverless_sessions.errors import ConfigurationError, MissingDependencyError
from serverless_sessions.settings import StorageSettings, load_settings, mask_url
from serverless_sessions.storage.cache_storage import ACBCacheStorage, Encryptor
from serverless_sessions.storage.foreign import ForeignCache

__all__ = ["create_session_storage", "open_cache", "override_cache"]

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
    timeout = settings.timeout if settings is not None else None
    if url is None:
        from serverless_sessions.adapters.cache import sqlite

        path = settings.sqlite_path if settings is not None else None
        return sqlite.Cache(path) if timeout is None else sqlite.Cache(path, timeout=timeout)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    if scheme == "memory":
        from serverless_sessions.adapters.cache import memory

        return memory.Cache()
    if scheme == "sqlite":
        from serverless_sessions.adapters.cache import sqlite

        if timeout is not None and "timeout" not in query:
            url = f"{url}{'&' if parts.query else '?'}timeout={timeout}"
        return sqlite.Cache.from_url(url)
    if scheme in {"redis", "rediss", "redis+sentinel", "unix"}:
        with MissingDependencyError.on_import(feature=f"{scheme}:// storage", extra="redis"):
            from serverless_sessions.adapters.cache import redis

        if timeout is None or {"socket_timeout", "socket_connect_timeout"} & query.keys():
            return redis.Cache.from_url(url)
        return redis.Cache.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    if scheme == "s3":
        with MissingDependencyError.on_import(feature="s3:// storage", extra="s3"):
            from serverless_sessions.adapters.cache import s3

        return s3.Cache.from_url(url)
    raise ConfigurationError(
        f"unknown storage URL scheme {scheme!r} in {mask_url(url)!r}: use memory://, "
        "sqlite:///path, redis://, rediss://, redis+sentinel:// or s3://"
    )


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
    if settings is None:
        settings = load_settings(config_file, url=url, namespace=namespace, **overrides)
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
    injected = cache if cache is not None else _injected_cache.get()
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
