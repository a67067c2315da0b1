"""The backend table: every storage backend, written once.

An entry says everything the rest of the library needs to know about one backend: its name, the
URL schemes that select it, the settings parts that spell its URL (``provider: redis`` with
``host``/``port``/...), the adapter package that opens such a URL, the extra that installs its
client library, how the ``timeout`` setting reaches it, and which storage of the original
module reads its old layout. The factory opens caches from it, the settings check a provider
and build its URL from it, config files and the CLI's ``--backend`` and the MCP
``configure_serverless_storage`` tool accept its names. Adding a backend is its adapter
sub-package plus one entry in :data:`BACKENDS` (see the README's "Adding a backend").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from serverless_sessions.adapters.cache.base import CacheBase
from serverless_sessions.adapters.cache.urls import mask_url
from serverless_sessions.errors import ConfigurationError, MissingDependencyError
from serverless_sessions.storage.base import SessionStorage

__all__ = ["BACKENDS", "Backend", "backend_of", "canonical_backend", "open_legacy_storage"]

URLBuilder = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True, slots=True)
class Backend:
    """One storage backend (see the module docstring)."""

    name: str
    schemes: tuple[str, ...]
    adapter: str
    """The adapter package; its ``Cache.from_url(url, **overrides)`` opens a URL."""
    extra: str | None = None
    """The ``serverless-sessions`` extra that installs its client library (``None``: built in)."""
    parts: frozenset[str] = frozenset()
    """Settings fields that spell its URL next to ``provider``."""
    required_parts: frozenset[str] = frozenset()
    build_url: URLBuilder | None = None
    """Parts -> URL (``None`` result: the default SQLite file); ``None``: configured by URL only."""
    timeout: Callable[[float], dict[str, object]] | None = None
    """The ``timeout`` setting as ``from_url`` overrides (``None``: the adapter has its own)."""
    timeout_query: frozenset[str] = frozenset()
    """URL query arguments that set the timeout themselves, so the setting does not."""
    legacy: str | None = None
    """The original module's storage kind (``local``/``redis``/``s3``) for this backend's data."""
    legacy_class: str | None = None
    """Its class in :mod:`serverless_sessions.storage.legacy`."""

    def guard_import(self) -> AbstractContextManager[None]:
        """A missing client library becomes a MissingDependencyError naming :attr:`extra`."""
        if self.extra is None:
            return nullcontext()
        return MissingDependencyError.on_import(feature=f"{self.name} storage", extra=self.extra)

    def open(self, url: str, timeout: float | None = None) -> CacheBase:
        """The adapter's cache for ``url``; ``timeout`` applies unless the URL sets its own."""
        with self.guard_import():
            adapter = importlib.import_module(self.adapter)
        overrides: dict[str, object] = {}
        url_sets_it = bool(self.timeout_query & parse_qs(urlsplit(url).query).keys())
        if timeout is not None and self.timeout is not None and not url_sets_it:
            overrides = self.timeout(timeout)
        cache: CacheBase = adapter.Cache.from_url(url, **overrides)
        return cache


def _sqlite_url(parts: Mapping[str, Any]) -> str | None:
    path = parts.get("sqlite_path")
    return None if path is None else "sqlite://" + quote(str(Path(path).absolute()))


def server_netloc(parts: Mapping[str, Any], default_port: int) -> str:
    """``[user[:password]@]host:port`` from parts, quoted, an IPv6 host in brackets."""
    user = quote(str(parts.get("username") or ""), safe="")
    password = parts.get("password")
    userinfo = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = str(parts.get("host") or "localhost")
    host = f"[{host}]" if ":" in host else host
    return f"{userinfo}{host}:{parts.get('port') or default_port}"


def url_query(options: Mapping[str, Any]) -> str:
    """The query string of the options that are set, paths and URLs left readable."""
    return urlencode({name: str(value) for name, value in options.items() if value is not None}, safe="/:")


def _redis_url(parts: Mapping[str, Any]) -> str:
    scheme = "rediss" if parts.get("ssl_enabled") else "redis"
    options = {"ssl_ca_certs": parts.get("ssl_cert_path"), "key_prefix": parts.get("key_prefix")}
    netloc = server_netloc(parts, 6379)
    return urlunsplit((scheme, netloc, f"/{parts.get('db') or 0}", url_query(options), ""))


def _s3_url(parts: Mapping[str, Any]) -> str:
    prefix = quote(str(parts.get("prefix") or "").strip("/"))
    options = {name: parts.get(name) or None for name in ("region", "endpoint_url")}
    return urlunsplit(("s3", str(parts["bucket"]), f"/{prefix}", url_query(options), ""))


def _postgres_url(parts: Mapping[str, Any]) -> str:
    ca_file = parts.get("ssl_cert_path")
    sslmode = "verify-full" if ca_file else ("require" if parts.get("ssl_enabled") else None)
    netloc = server_netloc(parts, 5432)
    database = quote(str(parts.get("database") or "postgres"))
    query = url_query({"sslmode": sslmode, "sslrootcert": ca_file})
    return urlunsplit(("postgresql", netloc, f"/{database}", query, ""))


