"""Storage backends by name, for the CLI's ``--backend`` and MCP ``configure_serverless_storage``.

Both front ends let a person name a backend (``memory``, ``sqlite``, ``redis``, ``s3``; the
original module's ``local`` is the embedded SQLite file) with a few connection fields instead of
a URL, so both need the same translation to the storage URL the factory understands. This module
imports neither click nor rich: the MCP server uses it too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

from serverless_sessions.errors import ConfigurationError
from serverless_sessions.settings import StorageSettings, load_settings, mask_url

__all__ = ["BACKENDS", "backend_of", "backend_url", "configured_settings", "resolve_settings"]

BACKENDS = ("memory", "sqlite", "redis", "s3")
_ALIASES = MappingProxyType({"local": "sqlite"})
_SCHEMES = MappingProxyType(
    {
        "memory": "memory",
        "sqlite": "sqlite",
        "redis": "redis",
        "rediss": "redis",
        "redis+sentinel": "redis",
        "unix": "redis",
        "s3": "s3",
    }
)


def canonical_backend(name: str) -> str:
    """``name`` as one of :data:`BACKENDS` (``local`` is SQLite); anything else is refused."""
    backend = _ALIASES.get(name.lower(), name.lower())
    if backend not in BACKENDS:
        raise ConfigurationError(
            f"unknown backend {name!r}: use {', '.join(BACKENDS)} (or 'local' for sqlite)"
        )
    return backend


def backend_of(url: str | None) -> str:
    """The backend a storage URL selects; no URL means the embedded SQLite default."""
    if url is None:
        return "sqlite"
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(f"unknown storage URL scheme {scheme!r} in {mask_url(url)!r}")
    return _SCHEMES[scheme]


def _memory_url(options: Mapping[str, Any], settings: StorageSettings) -> str:
    return "memory://"


def _sqlite_url(options: Mapping[str, Any], settings: StorageSettings) -> str:
    from serverless_sessions.adapters.cache.sqlite import default_path  # noqa: PLC0415

    if "path" in options:
        path = Path(str(options["path"]))
    elif "storage_dir" in options:  # the original LocalFileStorage setting
        path = Path(str(options["storage_dir"])).expanduser() / "sessions.db"
    else:
        path = settings.sqlite_path or default_path()
    return f"sqlite://{quote(str(path.absolute()))}"


def _redis_url(options: Mapping[str, Any], settings: StorageSettings) -> str:
    scheme = "rediss" if options.get("ssl") else "redis"
    user = quote(str(options.get("username") or ""), safe="")
    password = options.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = options.get("host", "127.0.0.1")
    return f"{scheme}://{auth}{host}:{options.get('port', 6379)}/{options.get('db', 0)}"


def _s3_url(options: Mapping[str, Any], settings: StorageSettings) -> str:
    if "bucket_name" not in options:
        raise ConfigurationError(
            "the s3 backend needs 'bucket_name' (or a full 'url' such as s3://bucket/prefix)"
        )
    prefix = str(options.get("key_prefix", "")).strip("/")
    return f"s3://{options['bucket_name']}/{prefix}"


_Builder = Callable[[Mapping[str, Any], StorageSettings], str]

# Per backend: the connection fields it accepts, and how they become a URL.
_BUILDERS: Mapping[str, tuple[frozenset[str], _Builder]] = MappingProxyType(
    {
        "memory": (frozenset(), _memory_url),
        "sqlite": (frozenset({"path", "storage_dir"}), _sqlite_url),
        "redis": (frozenset({"host", "port", "db", "username", "password", "ssl"}), _redis_url),
        "s3": (frozenset({"bucket_name", "key_prefix"}), _s3_url),
    }
)


def backend_url(
    backend: str, options: Mapping[str, Any], settings: StorageSettings | None = None
) -> str:
    """The storage URL for ``backend`` with connection ``options`` (defaults: loopback Redis
    on 6379 db 0, the configured or default SQLite file); an unknown option is refused."""
    name = canonical_backend(backend)
    accepted, build = _BUILDERS[name]
    unknown = sorted(set(options) - accepted)
    if unknown:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise ConfigurationError(
            f"unknown {name} option(s) {', '.join(unknown)}; accepted: {allowed}, "
            "'url', or any setting name"
        )
    return build(options, settings or StorageSettings())


def resolve_settings(
    config_file: Path | None,
    *,
    url: str | None = None,
    backend: str | None = None,
    namespace: str | None = None,
) -> StorageSettings:
    """Settings for the CLI's global options.

    ``--backend`` keeps a configured URL of the same backend (so ``--backend redis`` uses the
    Redis that ``SERVERLESS_SESSIONS_URL`` names) and otherwise selects that backend's default.
    """
    if url is not None and backend is not None:
        raise ConfigurationError("give --url or --backend, not both")
    settings = load_settings(config_file, url=url, namespace=namespace)
    if backend is None or backend_of(settings.url_value()) == canonical_backend(backend):
        return settings
    return load_settings(
        config_file, url=backend_url(backend, {}, settings), namespace=namespace
    )


def configured_settings(
    current: StorageSettings, backend: str, updates: Mapping[str, Any]
) -> StorageSettings:
    """New settings: ``current`` with the storage switched to ``backend``.

    ``updates`` may hold any settings field (``url``, ``namespace``, ``default_ttl`` ...) and the
    backend's connection fields (see :func:`backend_url`); a ``url`` must name that backend.
    Every value is validated; errors name fields, never values.
    """
    name = canonical_backend(backend)
    fields = {key: value for key, value in updates.items() if key in StorageSettings.model_fields}
    options = {key: value for key, value in updates.items() if key not in fields}
    if "url" in fields:
        if options:
            raise ConfigurationError(
                f"give either 'url' or connection options ({', '.join(sorted(options))}), not both"
            )
        url = str(fields["url"])
        if backend_of(url) != name:
            raise ConfigurationError(f"url {mask_url(url)!r} is not a {name} URL")
    else:
        url = backend_url(name, options, current)
    kept = {key: value for key, value in current.model_dump().items() if value is not None}
    return load_settings(None, **{**kept, **fields, "url": url})
