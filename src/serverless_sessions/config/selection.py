"""Settings the front ends choose: the CLI's global options, MCP ``configure_serverless_storage``.

Both front ends let a person name a backend of the backend table (:mod:`serverless_sessions.
backends`; the original module's ``local`` is the embedded SQLite file) instead of writing a URL.
Naming one is the settings' ``provider`` field, and its connection fields are the settings'
parts (:mod:`serverless_sessions.config.urls`), so both front ends only choose *which* values to
hand to :func:`~serverless_sessions.config.settings.load_settings`; validation and URL building
stay there. Shared by the CLI and the MCP server, which never import each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serverless_sessions.backends import BACKENDS, backend_of, canonical_backend
from serverless_sessions.config.formats import ALIASES, to_fields
from serverless_sessions.config.legacy import LEGACY_MODELS, LegacyConfig
from serverless_sessions.config.settings import StorageSettings, load_settings
from serverless_sessions.config.urls import CONNECTION_FIELDS
from serverless_sessions.errors import ConfigurationError

__all__ = ["configured_settings", "default_ttl_hours", "resolve_settings"]


def default_ttl_hours(settings: StorageSettings) -> float | None:
    """The idle timeout in hours of a session created without one: the configured default.

    That is ``default_ttl`` (24 h when nothing is configured); a ``default_ttl`` configured as
    ``None`` (no expiry) stays ``None``.
    """
    return None if settings.default_ttl is None else settings.default_ttl / 3600


def resolve_settings(
    config_file: Path | None,
    *,
    url: str | None = None,
    backend: str | None = None,
    namespace: str | None = None,
) -> StorageSettings:
    """Settings for the CLI's global options.

    ``--backend`` keeps a configured storage of the same kind (so ``--backend redis`` uses the
    Redis that ``SERVERLESS_SESSIONS_URL`` names) and otherwise selects that backend's default.
    """
    if url is not None and backend is not None:
        raise ConfigurationError("give --url or --backend, not both")
    settings = load_settings(config_file, url=url, namespace=namespace)
    if backend is None or backend_of(settings.url_value()) == canonical_backend(backend):
        return settings
    return load_settings(config_file, provider=canonical_backend(backend), namespace=namespace)


def _legacy_model(backend: str) -> type[LegacyConfig] | None:
    """The original module's config model for ``backend``'s data, if it had one."""
    kind = BACKENDS[backend].legacy
    return None if kind is None else LEGACY_MODELS[kind]


def _connection(backend: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Connection fields in settings names, from new-format or original-module key names.

    The original ``configure_serverless_storage`` took the original backend config keys
    (``storage_dir``, ``bucket_name``, ``key_prefix`` ...); prompts written for it still work
    because such a dict is read as that original config and converted like an old config file.
    """
    fields = to_fields(options)
    legacy = _legacy_model(backend)
    if legacy is None or set(fields) <= CONNECTION_FIELDS:
        return fields
    try:
        section = legacy.model_validate(dict(options)).new_section()
    except ValidationError as exc:
        names = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        raise ConfigurationError(f"invalid {backend} options: {', '.join(names)}") from None
    return to_fields(section)


def configured_settings(
    current: StorageSettings, backend: str, updates: Mapping[str, Any]
) -> StorageSettings:
    """New settings: ``current`` with the storage switched to ``backend``.

    ``updates`` may hold the backend's connection fields (``url``, or parts such as ``host``,
    ``password``, ``bucket``, ``sqlite_path``/``path``, or the original module's keys) and any
    other setting (``namespace``, ``default_ttl`` ...). Connection fields of ``current`` are
    dropped: the new storage is only what ``backend`` and ``updates`` say (plus secrets the
    environment supplies for it). Errors name fields, never values.
    """
    name = canonical_backend(backend)
    if updates.get("provider", name) != name:
        raise ConfigurationError(
            f"config_updates provider {updates['provider']!r} contradicts backend {name!r}"
        )
    legacy = _legacy_model(name)
    connection_keys = CONNECTION_FIELDS | set(ALIASES) | (set(legacy.model_fields) if legacy else set())
    options = {key: value for key, value in updates.items() if key in connection_keys}
    others = {key: value for key, value in updates.items() if key not in connection_keys}
    kept = {
        key: value
        for key, value in current.model_dump().items()
        if key not in CONNECTION_FIELDS and value is not None
    }
    return load_settings(None, **{**kept, **others, **_connection(name, options), "provider": name})