def _dynamodb_url(parts: Mapping[str, Any]) -> str:
    options = {name: parts.get(name) for name in ("region", "endpoint_url")}
    return urlunsplit(("dynamodb", str(parts["table"]), "", url_query(options), ""))


_ADAPTERS = "serverless_sessions.adapters.cache"

BACKENDS: Mapping[str, Backend] = MappingProxyType(
    {
        backend.name: backend
        for backend in (
            Backend("memory", ("memory",), f"{_ADAPTERS}.memory", build_url=lambda parts: "memory://"),
            Backend(
                "sqlite",
                ("sqlite",),
                f"{_ADAPTERS}.sqlite",
                parts=frozenset({"sqlite_path"}),
                build_url=_sqlite_url,
                timeout=lambda seconds: {"timeout": seconds},
                timeout_query=frozenset({"timeout"}),
                legacy="local",
                legacy_class="LocalFileStorage",
            ),
            Backend(
                "redis",
                ("redis", "rediss", "redis+sentinel", "unix"),
                f"{_ADAPTERS}.redis",
                extra="redis",
                parts=frozenset(
                    {"host", "port", "username", "password", "db"}
                    | {"ssl_enabled", "ssl_cert_path", "key_prefix"}
                ),
                build_url=_redis_url,
                timeout=lambda seconds: {"socket_timeout": seconds, "socket_connect_timeout": seconds},
                timeout_query=frozenset({"socket_timeout", "socket_connect_timeout"}),
                legacy="redis",
                legacy_class="RedisStorage",
            ),
            Backend(
                "s3",
                ("s3",),
                f"{_ADAPTERS}.s3",
                extra="s3",
                parts=frozenset({"bucket", "prefix", "region", "endpoint_url"}),
                required_parts=frozenset({"bucket"}),
                build_url=_s3_url,
                legacy="s3",
                legacy_class="S3Storage",
            ),
            Backend(
                "postgres",
                ("postgresql", "postgres"),
                f"{_ADAPTERS}.postgres",
                extra="postgres",
                parts=frozenset(
                    {"host", "port", "username", "password", "database", "ssl_enabled", "ssl_cert_path"}
                ),
                build_url=_postgres_url,
                timeout=lambda seconds: {"timeout": seconds},
                timeout_query=frozenset({"timeout"}),
            ),
            Backend(
                "dynamodb",
                ("dynamodb",),
                f"{_ADAPTERS}.dynamodb",
                extra="dynamodb",
                parts=frozenset({"table", "region", "endpoint_url"}),
                required_parts=frozenset({"table"}),
                build_url=_dynamodb_url,
            ),
        )
    }
)
"""Every backend by name, in the order the CLI and the documentation list them."""

_BY_SCHEME = MappingProxyType(
    {scheme: backend for backend in BACKENDS.values() for scheme in backend.schemes}
)
_ALIASES = MappingProxyType({"local": "sqlite"})


def canonical_backend(name: str) -> str:
    """``name`` as a key of :data:`BACKENDS` (``local``, the original module's, is SQLite)."""
    backend = _ALIASES.get(name.lower(), name.lower())
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"unknown backend {name!r}: use {', '.join(BACKENDS)} (or 'local' for sqlite)"
        )
    return backend


def backend_of(url: str | None) -> str:
    """The name of the backend a storage URL selects; no URL means the embedded SQLite default."""
    if url is None:
        return "sqlite"
    scheme = urlsplit(url).scheme.lower()
    backend = _BY_SCHEME.get(scheme)
    if backend is None:
        schemes = ", ".join(f"{name}://" for name in _BY_SCHEME)
        raise ConfigurationError(f"unknown storage URL scheme {scheme!r} in {mask_url(url)!r}: use {schemes}")
    return backend.name


def open_legacy_storage(kind: str, config: dict[str, Any]) -> SessionStorage:
    """The deprecated storage of the original module, ``kind`` local, redis or s3.

    A bad ``kind`` or config key, or a missing client library (the message names the extra to
    install), raises :class:`ConfigurationError`.
    """
    backend = next((b for b in BACKENDS.values() if b.legacy == kind and b.legacy_class), None)
    if backend is None:
        kinds = ", ".join(repr(b.legacy) for b in BACKENDS.values() if b.legacy)
        raise ConfigurationError(f"unknown legacy storage {kind!r}: use {kinds}")
    # Imported on demand: the legacy Redis and S3 storages pull in redis-py or aiobotocore.
    from serverless_sessions.storage import legacy

    with backend.guard_import():
        storage_class: Callable[[dict[str, Any]], SessionStorage] = getattr(legacy, str(backend.legacy_class))
    return storage_class(config)
