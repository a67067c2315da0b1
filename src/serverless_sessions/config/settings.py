"""Typed, frozen settings from arguments, ``SERVERLESS_SESSIONS_*`` variables and config files.

Precedence, highest first:

1. explicit keyword arguments (``load_settings(url=...)``, ``create_session_storage(...)``);
2. environment variables ``SERVERLESS_SESSIONS_<FIELD>`` (``..._URL``, ``..._PASSWORD``, ...);
3. config files, in any of the three formats (:mod:`serverless_sessions.config.files`);
   several files are deep-merged first, later files winning. Files named by the caller, else
   by ``SERVERLESS_SESSIONS_CONFIG`` (``os.pathsep``-separated), else the original module's
   ``~/.claude/data/serverless_config.json`` when it exists;
4. the defaults below — with nothing configured, the embedded SQLite file under the user's
   data directory.

Values merge key by key; the connection fields merge as a group (a source that names another
storage replaces the one below it, see :mod:`serverless_sessions.config.layers`). Where
sessions live is one URL; ``provider`` with ``host``/``port``/``password``/``db``/``ssl_*``
(Redis), ``bucket``/``prefix``/``region``/``endpoint_url`` (S3) or ``sqlite_path`` is another
spelling of it (:mod:`serverless_sessions.config.urls`). ``legacy_url`` names data still in the
original module's layout (set by an old config format); a manager built from these settings
serves that storage until the sessions are migrated to ``url``.

Every error names the field and where it was written (file and field, variable, or argument).
Secrets are ``SecretStr``: masked in every repr, never in an error or a warning.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from serverless_sessions.backends import BACKENDS
from serverless_sessions.codec import BODY_CEILING, DEFAULT_THRESHOLD
from serverless_sessions.config.defaults import (
    DEFAULT_NAMESPACE,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    ENV_PREFIX,
    ORIGINAL_CONFIG_FILE,
)
from serverless_sessions.config.files import read_config_files
from serverless_sessions.config.layers import Layer, merge_layers
from serverless_sessions.config.legacy import parse_legacy_url
from serverless_sessions.config.urls import (
    PARTS,
    PartsError,
    build_url,
    check_parts,
    mask_url,
    with_password,
)
from serverless_sessions.errors import ConfigurationError

__all__ = ["ENV_PREFIX", "ORIGINAL_CONFIG_FILE", "StorageSettings", "load_settings", "mask_url"]

_PART_NAMES = frozenset().union(*PARTS.values())
_BLANK_IS_UNSET = (
    "url",
    "legacy_url",
    "encryption_keys",  # `ENCRYPTION_KEYS=` (set but empty) means no keys, like unset
    *sorted(_PART_NAMES - {"port", "db", "ssl_enabled"}),
)


def _secret_value(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class StorageSettings(BaseSettings):
    """Everything needed to build a storage; secrets are masked in every repr."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    url: SecretStr | None = Field(
        default=None,
        description="Storage URL: memory://, sqlite:///abs/path.db, redis://, rediss://, "
        "redis+sentinel://, s3://bucket/prefix, postgresql://, dynamodb://TABLE. Unset: built "
        "from provider and its parts, else SQLite under the user data directory.",
    )
    provider: str | None = Field(
        default=None,
        description="The plan's acb.cache.provider; builds the URL from parts.",
        json_schema_extra={"enum": [*BACKENDS, None]},
    )
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = Field(
        default=None,
        description="Redis or PostgreSQL password; may also complete a Redis url that has none.",
    )
    db: int | None = Field(default=None, ge=0)
    ssl_enabled: bool | None = Field(default=None, description="Redis over TLS (rediss://).")
    ssl_cert_path: Path | None = Field(default=None, description="CA bundle (ssl_ca_certs).")
    key_prefix: str | None = Field(
        default=None, description="Redis key prefix, so deployments sharing a server stay apart."
    )
    database: str | None = Field(default=None, description="PostgreSQL database name.")
    table: str | None = Field(default=None, description="DynamoDB table name.")
    bucket: str | None = None
    prefix: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    legacy_url: SecretStr | None = Field(
        default=None,
        description="legacy+local:///dir, legacy+redis://host:port/db?key_prefix=..., "
        "legacy+s3://bucket/prefix: sessions in the original module's layout, served until "
        "migrated to url.",
    )
    namespace: str = DEFAULT_NAMESPACE
    default_ttl: float | None = Field(default=DEFAULT_TTL, gt=0, description="Seconds; new sessions.")
    max_lifetime: float | None = Field(
        default=None, gt=0, description="Absolute lifetime in seconds, next to the idle TTL."
    )
    cleanup_interval: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between expiry sweeps by long-running servers (None: on demand).",
    )
    compression: Literal["none", "zstd", "brotli"] = "zstd"
    compression_threshold: int = Field(default=DEFAULT_THRESHOLD, ge=0)
    zstd_level: int = Field(default=3, ge=1, le=22)
    brotli_quality: int = Field(default=11, ge=0, le=11)
    max_session_bytes: int = Field(
        default=1024 * 1024,
        ge=64,
        le=BODY_CEILING,
        description="Largest session accepted, as JSON before compression; at most 64 MiB, "
        "the most every reader accepts (see serverless_sessions.codec).",
    )
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=300, description="Backend timeout, seconds.")
    sqlite_path: Path | None = None
    encryption_keys: SecretStr | None = Field(
        default=None, description="Comma-separated KEY_ID:BASE64_32_BYTES; newest last."
    )
    require_encryption: bool = Field(
        default=False, description="Refuse plaintext sessions (after reencrypt has completed)."
    )
    mutate_retries: int = Field(default=200, ge=1, le=10_000)

    @field_validator(*_BLANK_IS_UNSET, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        if value is not None and value not in BACKENDS:
            raise ValueError(f"unknown provider {value!r}: use {', '.join(BACKENDS)}")
        return value

    @field_validator("legacy_url")
    @classmethod
    def _legacy_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_legacy_url(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _parts_agree(self) -> Self:
        check_parts(self._clear("url"), self.provider, self._parts())
        return self

    def _clear(self, name: str) -> Any:
        return _secret_value(getattr(self, name))

    def _parts(self) -> dict[str, Any]:
        return {name: self._clear(name) for name in _PART_NAMES}

    def url_value(self) -> str | None:
        """The storage URL in clear (only for building clients); ``None``: the SQLite default."""
        if self.url is not None:
            return with_password(self.url.get_secret_value(), self._clear("password"))
        return None if self.provider is None else build_url(self.provider, self._parts())

    def masked_url(self) -> str | None:
        """The storage URL with its password masked."""
        return mask_url(self.url_value())

    def legacy_url_value(self) -> str | None:
        """The ``legacy+...`` URL in clear (for :func:`serverless_sessions.factory.open_storage`)."""
        return None if self.legacy_url is None else self.legacy_url.get_secret_value()

    def public_dict(self) -> dict[str, Any]:
        """JSON-safe settings with every secret masked (for ``config show`` and stats)."""
        data = self.model_dump(mode="json")
        for name in data:
            if isinstance(getattr(self, name), SecretStr):
                data[name] = "***"
        data["url"] = self.masked_url()
        data["legacy_url"] = mask_url(self.legacy_url_value())
        return data


def _environment_layer() -> Layer:
    values = EnvSettingsSource(StorageSettings)()
    return Layer(values, {name: f"environment {ENV_PREFIX}{name.upper()}" for name in values})


def _argument_layer(overrides: Mapping[str, Any]) -> Layer:
    values = {name: value for name, value in overrides.items() if value is not None}
    return Layer(values, {name: f"argument {name}" for name in values})


def _config_paths(config_file: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if config_file is None:
        named = os.environ.get(f"{ENV_PREFIX}CONFIG", "").strip()
        if named:
            return [Path(item) for item in named.split(os.pathsep) if item]
        original = ORIGINAL_CONFIG_FILE.expanduser()
        return [original] if original.is_file() else []
    if isinstance(config_file, str | Path):
        return [Path(config_file)]
    return [Path(item) for item in config_file]


def _describe(exc: ValidationError, origins: Mapping[str, str]) -> str:
    """Each problem with the field and where it was written; never the input value."""
    problems = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, PartsError):
            where = "; ".join(f"{name} ({origins.get(name, 'default')})" for name in cause.fields)
            problems.append(f"{cause} [{where}]")
            continue
        name = ".".join(str(part) for part in error["loc"])
        origin = origins.get(str(error["loc"][0]), "default") if error["loc"] else "settings"
        problems.append(f"{name} ({origin}): {error['msg']}")
    return "; ".join(problems)


def load_settings(
    config_file: str | Path | Sequence[str | Path] | None = None, **overrides: Any
) -> StorageSettings:
    """Build settings from keyword overrides, the environment and config files (see module).

    ``config_file``: one path or several (deep-merged, later ones winning). ``None`` values in
    ``overrides`` mean "not given". Raises :class:`ConfigurationError` naming the field and
    where it was written; old config formats warn with :class:`DeprecationWarning`.
    """
    layers = [*read_config_files(_config_paths(config_file)), _environment_layer()]
    merged = merge_layers([*layers, _argument_layer(overrides)])
    # Every field is passed, defaults included, so the model does not read the environment a
    # second time: a variable the merge dropped (its storage replaced) must stay dropped.
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in StorageSettings.model_fields.items()
    }
    try:
        return StorageSettings(**{**defaults, **merged.values})
    except ValidationError as exc:
        # Not chained: pydantic's own text repeats input values, which may be secrets.
        raise ConfigurationError(f"invalid settings: {_describe(exc, merged.origins)}") from None
